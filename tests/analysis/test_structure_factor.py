"""S(q): direct Debye-like pair sum, ideal gas, large-q limit, silica's first sharp peak."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read
from ase.neighborlist import neighbor_list as ase_neighbor_list

from amtoolkit.analysis.structure_factor import (
    MeasuredSq,
    StructureFactorResult,
    half_width,
    lorch_window,
    scattering_weights,
    sq_from_gr,
    structure_factor,
)
from amtoolkit.errors import StructureError

DEBYE_TOL = 2e-3  # histogram (dr = 0.01 Å) vs exact pair positions
IDEAL_GAS_TOL = 0.1  # |S - 1| for 1000 random points at q > 2 1/Å (statistical)
LARGE_Q_TOL = 0.02  # |S - 1| at q > 20 1/Å for a thermally disordered crystal
SAME_STRUCTURE_TOL = 1e-10  # one structure in two cells: the same pairs, up to rounding


def rattled_diamond() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    atoms.rattle(0.15, seed=3)
    return atoms


def test_matches_direct_pair_sum():
    # S(q) = 1 + (1/N) sum_{i != j, r_ij < rmax} W(r_ij) sin(q r_ij) / (q r_ij)
    #          - 4 pi rho / q * integral_0^rmax r W(r) sin(q r) dr
    atoms = rattled_diamond()
    rmax = 7.0
    result = structure_factor(atoms, qmax=12.0, nq=120, rmax=rmax)
    d = ase_neighbor_list("d", atoms, rmax)
    q = result.q
    n = len(atoms)
    rho = n / atoms.get_volume()
    pair_sum = (np.sinc(np.outer(q, d) / np.pi) * lorch_window(d, rmax)).sum(axis=1) / n
    r = np.linspace(0.0, rmax, 40_001)
    integrand = r * lorch_window(r, rmax) * np.sin(np.outer(q, r))
    uniform = 4 * np.pi * rho / q * np.trapezoid(integrand, r, axis=1)
    np.testing.assert_allclose(result.s, 1.0 + pair_sum - uniform, rtol=0, atol=DEBYE_TOL)


def rattled_oxide() -> Atoms:
    """A rattled two-element crystal (rock salt, Si and O): every partial is non-trivial."""
    atoms = bulk("NaCl", "rocksalt", a=4.6, cubic=True).repeat(2)
    atoms.set_chemical_symbols(["Si" if z == 11 else "O" for z in atoms.numbers])
    atoms.rattle(0.2, seed=5)
    return atoms


@pytest.mark.parametrize("weighting", ["neutron", "xray"])
def test_weighted_s_matches_a_weighted_direct_pair_sum(weighting):
    # S(q) = 1 + sum_{i != j} w_i(q) w_j(q) W(r_ij) sinc(q r_ij) / (N <w(q)>^2)
    #          - 4 pi rho / q * integral_0^rmax r W(r) sin(q r) dr
    atoms = rattled_oxide()
    rmax = 6.0
    result = structure_factor(atoms, qmax=12.0, nq=60, rmax=rmax, weighting=weighting)
    assert result.weighting == weighting
    q = result.q
    i, j, d = ase_neighbor_list("ijd", atoms, rmax)
    symbols = np.array(atoms.get_chemical_symbols())
    w = {el: scattering_weights([el], q, weighting)[0] for el in ("O", "Si")}
    w_atoms = np.array([w[el] for el in symbols])  # [n, nq]
    n = len(atoms)
    mean_w = w_atoms.mean(axis=0)
    terms = w_atoms[i] * w_atoms[j] * np.sinc(np.outer(d, q) / np.pi)  # [pairs, nq]
    pair_sum = (terms * lorch_window(d, rmax)[:, None]).sum(axis=0) / (n * mean_w**2)
    r = np.linspace(0.0, rmax, 40_001)
    integrand = r * lorch_window(r, rmax) * np.sin(np.outer(q, r))
    uniform = 4 * np.pi * n / atoms.get_volume() / q * np.trapezoid(integrand, r, axis=1)
    np.testing.assert_allclose(result.s, 1.0 + pair_sum - uniform, rtol=0, atol=DEBYE_TOL)
    number = structure_factor(atoms, qmax=12.0, nq=60, rmax=rmax)
    assert np.abs(result.s - number.s).max() > 0.02  # the weighting matters here


def test_weightings_agree_for_one_element():
    atoms = rattled_diamond()
    number = structure_factor(atoms, qmax=12.0, nq=60, rmax=7.0)
    for weighting in ("neutron", "xray"):
        weighted = structure_factor(atoms, qmax=12.0, nq=60, rmax=7.0, weighting=weighting)
        np.testing.assert_allclose(weighted.s, number.s, rtol=0, atol=1e-12)


def test_scattering_weights_are_the_tabulated_ones():
    q = np.array([1e-6, 2.0])
    neutron = scattering_weights(["Si", "O"], q, "neutron")
    np.testing.assert_allclose(neutron, [[4.15071] * 2, [5.8037] * 2])  # fm (NIST)
    xray = scattering_weights(["Si", "O"], q, "xray")
    np.testing.assert_allclose(xray[:, 0], [14.0, 8.0], atol=0.01)  # f(0) = Z electrons
    assert np.all(xray[:, 1] < xray[:, 0])  # form factors fall with q
    with pytest.raises(ValueError, match="no coherent neutron scattering length .* for Og"):
        scattering_weights(["Og"], q, "neutron")
    with pytest.raises(ValueError, match="no X-ray form factor is tabulated for Og"):
        scattering_weights(["Og"], q, "xray")
    with pytest.raises(ValueError, match="weighting must be one of number, neutron, xray"):
        structure_factor(rattled_diamond(), weighting="electron")


def test_measured_sq_is_read_and_compared(tmp_path):
    computed = structure_factor(rattled_diamond(), qmax=12.0, nq=120, rmax=7.0)
    path = tmp_path / "measured.dat"
    pairs = zip(computed.q, computed.s, strict=True)
    rows = "\n".join(f"{q:.6f}, {s + 0.1:.9f}, 0.01" for q, s in pairs)
    path.write_text(f"# q (1/A), S(q), error\n{rows}\n\n")
    measured = MeasuredSq.read(path)
    assert measured.label == "measured.dat" and len(measured.q) == 120
    agreement = measured.agreement(computed)
    assert agreement.rmsd == pytest.approx(0.1, abs=1e-8)  # a constant offset of 0.1
    expected_r = np.sqrt(120 * 0.01 / np.sum((computed.s + 0.1 - 1.0) ** 2))
    assert agreement.r_factor == pytest.approx(expected_r, rel=1e-6)
    assert agreement.q_range == (pytest.approx(0.1), pytest.approx(12.0))
    same = MeasuredSq("self", computed.q, computed.s).agreement(computed)
    assert same.rmsd == 0.0 and same.r_factor == 0.0
    # only the measured points inside the computed grid count
    wide = MeasuredSq("wide", np.linspace(5.0, 30.0, 26), np.ones(26))
    assert wide.agreement(computed).n_points == 8 and wide.agreement(computed).q_range[1] == 12.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 1.0\n2 abc\n", "line 2 is not two numbers"),
        ("1\n", "line 1 has one column"),
        ("1 1\n2 1\n3 1\n", r"3 points; a measured S\(q\) needs at least 5"),
        ("1 1\n2 1\n2 1\n3 1\n4 1\n", "q must be positive and strictly increasing .* point 3"),
        ("0 1\n1 1\n2 1\n3 1\n4 1\n", r"q must be positive .*; point 1 has q = 0"),
        ("1 1\n2 nan\n3 1\n4 1\n5 1\n", "point 2 is not finite"),
    ],
)
def test_bad_measured_sq_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.dat"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"bad.dat: {message}"):
        MeasuredSq.read(path)


def test_measured_sq_outside_the_computed_range_is_refused(tmp_path):
    computed = structure_factor(rattled_diamond(), qmax=12.0, nq=60, rmax=7.0)
    in_per_nm = MeasuredSq("nm.dat", np.linspace(15.0, 200.0, 40), np.ones(40))
    with pytest.raises(ValueError, match=r"nm.dat: 0 measured points .* \(are its q in 1/Å\?\)"):
        in_per_nm.agreement(computed)
    with pytest.raises(FileNotFoundError, match="no measured S\\(q\\) file"):
        MeasuredSq.read(tmp_path / "missing.dat")


def test_uniform_g_gives_one():
    r = 0.01 * (np.arange(500) + 0.5)
    q = np.linspace(0.1, 20.0, 50)
    for window in (True, False):
        np.testing.assert_allclose(sq_from_gr(r, np.ones_like(r), 0.07, q, window), 1.0)


def test_ideal_gas_is_flat():
    rng = np.random.default_rng(0)
    gas = Atoms("Ar1000", scaled_positions=rng.random((1000, 3)), cell=[22.0] * 3, pbc=True)
    result = structure_factor(gas)
    assert result.rmax == pytest.approx(11.0)
    assert np.abs(result.s[result.q > 2.0] - 1.0).max() < IDEAL_GAS_TOL


def test_large_q_limit_is_one():
    result = structure_factor(rattled_diamond(), qmax=30.0, nq=300)
    assert np.abs(result.s[result.q > 20.0] - 1.0).max() < LARGE_Q_TOL


def sheared_copy(atoms: Atoms) -> Atoms:
    """The same periodic structure in a cell of the same lattice written far from reduced."""
    a, b, c = atoms.cell.array
    sheared = atoms.copy()
    sheared.set_cell([a, b + 3 * a, c + 2 * b - a], scale_atoms=False)  # unimodular
    sheared.wrap()
    return sheared


def test_default_rmax_is_half_the_shortest_lattice_vector():
    atoms = Atoms("Si", cell=[[6.0, 0, 0], [3.0, 5.0, 0], [0, 0, 9.0]], pbc=True)
    # the width along y is 5 Å, but no lattice vector is shorter than |(3, 5, 0)|
    assert half_width(atoms) == pytest.approx(0.5 * np.sqrt(34.0))
    cubic = bulk("Si", "diamond", a=5.431, cubic=True)
    result = structure_factor([cubic.repeat(3), cubic.repeat((3, 3, 4))], nq=10)
    assert result.rmax == pytest.approx(1.5 * 5.431)
    assert result.per_structure.shape == (2, 10)
    np.testing.assert_allclose(result.s, result.per_structure.mean(axis=0))


def test_default_rmax_does_not_depend_on_how_the_cell_is_written():
    # it was half the perpendicular width of the cell as written: 5.43 Å for the cube,
    # 0.71 Å for the same structure in a sheared cell of the same lattice
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=0)
    cube, sheared = structure_factor(atoms, nq=50), structure_factor(sheared_copy(atoms), nq=50)
    assert cube.rmax == sheared.rmax == pytest.approx(5.43)
    np.testing.assert_allclose(sheared.s, cube.s, rtol=0, atol=SAME_STRUCTURE_TOL)


def test_half_width_is_a_property_of_the_lattice():
    # fcc, a = 4 Å: nearest lattice points a / sqrt(2) apart, however the cell is written
    # (the perpendicular widths of its Minkowski-reduced cells are 2.0 or 2.31 Å)
    primitive = bulk("Cu", "fcc", a=4.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        shear = np.eye(3, dtype=int) + np.triu(rng.integers(-3, 4, (3, 3)), 1)  # det 1
        rewritten = Atoms("Cu", cell=shear[rng.permutation(3)] @ primitive.cell.array, pbc=True)
        assert half_width(rewritten) == pytest.approx(4.0 / np.sqrt(2.0) / 2.0)


def test_result_contract():
    result = structure_factor(rattled_diamond(), qmax=10.0, nq=50)
    assert isinstance(result, StructureFactorResult)
    np.testing.assert_allclose(result.q, np.linspace(0.2, 10.0, 50))
    assert result.s.shape == (50,) and result.window
    json.dumps(result.to_dict())
    assert result.plot() is not None
    with pytest.raises(ValueError, match="no q points"):
        result.peak_position(11.0, 12.0)


def test_peak_position_refuses_a_window_edge_on_a_rising_curve():
    q = np.linspace(0.1, 10.0, 100)
    s = 1.0 + np.exp(-((q - 2.0) ** 2))
    peaked = StructureFactorResult(q=q, s=s, per_structure=s[None], rmax=10.0, window=True)
    assert peaked.peak_position(1.0, 3.0) == pytest.approx(2.0, abs=0.1)
    with pytest.raises(ValueError, match="no peak inside \\[1.0, 1.5\\].*rises beyond it"):
        peaked.peak_position(1.0, 1.5)  # S still rising at q = 1.5
    with pytest.raises(ValueError, match="largest at the edge q = 2.5"):
        peaked.peak_position(2.5, 4.0)  # S falling from q = 2.5: the peak is below it


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("qmax", -1.0, "-1.0"),
        ("qmax", float("inf"), "inf"),  # gave S(q) all NaN without a word
        ("qmax", float("nan"), "nan"),
        ("nq", 0, "0"),
        ("nq", 2.5, "2.5"),
        ("nq", True, "True"),
        ("rmax", float("inf"), "inf"),  # raised OverflowError
        ("rmax", 0.0, "0.0"),
        ("rmax", "5", "'5'"),
        ("dr", float("inf"), "inf"),  # gave one bin
        ("dr", -0.01, "-0.01"),
        ("dr", np.float64("nan"), "nan"),
    ],
)
def test_bad_option_is_named_with_its_value(diamond_si, option, value, shown):
    with pytest.raises(ValueError) as error:
        structure_factor(diamond_si, **{option: value})
    message = str(error.value)
    assert message.startswith(f"{option} must be ") and message.endswith(f", got {shown}")
    assert "\n" not in message


def test_bad_input():
    atoms = rattled_diamond()
    atoms.pbc = False
    with pytest.raises(StructureError, match="not periodic"):
        structure_factor(atoms)


@pytest.mark.slow
def test_silica_first_sharp_diffraction_peak(dm2_sio2_path):
    atoms = read(dm2_sio2_path, format="lammps-data", atom_style="charge", units="real")
    result = structure_factor(atoms)
    # a-SiO2: first sharp diffraction peak at 1.5-1.7 1/Å, main peak near 5 1/Å
    assert 1.45 <= result.peak_position(1.0, 2.5) <= 1.75
    assert 4.5 <= result.peak_position(4.0, 6.0) <= 5.5
    assert result.s[(result.q > 1.0) & (result.q < 2.5)].max() > 1.2
    # neutron-weighted: the FSDP of vitreous silica's diffraction data, near 1.55 1/Å
    neutron = structure_factor(atoms, weighting="neutron")
    assert 1.45 <= neutron.peak_position(1.0, 2.5) <= 1.65
    assert 2.7 <= neutron.peak_position(2.5, 3.3) <= 3.1  # the second neutron peak


def test_a_null_scattering_mixture_is_refused():
    # Ti (b = -3.37 fm) and Zr (+7.16 fm) at 44:20 nearly cancel for neutrons
    alloy = bulk("Ti", "hcp", a=2.95, c=4.68).repeat((4, 4, 2))
    symbols = alloy.get_chemical_symbols()
    for k in range(20):
        symbols[3 * k] = "Zr"
    alloy.set_chemical_symbols(symbols)
    alloy.rattle(0.05, seed=1)
    with pytest.raises(ValueError, match=r"Ti44Zr20 nearly averages to zero .* 0\.00026"):
        structure_factor(alloy, weighting="neutron")
    assert structure_factor(alloy, weighting="xray").s.max() < 3.0  # X-rays see it well


def test_measured_sq_files_from_spreadsheets_and_their_mistakes(tmp_path):
    rows = "".join(f"{q};{1.0 + 0.1 * np.sin(q)}\r\n" for q in np.linspace(0.5, 10.0, 20))
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + rows.encode())  # UTF-8 with a byte-order mark
    measured = MeasuredSq.read(excel)
    assert len(measured.q) == 20 and measured.q[0] == 0.5
    with pytest.raises(ValueError, match="read-only"):
        measured.q[0] = -5.0  # checked once, kept as checked
    header = tmp_path / "header.csv"
    header.write_text("q,S\n" + rows)
    with pytest.raises(ValueError, match=r"line 1 is not two numbers .*'q,S' \(start a header"):
        MeasuredSq.read(header)
    with pytest.raises(ValueError, match="is a directory, not a measured S"):
        MeasuredSq.read(tmp_path)
    with pytest.raises(ValueError, match="bad: q and S\\(q\\) must be numbers"):
        MeasuredSq("bad", ["a"] * 6, np.ones(6))

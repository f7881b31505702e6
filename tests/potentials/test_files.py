"""Potential files: any LAMMPS potential from a few lines of YAML, known answers and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from click.testing import CliRunner

from amtoolkit import Analyzer
from amtoolkit.analysis.cache import FrameCache
from amtoolkit.cli import main
from amtoolkit.io import write_structures
from amtoolkit.potentials import get_calculator, get_spec, relax
from amtoolkit.potentials.files import check_potential, load_potential

COULOMB = 14.399645  # eV Å / e^2, LAMMPS metal units

LJ = {("Ar", "Ar"): (0.0104, 3.40), ("Kr", "Kr"): (0.0140, 3.65), ("Ar", "Kr"): (0.0121, 3.52)}


def write(tmp_path, text, name="pot.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def sw_file(tmp_path):
    return write(tmp_path, "elements: [Si]\npair_style: sw\npair_coeff: '* * Si.sw {elements}'\n")


@pytest.fixture
def lj_file(tmp_path):
    # per-pair lines by element, one written Kr Ar (LAMMPS wants I <= J)
    return write(
        tmp_path,
        "name: lj-noble\nelements: [Ar, Kr]\npair_style: lj/cut 8.0\npair_coeff:\n"
        "  - Ar Ar 0.0104 3.40\n  - Kr Kr 0.0140 3.65\n  - Kr Ar 0.0121 3.52\n",
        name="lj.yaml",
    )


def lj_energy(atoms):
    energy = 0.0
    for i in range(len(atoms)):
        for j in range(i):
            key = tuple(sorted((atoms[i].symbol, atoms[j].symbol)))
            eps, sigma = LJ[key]
            r = atoms.get_distance(i, j)
            energy += 4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6)
    return energy


def test_a_file_naming_the_sw_parameters_is_the_named_sw_potential(sw_file, rattled_si):
    named, filed = rattled_si.copy(), rattled_si.copy()
    named.calc, filed.calc = get_calculator("sw-si"), get_calculator(sw_file)
    assert filed.get_potential_energy() == named.get_potential_energy()
    np.testing.assert_array_equal(filed.get_forces(), named.get_forces())
    np.testing.assert_array_equal(filed.get_stress(), named.get_stress())
    spec = get_spec(sw_file)
    assert spec.name == "pot" and spec.elements == ("Si",) and spec.source.endswith("pot.yaml")
    assert spec.to_dict()["digest"] == spec.digest.startswith("sha256-") * spec.digest


def test_per_pair_lines_map_elements_to_types_and_drop_absent_ones(lj_file):
    mixed = Atoms("ArKrAr", positions=[[0, 0, 0], [3.9, 0, 0], [0, 4.1, 0.3]])
    mixed.calc = get_calculator(lj_file)
    assert mixed.get_potential_energy() == pytest.approx(lj_energy(mixed), rel=1e-10)
    krypton = Atoms("Kr2", positions=[[0, 0, 0], [4.0, 0, 0]])  # type 1 is Kr here
    krypton.calc = get_calculator(lj_file)
    assert krypton.get_potential_energy() == pytest.approx(lj_energy(krypton), rel=1e-10)
    commands = get_spec(lj_file).commands(["Kr"], {})
    assert commands == ["pair_style lj/cut 8.0", "pair_coeff 1 1 0.0140 3.65"]


def test_charges_of_a_charged_potential_are_set(tmp_path):
    path = write(
        tmp_path,
        "elements: [Na, Cl]\npair_style: coul/cut 10.0\npair_coeff: '* *'\n"
        "atom_style: charge\ncharges: {Na: 1.0, Cl: -1.0}\n",
    )
    pair = Atoms("NaCl", positions=[[0, 0, 0], [2.5, 0, 0]])
    pair.calc = get_calculator(path)
    assert pair.get_potential_energy() == pytest.approx(-COULOMB / 2.5, rel=1e-6)
    assert pair.get_forces()[0, 0] == pytest.approx(COULOMB / 2.5**2, rel=1e-6)  # attracted


def test_json_file_and_a_file_beside_the_potential(tmp_path, rattled_si):
    from amtoolkit.potentials._lammps import potentials_dir

    (tmp_path / "mine.sw").write_bytes((potentials_dir() / "Si.sw").read_bytes())
    path = tmp_path / "pot.json"
    spec = {"elements": ["Si"], "pair_style": "sw", "pair_coeff": "* * mine.sw {elements}"}
    path.write_text(json.dumps(spec))
    assert str(tmp_path / "mine.sw") in get_spec(str(path)).commands(["Si"], {})[1]
    rattled_si.calc = get_calculator(str(path))
    reference = rattled_si.copy()
    reference.calc = get_calculator("sw-si")
    assert rattled_si.get_potential_energy() == reference.get_potential_energy()


def test_relax_and_analyzer_take_a_potential_file(sw_file, rattled_si):
    relaxed = relax(rattled_si, sw_file, fmax=1e-3)
    assert relaxed.get_potential_energy() / len(relaxed) == pytest.approx(-4.3366, abs=1e-3)
    frames = [rattled_si, rattled_si.copy()]
    frames[1].rattle(0.02, seed=3)
    by_file = Analyzer(sw_file, workers=2).energy(frames)
    by_name = Analyzer("sw-si").energy(frames)
    np.testing.assert_allclose(by_file.energy_per_atom, by_name.energy_per_atom, rtol=0, atol=1e-9)


def test_the_cache_follows_the_content_of_the_file(tmp_path, sw_file, rattled_si):
    before = FrameCache(tmp_path / "cache", sw_file)
    key = before.key([("energy", {})], rattled_si)
    assert FrameCache(tmp_path / "cache", sw_file).key([("energy", {})], rattled_si) == key
    with open(sw_file, "a") as handle:
        handle.write("reference: edited\n")
    assert FrameCache(tmp_path / "cache", sw_file).key([("energy", {})], rattled_si) != key


SI_SW = "elements: [Si]\npair_style: sw\n"
NACL = "elements: [Na, Cl]\npair_style: coul/cut 9\npair_coeff: '* *'\natom_style: charge\n"


@pytest.mark.parametrize(
    "text, fragments",
    [
        (SI_SW, ["pair_coeff is missing"]),
        (SI_SW + "pair_coef: '* * Si.sw Si'\n", ["'pair_coef'", "pair_coeff"]),
        (SI_SW.replace("Si]", "Qx]") + "pair_coeff: '* * Si.sw Si'\n", ["'Qx'", "not an element"]),
        (SI_SW + "pair_coeff: '* * nowhere.sw Si'\n", ["nowhere.sw", "found neither"]),
        (SI_SW + "pair_coeff: '* *'\ncharges: {Si: 1}\n", ["needs atom_style: charge"]),
        (NACL + "charges: {Na: 1}\n", ["no charge for Cl"]),
        ("elements: [Si\n", ["not valid YAML"]),
        ("- a list\n", ["expected a mapping"]),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path, text, fragments):
    path = write(tmp_path, text, name="bad.yaml")
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_potential(path)
    message = str(info.value)
    assert "bad.yaml" in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_lammps_refusing_a_file_names_the_file(tmp_path, rattled_si):
    path = write(tmp_path, "elements: [Si]\npair_style: sw/nonesuch\npair_coeff: '* * Si.sw Si'\n")
    rattled_si.calc = get_calculator(path)
    with pytest.raises(ValueError, match=r"pot.yaml: LAMMPS: Unrecognized pair style"):
        rattled_si.get_potential_energy()
    with pytest.raises(KeyError, match="or a potential file"):
        get_spec("no-such-potential")
    with pytest.raises(FileNotFoundError, match="missing.yaml not found"):
        get_spec(str(tmp_path / "missing.yaml"))


def test_command_line_checks_a_file_and_analyzes_with_it(tmp_path, lj_file, sw_file, diamond_si):
    runner = CliRunner()
    result = runner.invoke(main, ["potentials", lj_file])
    assert result.exit_code == 0, result.output
    assert "pair_coeff 1 2 0.0121 3.52" in result.output
    assert "64-atom Ar32Kr32 test cell" in result.output
    assert check_potential(lj_file) == result.output.rstrip("\n")
    frames = str(write_structures(tmp_path / "si.extxyz", diamond_si * (2, 2, 2)))
    result = runner.invoke(main, ["analyze", frames, "-p", sw_file, "--energy", "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["potential"] == sw_file
    assert report["energy"]["mean_energy"] == pytest.approx(-4.3366, abs=1e-4)  # diamond Si, SW
    bad = write(tmp_path, "elements: [Si]\npair_style: sw\n", name="bad.yaml")
    result = runner.invoke(main, ["analyze", frames, "-p", bad, "--energy"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("amtool: error: potential file")


def test_an_edited_parameter_file_is_read_again_in_the_same_process(tmp_path, rattled_si):
    from amtoolkit.potentials._lammps import potentials_dir

    (tmp_path / "mine.sw").write_bytes((potentials_dir() / "Si.sw").read_bytes())
    path = write(tmp_path, "elements: [Si]\npair_style: sw\npair_coeff: '* * mine.sw Si'\n")
    before = get_spec(path).digest
    cache = FrameCache(tmp_path / "cache", path).key([("energy", {})], rattled_si)
    text = (tmp_path / "mine.sw").read_text()
    (tmp_path / "mine.sw").write_text(text.replace("2.1683", "2.2000", 1))  # epsilon
    assert get_spec(path).digest != before
    assert FrameCache(tmp_path / "cache", path).key([("energy", {})], rattled_si) != cache


def test_hybrid_sub_styles_are_not_files_and_types_print_in_their_order(tmp_path):
    path = write(
        tmp_path,
        "elements: [Si, O]\npair_style: hybrid/overlay buck 6.0 coul/dsf 0.2 8.0\n"
        "pair_coeff:\n  - O O buck 1388.77 0.3623 175.0\n  - Si O buck 18003.76 0.2052 133.54\n"
        "  - '* * coul/dsf'\natom_style: charge\ncharges: {Si: 2.4, O: -1.2}\n",
        name="bks.yaml",
    )
    spec = get_spec(path)
    assert spec.commands(["O", "Si"], {})[1:4] == [
        "pair_coeff 1 1 buck 1388.77 0.3623 175.0",
        "pair_coeff 1 2 buck 18003.76 0.2052 133.54",  # Si O written, O (type 1) first
        "pair_coeff * * coul/dsf",
    ]
    shown = check_potential(path)
    assert "types       1 O, 2 Si" in shown and "pair_coeff 1 1 buck" in shown
    assert "charges     Si +2.4, O -1.2" in shown


def test_an_explicit_element_list_on_a_many_body_line_is_refused(tmp_path):
    path = write(
        tmp_path,
        "elements: [Cu, Zr]\npair_style: eam/fs\npair_coeff: '* * CuZr_mm.eam.fs Zr Cu'\n",
        name="order.yaml",
    )
    with pytest.raises(ValueError, match=r"lists elements \(Zr Cu\); write \{elements\}"):
        load_potential(path)


def test_lammps_messages_of_several_lines_stay_whole(tmp_path):
    path = write(
        tmp_path,
        "elements: [Ar, Kr]\npair_style: buck 8.0\n"
        "pair_coeff: ['Ar Ar 1000 0.3 1', 'Kr Kr 1000 0.3 1']\n",
        name="nomix.yaml",
    )
    pair = Atoms("ArKr", positions=[[0, 0, 0], [3.9, 0, 0]], cell=[10] * 3, pbc=True)
    pair.calc = get_calculator(path)
    with pytest.raises(ValueError, match=r"1 2: is not set; 2 2: is set \(types: 1 Ar, 2 Kr\)$"):
        pair.get_potential_energy()


@pytest.mark.parametrize("name", ["cuzr-mendelev.yaml", "vashishta-sio2.yaml", "lj-binary.yaml"])
def test_the_example_potential_files_read_and_run(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "potentials" / name
    shown = check_potential(path)
    energy = float(shown.split("test cell")[1].split(":")[1].split()[0])
    assert np.isfinite(energy) and "largest force" in shown
    assert get_spec(str(path)).reference  # each names where its parameters come from

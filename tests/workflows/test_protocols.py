"""The three protocols on tiny cells: amorphous output, labels, determinism, stage plans."""

from __future__ import annotations

import numpy as np
import pytest

from amtoolkit.analysis.crystallinity import crystallinity
from amtoolkit.analysis.energy import density
from amtoolkit.workflows import ASiO2Protocol, ASiProtocol, MEGProtocol, make_dataset
from amtoolkit.workflows.composition import OXIDES
from tests.known_values import SW_DIAMOND_ENERGY

AMORPHOUS_EXCESS = 0.05  # eV/atom: a-Si (SW) lies ~0.1-0.2 eV/atom above diamond
MIN_SI_SI = 2.0  # Å: no two Si atoms of a sane SW structure are closer

# tiny a-Si: 64 atoms, 4 ps melt (long enough to melt the 64-atom crystal), 1 + 1 ps
TINY_A_SI = {"atoms": 64, "melt_time": 4.0, "liquid_time": 1.0, "final_time": 1.0}
# tiny a-SiO2 and MEG: they exercise the pipeline (the moduli of such cells are not
# meaningful; loose force criteria keep the relaxations short)
TINY_A_SIO2 = {
    "atoms": 48,
    "melt_time": 0.3,
    "final_time": 0.1,
    "elastic_steps": 2,
    "relax_fmax": 0.1,
}
TINY_MEG = {
    "atoms": 40,
    "melt_time": 0.2,
    "cooling_rate": 20000.0,
    "final_time": 0.1,
    "elastic_steps": 2,
    "relax_fmax": 0.5,
}


def test_a_si_quench_dataset_is_amorphous_with_finite_labels(tmp_path):
    ds = make_dataset(
        "a-si", 2, tmp_path / "a-si.h5", workers=2, seed=0, progress=False, **TINY_A_SI
    )
    assert len(ds) == 2 and set(ds.property_names) == {"relaxed_energy", "density"}
    for i in range(2):
        atoms = ds[i]
        assert len(atoms) == 64 and set(atoms.get_chemical_symbols()) == {"Si"}
        e, rho = atoms.info["relaxed_energy"], atoms.info["density"]
        assert np.isfinite(e) and np.isfinite(rho)
        assert SW_DIAMOND_ENERGY + AMORPHOUS_EXCESS < e < -3.9  # above the crystal, still bound
        assert rho == pytest.approx(density(atoms), rel=1e-12)  # density of the stored frame
        assert 2.1 < rho < 2.7
        assert crystallinity(atoms).number == [1]  # P1: no symmetry left
        d = atoms.get_all_distances(mic=True)[np.triu_indices(64, 1)]
        assert d.min() > MIN_SI_SI
    prov = ds.provenance
    assert prov["potential"]["name"] == "sw-si" and prov["lammps_version"] >= 20250722
    stages = [s["name"] for s in prov["samples"][0]["stages"]]
    assert stages == ["velocities", "melt", "liquid", "quench"]
    assert prov["samples"][0]["md_steps"] == 6000


def test_a_si_same_seed_same_structure():
    protocol = ASiProtocol(atoms=64, melt_time=0.2, liquid_time=0.1, final_time=0.1)
    a, labels_a = protocol.run_sample(0, 123)
    b, labels_b = protocol.run_sample(5, 123)  # the index does not enter the physics
    c, _ = protocol.run_sample(0, 124)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell.array, b.cell.array)
    assert labels_a == labels_b
    assert np.abs(a.positions - c.positions).max() > 1e-3


def test_a_si_variants_plan_the_issue_protocol():
    steps = {s.name: (s.steps, s.t_start, s.t_stop) for s in ASiProtocol(variant="anneal").stages()}
    assert steps["melt"] == (20000, 3000.0, 3000.0)
    assert steps["liquid"] == (20000, 2500.0, 2500.0)
    assert steps["anneal"] == (220000, 2500.0, 300.0)  # 2200 K at 10 K/ps, 1 fs steps
    assert steps["hold"] == (10000, 300.0, 300.0)
    quench = {s.name: (s.steps, s.t_start, s.t_stop) for s in ASiProtocol().stages()}
    assert quench["quench"] == (10000, 300.0, 300.0)  # thermostat at 300 K at once
    melt = [s.name for s in ASiProtocol(variant="melt").stages()]
    assert melt == ["velocities", "melt", "liquid"]  # the 2500 K snapshot is stored
    faster = {s.name: s.steps for s in ASiProtocol(variant="anneal", cooling_rate=100).stages()}
    assert faster["anneal"] == 22000


def test_a_si_anneal_and_melt_labels():
    common = {"atoms": 64, "melt_time": 0.2, "liquid_time": 0.1, "final_time": 0.1}
    anneal, labels = ASiProtocol(variant="anneal", cooling_rate=22000.0, **common).run_sample(0, 1)
    assert labels["cooling_rate"] == 22000.0
    assert [s["name"] for s in anneal.info["workflow"]["stages"]][-2:] == ["anneal", "hold"]
    melt, labels = ASiProtocol(variant="melt", **common).run_sample(0, 1)
    assert "cooling_rate" not in labels
    final = melt.info["workflow"]["stages"][-1]
    assert final["name"] == "liquid" and final["final"]["Temp"] > 1500  # a liquid snapshot
    assert labels["density"] == pytest.approx(final["final"]["Density"], rel=1e-6)


def test_a_sio2_sizes_follow_the_stoichiometric_rule():
    sizes = ASiO2Protocol().sizes()
    assert sizes[0] == 81 and sizes[-1] == 249 and all(n % 3 == 0 for n in sizes)
    rng = np.random.default_rng(0)
    drawn = {len(ASiO2Protocol().start(rng)) for _ in range(30)}
    assert len(drawn) > 10 and drawn <= set(sizes)


def test_a_sio2_tiny_run_has_all_labels():
    atoms, labels = ASiO2Protocol(**TINY_A_SIO2).run_sample(0, 2)
    symbols = atoms.get_chemical_symbols()
    assert symbols.count("O") == 2 * symbols.count("Si") == 32
    assert set(labels) == set(ASiO2Protocol.labels)
    assert all(np.isfinite(v) for v in labels.values())
    assert labels["density"] == pytest.approx(density(atoms), rel=1e-12)
    assert 2 <= labels["ring_size"] <= 12  # Si atoms per ring
    assert labels["bulk_modulus"] > 0
    assert [s["name"] for s in atoms.info["workflow"]["stages"]] == [
        "prerelax",
        "melt-velocities",
        "melt",
        "quench",
        "final-velocities",
        "anneal",
    ]


def test_meg_tiny_run_has_all_labels_and_a_neutral_composition():
    protocol = MEGProtocol(**TINY_MEG)
    atoms, labels = protocol.run_sample(0, 4)
    info = atoms.info["workflow"]
    assert set(labels) == set(MEGProtocol.labels)
    assert all(np.isfinite(v) for v in labels.values())
    symbols = atoms.get_chemical_symbols()
    assert labels["li_fraction"] == symbols.count("Li") / len(atoms)
    units = info["formula_units"]
    oxygen = sum(OXIDES[ox]["O"] * n for ox, n in units.items())
    assert symbols.count("O") == oxygen
    assert info["melt_temperature"] == protocol.melt_temperature(units)
    assert info["stages"][2]["name"] == "melt"
    assert info["stages"][2]["final"]["Temp"] > 1000


def test_meg_li_fraction_is_the_atom_fraction_of_li():
    protocol = MEGProtocol(modifiers=("Li2O",), formers=("SiO2",), atoms=60)
    units = protocol.composition_units(np.random.default_rng(0))
    assert set(units) == {"SiO2", "Li2O"}
    # the label is computed in run_sample from these counts: 2 Li per Li2O unit
    n_atoms = 3 * units["SiO2"] + 3 * units["Li2O"]
    assert 2 * units["Li2O"] / n_atoms < 0.4 * 2 / 3 + 1e-12


def test_meg_fixed_composition_makes_every_sample_of_it():
    protocol = MEGProtocol(composition="SiO2:0.7,Li2O:0.3", atoms=99)
    assert protocol.composition == "SiO2:70,Li2O:30"  # canonical: mole percent
    for seed in range(3):
        units = protocol.composition_units(np.random.default_rng(seed))
        assert units == {"SiO2": 23, "Li2O": 10}  # 99 atoms, 30.3 mol% Li2O
    with pytest.raises(ValueError, match="fixes the glass, and modifiers, max_modifiers apply"):
        MEGProtocol(composition="SiO2:70,Li2O:30", modifiers="Li2O", max_modifiers=1)
    with pytest.warns(UserWarning, match=r"about 20 atoms is SiO2:71.43,Li2O:28.57"):
        MEGProtocol(composition="SiO2:70,Li2O:30", atoms=20)
    with pytest.raises(ValueError, match="max_modifier_fraction must be a mole fraction"):
        MEGProtocol(max_modifier_fraction=1.5)  # was a failure inside every worker


def test_full_protocols():
    assert ASiProtocol.full() == ASiProtocol()  # the defaults are the paper's
    assert ASiO2Protocol.full() == ASiO2Protocol()
    full = MEGProtocol.full()
    assert (full.atoms, full.melt_time, full.cooling_rate, full.final_time) == (
        800,
        20.0,
        5.0,
        10.0,
    )
    assert full.elastic_steps == 5 and MEGProtocol().elastic_steps == 3
    quench = [s for s in full.stages(3500.0) if s.name == "quench"][0]
    assert quench.steps == 320000  # 3200 K at 5 K/ps = 640 ps of 2 fs steps


@pytest.mark.parametrize(
    ("potential", "protocol"), [("tersoff-sio2", ASiO2Protocol), ("bmp-glass", MEGProtocol)]
)
def test_analyzer_elastic_defaults_are_the_label_settings(potential, protocol):
    """Measured with the defaults, a structure is measured as its dataset's labels were."""
    from amtoolkit import Analyzer

    labels = protocol()
    defaults = Analyzer(potential).elastic_defaults()
    assert defaults == {"fmax": labels.relax_fmax, "n_steps": labels.elastic_steps}


def test_analyzer_elastic_defaults_without_label_settings():
    from amtoolkit import Analyzer
    from amtoolkit.analyzer import ELASTIC_DEFAULTS
    from amtoolkit.potentials import get_calculator

    assert Analyzer("sw-si").elastic_defaults() == ELASTIC_DEFAULTS == {"fmax": 1e-4, "n_steps": 5}
    calc = get_calculator("tersoff-sio2")
    assert Analyzer(calc).elastic_defaults() == ELASTIC_DEFAULTS  # a calculator: no labels known
    calc.close()


def test_meg_oxide_lists_from_the_command_line():
    """``--set modifiers=CaO,Li2O`` arrives as one string: it is split on commas."""
    from amtoolkit.workflows.cli import parse_settings

    options = parse_settings(["modifiers=CaO,Li2O", "formers=SiO2"])
    protocol = MEGProtocol(**options)
    assert protocol.modifiers == ("CaO", "Li2O") and protocol.formers == ("SiO2",)
    with pytest.raises(ValueError, match=r"unknown oxide\(s\) in modifiers: \['Xx'\]"):
        MEGProtocol(modifiers="CaO,Xx")
    # a repeated oxide skewed the mole fractions (they summed to 0.6-1.0)
    with pytest.raises(ValueError, match="modifiers name CaO more than once"):
        MEGProtocol(modifiers="CaO,CaO")
    with pytest.raises(ValueError, match="SiO2 cannot be among the modifiers"):
        MEGProtocol(modifiers="SiO2,CaO")
    with pytest.raises(ValueError, match="CaO cannot be among the formers"):
        MEGProtocol(formers="SiO2,CaO")

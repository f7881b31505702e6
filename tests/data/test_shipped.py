"""The datasets shipped inside the package: present, loadable by name, physically sane."""

from __future__ import annotations

import numpy as np
import pytest

from amtoolkit.data import Dataset, available_datasets
from amtoolkit.diffusion import FORMAL_CHARGES
from tests.known_values import SW_DIAMOND_ENERGY


def test_a_si_quench_is_shipped_and_loads_by_name():
    assert "a-si-quench" in available_datasets()
    ds = Dataset.load("a-si-quench")
    assert len(ds) >= 200
    assert ds.provenance["protocol"] == "a-si"
    assert ds.provenance["parameters"]["variant"] == "quench"
    assert ds.provenance["failed_samples"] == []
    atoms = ds.atoms(len(ds) - 1)
    assert len(atoms) == 216 and set(atoms.get_chemical_symbols()) == {"Si"}
    assert atoms.pbc.all()


def test_a_si_quench_labels_are_physical():
    ds = Dataset.load("a-si-quench")
    energy = ds.properties["relaxed_energy"]
    density = ds.properties["density"]
    assert np.all(np.isfinite(energy)) and np.all(np.isfinite(density))
    assert np.all(energy > SW_DIAMOND_ENERGY) and np.all(energy < -3.9)
    assert np.all((density > 2.2) & (density < 2.8))


def test_unknown_shipped_name_lists_what_exists():
    with pytest.raises(Exception, match="a-si-quench"):
        Dataset.load("no-such-set")


def test_a_si_anneal_is_lower_in_energy_than_the_quench_set():
    """Slower cooling (10 K/ps ramp) relaxes the glass: lower SW energy than the 10 ps quench."""
    anneal, quench = Dataset.load("a-si-anneal"), Dataset.load("a-si-quench")
    assert anneal.provenance["parameters"]["variant"] == "anneal"
    assert anneal.provenance["parameters"]["cooling_rate"] == 10.0
    e_anneal = anneal.properties["relaxed_energy"]
    assert np.all(e_anneal > SW_DIAMOND_ENERGY)
    assert e_anneal.mean() < quench.properties["relaxed_energy"].mean() - 0.01
    assert np.all(anneal.properties["cooling_rate"] == 10.0)


def test_a_sio2_is_stoichiometric_and_its_labels_are_physical():
    ds = Dataset.load("a-sio2")
    assert len(ds) >= 300 and ds.provenance["failed_samples"] == []
    for i in (0, len(ds) - 1):
        symbols = ds.atoms(i).get_chemical_symbols()
        assert 2 * symbols.count("Si") == symbols.count("O")
    props = ds.properties
    for name in ("shear_modulus", "bulk_modulus", "youngs_modulus"):
        assert np.all(props[name] > 0) and np.all(props[name] < 200)
    assert np.all((props["ring_size"] > 4) & (props["ring_size"] < 10))
    assert np.all((props["density"] > 1.5) & (props["density"] < 3.2))
    # the labels of one sample come from one fitted tensor: nu = E / (2 G) - 1
    e, g = props["youngs_modulus"], props["shear_modulus"]
    np.testing.assert_allclose(props["poisson_ratio"], e / (2 * g) - 1, rtol=1e-9)


def test_meg_demo_glasses_are_neutral_and_labelled():
    ds = Dataset.load("meg-demo")
    assert len(ds) >= 5 and ds.provenance["protocol"] == "meg"
    props = ds.properties
    for i in range(len(ds)):
        atoms = ds.atoms(i)
        symbols = atoms.get_chemical_symbols()
        assert sum(FORMAL_CHARGES[z] for z in atoms.numbers) == 0, atoms.get_chemical_formula()
        assert props["li_fraction"][i] == symbols.count("Li") / len(symbols)
    for name in ("shear_modulus", "bulk_modulus", "youngs_modulus"):
        assert np.all(props[name] > 0) and np.all(props[name] < 200)
    assert np.all(np.isfinite(props["relaxed_energy"]))

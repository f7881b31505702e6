"""LAMMPS data import (type maps, property alignment) and the DM2 a-SiO2 importer."""

from __future__ import annotations

import numpy as np
import pytest

from amtoolkit.data import Dataset, DatasetError, import_dm2_sio2
from amtoolkit.data.dm2 import cooling_rate_from_name, mass_density

# Box, Masses and Atoms sections of a 3-atom LAMMPS data file (atom_style atomic)
_DATA = """LAMMPS data file (test)

3 atoms
{n_types} atom types

0.0 6.0 xlo xhi
0.0 7.0 ylo yhi
0.0 8.0 zlo zhi

Masses

1 15.9994
2 28.0855
{mass3}
Atoms # atomic

1 2 1.0 1.0 1.0
2 1 2.5 1.0 1.0
3 {type3} 1.0 5.0 {z3}
"""
README_DENSITY = (2.09, 2.20)  # g/cm^3, range stated in shared/data/dm2-sio2/README.md


def _write(path, type3=1, n_types=2, mass3="", z3=4.0):
    path.write_text(_DATA.format(type3=type3, n_types=n_types, mass3=mass3, z3=z3))
    return path


def test_from_lammps_data_with_type_map_and_properties(tmp_path):
    paths = [_write(tmp_path / "a.data"), _write(tmp_path / "b.data", z3=9.0)]
    ds = Dataset.from_lammps_data(paths, {1: "O", 2: "Si"}, properties={"density": [2.1, None]})
    assert len(ds) == 2
    np.testing.assert_array_equal(ds.atoms(0).numbers, [14, 8, 8])
    np.testing.assert_allclose(ds.atoms(0).cell.lengths(), [6.0, 7.0, 8.0])
    np.testing.assert_array_equal(ds.properties["density"], [2.1, np.nan])
    assert ds.atoms(1).positions[2, 2] == 9.0  # outside the box: kept as read ...
    wrapped = Dataset.from_lammps_data(paths, {1: "O", 2: "Si"}, wrap=True)
    assert wrapped.atoms(1).positions[2, 2] == pytest.approx(1.0)  # ... unless wrapped
    from_callable = Dataset.from_lammps_data(
        paths, {1: "O", 2: "Si"}, properties=lambda p: {"sample": {"a": 0, "b": 1}[p.stem]}
    )
    np.testing.assert_array_equal(from_callable.properties["sample"], [0, 1])
    assert ds.provenance["source"] == [str(p) for p in paths]
    as_typed = Dataset.from_lammps_data(paths, "1=O,2=Si")  # the command-line form
    np.testing.assert_array_equal(as_typed.atoms(0).numbers, [14, 8, 8])
    assert as_typed.provenance["type_map"] == {"1": "O", "2": "Si"}
    by_number = Dataset.from_lammps_data(paths, {1: 8, 2: 14})
    assert by_number.provenance["type_map"] == {"1": "O", "2": "Si"}


def test_from_lammps_data_errors_name_type_file_and_counts(tmp_path):
    path = _write(tmp_path / "three.data", type3=3, n_types=3, mass3="3 6.94\n")
    with pytest.raises(ValueError, match=r"three.data: LAMMPS atom type 3 is not in the type map"):
        Dataset.from_lammps_data(path, {1: "O", 2: "Si"})
    good = _write(tmp_path / "good.data")
    with pytest.raises(DatasetError, match="'density' has 1 values but there are 2 frames"):
        Dataset.from_lammps_data([good, good], {1: "O", 2: "Si"}, properties={"density": [1.0]})
    with pytest.raises(DatasetError, match="properties: record 0 is list, expected a dict"):
        Dataset.from_lammps_data(good, {1: "O", 2: "Si"}, properties=lambda p: [1.0])
    with pytest.raises(FileNotFoundError, match="missing.data"):
        Dataset.from_lammps_data([good, tmp_path / "missing.data"], {1: "O", 2: "Si"})
    with pytest.raises(ValueError, match="bad type map entry '1:O'"):
        Dataset.from_lammps_data(good, "1:O,2:Si")
    with pytest.raises(ValueError, match="type_map is empty"):
        Dataset.from_lammps_data(good, {})


def test_cooling_rate_from_file_name():
    assert cooling_rate_from_name("sio2_3000_glass_100k_sample0.dat") == 100.0
    assert cooling_rate_from_name("sio2_3000_glass_10k_sample3.dat") == 10.0
    assert cooling_rate_from_name("sio2_3000_glass_1k_sample4.dat") == 1.0
    assert cooling_rate_from_name("sio2_3000_glass_0_1k_sample1.dat") == 0.1
    with pytest.raises(DatasetError, match="random_sio2_300.dat: not a DM2 file name"):
        cooling_rate_from_name("random_sio2_300.dat")


def test_import_dm2_one_file(tmp_path, dm2_sio2_path):
    (tmp_path / dm2_sio2_path.name).symlink_to(dm2_sio2_path)
    (tmp_path / "notes.txt").write_text("not a structure")  # skipped
    ds = import_dm2_sio2(tmp_path)
    assert len(ds) == 1
    atoms = ds.atoms(0)
    assert atoms.get_chemical_formula() == "O2000Si1000"
    assert atoms.info["cooling_rate"] == 1.0
    assert README_DENSITY[0] <= atoms.info["density"] <= README_DENSITY[1]
    assert atoms.info["density"] == pytest.approx(
        mass_density(atoms.numbers, atoms.cell.array), rel=1e-12
    )
    frac = atoms.cell.scaled_positions(atoms.positions)
    assert np.all((frac >= 0) & (frac < 1))
    # wrapping moves atoms by whole lattice vectors only
    raw = Dataset.from_lammps_data(dm2_sio2_path, {1: "O", 2: "Si"}).atoms(0)
    shift = raw.cell.scaled_positions(raw.positions) - frac
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-9)
    assert ds.provenance["files"] == [dm2_sio2_path.name]


def test_import_dm2_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="DM2 folder not found"):
        import_dm2_sio2(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no DM2 glass files"):
        import_dm2_sio2(tmp_path)

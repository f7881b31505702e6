"""Dataset: construction, access, extxyz and AMDEN import, splits, normalisation, errors."""

from __future__ import annotations

import json
import os
import re

import ase.io
import numpy as np
import pytest
from ase import Atoms

from amtoolkit.data import PROPERTY_UNITS, Dataset, DatasetError, compute_normalisation
from amtoolkit.data._files import atomic_path
from amtoolkit.errors import StructureError
from amtoolkit.generator import parse_target
from tests.data.helpers import make_frames

EXTXYZ_POSITION_TOL = 1e-8  # Å; ASE's extxyz writer prints positions with 8 decimals
STATS_RTOL = 1e-12


def test_from_atoms_access(frames):
    ds = Dataset.from_atoms(frames, properties={"cooling_rate": [1, None, 3, 4, np.nan, 6]})
    assert len(ds) == 6
    assert ds.property_names == ["shear_modulus", "ring_size", "cooling_rate"]
    np.testing.assert_array_equal(ds.properties["cooling_rate"], [1, np.nan, 3, 4, np.nan, 6])
    ring = ds.properties["ring_size"]
    assert np.isnan(ring[0::2]).all() and np.isfinite(ring[1::2]).all()
    np.testing.assert_array_equal(ds.n_atoms, [len(a) for a in frames])
    for i, (atoms, original) in enumerate(zip(ds, frames, strict=True)):
        np.testing.assert_array_equal(atoms.numbers, original.numbers)
        np.testing.assert_array_equal(atoms.positions, original.positions)
        np.testing.assert_array_equal(atoms.cell.array, original.cell.array)
        np.testing.assert_array_equal(atoms.pbc, original.pbc)
        assert atoms.info["shear_modulus"] == original.info["shear_modulus"]
        assert ("ring_size" in atoms.info) == (i % 2 == 1)  # missing ones are omitted
        assert "label" not in atoms.info
    assert "cooling_rate" not in ds.atoms(1).info
    np.testing.assert_array_equal(ds[-1].positions, frames[-1].positions)
    with pytest.raises(IndexError, match="frame 6 is out of range for a dataset of 6 frames"):
        ds.atoms(6)
    prov = ds.provenance
    assert {"source", "command", "created", "amtoolkit_version"} <= set(prov)


def test_properties_are_copies(frames):
    ds = Dataset.from_atoms(frames)
    ds.properties["shear_modulus"][:] = -1.0
    assert np.all(ds.properties["shear_modulus"] > 0)


def test_subsets_share_frames_and_align_properties(frames):
    ds = Dataset.from_atoms(frames)
    sub = ds[[4, 1, -1]]
    assert len(sub) == 3
    np.testing.assert_array_equal(
        sub.properties["shear_modulus"], ds.properties["shear_modulus"][[4, 1, 5]]
    )
    np.testing.assert_array_equal(sub.atoms(0).positions, frames[4].positions)
    sliced = ds[1:5:2]
    np.testing.assert_array_equal(sliced.n_atoms, ds.n_atoms[[1, 3]])
    masked = ds.subset(np.arange(6) % 3 == 0)
    np.testing.assert_array_equal(masked.n_atoms, ds.n_atoms[[0, 3]])
    with pytest.raises(IndexError, match="frame 9 is out of range"):
        ds.subset([0, 9])


def test_with_properties_on_a_view(frames):
    ds = Dataset.from_atoms(frames)
    sub = ds[[1, 3]].with_properties({"density": [2.2, 2.3]})
    np.testing.assert_array_equal(sub.properties["density"], [2.2, 2.3])
    assert "density" not in ds.property_names
    with pytest.raises(DatasetError, match="'density' has 3 values but there are 2 frames"):
        ds[[1, 3]].with_properties({"density": [1, 2, 3]})


def test_added_labels_are_recorded_in_the_provenance(tmp_path, frames):
    ds = Dataset.from_atoms(frames, provenance={"source": "mine"})
    labelled = ds.with_properties({"density": [2.0] * 6}).with_properties(
        {"ring_size": [6.1] * 6}, how="Analyzer().rings(frames).mean_size_per_structure"
    )
    assert labelled.provenance["labels"] == [
        {"properties": ["density"], "how": "Dataset.with_properties"},
        {"properties": ["ring_size"], "how": "Analyzer().rings(frames).mean_size_per_structure"},
    ]
    assert "labels" not in ds.provenance and labelled.provenance["source"] == "mine"
    path = labelled.to_hdf5(tmp_path / "labelled.h5")
    assert Dataset.from_hdf5(path).provenance["labels"] == labelled.provenance["labels"]


def test_extxyz_round_trip(tmp_path, frames):
    ds = Dataset.from_atoms(frames)
    path = ds.to_extxyz(tmp_path / "set.extxyz")
    back = Dataset.from_extxyz(path)
    assert len(back) == len(ds)
    assert back.property_names == ds.property_names
    for name in ds.property_names:
        np.testing.assert_array_equal(back.properties[name], ds.properties[name])
    for a, b in zip(ds, back, strict=True):
        np.testing.assert_array_equal(a.numbers, b.numbers)  # ghosts (X) survive
        np.testing.assert_allclose(a.positions, b.positions, atol=EXTXYZ_POSITION_TOL, rtol=0)
        np.testing.assert_allclose(a.cell.array, b.cell.array, atol=EXTXYZ_POSITION_TOL, rtol=0)
        np.testing.assert_array_equal(a.pbc, b.pbc)
    assert back.provenance["source"] == str(path)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_from_extxyz_numeric_scalars_only(tmp_path):
    atoms = Atoms("Si2", positions=[[0, 0, 0], [1, 1, 1]], cell=[4, 4, 4], pbc=True)
    atoms.info.update(
        {"relaxed_energy": -4.5, "n_rings": 12, "name": "x", "flag": True, "vec": np.ones(3)}
    )
    atoms.info["energy"] = -9.0  # ASE moves this into a SinglePointCalculator on reading
    ase.io.write(tmp_path / "one.extxyz", atoms, format="extxyz")
    ds = Dataset.from_extxyz(tmp_path / "one.extxyz")
    assert set(ds.property_names) == {"relaxed_energy", "n_rings", "energy"}
    assert ds.atoms(0).info == {"relaxed_energy": -4.5, "n_rings": 12.0, "energy": -9.0}
    assert {"name", "flag", "vec"} <= set(ds.provenance["ignored_keys"])


def _write_amden(tmp_path, records, n_frames=4):
    frames = make_frames(n_frames)
    for atoms in frames:
        atoms.info.clear()
        atoms.info["density"] = 2.0  # overridden by the JSON where it has a value
    xyz = tmp_path / "structures.extxyz"
    ase.io.write(xyz, frames, format="extxyz")
    pj = tmp_path / "properties.json"
    pj.write_text(json.dumps(records))
    return frames, xyz, pj


def test_from_amden(tmp_path):
    records = [
        {"shear_modulus": 30.0, "density": 2.2, "composition": "SiO2"},
        {"shear_modulus": None, "ring_size": 6.1, "composition": "SiO2"},
        {},
        {"shear_modulus": 35, "composition": "SiO2"},
    ]
    frames, xyz, pj = _write_amden(tmp_path, records)
    ds = Dataset.from_amden(xyz, pj)
    assert len(ds) == 4
    assert set(ds.property_names) == {"shear_modulus", "density", "ring_size"}
    np.testing.assert_array_equal(ds.properties["shear_modulus"], [30.0, np.nan, np.nan, 35.0])
    np.testing.assert_array_equal(ds.properties["ring_size"], [np.nan, 6.1, np.nan, np.nan])
    # JSON wins over the extxyz info where it has the key; a null/missing one means missing
    np.testing.assert_array_equal(ds.properties["density"], [2.2, np.nan, np.nan, np.nan])
    np.testing.assert_allclose(
        ds.atoms(2).positions, frames[2].positions, atol=EXTXYZ_POSITION_TOL, rtol=0
    )
    assert ds.provenance["source"] == {"structures": str(xyz), "properties": str(pj)}
    assert "composition" in ds.provenance["ignored_keys"]


def test_from_amden_length_mismatch_names_counts_and_files(tmp_path):
    _, xyz, pj = _write_amden(tmp_path, [{"shear_modulus": 1.0}] * 3, n_frames=4)
    with pytest.raises(DatasetError) as err:
        Dataset.from_amden(xyz, pj)
    message = str(err.value)
    assert "3 property records" in message and "4 frames" in message
    assert str(xyz) in message and str(pj) in message


def test_from_amden_bad_records(tmp_path):
    _, xyz, pj = _write_amden(tmp_path, [{"a": 1.0}, [1.0], {}, {}])
    with pytest.raises(DatasetError, match="record 1 is list, expected a dict"):
        Dataset.from_amden(xyz, pj)
    pj.write_text(json.dumps([{"g": 1.0}, {"g": "high"}, {}, {}]))
    with pytest.raises(DatasetError, match="'g' is numeric in record 0 but str .* in record 1"):
        Dataset.from_amden(xyz, pj)
    pj.write_text(json.dumps({"g": [1, 2, 3, 4]}))
    with pytest.raises(DatasetError, match="expected a list of property dicts"):
        Dataset.from_amden(xyz, pj)
    pj.write_text("[{")
    with pytest.raises(DatasetError, match="not valid JSON"):
        Dataset.from_amden(xyz, pj)
    xyz.write_text("hello\nworld\n")
    for read in (lambda: Dataset.from_extxyz(xyz), lambda: Dataset.from_amden(xyz, pj)):
        with pytest.raises(DatasetError, match=rf"^{re.escape(str(xyz))}: cannot read as extxyz"):
            read()


def test_missing_files_are_named(tmp_path):
    missing = tmp_path / "nope.extxyz"
    with pytest.raises(FileNotFoundError, match="nope.extxyz"):
        Dataset.from_extxyz(missing)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        _, xyz, _ = _write_amden(tmp_path, [{}] * 4)
        Dataset.from_amden(xyz, tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        Dataset.from_hdf5(tmp_path / "nope.h5")


def test_bad_frames_and_properties(frames):
    with pytest.raises(DatasetError, match="'shear_modulus' has 2 values but there are 6"):
        Dataset.from_atoms(frames, properties={"shear_modulus": [1.0, 2.0]})
    with pytest.raises(DatasetError, match="frame 1: expected ase.Atoms, got str"):
        Dataset.from_atoms([frames[0], "x"])
    bad = frames[0].copy()
    bad.positions[1, 2] = np.nan
    with pytest.raises(StructureError, match="frame 0: non-finite position"):
        Dataset.from_atoms([bad])
    with pytest.raises(DatasetError, match="invalid property name 'a/b'"):
        Dataset.from_atoms(frames, properties={"a/b": np.zeros(6)})
    for name in ("G=x", 'G"', "G\n", " G"):  # lost or mangled in extxyz and --target
        message = re.escape(f"invalid property name {name!r}: no '='")
        with pytest.raises(DatasetError, match=message):
            Dataset.from_atoms(frames, properties={name: np.zeros(6)})


def test_property_names_with_spaces_and_units_round_trip(frames, tmp_path):
    name = "shear modulus (GPa)"
    ds = Dataset.from_atoms(frames, properties={name: np.arange(6.0)})
    for back in (
        Dataset.from_extxyz(ds.to_extxyz(tmp_path / "g.extxyz")),
        Dataset.from_hdf5(ds.to_hdf5(tmp_path / "g.h5")),
    ):
        assert name in back.property_names
        np.testing.assert_array_equal(back.properties[name], np.arange(6.0))
    assert parse_target(f"{name}=40") == (name, 40.0)


def test_split_is_deterministic_disjoint_and_complete():
    ds = Dataset.from_atoms(make_frames(50), properties={"frame": np.arange(50)})
    train, val, test = ds.split(val=0.1, test=0.2, seed=3)
    assert (len(train), len(val), len(test)) == (35, 5, 10)
    ids = [set(part.properties["frame"].astype(int)) for part in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == set(range(50))
    again = ds.split(val=0.1, test=0.2, seed=3)
    for a, b in zip((train, val, test), again, strict=True):
        np.testing.assert_array_equal(a.properties["frame"], b.properties["frame"])
    other = ds.split(val=0.1, test=0.2, seed=4)
    assert not np.array_equal(other[0].properties["frame"], train.properties["frame"])
    # each part keeps the original order and holds the right frames
    assert np.all(np.diff(train.properties["frame"]) > 0)
    k = int(test.properties["frame"][0])
    np.testing.assert_array_equal(test.atoms(0).positions, ds.atoms(k).positions)
    assert train.provenance["split"]["part"] == "train"


def test_a_grown_split_keeps_every_first_frame_in_its_part():
    ds = Dataset.from_atoms(make_frames(50), properties={"frame": np.arange(50)})
    first = ds[:30].split(val=0.1, test=0.2, seed=3)
    grown = ds.split(val=0.1, test=0.2, seed=3, grown_from=30)
    later = ds[30:].split(val=0.1, test=0.2, seed=3)
    for old, new, added in zip(first, grown, later, strict=True):
        frames = new.properties["frame"].astype(int)
        np.testing.assert_array_equal(frames[frames < 30], old.properties["frame"])
        np.testing.assert_array_equal(frames[frames >= 30], added.properties["frame"])
    assert [len(p) for p in grown] == [21 + 14, 3 + 2, 6 + 4]
    assert grown[2].provenance["split"]["grown_from"] == 30
    assert "grown_from" not in first[2].provenance["split"]
    # the plain split of 50 frames would move first frames between parts
    plain_test = set(ds.split(val=0.1, test=0.2, seed=3)[2].properties["frame"].astype(int))
    assert plain_test & set(first[0].properties["frame"].astype(int))
    for bad in (0, 50, [30, 20], [20, 50], 2.5, [20.5, 30], "30"):
        with pytest.raises(DatasetError, match="grown_from must count some but not all"):
            ds.split(grown_from=bad)
    for seed in (-1, "a", 1.5, True):
        with pytest.raises(DatasetError, match="split seed must be an integer >= 0"):
            ds.split(seed=seed)


def test_head_is_the_dataset_as_it_was():
    samples = [{"index": k, "seed": 100 + k} for k in range(50)]
    ds = Dataset.from_atoms(
        make_frames(50), properties={"frame": np.arange(50)}, provenance={"samples": samples}
    )
    head = ds.head(30)
    np.testing.assert_array_equal(head.properties["frame"], np.arange(30))
    assert head.provenance["samples"] == samples[:30]
    assert head.provenance["first_frames"] == {"frames": 30, "of": 50}
    assert "first_frames" not in ds.head(50).provenance
    for bad in (0, 51, True):
        with pytest.raises(DatasetError, match="head needs 1 to 50 frames"):
            ds.head(bad)


def test_a_split_grown_twice_keeps_the_parts_of_each_growth():
    """Grown from 20 to 30 and then to 50 frames: [20, 30] keeps the split that the
    30-frame set had with grown_from 20, and splits the last 20 frames on their own."""
    ds = Dataset.from_atoms(make_frames(50), properties={"frame": np.arange(50)})
    at_30 = ds[:30].split(val=0.1, test=0.2, seed=3, grown_from=20)
    last = ds[30:].split(val=0.1, test=0.2, seed=3)
    twice = ds.split(val=0.1, test=0.2, seed=3, grown_from=[20, 30])
    for old, new, added in zip(at_30, twice, last, strict=True):
        frames = new.properties["frame"].astype(int)
        np.testing.assert_array_equal(frames[frames < 30], old.properties["frame"])
        np.testing.assert_array_equal(frames[frames >= 30], added.properties["frame"])
    assert twice[2].provenance["split"]["grown_from"] == [20, 30]
    # growing once from 30 would split frames 20-29 again, with the first 30 together
    once = ds.split(val=0.1, test=0.2, seed=3, grown_from=30)
    assert not np.array_equal(once[2].properties["frame"], twice[2].properties["frame"])


def test_normalisation_from_train_only():
    values = np.arange(40, dtype=float)
    values[::7] = np.nan  # missing entries are ignored
    ds = Dataset.from_atoms(make_frames(40), properties={"shear_modulus": values})
    train, val, test = ds.split(val=0.25, test=0.25, seed=0)
    assert ds.normalisation is None
    x = train.properties["shear_modulus"]
    x = x[np.isfinite(x)]
    mean, std = train.normalisation["shear_modulus"]
    np.testing.assert_allclose([mean, std], [x.mean(), x.std()], rtol=STATS_RTOL)
    full = values[np.isfinite(values)]
    assert not np.isclose(mean, full.mean()) or not np.isclose(std, full.std())
    assert val.normalisation == train.normalisation == test.normalisation
    z = train.normalised_properties()["shear_modulus"]
    np.testing.assert_allclose([np.nanmean(z), np.nanstd(z)], [0.0, 1.0], atol=1e-12)
    # a constant column gets std 1 (never divide by zero); an all-missing one is left out
    stats = compute_normalisation({"c": np.array([2.0, 2.0, np.nan]), "none": np.full(3, np.nan)})
    assert stats == {"c": (2.0, 1.0)}
    with pytest.raises(DatasetError, match="no normalisation"):
        ds.normalised_properties()


def test_split_errors():
    ds = Dataset.from_atoms(make_frames(3))
    with pytest.raises(DatasetError, match="val \\+ test < 1"):
        ds.split(val=0.5, test=0.5)
    with pytest.raises(DatasetError, match="train split would be empty: 3 frames, 2 val, 1 test"):
        ds.split(val=0.5, test=0.4)


def test_load_unknown_name_lists_available():
    with pytest.raises(DatasetError, match="no shipped dataset named 'nope'; available: "):
        Dataset.load("nope")


def test_property_units_documented():
    for key in (
        "relaxed_energy",
        "density",
        "shear_modulus",
        "bulk_modulus",
        "youngs_modulus",
        "poisson_ratio",
        "ring_size",
        "li_fraction",
        "cooling_rate",
    ):
        assert key in PROPERTY_UNITS
    assert PROPERTY_UNITS["shear_modulus"] == "GPa" and PROPERTY_UNITS["cooling_rate"] == "K/ps"


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    target.chmod(0o640)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640  # permissions of the replaced file kept
    fresh = tmp_path / "fresh.txt"
    with atomic_path(fresh) as tmp:
        tmp.write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_infinite_property_values_are_kept_as_missing_with_a_warning():
    frames = [Atoms("Si", cell=[3.0] * 3, pbc=True) for _ in range(4)]
    with pytest.warns(
        UserWarning, match=r"'shear_modulus' has 2 infinite value\(s\) \(first at frame 1\)"
    ):
        ds = Dataset.from_atoms(frames, properties={"shear_modulus": [30.0, np.inf, -np.inf, 40.0]})
    column = ds.properties["shear_modulus"]
    assert np.isnan(column[1]) and np.isnan(column[2]) and list(column[[0, 3]]) == [30.0, 40.0]
    assert compute_normalisation(ds.properties)["shear_modulus"] == pytest.approx((35.0, 5.0))


def test_concat_joins_frames_and_properties_and_keeps_each_provenance(frames, tmp_path):
    first = Dataset.from_atoms(frames[:2], properties={"a": [1.0, 2.0]}, provenance={"x": 1})
    second = Dataset.from_atoms(frames[2:5], properties={"b": [3.0, 4.0, 5.0]})
    merged = Dataset.concat([first, second], names=["slow", "fast"])
    assert len(merged) == 5
    for k, atoms in enumerate([*frames[:2], *frames[2:5]]):
        np.testing.assert_allclose(merged.atoms(k).positions, atoms.positions, atol=1e-12)
    np.testing.assert_array_equal(merged.properties["a"], [1.0, 2.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(merged.properties["b"], [np.nan, np.nan, 3.0, 4.0, 5.0])
    parts = merged.provenance["parts"]
    assert [(p["name"], p["frames"]) for p in parts] == [("slow", 2), ("fast", 3)]
    assert parts[0]["provenance"]["x"] == 1
    back = Dataset.from_hdf5(merged.to_hdf5(tmp_path / "m.h5"))
    assert len(back) == 5 and back.provenance["parts"][1]["name"] == "fast"
    with pytest.raises(DatasetError, match="at least two datasets, got 1"):
        Dataset.concat([first])
    with pytest.raises(DatasetError, match="1 names for 2 datasets"):
        Dataset.concat([first, second], names=["one"])
    with pytest.raises(DatasetError, match="names must be a list of names"):
        Dataset.concat([first, second], names="ab")
    with pytest.raises(DatasetError, match="part 1 is a list, not a Dataset"):
        Dataset.concat([first, frames])
    with pytest.warns(UserWarning, match="2 of the 3 frames of again repeat frames"):
        Dataset.concat([first, Dataset.from_atoms(frames[:3])], names=["first", "again"])


def test_dataset_merge_cli(frames, tmp_path):
    from click.testing import CliRunner

    from amtoolkit.cli import main

    a = Dataset.from_atoms(frames[:2]).to_hdf5(tmp_path / "a.h5")
    b = Dataset.from_atoms(frames[2:3]).to_hdf5(tmp_path / "b.h5")
    out = tmp_path / "ab.h5"
    result = CliRunner().invoke(main, ["dataset", "merge", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote 3 structures (2, 1) to {out}" in result.output
    info = CliRunner().invoke(main, ["dataset", "info", str(out)])
    assert re.search(r"merged from +.*a\.h5 \(2\), .*b\.h5 \(1\)", info.output)
    assert re.search(r"made by +amtool ", info.output)
    again = CliRunner().invoke(main, ["dataset", "merge", str(a), str(b), "-o", str(out)])
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    one = CliRunner().invoke(main, ["dataset", "merge", str(a), "-o", str(tmp_path / "one.h5")])
    assert one.exit_code == 2 and "give two or more datasets to merge, got 1" in one.output
    into = CliRunner().invoke(main, ["dataset", "merge", str(a), str(out), "-o", str(out)])
    assert into.exit_code == 2 and "is one of the inputs" in into.output
    wrong = CliRunner().invoke(
        main, ["dataset", "merge", str(a), str(b), "-o", str(tmp_path / "m.xyz")]
    )
    assert wrong.exit_code == 2 and "name it .h5" in wrong.output

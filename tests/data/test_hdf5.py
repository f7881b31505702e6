"""HDF5 store: exact round trip, lazy frame reading, layout, bad files."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from ase import Atoms

import amtoolkit.data.hdf5 as hdf5_module
from amtoolkit.data import Dataset, DatasetError
from tests.data.helpers import make_frames


def _assert_same(a: Dataset, b: Dataset) -> None:
    assert len(a) == len(b)
    assert a.property_names == b.property_names
    for name in a.property_names:
        np.testing.assert_array_equal(a.properties[name], b.properties[name])
    for i in range(len(a)):
        fa, fb = a.frame(i), b.frame(i)
        np.testing.assert_array_equal(fa.numbers, fb.numbers)
        np.testing.assert_array_equal(fa.positions, fb.positions)  # bit-exact
        np.testing.assert_array_equal(fa.cell, fb.cell)
        np.testing.assert_array_equal(fa.pbc, fb.pbc)


def test_round_trip_is_exact(tmp_path):
    frames = make_frames(9)
    rng = np.random.default_rng(5)
    for atoms in frames:  # full float64 precision, not a printed value
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
    ds = Dataset.from_atoms(frames, provenance={"source": "test", "note": "exact"})
    path = ds.to_hdf5(tmp_path / "set.h5")
    back = Dataset.from_hdf5(path)
    _assert_same(ds, back)
    assert back.provenance == ds.provenance
    assert back.normalisation is None
    assert back.path == path
    for a, b in zip(ds, back, strict=True):
        assert a.info == b.info


def test_split_view_round_trip_keeps_normalisation(tmp_path):
    ds = Dataset.from_atoms(make_frames(20))
    train, val, _ = ds.split(val=0.2, test=0.2, seed=1)
    back = Dataset.from_hdf5(train.to_hdf5(tmp_path / "train.h5"))
    _assert_same(train, back)
    assert back.normalisation == train.normalisation
    assert back.provenance["split"]["part"] == "train"
    # a lazily read dataset can be split and written again
    again = Dataset.from_hdf5(back[::2].to_hdf5(tmp_path / "half.h5"))
    _assert_same(train[::2], again)


def test_layout_chunked_compressed_flat(tmp_path):
    ds = Dataset.from_atoms(make_frames(7))
    path = ds.to_hdf5(tmp_path / "set.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "amtoolkit.dataset"
        assert f["numbers"].shape == (int(ds.n_atoms.sum()),)
        assert f["numbers"].dtype == np.int8
        assert f["positions"].dtype == np.float64
        assert f["positions"].compression == "gzip" and f["positions"].chunks is not None
        np.testing.assert_array_equal(f["offsets"][()], np.r_[0, np.cumsum(ds.n_atoms)])
        assert f["cells"].shape == (7, 3, 3)
        assert list(f["properties"].attrs["names"]) == ds.property_names


def test_from_hdf5_reads_frames_lazily(tmp_path, monkeypatch):
    n_frames, n_atoms = 400, 5
    frames = []
    rng = np.random.default_rng(0)
    for k in range(n_frames):
        atoms = Atoms(
            "SiO2SiO", positions=rng.uniform(0, 5, (n_atoms, 3)), cell=[5, 5, 5], pbc=True
        )
        atoms.info["cooling_rate"] = float(k)
        frames.append(atoms)
    path = Dataset.from_atoms(frames).to_hdf5(tmp_path / "many.h5")

    calls = []
    real_read_rows = hdf5_module._read_rows

    def spy(dataset, start, stop):
        calls.append((dataset.name, start, stop))
        return real_read_rows(dataset, start, stop)

    monkeypatch.setattr(hdf5_module, "_read_rows", spy)
    ds = Dataset.from_hdf5(path)
    assert len(ds) == n_frames
    np.testing.assert_array_equal(ds.properties["cooling_rate"], np.arange(n_frames))
    assert calls == []  # opening reads no positions or numbers
    atoms = ds.atoms(321)
    start = 321 * n_atoms
    assert sorted(calls) == [
        ("/numbers", start, start + n_atoms),
        ("/positions", start, start + n_atoms),
    ]
    np.testing.assert_array_equal(atoms.positions, frames[321].positions)
    assert atoms.info == {"cooling_rate": 321.0}
    # a subset is a view: making it reads nothing either
    calls.clear()
    sub = ds[100:110]
    assert calls == [] and len(sub) == 10


def test_lazy_dataset_pickles(tmp_path):
    path = Dataset.from_atoms(make_frames(4)).to_hdf5(tmp_path / "set.h5")
    ds = Dataset.from_hdf5(path)
    ds.atoms(0)  # the file is open now
    clone = pickle.loads(pickle.dumps(ds))
    _assert_same(ds, clone)
    ds.close()
    np.testing.assert_array_equal(ds.atoms(1).positions, clone.atoms(1).positions)  # reopens


def test_bad_files(tmp_path):
    not_h5 = tmp_path / "text.h5"
    not_h5.write_text("hello")
    with pytest.raises(DatasetError, match="text.h5: cannot read as HDF5"):
        Dataset.from_hdf5(not_h5)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="foreign.h5: not an amtoolkit dataset"):
        Dataset.from_hdf5(foreign)
    broken = tmp_path / "broken.h5"
    Dataset.from_atoms(make_frames(3)).to_hdf5(broken)
    with h5py.File(broken, "a") as f:
        del f["offsets"]
        f["offsets"] = np.array([0, 2, 4])
    with pytest.raises(DatasetError, match="broken.h5: inconsistent frame layout"):
        Dataset.from_hdf5(broken)


def test_empty_dataset_round_trip(tmp_path):
    ds = Dataset.from_atoms([])
    back = Dataset.from_hdf5(ds.to_hdf5(tmp_path / "empty.h5"))
    assert len(back) == 0 and back.property_names == []

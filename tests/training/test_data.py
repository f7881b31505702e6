"""Training data: deterministic shards, keyed ghosts, typical sizes, t-bin sums."""

from __future__ import annotations

import dataclasses
import warnings

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk

from amtoolkit.checkpoint import SamplingDefaults
from amtoolkit.training import (
    ConfigError,
    DataConfig,
    binned_loss_sums,
    compute_typical,
    epoch_batches,
    load_training_data,
    make_batch,
    t_bin_edges,
    t_bin_names,
)
from amtoolkit.training.data import train_ghost_key
from tests.training.conftest import make_structures, tiny_config

SI_DIAMOND_DENSITY = 2.329  # g/cm^3 at a = 5.431 Å
DENSITY_TOL = 1e-3


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_epoch_shards_cover_every_frame_with_equal_batch_counts(world_size):
    n, batch_size = 10, 3
    shards = [
        np.concatenate(epoch_batches(n, batch_size, seed=1, epoch=4, rank=r, world_size=world_size))
        for r in range(world_size)
    ]
    assert len({len(s) for s in shards}) == 1  # every process runs the same number of steps
    assert set(np.concatenate(shards)) == set(range(n))
    assert sum(len(s) for s in shards) == -(-n // world_size) * world_size  # padding only
    counts = {len(epoch_batches(n, batch_size, 1, 4, r, world_size)) for r in range(world_size)}
    assert len(counts) == 1  # and the same number of batches (DDP steps in lockstep)


def test_epoch_order_is_keyed_by_seed_and_epoch():
    a = np.concatenate(epoch_batches(12, 4, seed=0, epoch=1))
    assert np.array_equal(a, np.concatenate(epoch_batches(12, 4, seed=0, epoch=1)))
    assert not np.array_equal(a, np.concatenate(epoch_batches(12, 4, seed=0, epoch=2)))
    assert not np.array_equal(a, np.concatenate(epoch_batches(12, 4, seed=1, epoch=1)))
    assert sorted(a) == list(range(12))


def test_typical_of_diamond_si():
    cells = [bulk("Si", "diamond", a=5.431, cubic=True), bulk("Si", "diamond", a=5.431).repeat(2)]
    cells[0].info["density"] = 1.0
    cells[1].info["density"] = 3.0
    typical = compute_typical(cells, ["density", "absent"])
    assert typical.n_atoms_range == (8, 16)
    assert typical.n_atoms == 12  # median of 8 and 16
    assert typical.density == pytest.approx(SI_DIAMOND_DENSITY, abs=DENSITY_TOL)
    assert typical.composition == {"Si": 1.0}
    assert typical.property_ranges == {"density": (1.0, 3.0)}  # absent: no range
    assert typical.closest_pair == pytest.approx(5.431 * np.sqrt(3) / 4, rel=1e-9)  # the bond


def test_ghosts_are_added_per_epoch_and_reproducibly(tiny_dataset):
    data = load_training_data(
        DataConfig(dataset=str(tiny_dataset), property_names=("density",), max_density=0.055)
    )
    indices = np.arange(len(data.train))
    expected = [int(np.floor(0.055 * a.get_volume() + 1e-9)) for a in data.train]
    real = [len(a) for a in data.train]
    b1 = make_batch(data.train, indices, data, 0.055, train_ghost_key(0, 1))
    b1_again = make_batch(data.train, indices, data, 0.055, train_ghost_key(0, 1))
    b2 = make_batch(data.train, indices, data, 0.055, train_ghost_key(0, 2))
    counts = b1.atoms_per_system.tolist()
    assert counts == [max(e, r) for e, r in zip(expected, real, strict=True)]
    assert sum(counts) > sum(real)  # some cells hold ghosts
    ghosts = b1.elements[:, 0] == 1
    assert int(ghosts.sum()) == sum(counts) - sum(real)
    assert torch.equal(b1.positions, b1_again.positions)
    assert not torch.equal(b1.positions[ghosts], b2.positions[ghosts])  # new ghosts each epoch
    assert torch.equal(b1.positions[~ghosts], b2.positions[~ghosts])
    mean, std = data.normalisation["density"]
    raw = np.array([a.info["density"] for a in data.train])
    assert np.allclose(b1.properties[:, 0].numpy(), (raw - mean) / std, atol=1e-5)


def test_unknown_property_and_element_are_config_errors(tiny_dataset):
    with pytest.raises(ConfigError, match="'shear_modulus'"):
        load_training_data(DataConfig(dataset=str(tiny_dataset), property_names=("shear_modulus",)))
    with pytest.raises(ConfigError, match="Si"):
        load_training_data(DataConfig(dataset=str(tiny_dataset), elements=("O",)))
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped dataset"):
        load_training_data(DataConfig(dataset="no-such-dataset"))


def test_an_element_in_no_training_frame_is_warned_about(tiny_dataset):
    with pytest.warns(UserWarning, match=r"data.elements: \['Ge'\] in no training frame"):
        data = load_training_data(DataConfig(dataset=str(tiny_dataset), elements=("Si", "Ge")))
    assert data.vocabulary.numbers == (0, 14, 32)


def test_implausible_conditioning_labels_are_warned_about(tiny_dataset, tmp_path):
    frames = ase.io.read(tiny_dataset, index=":")
    frames[2].info["density"] = 0.01  # a gas: below PLAUSIBLE_LABELS' 0.5 g/cm3
    path = tmp_path / "odd.extxyz"
    ase.io.write(path, frames, format="extxyz")
    with pytest.warns(UserWarning, match=r"1 of 8 structures have density outside \(0.5, 10\) "):
        load_training_data(DataConfig(dataset=str(path), property_names=("density",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a conditioning label: no warning
        load_training_data(DataConfig(dataset=str(path)))


def test_frames_without_a_cell_or_denser_than_max_density_are_named(tiny_dataset, tmp_path):
    frames = ase.io.read(tiny_dataset, index=":")
    rho = max(len(a) / a.get_volume() for a in frames)
    densest = int(np.argmax([len(a) / a.get_volume() for a in frames]))
    with pytest.raises(ConfigError, match=rf"max_density=0.001 .* of frame {densest} \({rho:.4g}/"):
        load_training_data(DataConfig(dataset=str(tiny_dataset), max_density=0.001))
    load_training_data(DataConfig(dataset=str(tiny_dataset), max_density=1.001 * rho))
    frames[3].pbc = False
    frames[3].cell = None
    broken = tmp_path / "nocell.extxyz"
    ase.io.write(broken, frames, format="extxyz")
    with pytest.raises(ConfigError, match=r"nocell.extxyz: frame 3 has no 3D-periodic cell"):
        load_training_data(DataConfig(dataset=str(broken)))


def test_frames_with_two_atoms_on_one_site_or_in_nm_are_named(tiny_dataset, tmp_path):
    frames = ase.io.read(tiny_dataset, index=":")
    doubled = [a.copy() for a in frames]
    doubled[2].positions[1] = doubled[2].positions[0]  # an atom entered twice
    path = tmp_path / "doubled.extxyz"
    ase.io.write(path, doubled, format="extxyz")
    with pytest.raises(ConfigError, match=r"doubled.extxyz: frame 2: atoms 0 and 1 are 0 Å"):
        load_training_data(DataConfig(dataset=str(path)))
    in_nm = [a.copy() for a in frames]
    in_nm[1].set_cell(in_nm[1].cell * 0.1, scale_atoms=True)
    path = tmp_path / "nm.extxyz"
    ase.io.write(path, in_nm, format="extxyz")
    with pytest.raises(ConfigError, match=r"nm.extxyz: frame 1 holds .* in nm or bohr"):
        load_training_data(DataConfig(dataset=str(path)))


def test_sampler_the_model_cannot_use_is_a_config_error(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="sampling.sampler: unknown sampler 'bogus'"):
        tiny_config(tiny_dataset, tmp_path, sampling=SamplingDefaults(sampler="bogus"))
    with pytest.raises(ConfigError, match="sampling.sampler: sampler 'hmc' does not work"):
        tiny_config(tiny_dataset, tmp_path, sampling=SamplingDefaults(sampler="hmc"))


def test_vocabulary_and_split_of_tiny_set(tiny_dataset):
    data = load_training_data(DataConfig(dataset=str(tiny_dataset), val_fraction=0.25))
    assert data.vocabulary.to_list() == ["X", "Si"]
    assert (len(data.train), len(data.val)) == (6, 2)
    assert data.provenance["split"]["part"] == "train"
    assert data.provenance["n_train"] == 6 and data.provenance["n_val"] == 2


def test_binned_loss_sums_known_answer():
    edges = torch.as_tensor(t_bin_edges(0.0, 1.0, 4), dtype=torch.float64)
    t = torch.tensor([0.1, 0.2, 0.3, 0.99, 1.0])
    loss = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])
    sums, counts = binned_loss_sums(loss, t, edges)
    assert sums.tolist() == [3.0, 4.0, 0.0, 24.0]
    assert counts.tolist() == [2.0, 1.0, 0.0, 2.0]
    assert t_bin_names("val_loss", t_bin_edges(0.01, 0.99, 5))[0] == "val_loss_t0.01-0.21"


def test_per_sample_provenance_is_condensed_to_count_and_digest():
    import hashlib
    import json

    from amtoolkit.data import condensed_provenance

    runs = [{"index": 0, "seed": 11, "wall_s": 1.5}, {"index": 1, "seed": 12, "wall_s": 2.0}]
    record = {"source": "workflow", "samples": runs, "failed_samples": [], "seed": 0}
    condensed = condensed_provenance(record)
    text = json.dumps(runs, sort_keys=True, separators=(",", ":"))
    assert condensed["samples"] == {"count": 2, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert condensed["failed_samples"]["count"] == 0
    assert condensed["source"] == "workflow" and condensed["seed"] == 0
    assert record["samples"] is runs  # the input is not modified
    reordered = [{k: run[k] for k in reversed(list(run))} for run in runs]
    assert condensed_provenance({"samples": reordered})["samples"] == condensed["samples"]
    runs[1]["seed"] = 13
    assert condensed_provenance(record)["samples"]["sha256"] != condensed["samples"]["sha256"]


def test_degenerate_training_setups_warn_and_an_alias_is_suggested(tmp_path):
    frames = make_structures(8)
    for atoms in frames:
        atoms.info["cooling_rate"] = 10.0
    path = tmp_path / "one-rate.extxyz"
    ase.io.write(path, frames, format="extxyz")
    config = tiny_config(path, tmp_path / "run", data={"property_names": ("cooling_rate",)})
    with pytest.warns(UserWarning, match="cooling_rate has one value .10. in every training"):
        load_training_data(config.data)
    config = tiny_config(path, tmp_path / "run", data={"val_fraction": 0.9})
    with pytest.warns(UserWarning, match="leaves 1 training frame.s. against 7 for validation"):
        load_training_data(config.data)
    config = tiny_config(path, tmp_path / "run", data={"property_names": ("cooling",)})
    with pytest.raises(ConfigError, match="did you mean cooling -> cooling_rate"):
        load_training_data(config.data)


def test_a_split_with_no_validation_frames_warns_once(tmp_path):
    path = tmp_path / "one.extxyz"
    ase.io.write(path, make_structures(1), format="extxyz")
    config = tiny_config(path, tmp_path / "run", data={"val_fraction": 0.34, "property_names": ()})
    with pytest.warns(UserWarning, match="no validation frames") as caught:
        data = load_training_data(config.data)
    assert not data.val and len(data.train) == 1
    said = [w for w in caught if "no validation frames" in str(w.message)]
    assert len(said) == 1 and "selected by training loss" in str(said[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no validation asked for: nothing to say
        load_training_data(dataclasses.replace(config.data, val_fraction=0.0))

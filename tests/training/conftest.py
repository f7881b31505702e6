"""Tiny datasets and configs for the training tests (width-16, 2-layer models, 8-atom cells)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk

from amtoolkit.training import DataConfig, ModelConfig, OptimConfig, TrainConfig
from amtoolkit.training.data import mass_density

TINY_MODEL = ModelConfig(hidden=16, layers=2, vector_channels=4, cutoff=4.0)


def make_structures(n: int = 8, seed: int = 0) -> list:
    """`n` rattled 8-atom diamond Si cells (a = 5.3-5.6 Å) with ``density`` in info;
    every third cell is doubled to 16 atoms."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, a in enumerate(np.linspace(5.3, 5.6, n)):
        atoms = bulk("Si", "diamond", a=float(a), cubic=True)
        if k % 3 == 2:
            atoms = atoms.repeat((1, 1, 2))
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        atoms.info["density"] = mass_density(atoms)
        frames.append(atoms)
    return frames


@pytest.fixture(autouse=True)
def _torch_seed_and_threads():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """An extxyz file of 8 tiny Si structures with a ``density`` property."""
    path = tmp_path_factory.mktemp("data") / "tiny.extxyz"
    ase.io.write(path, make_structures(8), format="extxyz")
    return path


def tiny_config(dataset: Path, out_dir: Path, **changes) -> TrainConfig:
    """A few-second run: 6 train + 2 val frames, batch 2, 2 epochs, CPU."""
    data_changes = changes.pop("data", {})
    optim_changes = changes.pop("optim", {})
    data = DataConfig(
        dataset=str(dataset),
        property_names=("density",),
        max_density=0.055,
        val_fraction=0.25,
        batch_size=2,
    )
    config = TrainConfig(
        data=dataclasses.replace(data, **data_changes),
        name="tiny",
        model=TINY_MODEL,
        optim=dataclasses.replace(OptimConfig(ema_decay=0.9), **optim_changes),
        epochs=2,
        checkpoint_every=1,
        out_dir=str(out_dir),
        device="cpu",
        tensorboard=False,
    )
    return config.replace(**changes)

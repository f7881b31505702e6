"""`amtoolkit.refine` and `amtool refine`: structures refined on a model's noise energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import read, write
from click.testing import CliRunner

from amtoolkit.calculator import NoiseEnergyCalculator
from amtoolkit.cli import main
from amtoolkit.generator import Generator
from amtoolkit.refine import refine
from tests.test_generator import save_tiny_model


@pytest.fixture(autouse=True)
def _single_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def energy_model(tmp_path) -> Generator:
    stem = save_tiny_model(tmp_path / "e", elements=("Si",), property_names=(), kind="energy")
    return Generator.from_checkpoint(stem)


def _cells(n: int = 2) -> list:
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.431, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.info["label"] = k
        out.append(atoms)
    return out


def test_hmc_refinement_keeps_elements_and_cells_and_records_acceptance(energy_model):
    cells = _cells()
    out = refine(cells, energy_model, t=0.2, steps=5, dt0=0.2, seed=1)
    assert len(out) == 2
    for before, after in zip(cells, out, strict=True):
        assert list(after.numbers) == list(before.numbers)
        np.testing.assert_allclose(after.cell.array, before.cell.array)
        assert after.info["label"] == before.info["label"]  # input info is kept
        assert after.info["refine_method"] == "hmc" and after.info["refine_steps"] == 5
        assert 0.0 <= after.info["hmc_acceptance"] <= 1.0
        assert np.isfinite(after.info["noise_energy"])
    moved = [not np.allclose(a.positions, b.positions) for a, b in zip(cells, out, strict=True)]
    accepted = [a.info["hmc_acceptance"] > 0 for a in out]
    assert moved == accepted  # a structure moves exactly when a move was accepted
    again = refine(cells, energy_model, t=0.2, steps=5, dt0=0.2, seed=1)
    np.testing.assert_array_equal(out[0].positions, again[0].positions)  # seeded


def test_relax_refinement_lowers_the_noise_energy(energy_model):
    (cell,) = _cells(1)
    cell.calc = NoiseEnergyCalculator(energy_model, t=0.2, seed=0)
    before = cell.get_potential_energy()
    (out,) = refine([cell], energy_model, t=0.2, method="relax", steps=30, fmax=1e-6, seed=0)
    assert out.info["noise_energy"] < before


def test_refine_refuses_a_score_model_and_bad_options(tmp_path, energy_model):
    score = Generator.from_checkpoint(
        save_tiny_model(tmp_path / "s", elements=("Si",), property_names=())
    )
    with pytest.raises(ValueError, match="needs an energy model"):
        refine(_cells(1), score)
    with pytest.raises(ValueError, match="unknown refine method 'md'"):
        refine(_cells(1), energy_model, method="md")
    with pytest.raises(ValueError, match="t must lie in"):
        refine(_cells(1), energy_model, t=1.5)
    with pytest.raises(ValueError, match="nope"):
        refine(_cells(1), energy_model, potential="nope")


def test_refine_cli_with_a_classical_relaxation(tmp_path, energy_model):
    src = tmp_path / "in.extxyz"
    write(src, _cells(2))
    out = tmp_path / "out.extxyz"
    stem = tmp_path / "e"
    args = ["refine", str(src), "-m", str(stem), "-o", str(out), "--steps", "2", "--t", "0.2"]
    result = CliRunner().invoke(main, [*args, "--potential", "sw-si"])
    assert result.exit_code == 0, result.output
    frames = read(out, ":")
    assert len(frames) == 2 and frames[0].info["refine_classical"] == "relax"
    from amtoolkit.potentials import get_calculator

    calc = get_calculator("sw-si")
    for frame in frames:  # relaxed with SW: a minimum (forces below the 0.01 eV/Å criterion)
        frame.calc = calc
        assert np.abs(frame.get_forces()).max() < 0.01
    calc.close()
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "exists" in again.output

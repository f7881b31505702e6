"""`amtoolkit.refine` and `amtool refine`: structures refined on a model's noise energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.geometry import find_mic
from ase.io import read, write
from click.testing import CliRunner

from amtoolkit.calculator import NoiseEnergyCalculator
from amtoolkit.checkpoint import Typical
from amtoolkit.cli import main
from amtoolkit.data.batch import from_atoms
from amtoolkit.generator import Generator
from amtoolkit.refine import refine, refine_iter
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
    out = refine(cells, energy_model, method="hmc", t=0.2, steps=5, dt0=0.2, seed=1)
    assert len(out) == 2
    for before, after in zip(cells, out, strict=True):
        assert list(after.numbers) == list(before.numbers)
        np.testing.assert_allclose(after.cell.array, before.cell.array)
        assert after.info["label"] == before.info["label"]  # input info is kept
        assert after.info["refine_method"] == "hmc" and after.info["refine_steps"] == 5
        assert 0.0 <= after.info["refine_hmc_acceptance"] <= 1.0
        assert np.isfinite(after.info["refine_noise_energy"])
    moved = [not np.allclose(a.positions, b.positions) for a, b in zip(cells, out, strict=True)]
    accepted = [a.info["refine_hmc_acceptance"] > 0 for a in out]
    assert moved == accepted  # a structure moves exactly when a move was accepted
    again = refine(cells, energy_model, method="hmc", t=0.2, steps=5, dt0=0.2, seed=1)
    np.testing.assert_array_equal(out[0].positions, again[0].positions)  # seeded
    (alone,) = refine(
        cells[0], energy_model, method="hmc", t=0.2, steps=5, dt0=0.2, seed=1
    )  # one Atoms
    (listed,) = refine(cells[:1], energy_model, method="hmc", t=0.2, steps=5, dt0=0.2, seed=1)
    np.testing.assert_array_equal(alone.positions, listed.positions)


def test_structures_whose_hmc_moves_are_all_rejected_are_named(energy_model):
    cells = _cells()
    with pytest.warns(
        UserWarning, match=r"HMC accepted under 10% .* for a\[0\], a\[1\] \(t=0.05, dt0=10000\)"
    ):
        out = refine(
            cells,
            energy_model,
            method="hmc",
            t=0.05,
            steps=3,
            dt0=1e4,
            seed=0,
            labels=["a[0]", "a[1]"],
        )
    assert [a.info["refine_hmc_acceptance"] for a in out] == [0.0, 0.0]
    for before, after in zip(cells, out, strict=True):
        np.testing.assert_allclose(after.positions, before.positions, atol=1e-5)  # not moved


def test_the_model_stage_keeps_arrays_and_moves_atoms_by_the_minimum_image(energy_model):
    cells = _cells(1)
    cells[0].positions[0] -= cells[0].cell[0]  # an atom one image outside the cell
    cells[0].set_array("tag", np.arange(len(cells[0])))
    for method, option in (("hmc", {"dt0": 0.05}), ("relax", {"fmax": 1e-6})):
        after = refine(cells, energy_model, method=method, t=0.2, steps=3, seed=0, **option)[0]
        np.testing.assert_array_equal(after.arrays["tag"], np.arange(len(cells[0])))
        step = after.positions - cells[0].positions
        shortest, _ = find_mic(step, cells[0].cell)
        np.testing.assert_allclose(step, shortest, atol=1e-9)  # no jump to another image
        assert np.abs(step).max() > 0  # it moved


def test_relax_refinement_lowers_the_noise_energy(energy_model):
    (cell,) = _cells(1)
    cell.calc = NoiseEnergyCalculator(energy_model, t=0.2, seed=0)
    before = cell.get_potential_energy()
    with pytest.warns(UserWarning, match=r"FIRE stopped at 30 steps above fmax=1e-06 for str"):
        (out,) = refine([cell], energy_model, t=0.2, method="relax", steps=30, fmax=1e-6, seed=0)
    assert out.info["refine_noise_energy"] < before
    assert out.info["refine_fire_steps"] == 30 and out.info["refine_converged"] is False
    (loose,) = refine([cell], energy_model, t=0.2, method="relax", steps=30, fmax=1e3, seed=0)
    assert loose.info["refine_fire_steps"] == 0 and loose.info["refine_converged"] is True


class _Oracle(torch.nn.Module):
    """Exact noise prediction when the data is the one clean structure `reference`:
    eps = (X_t - X0) / sigma_X(t), (E_t - alpha_E E0) / sigma_E(t). With `zero`, eps = 0."""

    def __init__(self, reference, gen: Generator, zero: bool = False) -> None:
        super().__init__()
        batch = from_atoms([reference], gen.vocabulary)
        self.register_buffer("x0", batch.positions)
        self.register_buffer("e0", batch.elements)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # refine reads the device from it
        self.sde, self.zero = gen.info.sde, zero

    def forward(self, batch, t, *, step_size=None, generator=None):
        t_atom = t[batch.system_idx].unsqueeze(-1)
        n = len(self.x0)
        x0, e0 = self.x0.repeat(batch.n_systems, 1), self.e0.repeat(batch.n_systems, 1)
        assert len(batch.positions) == batch.n_systems * n
        eps_x = (batch.positions - x0) / self.sde.sigma_x(t_atom)
        eps_e = (batch.elements - self.sde.alpha_e(t_atom) * e0) / self.sde.sigma_e(t_atom)
        if self.zero:
            return torch.zeros_like(eps_x), torch.zeros_like(eps_e)
        return eps_x, eps_e


@pytest.fixture
def score_model(tmp_path) -> Generator:
    return Generator.from_checkpoint(
        save_tiny_model(tmp_path / "s", elements=("Si",), property_names=())
    )


def _displacements(before, after) -> np.ndarray:
    """Minimum-image displacements after - before, Å [N, 3]."""
    from ase.geometry import find_mic

    return find_mic(after.positions - before.positions, before.cell, pbc=True)[0]


def test_partial_diffusion_re_noises_to_sigma_of_t(score_model):
    """With eps = 0 and no injected noise the reverse SDE leaves the re-noised structure,
    whose displacements are the forward noise: standard deviation sigma_X(t) per axis."""
    cells = [bulk("Si", "diamond", 5.431, cubic=True).repeat(2) for _ in range(2)]
    score_model.model = _Oracle(cells[0], score_model, zero=True)
    t = 0.2
    out = refine(cells, score_model, method="sde", t=t, steps=4, noise_scale=0.0, seed=3)
    moves = np.concatenate([_displacements(a, b) for a, b in zip(cells, out, strict=True)])
    sigma = float(score_model.info.sde.sigma_x(t))  # 0.3 Å
    assert moves.std() == pytest.approx(sigma, rel=0.1)  # 768 draws: 3% standard error
    assert np.abs(moves.mean(axis=0)).max() < 1e-6  # mean-free per system, like training
    again = refine(cells, score_model, method="sde", t=t, steps=4, noise_scale=0.0, seed=3)
    np.testing.assert_array_equal(out[1].positions, again[1].positions)  # seeded
    other = refine(cells, score_model, method="sde", t=t, steps=4, noise_scale=0.0, seed=4)
    assert not np.allclose(out[1].positions, other[1].positions)


def test_partial_diffusion_with_the_exact_score_returns_the_data(score_model):
    """When the data is one structure, the reverse SDE from t = 0.3 (sigma_X 0.45 Å) with
    the exact score ends at it, up to the last step's noise (g sqrt(dt) = 0.02 Å)."""
    clean = bulk("Si", "diamond", 5.431, cubic=True)
    score_model.model = _Oracle(clean, score_model)
    start = clean.copy()
    start.rattle(0.2, seed=1)  # any start: the re-noise at t = 0.3 dominates
    start.info["label"] = "kept"
    (out,) = refine([start], score_model, method="sde", t=0.3, steps=30, seed=0)
    assert np.abs(_displacements(clean, out)).max() < 0.1
    assert list(out.numbers) == list(clean.numbers)
    np.testing.assert_allclose(out.cell.array, clean.cell.array)
    assert out.info["label"] == "kept" and out.info["refine_method"] == "sde"
    assert out.info["refine_t"] == 0.3 and out.info["refine_steps"] == 30
    assert out.info["refine_noise_scale"] == 1.0 and "refine_noise_energy" not in out.info


def test_partial_diffusion_holds_the_structures_elements(score_model, monkeypatch):
    """The positions are denoised for the elements the structures carry: the model the
    reverse SDE sees answers the element channel with the exact noise of those."""
    import amtoolkit.diffusion as diffusion

    seen = []
    real = diffusion.sample_sde

    def recording(model, state, ts, **kwargs):
        seen.append(model)
        return real(model, state, ts, **kwargs)

    monkeypatch.setattr(diffusion, "sample_sde", recording)
    cells = [bulk("Si", "diamond", 5.431, cubic=True) for _ in range(2)]
    refine(cells, score_model, method="sde", t=0.1, steps=3, seed=0)
    (model,) = seen
    assert isinstance(model, diffusion.HeldElements)
    expected = from_atoms(cells, score_model.vocabulary).elements
    assert torch.equal(model.elements.cpu().to(expected.dtype), expected)


def test_partial_diffusion_runs_a_trained_network_and_its_cli(tmp_path, score_model):
    cells = _cells(3)
    out = refine(cells, score_model, method="sde", t=0.05, steps=3, batch_size=2, seed=0)
    assert [a.info["refine_index"] for a in out] == [0, 1, 2]
    assert all(np.isfinite(a.positions).all() for a in out)
    src, dst = tmp_path / "in.extxyz", tmp_path / "out.extxyz"
    write(src, cells)
    args = ["refine", str(src), "-m", str(tmp_path / "s"), "-o", str(dst), "--method", "sde"]
    result = CliRunner().invoke(
        main, [*args, "--t", "0.05", "--steps", "3", "--noise-scale", "0.5"]
    )
    assert result.exit_code == 0, result.output
    frames = read(dst, ":")
    assert len(frames) == 3 and frames[0].info["refine_noise_scale"] == 0.5
    bad = CliRunner().invoke(main, [*args, "--t", "0.995", "--overwrite"])
    assert bad.exit_code == 2 and "t=0.995: t must lie in" in bad.output


def test_partial_diffusion_refuses_bad_options(score_model):
    with pytest.raises(ValueError, match="t=0.005: t must lie in"):
        refine(_cells(1), score_model, method="sde", t=0.005, steps=10)
    with pytest.raises(ValueError, match="steps must be an integer >= 1 for method 'sde'"):
        refine(_cells(1), score_model, method="sde", steps=0)
    with pytest.raises(ValueError, match="noise_scale must be"):
        refine(_cells(1), score_model, method="sde", noise_scale=-1.0)
    (one,) = refine(_cells(1), score_model, method="sde", t=0.005, steps=1)  # one jump to 0
    assert one.info["refine_steps"] == 1


def test_refine_refuses_a_score_model_and_bad_options(score_model, energy_model):
    score = score_model
    with pytest.raises(ValueError, match="needs an energy model"):
        refine(_cells(1), score, method="hmc")
    with pytest.raises(ValueError, match="unknown refine method 'md'"):
        refine(_cells(1), energy_model, method="md")
    with pytest.raises(ValueError, match="t must lie in"):
        refine(_cells(1), energy_model, t=1.5)
    with pytest.raises(ValueError, match="nope"):
        refine(_cells(1), energy_model, potential="nope")
    with pytest.raises(ValueError, match="noise_scale=0.5 applies to method 'sde', not 'hmc'"):
        refine(_cells(1), energy_model, method="hmc", noise_scale=0.5)
    with pytest.raises(ValueError, match="dt0=0.1 applies to method 'hmc', not 'relax'"):
        refine(_cells(1), energy_model, method="relax", dt0=0.1)
    with pytest.raises(ValueError, match="1 labels for 2 structures"):
        refine(_cells(2), energy_model, labels=["a"])
    with pytest.raises(
        ValueError, match=r"temperature must be in \(0, 100000\] K for classical='md', got -100"
    ):
        refine(_cells(1), energy_model, potential="sw-si", classical="md", temperature=-100)


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
    assert frames[0].info["relax_converged"] is True
    frames[0].info.update(relax_steps=999, relax_converged=False)  # an earlier stage's record
    again = refine(frames[:1], energy_model, steps=1, potential="sw-si")[0]
    assert again.info["relax_converged"] and again.info["relax_steps"] < 999  # this stage's
    from amtoolkit.potentials import get_calculator

    calc = get_calculator("sw-si")
    for frame in frames:  # relaxed with SW: a minimum (forces below the 0.01 eV/Å criterion)
        frame.calc = calc
        assert np.abs(frame.get_forces()).max() < 0.01
    calc.close()
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "exists" in again.output


def test_bad_structures_are_refused_at_the_call_naming_the_structure(tmp_path, energy_model):
    flat = _cells(2)
    flat[1].pbc = False
    with pytest.raises(ValueError, match="^structure 1: cell is not periodic"):
        refine_iter(flat, energy_model)  # at the call, before anything is iterated
    germanium = _cells(1)[0]
    germanium[3].symbol = "Ge"
    with pytest.raises(ValueError, match=r"^a\[0\]: element Ge \(Z=32\) is not in"):
        refine_iter([germanium], energy_model, labels=["a[0]"])
    src, out = tmp_path / "ge.extxyz", tmp_path / "out.extxyz"
    write(src, [_cells(1)[0], germanium])
    result = CliRunner().invoke(
        main, ["refine", str(src), "-m", str(tmp_path / "e"), "-o", str(out)]
    )
    assert result.exit_code == 2 and f"{src}[1]: element Ge" in result.output
    assert not out.exists()  # refused before OUT was opened


def test_what_is_not_atoms_is_named_before_the_model_is_loaded(tmp_path, energy_model):
    missing = tmp_path / "no-model"  # not loaded: the structures are refused first
    with pytest.raises(ValueError, match="not the file name 'si.extxyz': read it first"):
        refine("si.extxyz", missing)
    with pytest.raises(ValueError, match="^frame 0: expected ase.Atoms, got ndarray$"):
        refine(_cells(1)[0].positions, missing, method="hmc")
    with pytest.raises(ValueError, match="^frame 0: expected ase.Atoms, got list$"):
        refine_iter([_cells(1)], energy_model)
    assert refine([], energy_model) == []


def test_a_resumed_refinement_equals_the_uninterrupted_one(score_model):
    """Resumed after 3 of 5 structures in batches of 2 (mid-batch), the last two get the
    draws they get in the whole run."""
    cells = _cells(5)
    whole = refine(cells, score_model, method="sde", t=0.05, steps=3, batch_size=2, seed=4)
    rest = refine(
        cells, score_model, method="sde", t=0.05, steps=3, batch_size=2, seed=4, resume=whole[:3]
    )
    assert [a.info["refine_index"] for a in rest] == [3, 4]
    for a, b in zip(whole[3:], rest, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
    with pytest.raises(ValueError, match=r"structure 0 has refine_seed=4, this run 5"):
        refine(cells, score_model, method="sde", t=0.05, steps=3, batch_size=2, seed=5,
               resume=whole[:3])  # fmt: skip
    with pytest.raises(ValueError, match=r"structure 0 has refine_batch_size=2, this run 16"):
        refine(cells, score_model, method="sde", t=0.05, steps=3, seed=4, resume=whole[:3])
    others = _cells(6)[1:]  # other inputs: the refined ones are not theirs
    with pytest.raises(
        ValueError, match=r"refined structure 0 \(Si8\) is not input 0 .*same input"
    ):
        refine(others, score_model, method="sde", t=0.05, steps=3, batch_size=2, seed=4,
               resume=whole[:3])  # fmt: skip
    bigger = [c * (1, 1, 2) for c in cells]
    with pytest.raises(ValueError, match=r"\(Si8\) is not input 0 \(Si16, another cell\)"):
        refine(bigger, score_model, method="sde", t=0.05, steps=3, batch_size=2, seed=4,
               resume=whole[:3])  # fmt: skip


def test_md_stage_settings_are_recorded_and_checked_on_resume(score_model):
    cells = _cells(2)
    md = dict(method="sde", t=0.05, steps=2, seed=1, potential="sw-si", classical="md")
    first = refine(cells[:1], score_model, md_steps=20, temperature=500.0, **md)
    assert first[0].info["refine_md_steps"] == 20
    assert first[0].info["refine_temperature"] == 500.0  # the set point, kept beside md_*
    for changed, message in (
        ({"md_steps": 30, "temperature": 500.0}, "refine_md_steps=20, this run 30"),
        ({"md_steps": 20, "temperature": 900.0}, "refine_temperature=500.0, this run 900.0"),
    ):
        with pytest.raises(ValueError, match=message):
            refine(cells, score_model, resume=first, **changed, **md)
    relaxed = refine(cells[:1], score_model, **{**md, "classical": "relax"})
    assert "refine_md_steps" not in relaxed[0].info  # no MD: nothing to record


def test_seeds_draw_independent_streams(score_model):
    """Run seed s + k must not repeat structure k of run s (the draws of a batch come from
    a SeedSequence child of the run seed and the batch's place)."""
    cell = _cells(1)[0]
    options = {"method": "sde", "t": 0.1, "steps": 3, "batch_size": 1}
    two = refine([cell, cell], score_model, seed=0, **options)
    next_seed = refine([cell], score_model, seed=1, **options)
    assert not np.allclose(two[1].positions, next_seed[0].positions)
    assert not np.allclose(two[0].positions, two[1].positions)


def test_the_record_names_the_refinement_and_leaves_the_generation_record(score_model):
    cells = _cells(1)
    cells[0].info.update(noise_scale=0.4, model="a-si", refine_potential="sw-si")  # earlier
    (out,) = refine(cells, score_model, method="sde", t=0.05, steps=2, noise_scale=0.5, seed=3)
    assert out.info["noise_scale"] == 0.4 and out.info["model"] == "a-si"  # generation's
    assert out.info["refine_noise_scale"] == 0.5 and out.info["refine_model"] == score_model.name
    assert out.info["refine_seed"] == 3 and out.info["refine_batch_size"] == 16
    assert "refine_potential" not in out.info  # an earlier refinement's record is replaced


def test_options_that_would_be_ignored_are_refused(energy_model):
    for option in ({"temperature": -300.0}, {"md_steps": 5}, {"classical": "md"}):
        with pytest.raises(ValueError, match="applies to the classical stage, which runs only"):
            refine(_cells(1), energy_model, **option)
    for size in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1"):
            refine(_cells(1), energy_model, batch_size=size)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0"):
        refine(_cells(1), energy_model, seed=-1)
    with pytest.raises(ValueError, match=r"temperature=500.0 applies to classical='md', not "):
        refine(_cells(1), energy_model, potential="sw-si", temperature=500.0)


def test_a_target_named_twice_is_refused(tmp_path):
    conditional = Generator.from_checkpoint(
        save_tiny_model(tmp_path / "c", elements=("Si",), property_names=("shear_modulus",))
    )
    with pytest.raises(ValueError, match=r"target shear_modulus is given twice \(shear and "):
        refine(_cells(1), conditional, targets={"shear": 40.0, "shear_modulus": 30.0})


def test_atoms_left_too_close_are_named_and_recorded(tmp_path):
    typical = Typical(n_atoms=8, density=2.33, composition={"Si": 1.0}, closest_pair=2.2)
    stem = save_tiny_model(tmp_path / "c", elements=("Si",), property_names=(), typical=typical)
    score_model = Generator.from_checkpoint(stem)
    cells = _cells(2)
    cells[1].positions[1] = cells[1].positions[0] + [0.3, 0.0, 0.0]
    cells[0].info["closest_pair"] = 0.5  # a close pair the input had, gone after refining
    with pytest.warns(UserWarning, match=r"nearer than [\d.]+ Å .*: structure 1 \("):
        out = refine(cells, score_model, method="sde", t=0.01, steps=1, seed=0)
    assert out[1].info["closest_pair"] < 1.0 and "closest_pair" not in out[0].info


def test_refine_cli_resumes_an_interrupted_run(tmp_path, score_model):
    src, dst = tmp_path / "in.extxyz", tmp_path / "out.extxyz"
    write(src, _cells(3))
    args = ["refine", str(src), "-m", str(tmp_path / "s"), "-o", str(dst), "--method", "sde"]
    args += ["--t", "0.05", "--steps", "2", "--batch-size", "2"]
    assert CliRunner().invoke(main, args).exit_code == 0
    whole = read(dst, ":")
    write(dst, whole[:1])  # killed after the first structure
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"wrote 2 refined structures to {dst} (1 kept from the interrupted run)" in (
        resumed.output
    )
    again = read(dst, ":")
    assert [a.info["refine_index"] for a in again] == [0, 1, 2]
    for a, b in zip(whole, again, strict=True):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-7)
    done = CliRunner().invoke(main, [*args, "--resume"])
    assert done.exit_code == 0 and "nothing to do" in done.output
    other = CliRunner().invoke(main, [*args[:-2], "--batch-size", "3", "--resume"])
    assert other.exit_code == 2 and "refine_batch_size=2, this run 3" in other.output


def test_refine_cli_passes_the_hmc_and_relax_options(tmp_path, energy_model):
    src, dst = tmp_path / "in.extxyz", tmp_path / "out.extxyz"
    write(src, _cells(1))
    args = ["refine", str(src), "-m", str(tmp_path / "e"), "-o", str(dst), "--steps", "2"]
    relaxed = CliRunner().invoke(main, [*args, "--method", "relax", "--fmax", "0.5"])
    assert relaxed.exit_code == 0, relaxed.output
    assert read(dst).info["refine_fmax"] == 0.5
    wrong = CliRunner().invoke(main, [*args, "--n-leapfrog", "3", "--overwrite"])
    assert (
        wrong.exit_code == 2 and "n_leapfrog=3 applies to method 'hmc', not 'sde'" in wrong.output
    )
    hmc = [*args, "--method", "hmc", "--n-leapfrog", "3", "--t", "0.2", "--overwrite"]
    assert CliRunner().invoke(main, hmc).exit_code == 0


def test_measured_labels_of_the_input_are_dropped(score_model):
    cell = _cells(1)[0]
    cell.info.update(density=2.33, shear_modulus=40.0, target_shear_modulus=40.0)
    (out,) = refine([cell], score_model, method="sde", t=0.05, steps=2, seed=0)
    assert "density" not in out.info and "shear_modulus" not in out.info
    assert out.info["target_shear_modulus"] == 40.0 and out.info["label"] == 0  # records stay


def test_constraints_stale_labels_and_outputs_of_other_runs(score_model, tmp_path):
    from ase.constraints import FixAtoms

    fixed = _cells(1)[0]
    fixed.set_constraint(FixAtoms([0, 1]))
    with pytest.raises(ValueError, match=r"structure 0: it carries ASE constraints \(FixAtoms"):
        refine(fixed, score_model, steps=2)
    measured = _cells(1)[0]
    measured.info.update(energy_per_atom=-4.114, potential="sw-si", density=2.33, note="kept")
    (out,) = refine(measured, score_model, steps=2)
    assert "energy_per_atom" not in out.info and "potential" not in out.info
    assert "density" not in out.info and out.info["note"] == "kept"
    with pytest.raises(ValueError, match="structure 0 holds no refine record"):
        refine(_cells(1), score_model, steps=2, resume=_cells(1))


def test_a_model_name_is_loaded_and_a_numpy_integer_is_an_integer():
    from amtoolkit import HMC, NoiseEnergyCalculator

    gen = Generator.load("a-si-energy")
    with pytest.warns(UserWarning, match="FIRE stopped"):
        (out,) = refine(_cells(1), "a-si-energy", method="relax", steps=np.int64(2))
    assert out.info["refine_model"] == gen.info.name
    atoms = _cells(1)[0]
    atoms.calc = NoiseEnergyCalculator(gen, t=0.05)
    assert HMC(atoms, n_leapfrog=np.int64(2)).run(np.int64(1)) in (0.0, 1.0)


def test_partial_diffusion_of_a_structure_does_not_depend_on_its_batch(score_model):
    cells = _cells(3)
    together = refine(cells, score_model, steps=3, seed=4, batch_size=3)
    apart = refine(cells, score_model, steps=3, seed=4, batch_size=2)
    for x, y in zip(together, apart, strict=True):
        assert np.abs(x.positions - y.positions).max() < 1e-5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sde", "steps": 10**12}, "steps must be an integer <= 100,000"),
        ({"potential": "sw-si", "classical": "md", "md_steps": 10**12}, "md_steps must be"),
        ({"potential": "sw-si", "classical": "md", "temperature": 1e12}, r"\(0, 100000\] K"),
        ({"method": "relax", "fmax": float("inf")}, "fmax must be a positive force"),
        ({"method": "hmc", "dt0": 1e12}, r"dt0 must be a number in \(0, 10000\]"),
    ],
)
def test_absurd_refine_values_are_refused_before_any_work(score_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        refine(_cells(1), score_model, **kwargs)


def test_a_cell_charged_under_the_classical_potential_is_refused(score_model):
    with pytest.raises(ValueError, match=r"structure 0: the cell Si8 is not neutral .* \+19.2 e"):
        refine(_cells(1), score_model, potential="bmp-glass")

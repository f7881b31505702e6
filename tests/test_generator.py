"""`Generator`: planning (cells, ghosts, targets, seeds) and generation with tiny models."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.data import atomic_masses

from amtoolkit import pretrained
from amtoolkit.analysis.compare import closest_pair
from amtoolkit.analysis.criteria import BridgingFraction, ClosestPair, parse_criterion
from amtoolkit.checkpoint import ModelInfo, SamplingDefaults, Typical, save_checkpoint
from amtoolkit.data import ElementVocabulary
from amtoolkit.diffusion import FORMAL_CHARGES, MaterialSDE, get_timesteps
from amtoolkit.generator import (
    AVOGADRO,
    MAX_BATCH_ATOMS,
    MIN_CELL_THICKNESS,
    PROPERTY_ALIASES,
    Generator,
    number_density,
    resolve_property,
    structure_seed,
)
from amtoolkit.nn import DenoiserConfig, build_denoiser

pytestmark = pytest.mark.filterwarnings("ignore:.*not charge balanced:UserWarning")

STEPS = 3  # reverse steps in tests: enough to exercise the loop, cheap
POSITION_TOL = 1e-4  # Å, batched vs one-by-one (float32 round-off through a few steps)
VOLUME_RTOL = 1e-9
SI_MASS = float(atomic_masses[14])

SIO2_RANGES = {"shear_modulus": (25.0, 45.0), "ring_size": (5.0, 7.0)}


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """Tiny models: torch's thread pool only adds contention on the shared cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def save_tiny_model(
    stem: Path,
    elements: tuple[str, ...] = ("O", "Si"),
    property_names: tuple[str, ...] = ("shear_modulus", "ring_size"),
    max_density: float | None = None,
    typical: Typical | None = None,
    guidance: float | None = None,
    seed: int = 0,
    objective: str = "score",
    kind: str = "score",
) -> Path:
    """Save an untrained tiny model (hidden 16, 2 layers) as a checkpoint at `stem`."""
    vocabulary = ElementVocabulary(elements)
    config = DenoiserConfig(
        n_classes=len(vocabulary),
        property_names=property_names,
        hidden=16,
        layers=2,
        vector_channels=2,
        cutoff=3.0,
        kind=kind,
        step_size_embedding=objective == "shortcut",
    )
    torch.manual_seed(seed)
    model = build_denoiser(config)
    normalisation = {"shear_modulus": (35.0, 5.0), "ring_size": (6.0, 0.5)}
    if typical is None:
        composition = {"O": 2 / 3, "Si": 1 / 3} if "O" in elements else {"Si": 1.0}
        typical = Typical(
            n_atoms=12,
            density=2.2,
            composition=composition,
            property_ranges={p: SIO2_RANGES[p] for p in property_names},
        )
    info = ModelInfo(
        name=stem.name,
        model=config,
        sde=MaterialSDE(),
        vocabulary=vocabulary,
        normalisation={p: normalisation[p] for p in property_names},
        max_density=max_density,
        typical=typical,
        sampling=SamplingDefaults(sampler="sde", steps=STEPS, guidance=guidance),
        objective=objective,
    )
    save_checkpoint(stem, model, info)
    return stem


@pytest.fixture
def sio2(tmp_path) -> Generator:
    """Oxide model with properties, no ghosts (charge balance on, 0 restarts in tests)."""
    return Generator.from_checkpoint(save_tiny_model(tmp_path / "tiny-sio2"))


@pytest.fixture
def si(tmp_path) -> Generator:
    """a-Si-like model: one element, no properties, no ghosts."""
    return Generator.from_checkpoint(
        save_tiny_model(tmp_path / "tiny-si", elements=("Si",), property_names=())
    )


@pytest.fixture
def ghost_sio2(tmp_path) -> Generator:
    """Oxide model with ghost atoms (max_density 0.09 /Å^3) and guidance 1 by default."""
    stem = save_tiny_model(tmp_path / "ghost-sio2", max_density=0.09, guidance=1.0)
    return Generator.from_checkpoint(stem)


def same(a, b) -> bool:
    return (
        len(a) == len(b)
        and np.array_equal(a.numbers, b.numbers)
        and np.array_equal(a.positions, b.positions)
    )


# ----------------------------------------------------------------- pure helpers


def test_number_density_of_silicon():
    # 8 atoms in a 5.431 Å diamond cell: 2.329 g/cm3 <-> 8 / 5.431^3 atoms/Å^3
    rho_n = 8 / 5.431**3
    rho = rho_n * SI_MASS / AVOGADRO * 1e24
    assert number_density(rho, {"Si": 1.0}) == pytest.approx(rho_n, rel=1e-12)
    # fractions need not be normalised; SiO2 mean mass is (M_Si + 2 M_O) / 3
    m_sio2 = (SI_MASS + 2 * float(atomic_masses[8])) / 3
    assert number_density(2.2, {"Si": 1, "O": 2}) == pytest.approx(
        2.2 * AVOGADRO / m_sio2 * 1e-24, rel=1e-12
    )
    with pytest.raises(ValueError, match="density must be a positive"):
        number_density(0.0, {"Si": 1.0})


def test_resolve_property_aliases():
    names = ("shear_modulus", "youngs_modulus", "cooling_rate", "density")
    assert resolve_property("shear", names) == "shear_modulus"
    assert resolve_property("young", names) == "youngs_modulus"
    assert resolve_property("youngs", names) == "youngs_modulus"
    assert resolve_property("rate", names) == "cooling_rate"
    assert resolve_property("target_density", names) == "density"
    assert resolve_property("target_shear", names) == "shear_modulus"
    assert all(isinstance(v, str) for v in PROPERTY_ALIASES.values())
    with pytest.raises(ValueError, match=r"shear_modulus.*aliases: shear=shear_modulus"):
        resolve_property("ring", names)  # ring_size is not a property of this model
    with pytest.raises(ValueError, match="takes no property targets"):
        resolve_property("shear", ())


def test_structure_seeds_depend_on_seed_and_index_only():
    seeds = [structure_seed(7, i) for i in range(50)]
    assert len(set(seeds)) == 50
    assert seeds == [structure_seed(7, i) for i in range(50)]
    assert structure_seed(8, 0) != seeds[0]
    assert all(0 <= s < 2**63 for s in seeds)


# ------------------------------------------------------------------- planning


def test_default_cell_is_cubic_at_typical_density(si):
    plan = si.plan(2, n_atoms=10, seed=0)
    volume = 10 / number_density(2.2, {"Si": 1.0})
    assert np.allclose(plan.cell, volume ** (1 / 3) * np.eye(3), rtol=VOLUME_RTOL)
    assert plan.n_initial == plan.n_atoms == 10 and plan.max_density is None
    # density= sets the volume from n_atoms and the typical composition's mean mass
    plan = si.plan(1, n_atoms=10, density=2.33, seed=0)
    expected = 10 * SI_MASS / (2.33 * AVOGADRO) * 1e24  # Å^3
    assert np.linalg.det(plan.cell) == pytest.approx(expected, rel=VOLUME_RTOL)
    # a given cell without n_atoms holds the typical density's number of atoms
    plan = si.plan(1, cell=[6.0, 6.0, 7.0], seed=0)
    assert plan.n_atoms == round(number_density(2.2, {"Si": 1.0}) * 252.0)
    # a structure to match: its cell and its number of atoms
    match = Atoms("Si11", positions=np.zeros((11, 3)), cell=[6.0, 6.0, 7.0], pbc=True)
    plan = si.plan(1, cell=match, seed=0)
    assert plan.n_atoms == 11 and np.allclose(plan.cell, match.cell.array)
    assert si.plan(1, cell=match, n_atoms=9, seed=0).n_atoms == 9
    slab = match.copy()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic in 2 directions"):
        si.plan(1, cell=slab, seed=0)


def test_ghosts_start_from_n_target(ghost_sio2):
    plan = ghost_sio2.plan(1, cell=8.0, seed=0)
    assert plan.n_initial == int(np.floor(0.09 * 512.0)) and plan.n_atoms is None
    plan = ghost_sio2.plan(1, seed=0)  # typical size at typical density, then padded
    assert plan.n_atoms == 12 and plan.n_initial == int(0.09 * np.linalg.det(plan.cell))
    # a caller's max_density overrides the card's (and adds ghosts to a model without)
    with pytest.warns(
        UserWarning, match=r"max_density=0.05/Å\^3 differs from the 0.09 .* never saw"
    ):
        assert ghost_sio2.plan(1, cell=8.0, max_density=0.05, seed=0).n_initial == 25
    assert ghost_sio2.plan(1, cell=8.0, max_density=0.095, seed=0).n_initial == 48  # within 10 %


def test_sampling_defaults_and_batches(ghost_sio2, sio2):
    plan = ghost_sio2.plan(5, seed=0, shear=40)
    assert (plan.sampler, plan.steps, plan.guidance) == ("sde", STEPS, 1.0)
    assert plan.guidance == 1.0 and plan.batches == ((0, 5),)
    assert ghost_sio2.plan(5, seed=0).guidance == 0.0  # nothing to guide without targets
    assert ghost_sio2.plan(5, seed=0, guidance=0.5).guidance == 0.5
    assert ghost_sio2.plan(5, batch_size=2, seed=0).batches == ((0, 2), (2, 4), (4, 5))
    # default batches are capped by atom count
    big = sio2.plan(2000, n_atoms=12, seed=0)
    assert max(stop - start for start, stop in big.batches) * 12 <= MAX_BATCH_ATOMS
    assert big.batches[-1][1] == 2000
    assert sio2.plan(1, seed=0).max_restarts == 3  # oxide default
    assert sio2.plan(1, seed=0, sampler="ode", steps=7).steps == 7


def test_targets_are_normalised_per_structure(sio2):
    plan = sio2.plan(3, seed=0, shear=[30.0, None, 45.0], rings=6.5)
    shear = plan.properties[:, 0]
    assert np.allclose(shear[[0, 2]], [(30 - 35) / 5, (45 - 35) / 5])
    assert np.isnan(shear[1])
    assert np.allclose(plan.properties[:, 1], (6.5 - 6.0) / 0.5)
    assert sio2.plan(2, seed=0).properties.shape == (2, 2)
    assert np.isnan(sio2.plan(2, seed=0).properties).all()  # absent = null


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": 0.0}, "cell volume must be positive"),
        ({"cell": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}, "cell volume must be positive"),
        ({"cell": [1.0, 2.0]}, "cell must be"),
        ({"cell": 0.5}, "too small to hold one atom"),
        ({"n_atoms": 0}, "n_atoms must be an integer >= 1"),
        ({"density": 0.0}, "density must be a positive"),
        ({"density": -1.0}, "density must be a positive"),
        ({"cell": 8.0, "density": 2.0}, "give cell or density, not both"),
        ({"steps": 0}, "steps must be"),
        ({"sampler": "heun"}, "unknown sampler 'heun'"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"seed": -1}, "seed must be"),
        ({"guidance": float("nan")}, "guidance must be"),
        ({"shear": [30.0, 40.0]}, "has 2 values for n=3"),
        ({"shear": float("inf")}, "must be finite"),
        ({"shear": "forty"}, "must be a number"),
        ({"shear": True}, "must be a number or a sequence of 3 numbers, got True"),
        ({"shear": ["40", 50, None]}, "must be a number or a sequence of 3 numbers"),
        ({"density": "2.2"}, "density must be a number, got '2.2'"),
        ({"max_density": "0.05"}, "max_density must be a number, got '0.05'"),
        ({"seed": 2**63}, "seed must be below 2"),
        ({"guidance": "abc"}, "guidance must be a number, got 'abc'"),
        ({"restart_t": "x"}, "restart_t must be a number, got 'x'"),
        ({"noise_scale": "0.5"}, "noise_scale must be a number in \\[0, 10\\], got '0.5'"),
        ({"hmc_range": (0.0, 0.5)}, "hmc_range and dt0 are options of sampler 'hmc'"),
        ({"dt0": 0.4}, "hmc_range and dt0 are options of sampler 'hmc'"),
        ({"noise_scale": 1e30}, "noise_scale must be a number in \\[0, 10\\], got 1e\\+30"),
        (
            {"timesteps": [0.2, 0.1, 0.0], "max_restarts": 1},
            r"restart_t=0.3 must lie in \(0, 0.2\), the grid's first time; give a restart_t "
            r"in that range, or max_restarts=0",
        ),
        ({"restart_t": 0.0}, r"restart_t=0 must lie in \(0, 0.99\), .*; give a restart_t in"),
        ({"shear": 30.0, "shear_modulus": 31.0}, "given twice"),
        ({"viscosity": 1.0}, "unknown target 'viscosity'.*shear_modulus, ring_size"),
        ({"sheer": 40.0}, "unknown target 'sheer' \\(did you mean 'shear'\\?\\)"),
        ({"shear": 30.0, "targets": {"shear": 40.0}}, "'shear' is given twice"),
        ({"timesteps": [0.9, 0.5, 0.1]}, "timesteps must end at 0, got 0.1"),
        ({"timesteps": [0.5, 0.9, 0.0]}, "timesteps must be strictly decreasing, got 0.5 then 0.9"),
        (
            {"timesteps": [0.0]},
            r"timesteps must be a list of at least 2 times \(a start and 0\), got 1",
        ),
        ({"cell": float("nan")}, r"cell must hold finite numbers \(Å\), got nan"),
        (
            {"cell": "abc"},
            r"cell must be an edge length, 3 lengths or a 3x3 matrix in Å, got 'abc'",
        ),
        ({"timesteps": [0.995, 0.5, 0.0]}, "at most at the model's t_max 0.99, got 0.995"),
        ({"timesteps": [0.9, 0.0], "steps": 3}, "steps=3 but timesteps has 1 intervals"),
        ({"timesteps": "fast"}, "timesteps must be a sequence of times"),
        (
            {"hmc_range": (0.5, 0.1)},
            "hmc_range and dt0 are options of sampler 'hmc'; sampler 'sde'",
        ),
        ({"dt0": 0.2, "sampler": "ode"}, "options of sampler 'hmc'; sampler 'ode' does not"),
    ],
)
def test_bad_input_raises_one_line_value_error(sio2, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        sio2.generate(3, progress=False, **{"seed": 0, **kwargs})
    assert "\n" not in str(err.value)


def test_targets_as_a_mapping_and_a_misspelt_option_named(sio2):
    as_mapping = sio2.plan(2, targets={"shear": 40.0, "ring_size": [6.0, None]})
    as_keywords = sio2.plan(2, shear=40.0, ring_size=[6.0, None])
    for name in ("shear_modulus", "ring_size"):
        np.testing.assert_array_equal(as_mapping.targets[name], as_keywords.targets[name])
    with pytest.raises(TypeError, match=r"unknown keyword 'step' \(did you mean 'steps'\?\)"):
        sio2.plan(2, step=10)
    with pytest.raises(TypeError, match="targets must map property names to values"):
        sio2.plan(2, targets=40.0)
    with pytest.raises(TypeError, match=r"unknown keyword 'target' \(did you mean 'targets'"):
        sio2.plan(2, target={"shear": 40.0})
    with pytest.raises(ValueError, match="unknown target 'step'"):  # a key, not a keyword
        sio2.plan(2, targets={"step": 10})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": 1.0}, "fewer than 1 atom"),
        ({"n_atoms": 12, "density": 20.0}, "density=20 g/cm3 .* above max_density=0.09"),
        ({"cell": 8.0, "n_atoms": 12}, "give cell or n_atoms, not both"),
        ({"max_density": 0.0}, r"max_density must be a number of atoms/Å\^3 in \(0, 0.5\]"),
    ],
)
def test_impossible_ghost_cells(ghost_sio2, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ghost_sio2.plan(1, seed=0, **kwargs)


def test_cells_too_large_or_too_dense_are_refused_before_sampling(si, ghost_sio2):
    with pytest.raises(ValueError, match=r"would hold \d\.\d+e\+16 atoms, more than the 1e\+07"):
        si.plan(1, seed=0, cell=1e6)
    with pytest.raises(ValueError, match=r"would hold .* atoms, more than"):
        ghost_sio2.plan(1, seed=0, cell=1e6)
    rho_max = ghost_sio2.info.max_density
    with pytest.raises(ValueError, match=rf"density=100 g/cm3 .* above max_density={rho_max:g}"):
        ghost_sio2.plan(1, seed=0, density=100.0)


def test_structures_left_without_atoms_are_named_in_a_warning(si, monkeypatch):
    sample = si._sample_batch

    def all_ghosts_in_the_first(plan, start, stop, bar, tick=None):
        structures, *rest = sample(plan, start, stop, bar, tick)
        if start == 0:
            structures[0] = structures[0][[]]  # every atom decoded as a ghost
        return (structures, *rest)

    monkeypatch.setattr(si, "_sample_batch", all_ghosts_in_the_first)
    with pytest.warns(UserWarning, match=r"1 of 3 structures \(index 0\) have no atoms"):
        frames = si.generate(3, steps=2, seed=0, batch_size=2, progress=False)
    assert [len(a) == 0 for a in frames] == [True, False, False]


def test_default_guidance_only_when_a_target_is_given(ghost_sio2):
    assert ghost_sio2.plan(2, seed=0, shear=40).guidance == 1.0  # the card's
    assert ghost_sio2.plan(2, seed=0).guidance == 0.0
    assert ghost_sio2.plan(2, seed=0, shear=[None, None]).guidance == 0.0  # nothing to guide


def test_a_cell_thinner_than_a_bond_is_refused(si):
    limit = si.info.typical.closest_pair or MIN_CELL_THICKNESS
    with pytest.raises(
        ValueError, match=rf"the cell is 0.8 Å thick across its c faces, .*{limit:.3g}"
    ):
        si.plan(1, seed=0, cell=[60.0, 60.0, 0.8])
    with pytest.raises(ValueError, match=r"thick across its b faces"):
        si.plan(1, seed=0, cell=[[16, 0, 0], [15.9, 0.5, 0], [0, 0, 16]])  # tilted, thin


def test_guidance_needs_a_conditional_model(si):
    with pytest.raises(ValueError, match="guidance=2 steers .* but tiny-si is unconditional"):
        si.plan(1, seed=0, guidance=2.0)
    assert si.plan(1, seed=0, guidance=0.0).guidance == 0.0


@pytest.mark.parametrize("w", [-1.0, float("nan")])
def test_guidance_must_not_steer_away_from_the_targets(ghost_sio2, w):
    with pytest.raises(ValueError, match=r"guidance must be a number >= 0 .*, got"):
        ghost_sio2.plan(1, seed=0, shear=40, guidance=w)


def test_restarts_need_a_test_to_fail(si):
    with pytest.raises(
        ValueError, match=r"give one \(accept=, amtool generate --accept.* or use an oxide"
    ):
        si.plan(1, seed=0, max_restarts=1)
    assert si.plan(1, seed=0).max_restarts == 0
    assert si.plan(1, seed=0, accept=ClosestPair(2.0)).max_restarts == 3
    with pytest.raises(ValueError, match="accept must be a function of one Atoms"):
        si.plan(1, seed=0, accept=2.0)


def test_accept_restarts_the_structures_it_fails(si):
    seen = []

    def only_the_first_sample_fails(atoms):
        seen.append(atoms.positions.copy())
        assert len(atoms) == 8 and (atoms.get_scaled_positions(wrap=False) < 1 + 1e-9).all()
        return len(seen) > 3  # the first three looks fail: 3 samples, one restart each

    frames = si.generate(
        3, n_atoms=8, seed=0, steps=4, accept=only_the_first_sample_fails, progress=False
    )
    assert [a.info["restarts"] for a in frames] == [1, 1, 1]
    assert all(a.info["accepted"] is True for a in frames)
    assert frames[0].info["accept"] == only_the_first_sample_fails.__qualname__
    plain = si.generate(3, n_atoms=8, seed=0, steps=4, progress=False)
    pairs = zip(frames, plain, strict=True)
    assert not any(np.allclose(a.positions, b.positions) for a, b in pairs)
    assert "accepted" not in plain[0].info and "restarts" not in plain[0].info


def test_each_structure_is_tested_once_when_it_passes(si):
    calls = []

    def passes(atoms):
        calls.append(1)
        return True

    frames = si.generate(3, n_atoms=8, seed=0, steps=2, accept=passes, progress=False)
    assert len(calls) == 3  # the record reuses the verdict that decided the restarts
    assert all(a.info["accepted"] and a.info["restarts"] == 0 for a in frames)


def test_a_test_no_structure_of_the_model_can_pass_is_refused(si):
    with pytest.raises(ValueError, match=r"accept: bridging>=0.9 needs O and a network former"):
        si.plan(1, seed=0, accept=BridgingFraction(0.9))
    with pytest.raises(ValueError, match=r"O2>=0.5 counts O atoms, and tiny-si places only"):
        si.plan(1, seed=0, accept=parse_criterion("closest>=1,O2>=0.5"))


def test_structures_that_never_pass_are_flagged_and_warned_about(si, tmp_path):
    with pytest.warns(UserWarning, match=r"2 of 2 structures fail accept=closest>=9 after "):
        frames = si.generate(
            2, n_atoms=8, seed=0, steps=4, accept=ClosestPair(9.0), max_restarts=2, progress=False
        )
    assert [(a.info["accepted"], a.info["restarts"]) for a in frames] == [(False, 2)] * 2
    path = tmp_path / "kept.extxyz"
    ase.io.write(path, frames)
    again = ase.io.read(path, ":")
    assert again[0].info["accept"] == "closest>=9" and again[0].info["accepted"] is False


def test_out_of_range_target_warns_with_the_range(sio2):
    with pytest.warns(UserWarning, match=r"shear_modulus=70 is far outside .*\[25, 45\]") as record:
        sio2.plan(1, seed=0, shear=70.0)  # 45 + 0.5 * 20 = 55 < 70
    assert record[0].filename == __file__  # points at the caller
    with pytest.warns(UserWarning, match=r"ring_size=3.5 "):
        sio2.plan(2, seed=0, rings=[6.0, 3.5])  # 5 - 0.5 * 2 = 4 > 3.5
    with pytest.warns(UserWarning, match=r"shear_modulus=46 is outside the training range"):
        sio2.plan(1, seed=0, shear=46.0)  # just outside: not "far", still a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sio2.plan(1, seed=0, shear=45.0, rings=5.0)  # at the ends of the range


def test_unphysical_targets_are_refused(sio2):
    with pytest.raises(ValueError, match=r"shear_modulus=-30 is not physical: .* \(0, 1000\) GPa"):
        sio2.plan(1, seed=0, shear=-30.0)
    with pytest.raises(ValueError, match=r"ring_size=2 is not physical: it must be >= 3"):
        sio2.plan(2, seed=0, rings=[6.0, 2.0])
    with pytest.warns(UserWarning, match="ring_size=3 is far outside"):
        sio2.plan(1, seed=0, rings=3.0)  # the smallest ring: allowed, but far from the data


def test_small_cells_and_density_with_ghosts_warn(tmp_path):
    typical = Typical(n_atoms=12, density=2.2, composition={"O": 2 / 3, "Si": 1 / 3})
    typical = dataclasses.replace(typical, n_atoms_range=(9, 15), density_range=(2.0, 2.4))
    gen = Generator.from_checkpoint(
        save_tiny_model(tmp_path / "g", max_density=0.09, property_names=(), typical=typical)
    )
    with pytest.warns(UserWarning, match=r"4 atoms is far below the training sizes \(9-15"):
        gen.plan(1, seed=0, n_atoms=4)
    with pytest.warns(UserWarning, match=r"density=2 g/cm3 only sizes .* range: 2-2.4 g/cm3"):
        gen.plan(1, seed=0, density=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.plan(1, seed=0, n_atoms=5)  # over half the smallest training cell
    with pytest.warns(UserWarning, match=r"\d+ atoms is far below the training sizes"):
        gen.plan(1, seed=0, cell=3.5, max_restarts=0, rebalance=False)  # 3 atoms
    cutoff = gen.model.config.cutoff
    with pytest.warns(
        UserWarning, match=rf"2.8 Å thick across its c faces, under the model's {cutoff:g}"
    ):
        gen.plan(1, seed=0, cell=[12.0, 12.0, 2.8], max_restarts=0, rebalance=False)


def test_options_that_would_be_ignored_or_untrained_warn(si, sio2):
    with pytest.warns(UserWarning, match="icg is used only with guidance != 0"):
        sio2.plan(1, seed=0, icg=True)  # no target: guidance 0, so no ICG
    with pytest.warns(UserWarning, match="tiny-si was trained without ghost atoms"):
        si.plan(1, seed=0, n_atoms=8, max_density=0.1)


def test_density_far_from_training_warns_with_the_range(tmp_path):
    """n_atoms in the planned cell far from the training densities [2.0, 2.4] warns."""
    typical = Typical(n_atoms=12, density=2.2, composition={"Si": 1.0}, density_range=(2.0, 2.4))
    gen = Generator.from_checkpoint(save_tiny_model(tmp_path / "si", ("Si",), (), typical=typical))
    with pytest.warns(UserWarning, match=r"density 3 g/cm3 \(12 atoms in .*\[2, 2.4\]") as record:
        gen.plan(1, seed=0, density=3.0)  # 2.4 + 0.5 * 0.4 = 2.6 < 3
    assert record[0].filename == __file__
    volume = 12 / number_density(1.0, {"Si": 1.0})  # 12 Si atoms at 1 g/cm3
    with pytest.warns(UserWarning, match=r"density 1 g/cm3"):
        gen.plan(1, seed=0, cell=np.cbrt(volume), n_atoms=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.plan(1, seed=0, density=2.55)  # inside the 50% margin
        gen.plan(1, seed=0, cell=5.0)  # n_atoms from the typical density


# ----------------------------------------------------------------- generation


def test_generate_counts_cell_and_info(si):
    frames = si.generate(3, n_atoms=10, seed=5, steps=STEPS, progress=False)
    cell = si.plan(1, n_atoms=10, seed=0).cell
    assert len(frames) == 3
    for index, atoms in enumerate(frames):
        assert len(atoms) == 10 and set(atoms.numbers) == {14}
        assert np.allclose(atoms.cell.array, cell) and atoms.pbc.all()
        frac = atoms.get_scaled_positions(wrap=False)
        assert ((frac >= 0) & (frac < 1)).all()  # wrapped at output
        assert atoms.info["model"] == "tiny-si"
        assert atoms.info["sampler"] == "sde" and atoms.info["steps"] == STEPS
        assert atoms.info["seed"] == 5 and atoms.info["index"] == index
        assert atoms.info["structure_seed"] == structure_seed(5, index)
        assert "charge_balanced" not in atoms.info  # not an oxide
        assert np.isfinite(atoms.positions).all()


def test_same_seed_same_structures_and_seeds_differ(sio2):
    a = sio2.generate(2, seed=3, shear=40, progress=False, max_restarts=0)
    b = sio2.generate(2, seed=3, shear=40, progress=False, max_restarts=0)
    c = sio2.generate(2, seed=4, shear=40, progress=False, max_restarts=0)
    assert all(same(x, y) for x, y in zip(a, b, strict=True))
    assert not any(same(x, y) for x, y in zip(a, c, strict=True))
    assert not same(a[0], a[1])  # structures of one run differ too
    unseeded = sio2.generate(1, progress=False, max_restarts=0)[0]
    assert isinstance(unseeded.info["seed"], int)  # recorded, so the run can be repeated
    again = sio2.generate(1, seed=unseeded.info["seed"], progress=False, max_restarts=0)[0]
    assert same(unseeded, again)


def test_an_explicit_grid_replaces_the_samplers_and_is_recorded(si):
    kwargs = {"n_atoms": 8, "seed": 3, "sampler": "ode", "progress": False}
    own = si.generate(2, steps=4, **kwargs)
    grid = get_timesteps(4, si.info.sde).tolist()
    same_grid = si.generate(2, timesteps=grid, **kwargs)
    for x, y in zip(own, same_grid, strict=True):
        np.testing.assert_array_equal(x.positions, y.positions)
    assert "timesteps" not in own[0].info
    other = si.generate(2, timesteps=[0.99, 0.5, 0.2, 0.05, 0.0], **kwargs)
    assert other[0].info["steps"] == 4
    np.testing.assert_array_equal(other[0].info["timesteps"], [0.99, 0.5, 0.2, 0.05, 0.0])
    assert np.abs(other[0].positions - own[0].positions).max() > 1e-3


def test_ode_without_null_draws_is_independent_of_batch_size(si):
    # per-structure priors + a deterministic sampler and no null embeddings to draw:
    # batching changes only float round-off
    kwargs = {"n_atoms": 8, "seed": 11, "sampler": "ode", "progress": False}
    together = si.generate(3, **kwargs)
    alone = si.generate(3, batch_size=1, **kwargs)
    for x, y in zip(together, alone, strict=True):
        assert np.array_equal(x.numbers, y.numbers)
        d = x.get_distances(0, range(len(x)), mic=True) - y.get_distances(
            0, range(len(y)), mic=True
        )
        assert np.abs(d).max() < POSITION_TOL


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("si", {"n_atoms": 8}),  # the SDE's noise
        ("sio2", {"shear": [30, 35, 40, 45], "guidance": 1.0}),  # + nulls, restarts, relabels
        ("sio2", {"shear": 40, "guidance": 0.5, "icg": True}),  # + ICG rows
        ("ghost_sio2", {"shear": 40}),  # + ghosts
    ],
)
def test_a_structure_is_the_same_in_any_batch_and_any_run_length(request, model, options):
    """Every draw of structure k (prior, SDE noise, null embeddings, ICG rows, restarts)
    comes from its own streams: `batch_size` and `n` do not change it."""
    gen = request.getfixturevalue(model)
    kwargs = {"seed": 5, "steps": 6, "sampler": "sde", "progress": False, **options}
    together = gen.generate(4, batch_size=4, **kwargs)
    alone = gen.generate(4, batch_size=1, **kwargs)
    pairs = gen.generate(4, batch_size=2, **kwargs)
    if isinstance(options.get("shear"), list):  # per-structure targets: the first two
        kwargs["shear"] = options["shear"][:2]
    first = gen.generate(2, **kwargs)
    assert [a.info.get("restarts") for a in together] == [a.info.get("restarts") for a in alone]
    for x, y, z in zip(together, alone, pairs, strict=True):
        assert np.array_equal(x.numbers, y.numbers) and np.array_equal(x.numbers, z.numbers)
        assert np.abs(x.positions - y.positions).max() < POSITION_TOL
        assert np.abs(x.positions - z.positions).max() < POSITION_TOL
    for x, y in zip(together[:2], first, strict=True):
        assert np.array_equal(x.numbers, y.numbers)
        assert np.abs(x.positions - y.positions).max() < POSITION_TOL


def test_aliases_and_per_structure_targets(sio2):
    kwargs = {"seed": 2, "progress": False, "max_restarts": 0}
    by_alias = sio2.generate(3, shear=40, **kwargs)
    by_name = sio2.generate(3, shear_modulus=40, **kwargs)
    by_prefix = sio2.generate(3, target_shear_modulus=40, **kwargs)
    assert all(same(x, y) for x, y in zip(by_alias, by_name, strict=True))
    assert all(same(x, y) for x, y in zip(by_alias, by_prefix, strict=True))
    assert [a.info["target_shear_modulus"] for a in by_alias] == [40.0] * 3
    # structure 1 of a per-structure sequence = structure 1 of a run at that scalar
    mixed = sio2.generate(3, shear=[30, 40, None], **kwargs)
    assert same(mixed[1], by_alias[1])
    assert not same(mixed[0], by_alias[0])  # the target changes the structure
    assert mixed[0].info["target_shear_modulus"] == 30.0
    assert "target_shear_modulus" not in mixed[2].info  # null


def test_ghosts_removed_with_max_density(ghost_sio2):
    frames = ghost_sio2.generate(4, cell=6.0, seed=0, progress=False, max_restarts=0)
    n_initial = int(0.09 * 216.0)
    assert all(a.info["n_initial"] == n_initial for a in frames)
    assert all(a.info["max_density"] == 0.09 for a in frames)
    assert all((a.numbers != 0).all() for a in frames)
    assert all(len(a) <= n_initial for a in frames)
    # an untrained model turns some atoms into ghosts, which are gone from the output
    assert sum(len(a) for a in frames) < 4 * n_initial


def test_guidance_and_icg_run(ghost_sio2):
    plain = ghost_sio2.generate(2, seed=1, shear=40, guidance=0.0, progress=False, max_restarts=0)
    cfg = ghost_sio2.generate(2, seed=1, shear=40, progress=False, max_restarts=0)  # w = 1
    icg = ghost_sio2.generate(2, seed=1, shear=40, icg=True, progress=False, max_restarts=0)
    assert cfg[0].info["guidance"] == 1.0 and icg[0].info["icg"] is True
    assert not same(plain[0], cfg[0]) and not same(cfg[0], icg[0])
    table = np.array([[30.0, 6.0], [40.0, 6.2]])  # raw training rows
    plan = ghost_sio2.plan(1, seed=1, shear=40, icg=table)
    assert np.allclose(plan.icg_properties, [[-1.0, 0.0], [1.0, 0.4]])
    with pytest.raises(ValueError, match=r"icg table must have shape \[K, 2\]"):
        ghost_sio2.plan(1, seed=1, shear=40, icg=np.ones((3, 3)))


def test_generated_structures_read_as_a_dataset_carry_no_record_properties(ghost_sio2, tmp_path):
    """Seeds, steps, targets ... record how a structure was made: they are not labels."""
    from amtoolkit.data import Dataset
    from amtoolkit.data.dataset import is_record_key

    frames = ghost_sio2.generate(
        2, steps=2, seed=0, shear=40, accept=ClosestPair(0.1), progress=False
    )
    frames[0].info["shear_modulus"] = 38.5  # a measured label
    assert all(is_record_key(k) for k in frames[1].info)  # every key the generator writes
    assert list(Dataset.from_atoms(frames).property_names) == ["shear_modulus"]
    path = tmp_path / "gen.extxyz"
    ase.io.write(path, frames, format="extxyz")
    ds = Dataset.from_extxyz(path)
    assert list(ds.property_names) == ["shear_modulus"]
    assert {"seed", "structure_seed", "target_shear_modulus"} <= set(ds.provenance["ignored_keys"])


def _net_charge(atoms) -> int:
    return int(sum(FORMAL_CHARGES[int(z)] for z in atoms.numbers))


def test_charge_balance_restarts_flag_structures(sio2):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = sio2.generate(
            4, n_atoms=9, seed=0, max_restarts=1, rebalance=False, progress=False
        )
    for atoms in frames:
        balanced = atoms.info["charge_balanced"]
        assert isinstance(balanced, bool)
        assert balanced == (_net_charge(atoms) == 0)
        assert atoms.info["restarts"] in (0, 1)
        assert atoms.info["restarts"] == 1 or balanced  # unbalanced ones were restarted
    assert any(a.info["restarts"] == 1 for a in frames)  # the restart path ran
    n_bad = sum(not a.info["charge_balanced"] for a in frames)
    messages = [str(w.message) for w in caught if "charge balanced" in str(w.message)]
    expected = [
        f"{n_bad} of 4 structures are not charge balanced (max_restarts=1, rebalance=False); "
        "atoms.info['charge_balanced'] is False"
    ]
    assert messages == (expected if n_bad else [])
    # without restarts nothing is re-run, but the flag is still set
    frames = sio2.generate(2, n_atoms=9, seed=0, max_restarts=0, rebalance=False, progress=False)
    assert all(a.info["restarts"] == 0 for a in frames)
    assert all(a.info["charge_balanced"] == (_net_charge(a) == 0) for a in frames)
    assert all("relabelled" not in a.info for a in frames)


def test_rebalance_makes_every_structure_balanced(sio2, ghost_sio2):
    plain = sio2.generate(6, n_atoms=9, seed=0, max_restarts=0, rebalance=False, progress=False)
    assert not all(a.info["charge_balanced"] for a in plain)  # the tiny model needs it
    assert sio2.plan(1, seed=0).rebalance  # the oxide default
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left unbalanced to warn about
        fixed = sio2.generate(6, n_atoms=9, seed=0, max_restarts=0, progress=False)
    for before, after in zip(plain, fixed, strict=True):
        assert after.info["charge_balanced"] and _net_charge(after) == 0 and len(after) == 9
        changed = int(np.count_nonzero(before.numbers != after.numbers))
        assert after.info["relabelled"] == changed  # same first pass, same seed
        if before.info["charge_balanced"]:  # a balanced sample is left as it was
            assert same(before, after)
    ghosts = ghost_sio2.generate(3, cell=6.0, seed=0, max_restarts=0, progress=False)
    assert all(a.info["charge_balanced"] and _net_charge(a) == 0 for a in ghosts)


def test_restarts_and_rebalance_are_refused_when_no_balanced_labelling_exists(sio2):
    # 10 real atoms of SiO2 (no ghosts) cannot balance: 9 or 12 can
    message = (
        r"no charge-balanced structure of 10 real atoms of .* exists \(formal charges O -2, "
        r"Si \+4\): ask for 9 atoms, or give max_restarts=0 and rebalance=False"
    )
    for options in ({}, {"max_restarts": 0}, {"rebalance": False}):
        with pytest.raises(ValueError, match=message):
            sio2.plan(2, n_atoms=10, seed=0, **options)
    with pytest.warns(UserWarning, match=r"2 of 2 structures are not charge balanced"):
        frames = sio2.generate(
            2, n_atoms=10, seed=0, max_restarts=0, rebalance=False, progress=False
        )
    assert all(not a.info["charge_balanced"] for a in frames)


def test_rebalance_argument_errors(sio2, si):
    with pytest.raises(ValueError, match="rebalance must be True or False, got 'yes'"):
        sio2.plan(1, seed=0, rebalance="yes")
    with pytest.raises(ValueError, match="rebalance=True needs an oxide model"):
        si.plan(1, seed=0, rebalance=True)
    assert not si.plan(1, seed=0).rebalance


def test_generate_iter_streams_and_validates_early(sio2):
    with pytest.raises(ValueError, match="unknown target"):
        sio2.generate_iter(2, bogus=1.0)  # raised at the call, before iterating
    stream = sio2.generate_iter(3, seed=9, batch_size=2, progress=False, max_restarts=0)
    first = next(stream)
    assert first.info["index"] == 0
    rest = list(stream)
    assert [a.info["index"] for a in rest] == [1, 2]
    batched = sio2.generate(3, seed=9, batch_size=2, progress=False, max_restarts=0)
    assert all(same(x, y) for x, y in zip([first, *rest], batched, strict=True))


class RecordingBar:
    """Stands in for tqdm: records the total and the updates."""

    instances: list[RecordingBar] = []

    def __init__(self, total, **kwargs):
        self.total, self.n, self.closed = total, 0, False
        RecordingBar.instances.append(self)

    def update(self, k):
        self.n += k

    def refresh(self):
        pass

    def set_description(self, text):
        self.description = text

    def close(self):
        self.closed = True


def test_progress_bar_counts_model_steps(sio2, monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    RecordingBar.instances.clear()
    sio2.generate(2, seed=0, batch_size=1, max_restarts=0, rebalance=False)
    bar = RecordingBar.instances[-1]
    assert bar.total == bar.n == 2 * STEPS and bar.closed
    # restart and rebalance runs extend the total by the steps below restart_t
    frames = sio2.generate(4, n_atoms=9, seed=0, max_restarts=1, steps=10, rebalance=False)
    bar = RecordingBar.instances[-1]
    rounds = max(a.info["restarts"] for a in frames)  # rejected systems re-run together
    assert rounds == 1  # this seed has unbalanced samples: the restart path runs
    restart_steps = 4  # grid 0.99 .. 0.01 (10 points), 0: from 0.3 to 0.228, 0.119, 0.01, 0
    assert bar.n == bar.total == 10 + rounds * restart_steps
    frames = sio2.generate(4, n_atoms=9, seed=0, max_restarts=0, steps=10)
    bar = RecordingBar.instances[-1]
    assert any(a.info["relabelled"] for a in frames)  # the rebalance run happened
    assert bar.n == bar.total == 10 + restart_steps


# ------------------------------------------------------------------ loading


def test_from_checkpoint_keeps_model_and_info(tmp_path):
    stem = save_tiny_model(tmp_path / "m", max_density=0.09)
    gen = Generator.from_checkpoint(f"{stem}.pt")
    assert isinstance(gen.model, torch.nn.Module) and not gen.model.training
    assert gen.info.name == "m" and gen.info.max_density == 0.09
    assert gen.property_names == ("shear_modulus", "ring_size")
    assert gen.aliases == {"shear": "shear_modulus", "ring": "ring_size", "rings": "ring_size"}
    assert Generator.load(stem).info == gen.info
    assert "m" in repr(gen)


def test_unknown_pretrained_name_lists_available(tmp_path):
    with pytest.raises(ValueError, match="no shipped model named 'nope'; available: ") as err:
        Generator.from_pretrained("nope")
    names = pretrained.available()
    assert (", ".join(names) or "none yet") in str(err.value)
    with pytest.raises(ValueError, match="neither a checkpoint"):
        Generator.load(tmp_path / "missing")
    with pytest.raises(ValueError):
        pretrained.checkpoint_stem("../etc")


def test_pretrained_registry_lists_complete_checkpoints(tmp_path, monkeypatch):
    save_tiny_model(tmp_path / "shipped-si", elements=("Si",), property_names=())
    (tmp_path / "half.json").write_text("{}")  # no weights: not listed
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert pretrained.available() == ["shipped-si"]
    gen = Generator.from_pretrained("shipped-si")
    assert gen.name == "shipped-si"
    assert pretrained.model_info("shipped-si") == gen.info
    frames = gen.generate(1, n_atoms=6, seed=0, progress=False)
    assert len(frames[0]) == 6


# ------------------------------------------------------------- samplers by objective


def test_flow_model_generates_with_its_ode_and_refuses_the_sde(tmp_path):
    gen = Generator.from_checkpoint(save_tiny_model(tmp_path / "flow", objective="flow"))
    frames = gen.generate(2, seed=3, steps=4, shear=35, progress=False)  # default: "ode"
    assert [a.info["sampler"] for a in frames] == ["ode", "ode"]
    assert all(np.isfinite(a.positions).all() for a in frames)
    with pytest.raises(ValueError, match="sampler 'sde' does not work with this model"):
        gen.generate(1, sampler="sde", progress=False)
    with pytest.raises(ValueError, match="cannot restart"):
        gen.generate(1, max_restarts=1, progress=False)


def test_shortcut_model_generates_in_few_steps_deterministically(tmp_path):
    gen = Generator.from_checkpoint(save_tiny_model(tmp_path / "sc", objective="shortcut"))
    a = gen.generate(2, sampler="shortcut", steps=2, seed=5, progress=False)
    b = gen.generate(2, sampler="shortcut", steps=2, seed=5, progress=False)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.positions, y.positions)
    assert a[0].info["sampler"] == "shortcut" and a[0].info["steps"] == 2


def test_score_model_refuses_shortcut_and_hmc(sio2):
    with pytest.raises(ValueError, match="use one of: sde, ode$"):
        sio2.generate(1, sampler="shortcut", progress=False)
    with pytest.raises(ValueError, match="sampler 'hmc' does not work"):
        sio2.generate(1, sampler="hmc", progress=False)


def test_energy_model_generates_with_hmc(tmp_path):
    stem = save_tiny_model(tmp_path / "energy", elements=("Si",), property_names=(), kind="energy")
    gen = Generator.from_checkpoint(stem)
    frames = gen.generate(
        2, sampler="hmc", steps=4, seed=1, hmc_range=(0.0, 0.9), dt0=0.1, progress=False
    )
    info = frames[0].info
    assert info["sampler"] == "hmc" and info["dt0"] == 0.1
    assert 0.0 <= info["hmc_acceptance"] <= 1.0
    with pytest.raises(ValueError, match="without guidance"):
        gen.generate(1, sampler="hmc", guidance=1.0, progress=False)
    with pytest.raises(ValueError, match="hmc_range"):
        gen.generate(1, sampler="hmc", hmc_range=(0.6, 0.2), progress=False)
    with pytest.raises(ValueError, match="dt0"):
        gen.generate(1, sampler="hmc", dt0=0.0, progress=False)
    with pytest.raises(ValueError, match=r"no step of the 1-step grid lies in hmc_range"):
        gen.plan(1, sampler="hmc", steps=1, seed=0)  # [t_max, 0]: no HMC at all
    with pytest.raises(ValueError, match=r"no step of the 4-step grid lies in hmc_range=\(0, 0\)"):
        gen.plan(1, sampler="hmc", steps=4, hmc_range=(0.0, 0.0), seed=0)


def _si_with_sampling(stem: Path, **sampling) -> Path:
    """A tiny Si model at `stem` (saved unless it exists) whose card's sampling defaults
    are updated with `sampling`."""
    if not stem.with_suffix(".json").is_file():
        stem = save_tiny_model(stem, elements=("Si",), property_names=())
    card = stem.with_suffix(".json")
    data = json.loads(card.read_text())
    data["sampling"].update(sampling)
    card.write_text(json.dumps(data))
    return stem


def test_noise_scale_defaults_to_the_card_and_is_recorded(tmp_path, si):
    frames = si.generate(2, n_atoms=8, seed=1, steps=STEPS, progress=False)
    assert all(a.info["noise_scale"] == 1.0 for a in frames)  # a card without one: 1
    cooler = si.generate(2, n_atoms=8, seed=1, steps=STEPS, noise_scale=0.5, progress=False)
    assert all(a.info["noise_scale"] == 0.5 for a in cooler)
    assert not any(same(a, b) for a, b in zip(frames, cooler, strict=True))
    stem = _si_with_sampling(tmp_path / "cool-si", noise_scale=0.5)
    from_card = Generator.from_checkpoint(stem).generate(
        2, n_atoms=8, seed=1, steps=STEPS, progress=False
    )
    assert all(same(a, b) for a, b in zip(cooler, from_card, strict=True))
    ode = Generator.from_checkpoint(stem).generate(1, n_atoms=8, sampler="ode", steps=2, seed=0)
    assert "noise_scale" not in ode[0].info  # the card's value applies to sde and hmc only


def test_score_gain_defaults_to_the_card_and_is_recorded(tmp_path, si):
    plain = si.generate(2, n_atoms=8, seed=1, sampler="ode", steps=2, progress=False)
    assert all(a.info["score_gain"] == 0.0 for a in plain)  # a card without one: 0
    colder = si.generate(
        2, n_atoms=8, seed=1, sampler="ode", steps=2, score_gain=2.0, progress=False
    )
    assert all(a.info["score_gain"] == 2.0 for a in colder)
    assert not any(same(a, b) for a, b in zip(plain, colder, strict=True))
    stem = _si_with_sampling(tmp_path / "cold-si", score_gain=2.0)
    gen = Generator.from_checkpoint(stem)
    assert gen.info.sampling.score_gain == 2.0
    from_card = gen.generate(2, n_atoms=8, seed=1, sampler="ode", steps=2, progress=False)
    assert all(same(a, b) for a, b in zip(colder, from_card, strict=True))
    sde = gen.generate(1, n_atoms=8, sampler="sde", steps=2, seed=0, progress=False)
    assert sde[0].info["score_gain"] == 2.0  # the card's value applies to sde too
    plain_sde = gen.generate(
        1, n_atoms=8, sampler="sde", steps=2, seed=0, score_gain=0.0, progress=False
    )
    assert not same(sde[0], plain_sde[0])
    with pytest.raises(ValueError, match="score_gain must be a number in \\[0, 100\\]"):
        gen.generate(1, n_atoms=8, sampler="ode", steps=2, score_gain=-1.0, progress=False)
    _si_with_sampling(stem, score_gain={"ode": 2.0})  # per sampler: the others get 0
    per_sampler = Generator.from_checkpoint(stem)
    assert per_sampler.info.sampling.gain_for("ode") == 2.0
    ode = per_sampler.generate(2, n_atoms=8, seed=1, sampler="ode", steps=2, progress=False)
    assert all(same(a, b) for a, b in zip(colder, ode, strict=True))
    sde = per_sampler.generate(1, n_atoms=8, sampler="sde", steps=2, seed=0, progress=False)
    assert sde[0].info["score_gain"] == 0.0 and same(sde[0], plain_sde[0])
    _si_with_sampling(stem, score_gain={"ode": -2.0})
    with pytest.raises(Exception, match="score_gain must be a number in \\[0, 100\\]"):
        Generator.from_checkpoint(stem)


@pytest.mark.parametrize("training_closest", [0.05, 4.0], ids=["far", "close"])
def test_structures_with_a_close_pair_are_flagged(tmp_path, training_closest):
    """A pair nearer than 0.8 x the training set's closest pair gets info and one warning."""
    typical = Typical(
        n_atoms=12, density=2.2, composition={"Si": 1.0}, closest_pair=training_closest
    )
    stem = save_tiny_model(tmp_path / "si", ("Si",), (), typical=typical)
    gen = Generator.from_checkpoint(stem)
    assert gen.close_pair_distance == pytest.approx(0.8 * training_closest)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        structures = gen.generate(3, seed=0, progress=False)
    messages = [str(w.message) for w in caught if "nearer than" in str(w.message)]
    nearest = [closest_pair(a) for a in structures]
    if training_closest > 1.0:  # 12 atoms at 2.2 g/cm3 always hold a pair within 3.2 Å
        assert messages == [
            "3 of 3 structures have two atoms nearer than 3.20 Å (0.8 x the training set's "
            "closest pair); their atoms.info['closest_pair'] gives the distance. More steps "
            "or a lower noise scale usually remove such pairs"
        ]
        assert [a.info["closest_pair"] for a in structures] == pytest.approx(nearest)
        with pytest.warns(UserWarning, match=r"distance\. More steps usually remove such pairs"):
            gen.generate(1, sampler="ode", steps=2, seed=0, progress=False)  # no noise scale
    else:
        assert messages == [] and not any("closest_pair" in a.info for a in structures)
    assert ModelInfo.from_dict(gen.info.to_dict()).typical.closest_pair == training_closest


def test_a_resumed_run_makes_what_the_uninterrupted_one_made(ghost_sio2):
    options = {"shear": [30, 35, 40, 42, 44], "batch_size": 2, "progress": False}
    full = ghost_sio2.generate(5, seed=7, **options)
    rest = list(ghost_sio2.generate_iter(5, resume=full[:3], **options))  # seed from them
    assert [a.info["index"] for a in rest] == [3, 4]
    assert all(same(a, b) for a, b in zip(rest, full[3:], strict=True))
    with pytest.raises(ValueError, match=r"structure 1 of the resumed run has target_shear"):
        ghost_sio2.generate_iter(5, resume=full[:3], **{**options, "shear": 30})
    with pytest.raises(ValueError, match="resuming a run of 2 structures from 3 made ones"):
        ghost_sio2.generate_iter(2, resume=full[:3], seed=7, batch_size=2)


def test_a_modulus_in_pascal_is_refused_naming_the_unit():
    from amtoolkit.data.properties import check_physical

    with pytest.raises(ValueError, match=r"shear_modulus=3.6e\+10 is not physical: .*1000\) GPa"):
        check_physical("shear_modulus", 36e9)
    check_physical("shear_modulus", 535.0)  # diamond
    with pytest.raises(ValueError, match=r"density=2330 .* in \(0, 30\) g/cm3"):
        check_physical("density", 2330.0)  # kg/m3


def test_a_pore_is_left_empty_and_recorded(si):
    from amtoolkit.diffusion.pore import Cylinder, radial

    frames = si.generate(2, cell=[12.0, 12.0, 6.0], pore=3.0, steps=8, seed=0, progress=False)
    for atoms in frames:
        assert atoms.info["pore"].tolist() == [3.0, 2.0, 0.5, 0.5]
        assert atoms.info["pore_atoms"] == 0
        positions = torch.tensor(atoms.positions)
        cell = torch.tensor(atoms.cell.array).reshape(1, 3, 3)
        rho, _ = radial(positions, cell, torch.zeros(len(atoms), dtype=torch.long), Cylinder(3))
        assert float(rho.min()) > 3.0 - 0.1
    # no ghosts: the typical density over the volume outside the pore
    open_volume = 12.0 * 12.0 * 6.0 - np.pi * 9.0 * 6.0
    plan = si.plan(1, cell=[12.0, 12.0, 6.0], pore="3,z", seed=0)
    assert plan.n_atoms == round(number_density(2.2, {"Si": 1.0}) * open_volume)
    again = si.generate(2, cell=[12.0, 12.0, 6.0], pore=3.0, steps=8, seed=0, progress=False)
    assert all(same(a, b) for a, b in zip(frames, again, strict=True))


def test_a_pore_sets_the_ghost_count_and_is_refused_where_it_cannot_work(ghost_sio2, tmp_path):
    plan = ghost_sio2.plan(1, cell=10.0, pore=2.5, seed=0)
    assert plan.n_initial == int(np.floor(0.09 * (1000.0 - np.pi * 2.5**2 * 10.0)))
    with pytest.raises(ValueError, match="a pore needs the cell it runs through"):
        ghost_sio2.plan(1, pore=2.5, seed=0)
    with pytest.raises(ValueError, match="does not fit a cell 10 Å wide"):
        ghost_sio2.plan(1, cell=10.0, pore=4.5, seed=0)
    flow = Generator.from_checkpoint(save_tiny_model(tmp_path / "flow", objective="flow"))
    with pytest.raises(ValueError, match="sampler 'ode' has none: use sde, ode or shortcut"):
        flow.plan(1, cell=10.0, pore=2.5, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 10**12}, "steps must be an integer <= 100,000, got 1,000,000,000,000"),
        ({"guidance": 1e6, "shear": 40.0}, r"guidance=1e\+06 is above 20"),
        ({"max_density": 1.0}, r"max_density must be a number of atoms/Å\^3 in \(0, 0.5\]"),
    ],
)
def test_absurd_values_are_refused_before_any_work(sio2, kwargs, message):
    """They ran into an 8 TB allocation, 0.57 Å O-Si pairs, or minutes of neighbour search."""
    with pytest.raises(ValueError, match=message):
        sio2.plan(1, seed=0, **kwargs)
    with pytest.raises(ValueError, match="n must be an integer <= 10,000,000"):
        sio2.plan(10**12, seed=0)


def test_step_notes_report_each_tenth_with_the_time_left(monkeypatch):
    from amtoolkit.generator import _duration, _StepNotes

    monkeypatch.setattr(_StepNotes, "MIN_INTERVAL", 0.0)  # every tenth, however quick

    lines: list[str] = []
    notes = _StepNotes(lines.append, "batch 1 of 1")
    for done in range(1, 21):
        notes(done, 20)
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == [
        f"step {k} of 20" for k in range(2, 20, 2)
    ]  # tenths 1-9: the last step is reported by the structures being written
    assert "about" in lines[0] and lines[4].startswith("batch 1 of 1: step 10 of 20 (50%)")
    restarted: list[str] = []
    notes = _StepNotes(restarted.append, "b")
    for done, total in [(5, 10), (6, 20), (10, 20), (19, 20)]:  # a restart run extends it
        notes(done, total)
    assert [line.split("(")[1].split(")")[0] for line in restarted] == ["50%", "95%"]
    assert (_duration(42), _duration(210), _duration(9000)) == ("42 s", "3.5 min", "2.5 h")
    monkeypatch.setattr(_StepNotes, "MIN_INTERVAL", 3600.0)
    quick: list[str] = []
    notes = _StepNotes(quick.append, "b")
    for done in range(1, 21):
        notes(done, 20)
    assert quick == []  # a batch done within the interval adds no lines


def test_elastic_targets_carry_how_their_labels_were_measured(sio2):
    import dataclasses

    from amtoolkit.data.properties import elastic_label_setting

    assert elastic_label_setting({"protocol": "a-si"}) is None
    glass = {"protocol": "glass", "parameters": {"relax_fmax": 1e-3, "elastic_steps": 3}}
    assert elastic_label_setting(glass) == {"moduli": "hill", "fmax": 1e-3, "n_steps": 3}
    glass["parameters"]["elastic_delta"] = 0.002
    assert elastic_label_setting(glass)["delta"] == 0.002
    made = {"protocol": "a-sio2", "parameters": {"relax_fmax": 1e-2, "elastic_steps": 3}}
    assert elastic_label_setting(made)["moduli"] == "cubic"
    sio2.info = dataclasses.replace(sio2.info, dataset=glass)  # as trained on a glass set
    (shear,) = sio2.generate(1, shear=30, seed=0, progress=False)
    assert (shear.info["label_moduli"], shear.info["label_fmax"]) == ("hill", 1e-3)
    assert shear.info["label_elastic_steps"] == 3 and shear.info["label_elastic_delta"] == 0.002
    (rings,) = sio2.generate(1, ring_size=6, seed=0, progress=False)  # no elastic target
    assert "label_moduli" not in rings.info

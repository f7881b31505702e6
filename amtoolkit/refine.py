"""Refine existing structures with a diffusion model, then optionally with a potential.

Structures from MD, from another generator or from `Generator.generate` are taken to
a small diffusion time t of a model and brought back:

- ``method="sde"`` (any score or energy model): partial diffusion. Each structure is
  re-noised to t by the forward process and the reverse SDE is integrated from t to 0 in
  `steps` steps (`amtoolkit.diffusion.sample_sde`, even grid from t, `noise_scale`). The
  model keeps what it recognises and redraws the rest, at the scale sigma_X(t). The element
  channels are re-noised with the positions (the network sees a state of its training
  process), but every atom keeps its element;
- ``method="hmc"`` (energy models, `amtoolkit.nn.EnergyDenoiser`): the learned noise
  energy E_hat(., t) sampled with Hamiltonian Monte Carlo (`amtoolkit.diffusion.hmc_step`,
  batched over structures; dt = sigma_X(t) dt0, `n_leapfrog` velocity-Verlet steps and a
  Metropolis test per structure and iteration), or
- ``method="relax"`` (energy models): relaxed to a local minimum of E_hat with ASE's FIRE
  on `NoiseEnergyCalculator` (positions only; the cell is kept),

and afterwards, if a classical `potential` is named, relaxed (positions and cell) or run
through a short MD with it, as in DM2's refinement step. Elements and cells are kept by
the model stage.

Example:
    >>> from amtoolkit import Generator
    >>> from amtoolkit.refine import refine
    >>> gen = Generator.from_pretrained("a-si-energy")
    >>> better = refine(structures, gen, t=0.05, steps=200, potential="sw-si", classical="relax")

References:
    AMDEN (HMC denoising on the noise energy); DM2 (short MD refinement of generated
    cells); Meng et al., ICLR 2022, SDEdit (re-noise and denoise); DESIGN section 4.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms

from amtoolkit.analysis._structures import check_structure
from amtoolkit.calculator import checked_t
from amtoolkit.data.batch import from_atoms
from amtoolkit.diffusion.hmc import hmc_step, noise_energy_fn

__all__ = ["CLASSICAL", "METHODS", "REFINE_DT0", "refine", "refine_iter"]

METHODS = ("hmc", "relax", "sde")
"""Model stages."""

ENERGY_METHODS = ("hmc", "relax")
"""Stages on the noise energy (energy models only)."""

CLASSICAL = ("none", "relax", "md")
"""Classical stages after the noise-energy stage (with a named potential)."""

REFINE_DT0 = 0.2
"""Default base HMC step of `refine`, dt = sigma_X(t) dt0. On structures that are already
clean (melt-quench or generated a-Si, 216 atoms, `a-si-energy` at t = 0.05) 0.2 accepts
about 80% of moves, 0.1 about 92%, while the 0.4 of the generator's `hmc` sampler (whose
structures still carry noise) accepts 0-8%."""

LOW_ACCEPTANCE = 0.1
"""Below this HMC acceptance rate `refine` warns that a structure hardly moved."""

METHOD_OPTIONS = {
    "noise_scale": ("sde", 1.0),
    "dt0": ("hmc", REFINE_DT0),
    "n_leapfrog": ("hmc", 15),
    "fmax": ("relax", 0.05),
}
"""Option -> (the method it belongs to, its default); another method refuses other values."""

NULL_SEED_OFFSET = 7919
"""Offset of the null-embedding seed from the run seed (keeps the two streams apart)."""


def refine(structures: Atoms | Sequence[Atoms], model: Any, **options: Any) -> list[Atoms]:
    """Refined copies of `structures` (the inputs are not modified); see `refine_iter`."""
    return list(refine_iter(structures, model, **options))


def refine_iter(
    structures: Atoms | Sequence[Atoms],
    model: Any,
    *,
    t: float = 0.05,
    method: str = "hmc",
    steps: int = 100,
    dt0: float = METHOD_OPTIONS["dt0"][1],
    n_leapfrog: int = METHOD_OPTIONS["n_leapfrog"][1],
    fmax: float = METHOD_OPTIONS["fmax"][1],
    noise_scale: float = METHOD_OPTIONS["noise_scale"][1],
    targets: Mapping[str, float | None] | None = None,
    potential: str | None = None,
    classical: str = "relax",
    md_steps: int = 1000,
    temperature: float = 300.0,
    batch_size: int = 16,
    seed: int = 0,
    device: torch.device | str = "cpu",
    labels: Sequence[str] | None = None,
) -> Iterator[Atoms]:
    """Refine structures with the diffusion model `model`, yielding them batch by batch.

    Args:
        structures: periodic structures whose elements the model knows (or one).
        model: an `amtoolkit.Generator`; for "hmc" and "relax" of an energy model
            (``info.kind == "energy"``).
        t: diffusion time, in (0, 1) (0.05: sigma_X = 0.075 Å); for "sde" at most the
            model's t_max, and above its t_min unless ``steps == 1``.
        method: "sde" (re-noise to t and integrate the reverse SDE back), "hmc" (sample
            E_hat) or "relax" (FIRE to a minimum of E_hat).
        steps: reverse SDE steps, HMC iterations, or the most FIRE steps.
        dt0: HMC base step, dt = sigma_X(t) dt0.
        n_leapfrog: velocity-Verlet steps per HMC iteration.
        fmax: FIRE force criterion on E_hat, 1/Å ("relax").
        noise_scale: factor on the noise the reverse SDE injects ("sde"; 1 = the reverse
            SDE, which recovers the thermal width of the bonds; the colder generation
            default of a model, e.g. 0.4 for a-si, sharpens them beyond the data).
        targets: property -> raw target value (aliases as in `Generator.generate`); absent
            properties get the model's null embedding.
        potential: classical potential for a final stage (`amtool potentials`), or None.
        classical: with `potential`: "relax" (positions and cell, zero pressure), "md"
            (`md_steps` of NVT at `temperature`) or "none".
        md_steps: MD steps of ``classical="md"`` (1 fs).
        temperature: MD temperature, K.
        batch_size: structures per HMC batch.
        seed: seed of the momenta, Metropolis draws, null embeddings and MD velocities.
        device: torch device of the model.
        labels: one name per structure for error messages (default "structure k").

    Yields:
        Refined Atoms in input order; ``atoms.info`` gains ``refine_method``,
        ``refine_t``, ``refine_steps``, for "sde" ``noise_scale``, for "hmc" and "relax"
        ``noise_energy`` (E_hat after the stage), for HMC ``hmc_acceptance`` and ``dt0``,
        with a potential ``refine_potential`` and ``refine_classical``, and
        ``refine_index`` (the structure's position among the inputs).

    Raises:
        ValueError: at the call, before any structure is refined: "hmc" or "relax" with a
            model that is not an energy model, "sde" with a model that has no reverse SDE
            (flow models), a bad option, or a structure (named by its label) that is not
            3D-periodic or holds an element the model does not know; an option of
            another method (`noise_scale` for "sde", `dt0` and `n_leapfrog` for "hmc",
            `fmax` for "relax") set away from its default.
    """
    info = getattr(model, "info", None)
    network = getattr(model, "model", None)
    if info is None or network is None:
        raise ValueError(f"refine needs an amtoolkit Generator, got {type(model).__name__}")
    if isinstance(structures, Atoms):
        structures = [structures]
    if labels is not None and len(labels) != len(structures):
        raise ValueError(f"{len(labels)} labels for {len(structures)} structures")
    given = {"noise_scale": noise_scale, "dt0": dt0, "n_leapfrog": n_leapfrog, "fmax": fmax}
    for name, value in given.items():
        if value != METHOD_OPTIONS[name][1] and method != METHOD_OPTIONS[name][0]:
            raise ValueError(
                f"{name}={value} applies to method {METHOD_OPTIONS[name][0]!r}, not {method!r}"
            )
    _check_options(
        t, method, steps, dt0, n_leapfrog, fmax, classical, potential, md_steps, temperature
    )
    if method in ENERGY_METHODS and info.kind != "energy":
        raise ValueError(
            f"model {info.name!r} is a {info.kind!r} model; refining on the noise energy needs "
            "an energy model (kind 'energy', e.g. a-si-energy), or method 'sde'"
        )
    if method == "sde":
        _check_partial_diffusion(info, t, steps, noise_scale)
    for k, atoms in enumerate(structures):  # every structure before any sampling
        try:
            check_structure(atoms, periodic=True)
            info.vocabulary.encode(atoms.numbers)
        except ValueError as err:
            raise type(err)(f"{_label(labels, k)}: {err}") from None
    batch_size = max(1, int(batch_size))
    network = network.to(device).eval()

    def batches() -> Iterator[Atoms]:  # a generator: the checks above run at the call
        for start in range(0, len(structures), batch_size):
            chunk = [a.copy() for a in structures[start : start + batch_size]]
            if method == "sde":
                refined = _partial_diffusion(
                    chunk, model, network, t, steps, noise_scale, targets, seed + start
                )
            elif method == "hmc":
                refined = _hmc(
                    chunk, model, network, t, steps, dt0, n_leapfrog, targets, seed + start
                )
            else:
                refined = [_relax_on_noise(a, model, t, steps, fmax, targets, seed) for a in chunk]
            if method == "hmc" and steps:
                _warn_low_acceptance(refined, start, labels, t, dt0)
            for offset, atoms in enumerate(refined):
                atoms.info.update(refine_method=method, refine_t=float(t), refine_steps=int(steps))
                if potential is not None and classical != "none":
                    atoms = _classical(atoms, potential, classical, md_steps, temperature, seed)
                    atoms.info.update(refine_potential=potential, refine_classical=classical)
                atoms.info["refine_index"] = start + offset
                yield atoms

    return batches()


def _label(labels: Sequence[str] | None, k: int) -> str:
    """The name of structure `k` in messages."""
    return f"structure {k}" if labels is None else labels[k]


def _warn_low_acceptance(
    refined: Sequence[Atoms], start: int, labels: Sequence[str] | None, t: float, dt0: float
) -> None:
    """Warn, naming them, about structures whose HMC moves were (nearly) all rejected."""
    stuck = [
        _label(labels, start + k)
        for k, atoms in enumerate(refined)
        if atoms.info["hmc_acceptance"] < LOW_ACCEPTANCE
    ]
    if stuck:
        warnings.warn(
            f"HMC accepted under {LOW_ACCEPTANCE:.0%} of its moves for {', '.join(stuck)} "
            f"(t={t:g}, dt0={dt0:g}), which hardly moved; a smaller dt0 takes smaller steps "
            f"that are accepted more often",
            UserWarning,
            stacklevel=3,
        )


def _check_options(
    t: float,
    method: str,
    steps: int,
    dt0: float,
    n_leapfrog: int,
    fmax: float,
    classical: str,
    potential: str | None,
    md_steps: int,
    temperature: float,
) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown refine method {method!r}; use one of: {', '.join(METHODS)}")
    if classical not in CLASSICAL:
        raise ValueError(
            f"unknown classical stage {classical!r}; use one of: {', '.join(CLASSICAL)}"
        )
    checked_t(t)
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not (math.isfinite(dt0) and dt0 > 0):
        raise ValueError(f"dt0 must be a positive number, got {dt0}")
    if isinstance(n_leapfrog, bool) or int(n_leapfrog) != n_leapfrog or n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be an integer >= 1, got {n_leapfrog!r}")
    if not fmax > 0:
        raise ValueError(f"fmax must be positive, got {fmax}")
    if potential is not None:
        from amtoolkit.potentials import get_spec

        try:
            get_spec(potential)  # an unknown name fails here, before any sampling
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        if classical == "md" and md_steps < 1:
            raise ValueError(f"md_steps must be >= 1 for classical='md', got {md_steps}")
        if classical == "md" and not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0 K for classical='md', got {temperature}")


def _check_partial_diffusion(info: Any, t: float, steps: int, noise_scale: float) -> None:
    """Options of ``method="sde"`` that depend on the model."""
    from amtoolkit.diffusion import get_timesteps
    from amtoolkit.diffusion.objectives import sampling_method
    from amtoolkit.diffusion.samplers import check_noise_scale

    sampling_method(info.objective, "sde", info.kind)  # flow models have no reverse SDE
    check_noise_scale(noise_scale)
    if steps < 1:
        raise ValueError(f"steps must be >= 1 for method 'sde', got {steps}")
    try:
        get_timesteps(int(steps), info.sde, t_start=float(t))
    except ValueError as err:
        raise ValueError(f"t={t}: {err}") from None


def _state(chunk: list[Atoms], info: Any, network: Any, targets: Any) -> Any:
    """The structures as a batch on the model's device, every row with the targets."""
    from amtoolkit.calculator import property_row

    param = next(network.parameters())
    row = property_row(targets, info.property_names, info.normalisation)
    state = from_atoms(chunk, info.vocabulary, dtype=param.dtype).to(param.device)
    return state.replace(
        properties=torch.as_tensor(np.tile(row, (len(chunk), 1)), dtype=param.dtype).to(
            param.device
        )
    )


def _as_inputs(state: Any, chunk: list[Atoms]) -> list[Atoms]:
    """`chunk` (the batch's own copies of the inputs) with the batch's positions: the model
    stage moves positions only, so each keeps its cell, elements, `info` and per-atom
    arrays, and each atom moves by the minimum-image displacement from where it was (no
    jump to another periodic image)."""
    moved = state.positions.detach().cpu().double().numpy()  # system by system, as chunk
    start = 0
    for atoms in chunk:
        cell = atoms.cell.array
        step = (moved[start : start + len(atoms)] - atoms.positions) @ np.linalg.inv(cell)
        atoms.positions = atoms.positions + (step - np.round(step)) @ cell
        start += len(atoms)
    return chunk


def _partial_diffusion(
    chunk: list[Atoms],
    model: Any,
    network: Any,
    t: float,
    steps: int,
    noise_scale: float,
    targets: Mapping[str, float | None] | None,
    seed: int,
) -> list[Atoms]:
    """Re-noise to t with the forward process, then the reverse SDE from t to 0 with the
    structures' elements held (`HeldElements`): the positions are denoised for the
    elements they carry, not for whatever the element channel would drift to."""
    from amtoolkit.diffusion import HeldElements, add_noise, get_timesteps, guided, sample_sde

    info = model.info
    state = _state(chunk, info, network, targets)
    device = state.positions.device
    generator = torch.Generator(device=device).manual_seed(seed)
    t_systems = torch.full((len(chunk),), float(t), dtype=state.positions.dtype, device=device)
    noisy, _, _ = add_noise(state, t_systems, info.sde, generator)
    ts = get_timesteps(int(steps), info.sde, t_start=float(t), device=device)
    denoiser = HeldElements(
        guided(network, 0.0, generator=generator),  # null embeddings from `seed`
        state.elements,
        info.sde,
    )
    out = sample_sde(
        denoiser, noisy, ts, sde=info.sde, generator=generator, noise_scale=noise_scale
    )
    refined = _as_inputs(out, chunk)
    for atoms in refined:
        atoms.info["noise_scale"] = float(noise_scale)
    return refined


def _hmc(
    chunk: list[Atoms],
    model: Any,
    network: Any,
    t: float,
    steps: int,
    dt0: float,
    n_leapfrog: int,
    targets: Mapping[str, float | None] | None,
    seed: int,
) -> list[Atoms]:
    """`steps` batched HMC iterations at fixed t; mean acceptance recorded per structure."""

    info = model.info
    param = next(network.parameters())
    state = _state(chunk, info, network, targets)
    energy_fn = noise_energy_fn(network, state, t, info.sde, null_seed=seed + NULL_SEED_OFFSET)
    generator = torch.Generator(device=param.device).manual_seed(seed)
    dt = float(info.sde.sigma_x(float(t))) * dt0
    accepted = torch.zeros(len(chunk), dtype=torch.float64)
    for _ in range(int(steps)):
        state, ok, _ = hmc_step(energy_fn, state, dt, n_leapfrog, generator)
        accepted += ok.double().cpu()
    energy, _ = energy_fn(state.positions)
    out = _as_inputs(state, chunk)
    for k, atoms in enumerate(out):
        atoms.info.update(
            noise_energy=float(energy[k]),
            hmc_acceptance=float(accepted[k] / steps) if steps else math.nan,
            dt0=float(dt0),
        )
    return out


def _relax_on_noise(
    atoms: Atoms,
    model: Any,
    t: float,
    steps: int,
    fmax: float,
    targets: Mapping[str, float | None] | None,
    seed: int,
) -> Atoms:
    """FIRE on the noise energy (positions only)."""
    from ase.optimize import FIRE

    from amtoolkit.calculator import NoiseEnergyCalculator

    param = next(model.model.parameters())
    atoms.calc = NoiseEnergyCalculator(
        model, t=t, targets=targets, device=param.device, seed=seed + NULL_SEED_OFFSET
    )
    FIRE(atoms, logfile=None).run(fmax=fmax, steps=int(steps))
    energy = float(atoms.get_potential_energy())
    atoms.calc = None
    atoms.info["noise_energy"] = energy
    return atoms


def _classical(
    atoms: Atoms, potential: str, classical: str, md_steps: int, temperature: float, seed: int
) -> Atoms:
    """Relaxation (positions and cell) or NVT MD with a classical potential."""
    from amtoolkit.potentials import relax, run_md

    info = dict(atoms.info)
    if classical == "relax":
        out = relax(atoms, potential, cell=True)
    else:
        out = run_md(atoms, potential, temperature, md_steps, seed=seed)
    out.info = {**info, **out.info}  # this stage's relax_* / md_* replace earlier ones
    return out

"""Hamiltonian Monte Carlo on the noise energy: batched HMC and the HMC denoising sampler.

One HMC iteration on the positions of every system at once, with
per-system step sizes dt and per-system accept/reject:

    p ~ N(0, I) per atom coordinate, mean removed per system
    H0 = E(X) + |p|^2 / 2                                   (k_B T = 1, unit masses)
    n_leapfrog velocity-Verlet steps, F = -grad E:
        p <- p + F dt/2;   X <- X + p dt;   F' = -grad E(X);   p <- p + F' dt/2
    (so X += p dt + F dt^2/2 and p += (F + F') dt/2)
    accept with probability min(1, exp(-(H1 - H0))), else restore X.

Momenta and forces are kept mean-free per system: the centre of mass of each system
does not move, and the chain samples exp(-E) on the plane of fixed centre of mass. For
the translation-invariant noise energy E_hat this loses nothing (translations are a flat
direction of E_hat, along which a momentum would only drift the system).

The random numbers of one iteration come from `draw_momenta`, system by system in a
fixed order, so the ASE driver `amtoolkit.hmc.HMC` (one system) reproduces the batched
path for the same generator.

References:
    Duane, Kennedy, Pendleton & Roweth, "Hybrid Monte Carlo", Phys. Lett. B 195 (1987);
    Neal, "MCMC using Hamiltonian dynamics", Handbook of MCMC (2011), section 5.2 (eq. 5.18
    leapfrog, eq. 5.21 acceptance); AMDEN (HMC denoising with an energy-based denoiser);
    docs/diffusion.md, *Energy models and HMC*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import remove_system_mean
from amtoolkit.diffusion.samplers import Callback, Model, check_timesteps, sample_sde
from amtoolkit.diffusion.schedules import MaterialSDE

EnergyFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""positions [N, 3] -> (energy of each system [S], its gradient in the positions [N, 3])."""

HMC_STATS_KEYS = ("t", "acceptance", "dt0", "nonfinite")
"""Keys of the dict `sample_hmc` appends to `stats` per HMC iteration."""

_SEED_BOUND = 2**62


class EnergyModel(Protocol):
    """A model with a noise energy (`amtoolkit.nn.EnergyDenoiser`)."""

    def energy(
        self, batch: Batch, t: torch.Tensor, sde: MaterialSDE, *, generator: Any = None
    ) -> torch.Tensor: ...


# ----------------------------------------------------------------- building blocks


MAX_DT0 = 1e4
"""Largest HMC base step: dt = sigma_X(t) dt0, and 0.2-0.4 aims at acceptance 0.5; far
larger steps accept nothing, which the acceptance warnings say, but a step past this
bound is a typo (10^12 was taken and ran)."""


def check_dt0(dt0: float) -> float:
    """`dt0` as a float in (0, `MAX_DT0`]; ValueError naming it otherwise."""
    dt0 = float(dt0)
    if not (math.isfinite(dt0) and 0 < dt0 <= MAX_DT0):
        raise ValueError(f"dt0 must be a number in (0, {MAX_DT0:g}], got {dt0:g}")
    return dt0


def draw_momenta(
    counts: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Momenta and Metropolis uniforms of one HMC iteration, drawn system by system.

    For each system in order: its ``n_s x 3`` standard normals (row-major), then its
    uniform in [0, 1). The momenta of a system get their mean removed. A single system
    drawn from a generator gets the same numbers as the first system of a batch drawn
    from the same generator state; this is the random stream shared by `hmc_step` and
    the ASE driver `amtoolkit.hmc.HMC`.

    Args:
        counts: number of atoms of each system [S].
        generator: random source (its device is where the numbers are drawn).
        dtype: dtype of the outputs (the numbers are drawn in float64 and rounded, so
            every dtype gets the same stream).
        device: device of the outputs (default: the generator's, else CPU).

    Returns:
        Momenta p, mean-free per system [sum(counts), 3], and uniforms u [S].
    """
    draw_device = generator.device if generator is not None else device
    momenta, uniforms = [], []
    for n in counts:  # drawn in float64 whatever `dtype`: one stream for every precision
        z = torch.randn((int(n), 3), generator=generator, dtype=torch.float64, device=draw_device)
        momenta.append(z - z.mean(0, keepdim=True) if int(n) > 0 else z)
        uniforms.append(
            torch.rand((1,), generator=generator, dtype=torch.float64, device=draw_device)
        )
    out_device = device if device is not None else draw_device
    p = torch.cat(momenta) if momenta else torch.zeros((0, 3), dtype=torch.float64)
    u = torch.cat(uniforms) if uniforms else torch.zeros((0,), dtype=torch.float64)
    return p.to(out_device, dtype), u.to(out_device, dtype)


def momentum_step(momenta: torch.Tensor, forces: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """p + F dt (called with dt/2: the half kicks of velocity Verlet). [N, 3]

    Args:
        momenta: p. [N, 3]
        forces: F = -grad E. [N, 3]
        dt: time step per atom. [N, 1]
    """
    return momenta + dt * forces


def position_step(positions: torch.Tensor, momenta: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """X + p dt (unit masses). [N, 3]"""
    return positions + dt * momenta


def kinetic_energy(momenta: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    """|p|^2 / 2 of each system (unit masses, k_B T = 1). [S]"""
    per_atom = 0.5 * (momenta * momenta).sum(-1)
    return per_atom.new_zeros(n_systems).index_add_(0, system_idx, per_atom)


def metropolis_accept(h0: torch.Tensor, h1: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Accept where u < exp(-(H1 - H0)) and both Hamiltonians are finite. [S] (bool)"""
    finite = torch.isfinite(h0) & torch.isfinite(h1)
    delta = torch.where(finite, h1 - h0, torch.zeros_like(h1))
    return finite & (uniforms < torch.exp(-delta))


def _finite_systems(
    energy: torch.Tensor, gradient: torch.Tensor, system_idx: torch.Tensor, n_systems: int
) -> torch.Tensor:
    """Systems whose energy and every gradient entry are finite. [S] (bool)"""
    bad_atoms = (~torch.isfinite(gradient)).any(-1).to(energy.dtype)
    bad = energy.new_zeros(n_systems).index_add_(0, system_idx, bad_atoms) > 0
    return torch.isfinite(energy) & ~bad


def _forces(
    gradient: torch.Tensor, finite: torch.Tensor, system_idx: torch.Tensor, n_systems: int
) -> torch.Tensor:
    """Mean-free forces -grad E; zero on systems with a non-finite value. [N, 3]"""
    gradient = torch.where(finite[system_idx, None], gradient, torch.zeros_like(gradient))
    return remove_system_mean(-gradient, system_idx, n_systems)


# ----------------------------------------------------------------- one HMC iteration


@torch.no_grad()
def hmc_step(
    energy_fn: EnergyFn,
    state: Batch,
    step_size: torch.Tensor | float,
    n_leapfrog: int = 15,
    generator: torch.Generator | None = None,
) -> tuple[Batch, torch.Tensor, dict[str, Any]]:
    """One HMC iteration on the positions of every system (elements are held fixed).

    Draws p and the Metropolis uniforms with `draw_momenta`, integrates `n_leapfrog`
    velocity-Verlet steps (``n_leapfrog + 1`` calls of `energy_fn`), and accepts or
    rejects each system on its own. A system whose energy or gradient is NaN or infinite
    anywhere along its trajectory is rejected (its forces are zeroed from then on, so
    nothing non-finite reaches the positions) and counted in the stats; nothing raises.

    Args:
        energy_fn: positions [N, 3] -> (E per system [S], grad_X E [N, 3]); called with
            gradients disabled, it computes the gradient itself (e.g. `noise_energy_fn`).
        state: the systems; only positions change.
        step_size: dt per system [S] (a number is used for every system).
        n_leapfrog: velocity-Verlet steps per iteration, >= 1.
        generator: random source of the momenta and uniforms.

    Returns:
        (new state, accepted [S] bool, stats) with stats ``{"acceptance": fraction
        accepted, "accept_probability": min(1, exp(-dH)) [S] (0 where non-finite),
        "delta_h": H1 - H0 [S], "nonfinite": [S] bool, "n_nonfinite": int}``.

    References:
        Neal 2011, section 5.2 (eqs. 5.18, 5.21); docs/diffusion.md, *Energy models and HMC*.
    """
    if isinstance(n_leapfrog, bool) or not isinstance(n_leapfrog, int) or n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be an integer >= 1, got {n_leapfrog!r}")
    x0, idx, n_systems = state.positions, state.system_idx, state.n_systems
    dt = torch.as_tensor(step_size, dtype=x0.dtype, device=x0.device)
    if dt.ndim == 0:
        dt = dt.expand(n_systems)
    if dt.shape != (n_systems,):
        raise ValueError(f"step_size must have shape [{n_systems}], got {list(dt.shape)}")
    dt_atom = dt[idx, None]  # [N, 1]
    half = 0.5 * dt_atom

    momenta, uniforms = draw_momenta(
        state.atoms_per_system.tolist(), generator, dtype=x0.dtype, device=x0.device
    )
    energy0, gradient = energy_fn(x0)
    finite = _finite_systems(energy0, gradient, idx, n_systems)
    forces = _forces(gradient, finite, idx, n_systems)
    h0 = energy0 + kinetic_energy(momenta, idx, n_systems)

    positions, energy = x0, energy0
    for _ in range(n_leapfrog):
        momenta = momentum_step(momenta, forces, half)
        positions = position_step(positions, momenta, dt_atom)
        energy, gradient = energy_fn(positions)
        finite = finite & _finite_systems(energy, gradient, idx, n_systems)
        forces = _forces(gradient, finite, idx, n_systems)
        momenta = momentum_step(momenta, forces, half)
    h1 = energy + kinetic_energy(momenta, idx, n_systems)

    accepted = finite & metropolis_accept(h0, h1, uniforms)
    delta_h = h1 - h0
    probability = torch.where(
        finite, torch.exp(-delta_h).clamp(max=1.0), torch.zeros_like(delta_h)
    ).nan_to_num(0.0)
    new_state = state.replace(positions=torch.where(accepted[idx, None], positions, x0))
    stats = {
        "acceptance": float(accepted.double().mean()) if n_systems else math.nan,
        "accept_probability": probability,
        "delta_h": delta_h,
        "nonfinite": ~finite,
        "n_nonfinite": int((~finite).sum()),
    }
    return new_state, accepted, stats


def noise_energy_fn(
    model: EnergyModel,
    state: Batch,
    t: float,
    sde: MaterialSDE,
    *,
    null_seed: int | None = None,
) -> EnergyFn:
    """The noise energy E_hat(., t) of `model` as a function of the positions of `state`.

    Elements, cells and properties are those of `state`. Every call draws the null
    embeddings of absent properties from a fresh generator seeded with `null_seed`, so
    the energy is one fixed function along a trajectory (None: the model's own draws,
    fine when no property is absent).

    Args:
        model: an energy model (`amtoolkit.nn.EnergyDenoiser`, in eval mode).
        state: the systems.
        t: diffusion time of the energy (every system).
        sde: the diffusion process (sigma_X of E_hat = S / sigma_X).
        null_seed: seed of the null-embedding draws.

    Returns:
        positions [N, 3] -> (E_hat [S], grad_X E_hat [N, 3]), both detached.
    """
    dtype, device = state.positions.dtype, state.positions.device
    t_systems = torch.full((state.n_systems,), float(t), dtype=dtype, device=device)

    def energy_fn(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        generator = None
        if null_seed is not None:
            generator = torch.Generator(device=device).manual_seed(null_seed)
        with torch.enable_grad():
            x = positions.detach().requires_grad_(True)
            energy = model.energy(state.replace(positions=x), t_systems, sde, generator=generator)
            (gradient,) = torch.autograd.grad(energy.sum(), x, materialize_grads=True)
        return energy.detach(), gradient

    return energy_fn


# ----------------------------------------------------------------- the sampler


@torch.no_grad()
def sample_hmc(
    model: Model,
    state: Batch,
    ts: torch.Tensor,
    *,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    energy_model: EnergyModel | None = None,
    hmc_range: tuple[float, float] = (0.0, 0.5),
    dt0: float = 0.4,
    n_leapfrog: int = 15,
    adapt: bool = False,
    target_acceptance: float = 0.5,
    stats: list[dict[str, Any]] | None = None,
    noise_scale: float = 1.0,
) -> Batch:
    """Reverse SDE with one HMC iteration on the noise energy before each step in `hmc_range`.

    Step i at time t = ts[i]: if ``hmc_range[0] <= t <= hmc_range[1]``, one `hmc_step` on
    the positions with dt = sigma_X(t) dt0 on E_hat(., t) of `energy_model` (elements
    held fixed), then the Euler-Maruyama step of `sample_sde` from ts[i] to ts[i + 1].
    Outside `hmc_range` this is `sample_sde` step for step, with the same random draws.
    Each HMC iteration draws a null-embedding seed (one integer) and then the momenta
    and uniforms (`draw_momenta`) from `generator`.

    With ``adapt=True``, dt0 is multiplied by exp((rate - target_acceptance) / 2) after
    each HMC iteration, rate being its fraction of accepted systems (a simple
    Robbins-Monro-like controller towards the target acceptance).

    Args:
        model: (Batch, t [S]) -> (eps_hat_x, eps_hat_e) for the SDE steps.
        state: the batch at ``ts[0]``.
        ts: decreasing time grid ``[n + 1]`` ending at 0.
        sde: the process constants; default ``MaterialSDE()``.
        generator: random source.
        callback: as for `sample_sde` (``i`` counts the steps of the whole grid).
        energy_model: model whose ``energy(batch, t, sde, generator=)`` is E_hat
            (`amtoolkit.nn.EnergyDenoiser`); default `model` itself when it has one.
        hmc_range: closed interval of times with HMC (AMDEN: [0, 0.5]).
        dt0: HMC step size in units of sigma_X(t) (AMDEN: 0.4; 0.2 for MEG).
        n_leapfrog: velocity-Verlet steps per HMC iteration (AMDEN: 15).
        adapt: adapt dt0 towards `target_acceptance`.
        target_acceptance: acceptance aimed at when adapting, in (0, 1).
        stats: if a list, one dict ``{"t", "acceptance", "dt0", "nonfinite"}`` (dt0 as
            used, nonfinite the number of systems rejected for a non-finite energy) is
            appended per HMC iteration.
        noise_scale: factor on the noise of the SDE steps (`sample_sde`).

    Returns:
        The batch at ``ts[-1]``.

    References:
        AMDEN (HMC denoising); Neal 2011, section 5.2; docs/diffusion.md, *Energy models
        and HMC*.
    """
    sde = MaterialSDE() if sde is None else sde
    ts = check_timesteps(ts)
    energy: Any = model if energy_model is None else energy_model
    if not callable(getattr(energy, "energy", None)):
        raise ValueError(
            f"sample_hmc needs an energy model with .energy(batch, t, sde), got "
            f"{type(energy).__name__}; pass energy_model=EnergyDenoiser"
        )
    low, high = (float(v) for v in hmc_range)
    if not low <= high:
        raise ValueError(f"hmc_range must be (low, high) with low <= high, got {hmc_range}")
    check_dt0(dt0)
    if not 0.0 < target_acceptance < 1.0:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {target_acceptance}")

    for i in range(ts.numel() - 1):
        t = float(ts[i])
        if low <= t <= high:
            seed_device = generator.device if generator is not None else None
            null_seed = int(
                torch.randint(_SEED_BOUND, (1,), generator=generator, device=seed_device)
            )
            energy_fn = noise_energy_fn(energy, state, t, sde, null_seed=null_seed)
            step_size = float(sde.sigma_x(t)) * dt0
            state, _, info = hmc_step(energy_fn, state, step_size, n_leapfrog, generator)
            if stats is not None:
                stats.append(
                    {
                        "t": t,
                        "acceptance": info["acceptance"],
                        "dt0": dt0,
                        "nonfinite": info["n_nonfinite"],
                    }
                )
            if adapt:
                dt0 *= math.exp(0.5 * (info["acceptance"] - target_acceptance))
        step_callback = None
        if callback is not None:

            def step_callback(record: dict[str, Any], i: int = i) -> None:
                callback({**record, "i": i})

        state = sample_sde(
            model,
            state,
            ts[i : i + 2],
            sde=sde,
            generator=generator,
            callback=step_callback,
            noise_scale=noise_scale,
        )
    return state

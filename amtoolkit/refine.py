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
    cells); Meng et al., ICLR 2022, SDEdit (re-noise and denoise); docs/energy.md.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms

from amtoolkit.analysis._structures import as_structure_list, check_structure, frame_digest
from amtoolkit.calculator import checked_t
from amtoolkit.data.batch import from_atoms
from amtoolkit.diffusion.hmc import check_dt0, hmc_step, noise_energy_fn
from amtoolkit.diffusion.streams import Streams
from amtoolkit.errors import StructureError, user_stacklevel
from amtoolkit.generator import (
    MAX_STEPS,
    batch_seed,
    check_int,
    resolve_property,
    resolve_targets,
)

__all__ = ["CLASSICAL", "METHODS", "REFINE_DT0", "refine", "refine_iter", "refine_record"]

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

REFINE_RESULTS = (
    "refine_noise_energy",
    "refine_hmc_acceptance",
    "refine_fire_steps",
    "refine_converged",
)
"""``atoms.info`` entries of a structure's refinement that are results, not settings."""

MAX_LEAPFROG = 1000
"""Most velocity-Verlet steps of one HMC iteration (15 by default)."""

MAX_MD_STEPS = 100_000_000
"""Most MD steps of the classical stage (100 ns at 1 fs; LAMMPS refuses runs past 2^31)."""

MAX_TEMPERATURE = 100_000.0
"""K: the hottest classical MD stage (10^12 K lost every atom from the box)."""

CLASSICAL_DEFAULTS = {"classical": "relax", "md_steps": 1000, "temperature": 300.0}
"""Defaults of the classical stage's options, refused when changed without a potential."""

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
    method: str = "sde",
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
    resume: Sequence[Atoms] = (),
) -> Iterator[Atoms]:
    """Refine structures with the diffusion model `model`, yielding them batch by batch.

    Args:
        structures: periodic structures whose elements the model knows (or one).
        model: an `amtoolkit.Generator`, or what `Generator.load` takes (a shipped model's
            name, a checkpoint); for "hmc" and "relax" an energy model (``info.kind ==
            "energy"``).
        t: diffusion time, in (0, 1) (0.05: sigma_X = 0.075 Å); for "sde" at most the
            model's t_max, and above its t_min unless ``steps == 1``.
        method: "sde" (re-noise to t and integrate the reverse SDE back; the default),
            "hmc" (sample E_hat) or "relax" (FIRE to a minimum of E_hat). On finished
            a-Si (benchmarks/bench_refine.py) "sde" leaves the RDF as it was or better,
            while "hmc" and "relax" leave the structures at the noise level of t:
            their RDF RMSD rises from 0.072 to 0.27 and 0.19.
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
        resume: the structures an interrupted run of the same call yielded (read back
            from its output): each must carry this run's record, and the run continues
            after them with the draws they would have had in the whole run (the batch of
            the first one left is still computed); `amtool refine --resume`.

    Yields:
        Refined Atoms in input order; ``atoms.info`` keeps the input's entries and gains
        `refine_record` (``refine_model``, ``refine_method``, ``refine_t``,
        ``refine_steps``, ``refine_seed``, ``refine_batch_size``, the method's options,
        ``refine_target_<property>``, with a potential ``refine_potential`` and
        ``refine_classical``), ``refine_index`` (the structure's position among the
        inputs), for "hmc" and "relax" ``refine_noise_energy`` (E_hat after the stage),
        for "hmc" ``refine_hmc_acceptance``, for "relax" ``refine_fire_steps`` (taken)
        and ``refine_converged`` (max force below `fmax`), and ``closest_pair`` (Å) when
        two atoms end nearer than the model's close-pair distance (warned about).

    Raises:
        StructureError: (a ValueError) `structures` are not Atoms: a file name (read it
            first with ``ase.io.read``), an array of positions, a list of lists (the
            first frame that is no Atoms named).
        ValueError: at the call, before any structure is refined: "hmc" or "relax" with a
            model that is not an energy model, "sde" with a model that has no reverse SDE
            (flow models), a bad option, or a structure (named by its label) that is not
            3D-periodic or holds an element the model does not know; an option of
            another method (`noise_scale` for "sde", `dt0` and `n_leapfrog` for "hmc",
            `fmax` for "relax") set away from its default; `classical`, `md_steps` or
            `temperature` set away from its default without a `potential`; `resume`
            structures that another run made (the first differing entry named).
    """
    structures = _structure_list(structures)  # before a model is loaded
    if isinstance(model, (str, os.PathLike)):  # a shipped name or a checkpoint, as load takes
        from amtoolkit.generator import Generator

        model = Generator.load(model, device=device)
    info = getattr(model, "info", None)
    network = getattr(model, "model", None)
    if info is None or network is None:
        raise ValueError(
            f"refine needs an amtoolkit Generator or a model name, got {type(model).__name__}"
        )
    if labels is not None and len(labels) != len(structures):
        raise ValueError(f"{len(labels)} labels for {len(structures)} structures")
    given = {"noise_scale": noise_scale, "dt0": dt0, "n_leapfrog": n_leapfrog, "fmax": fmax}
    for name, value in given.items():
        if value != METHOD_OPTIONS[name][1] and method != METHOD_OPTIONS[name][0]:
            raise ValueError(
                f"{name}={value} applies to method {METHOD_OPTIONS[name][0]!r}, not {method!r}"
            )
    seed = check_int("seed", seed, 0)
    resolved = resolve_targets(targets or {}, info.property_names)
    targets = {name: value for name, (_, value) in resolved.items()}
    if potential is not None and classical != "md":
        for name, value in {"md_steps": md_steps, "temperature": temperature}.items():
            if value != CLASSICAL_DEFAULTS[name]:
                raise ValueError(f"{name}={value} applies to classical='md', not {classical!r}")
    if potential is None:
        stage = {"classical": classical, "md_steps": md_steps, "temperature": temperature}
        for name, value in stage.items():
            if value != CLASSICAL_DEFAULTS[name]:
                raise ValueError(
                    f"{name}={value} applies to the classical stage, which runs only with a "
                    "potential (potential=..., amtool refine --potential)"
                )
    _check_options(
        t, method, steps, dt0, n_leapfrog, fmax, classical, potential, md_steps, temperature
    )
    batch_size = check_int("batch_size", batch_size, 1)
    if method in ENERGY_METHODS and info.kind != "energy":
        raise ValueError(
            f"model {info.name!r} is a {info.kind!r} model; refining on the noise energy needs "
            "an energy model (kind 'energy', e.g. a-si-energy), or method 'sde'"
        )
    if method == "sde":
        _check_partial_diffusion(info, t, steps, noise_scale)
    classical_stage = potential is not None and classical != "none"
    for k, atoms in enumerate(structures):  # every structure before any sampling
        try:
            check_structure(atoms, periodic=True)
            info.vocabulary.encode(atoms.numbers)
            if atoms.constraints and method != "relax":
                raise ValueError(
                    f"it carries ASE constraints ({', '.join(map(str, atoms.constraints))}), "
                    f"which method {method!r} would not respect (it moves every atom): "
                    "remove them (del atoms.constraints) or use method 'relax'"
                )
            if classical_stage:
                from amtoolkit.potentials import check_elements, get_spec
                from amtoolkit.potentials.calculator import charge_message

                check_elements(potential, sorted(set(atoms.get_chemical_symbols())))
                charged = charge_message(atoms, get_spec(potential))
                if charged:  # its relaxed or MD structure would be no material's
                    raise ValueError(f"{charged}: refine it with another potential or none")
        except ValueError as err:
            raise type(err)(f"{_label(labels, k)}: {err}") from None
    network = network.to(device).eval()
    record = refine_record(
        model,
        method=method,
        t=t,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        options={  # as the default's type: 1 is recorded as 1.0, as the default 1.0
            name: type(METHOD_OPTIONS[name][1])(value)
            for name, value in given.items()
            if METHOD_OPTIONS[name][0] == method
        },
        targets=targets,
        potential=potential,
        classical=classical,
        md_steps=md_steps,
        temperature=temperature,
    )
    _check_resumed(resume, record, structures)
    start = len(resume)
    close = getattr(model, "close_pair_distance", None)

    def batches() -> Iterator[Atoms]:  # a generator: the checks above run at the call
        first = start - start % batch_size  # the batch that holds `start`: same draws
        for begin in range(first, len(structures), batch_size):
            chunk = [_fresh_copy(a) for a in structures[begin : begin + batch_size]]
            # each structure's own seed (a SeedSequence child of `seed` and its place)
            own = [batch_seed(seed, k, k + 1) for k in range(begin, begin + len(chunk))]
            if method == "sde":  # each structure from its own stream: the same in any batch
                refined = _partial_diffusion(
                    chunk, model, network, t, steps, noise_scale, targets, own
                )
            elif method == "hmc":  # one stream for the batch
                draws = batch_seed(seed, begin, begin + len(chunk))
                refined = _hmc(chunk, model, network, t, steps, dt0, n_leapfrog, targets, draws)
            else:
                refined = [
                    _relax_on_noise(a, model, t, steps, fmax, targets, s)
                    for a, s in zip(chunk, own, strict=True)
                ]
            done = max(0, start - begin)  # written by the interrupted run: not again
            refined, own, at = refined[done:], own[done:], begin + done
            if method == "hmc" and steps:
                _warn_for(
                    refined, at, labels,
                    lambda a: a.info["refine_hmc_acceptance"] < LOW_ACCEPTANCE,
                    f"HMC accepted under {LOW_ACCEPTANCE:.0%} of its moves for {{}} (t={t:g}, "
                    f"dt0={dt0:g}), which hardly moved; a smaller dt0 takes smaller steps that "
                    "are accepted more often",
                )  # fmt: skip
            if method == "relax":
                _warn_for(
                    refined, at, labels, lambda a: not a.info["refine_converged"],
                    f"FIRE stopped at {steps} steps above fmax={fmax:g} for {{}} "
                    "(refine_converged False); more steps relax them further",
                )  # fmt: skip
            _mark_close_pairs(refined, close, at, labels)
            for offset, atoms in enumerate(refined):
                atoms.info.update(record)
                if potential is not None and classical != "none":
                    velocities = own[offset] % (2**31 - 1) + 1
                    atoms = _classical(
                        atoms, potential, classical, md_steps, temperature, velocities
                    )
                atoms.info["refine_index"] = at + offset
                atoms.info["refine_input"] = frame_digest(structures[at + offset])
                yield atoms

    return batches()


def refine_record(
    model: Any,
    *,
    method: str,
    t: float,
    steps: int,
    seed: int,
    batch_size: int,
    options: Mapping[str, float],
    targets: Mapping[str, float | None] | None,
    potential: str | None,
    classical: str,
    md_steps: int = CLASSICAL_DEFAULTS["md_steps"],
    temperature: float = CLASSICAL_DEFAULTS["temperature"],
) -> dict[str, Any]:
    """The ``atoms.info`` entries that say how `refine_iter` refined a structure (what
    `amtool refine --resume` checks): model, method, t, steps, seed, batch size, the
    method's own `options` (``refine_noise_scale``; ``refine_dt0`` and
    ``refine_n_leapfrog``; or ``refine_fmax``), targets by their full property names,
    and the classical stage (``refine_potential``, ``refine_classical``; for MD also
    ``refine_md_steps`` and the set ``refine_temperature`` in K, which the final frame's
    instantaneous ``md_temperature`` is not)."""
    record: dict[str, Any] = {
        "refine_model": model.info.name,
        "refine_method": method,
        "refine_t": float(t),
        "refine_steps": int(steps),
        "refine_seed": int(seed),
        "refine_batch_size": int(batch_size),
        **{f"refine_{name}": value for name, value in options.items()},
    }
    for name, value in (targets or {}).items():
        if value is not None:
            key = resolve_property(name, model.info.property_names)
            record[f"refine_target_{key}"] = float(value)
    if potential is not None and classical != "none":
        from amtoolkit.potentials.files import is_potential_file, load_potential

        if is_potential_file(potential):  # where it is, and which version
            spec = load_potential(potential)
            record.update(refine_potential=spec.source, refine_potential_digest=spec.digest)
        else:
            record.update(refine_potential=potential)
        record.update(refine_classical=classical)
        if classical == "md":
            record.update(refine_md_steps=int(md_steps), refine_temperature=float(temperature))
    return record


def _check_resumed(
    made: Sequence[Atoms], record: Mapping[str, Any], inputs: Sequence[Atoms]
) -> None:
    """ValueError unless `made` are the first structures of a run with `record` on
    `inputs` (refinement keeps each structure's elements in order, and its cell unless a
    classical relaxation moved it)."""
    if len(made) > len(inputs):
        raise ValueError(f"cannot resume: {len(made)} refined structures for {len(inputs)} inputs")
    for k, atoms in enumerate(made):
        given = inputs[k]
        if "refine_method" not in atoms.info:
            raise ValueError(
                f"cannot resume: structure {k} holds no refine record (refine_method ...): "
                "the output was not written by refine (amtool refine); name another output"
            )
        mine = {key: v for key, v in atoms.info.items() if _is_refine(key)}
        mine.pop("refine_index", None)
        digest = mine.pop("refine_input", None)  # absent in files of older versions
        same_cell = "refine_classical" in record or np.allclose(
            atoms.cell.array, given.cell.array, atol=1e-6
        )
        same_input = digest is None or digest == frame_digest(given)
        if not (np.array_equal(atoms.numbers, given.numbers) and same_cell and same_input):
            raise ValueError(
                f"cannot resume: refined structure {k} ({atoms.get_chemical_formula()}) is "
                f"not input {k} ({given.get_chemical_formula()}"
                f"{'' if same_cell else ', another cell'}): resume with the same input files"
            )
        for key in sorted(set(record) | set(mine)):
            if key in REFINE_RESULTS:
                continue  # results, not options
            if not _same(mine.get(key), record.get(key)):
                theirs, ours = (_plain(v) for v in (mine.get(key), record.get(key)))
                raise ValueError(
                    f"cannot resume: structure {k} has {key}={theirs!r}, this run "
                    f"{ours!r}; continue with the options that made it"
                )
        if atoms.info.get("refine_index") != k:
            raise ValueError(
                f"cannot resume: structure {k} has refine_index "
                f"{atoms.info.get('refine_index')!r}, expected {k}"
            )


MEASURED_INFO = (
    "energy_per_atom",
    "energy",
    "free_energy",
    "stress",
    "potential",
    "closest_pair",
    "relax_converged",
    "relax_steps",
    "relax_method",
)
"""``atoms.info`` entries that describe a measurement of the input (an energy and the
potential it came from, a relaxation, a close pair), dropped from refined copies."""


def _fresh_copy(atoms: Atoms) -> Atoms:
    """A copy of `atoms` without the record of an earlier refinement (this one replaces
    it) and without measured labels (`PROPERTY_UNITS` keys: ``density``,
    ``shear_modulus`` ..., and `MEASURED_INFO`), which describe the input, not the
    refined structure."""
    from amtoolkit.data.properties import PROPERTY_UNITS

    copy = atoms.copy()
    for key in [k for k in copy.info if _is_refine(k) or k in PROPERTY_UNITS or k in MEASURED_INFO]:
        del copy.info[key]
    return copy


def _is_refine(key: str) -> bool:
    return key.startswith("refine_")


def _plain(value: Any) -> Any:
    """A numpy scalar (as extended XYZ reads numbers back) as the Python number."""
    return value.item() if isinstance(value, np.generic) else value


def _same(a: Any, b: Any) -> bool:
    """Equal records; floats to the precision extended XYZ keeps."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    return a == b


def _mark_close_pairs(
    refined: Sequence[Atoms], close: float | None, start: int, labels: Sequence[str] | None
) -> None:
    """Record ``closest_pair`` on structures with two atoms nearer than `close` (Å, the
    model's close-pair distance) and warn, naming them."""
    if not close:
        return
    from amtoolkit.analysis.compare import closest_pair

    named = []
    for k, atoms in enumerate(refined):
        d = closest_pair(atoms, cutoff=close)  # inf: no pair that near
        if d < close:
            atoms.info["closest_pair"] = float(d)
            named.append(f"{_label(labels, start + k)} ({d:.2f} Å)")
        else:  # a close pair the input had is gone
            atoms.info.pop("closest_pair", None)
    if named:
        warnings.warn(
            f"refined structures with two atoms nearer than {close:.2f} Å (0.8 x the model's "
            f"training set's closest pair): {', '.join(named)}; atoms.info['closest_pair'] "
            "gives the distance",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def _structure_list(structures: Any) -> list[Atoms]:
    """`structures` as a list of Atoms (one Atoms is a list of one, none an empty list);
    a file name, an array or a nested list is a StructureError naming it."""
    if isinstance(structures, (str, os.PathLike)):
        raise StructureError(
            f"refine takes structures (ase.Atoms), not the file name {str(structures)!r}: "
            "read it first with ase.io.read or amtoolkit.io.read_structures"
        )
    if isinstance(structures, (list, tuple)) and not structures:
        return []
    return as_structure_list(structures)


def _label(labels: Sequence[str] | None, k: int) -> str:
    """The name of structure `k` in messages."""
    return f"structure {k}" if labels is None else labels[k]


def _warn_for(
    refined: Sequence[Atoms],
    start: int,
    labels: Sequence[str] | None,
    failed: Callable[[Atoms], bool],
    text: str,
) -> None:
    """Warn once, naming them (in place of ``{}`` in `text`), about the structures of
    `refined` (the first at index `start`) that `failed`."""
    names = [_label(labels, start + k) for k, atoms in enumerate(refined) if failed(atoms)]
    if names:
        warnings.warn(text.format(", ".join(names)), UserWarning, stacklevel=user_stacklevel())


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
    least = 1 if method == "sde" else 0  # "sde" integrates at least one step
    if isinstance(steps, bool) or int(steps) != steps or steps < least:
        raise ValueError(
            f"steps must be an integer >= {least} for method {method!r}, got {steps!r}"
        )
    check_int("steps", int(steps), least, MAX_STEPS)
    check_dt0(dt0)
    if isinstance(n_leapfrog, bool) or int(n_leapfrog) != n_leapfrog or n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be an integer >= 1, got {n_leapfrog!r}")
    check_int("n_leapfrog", int(n_leapfrog), 1, MAX_LEAPFROG)
    if not (math.isfinite(fmax) and fmax > 0):
        raise ValueError(f"fmax must be a positive force in eV/Å, got {fmax}")
    if potential is not None:
        from amtoolkit.potentials import get_spec

        try:
            get_spec(potential)  # an unknown name fails here, before any sampling
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        if classical == "md" and md_steps < 1:
            raise ValueError(f"md_steps must be >= 1 for classical='md', got {md_steps}")
        if classical == "md":
            check_int("md_steps", int(md_steps), 1, MAX_MD_STEPS)
        if classical == "md" and not (
            math.isfinite(temperature) and 0 < temperature <= MAX_TEMPERATURE
        ):
            raise ValueError(
                f"temperature must be in (0, {MAX_TEMPERATURE:g}] K for classical='md', got "
                f"{temperature}"
            )


def _check_partial_diffusion(info: Any, t: float, steps: int, noise_scale: float) -> None:
    """Options of ``method="sde"`` that depend on the model."""
    from amtoolkit.diffusion.objectives import sampling_method
    from amtoolkit.diffusion.samplers import check_noise_scale
    from amtoolkit.diffusion.schedules import start_range

    sampling_method(info.objective, "sde", info.kind)  # flow models have no reverse SDE
    check_noise_scale(noise_scale)
    low, high = start_range(int(steps), info.sde)  # the reverse grid starts at t
    if not low < float(t) <= high:
        raise ValueError(f"t={t}: t must lie in ({low:g}, {high:g}] for {steps} step(s), got {t}")


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
    seeds: Sequence[int],
) -> list[Atoms]:
    """Re-noise to t with the forward process, then the reverse SDE from t to 0 with the
    structures' elements held (`HeldElements`): the positions are denoised for the
    elements they carry, not for whatever the element channel would drift to."""
    from amtoolkit.diffusion import HeldElements, add_noise, get_timesteps, guided, sample_sde

    info = model.info
    state = _state(chunk, info, network, targets)
    device = state.positions.device
    generator = Streams.from_seeds(seeds, device)  # one stream per structure
    t_systems = torch.full((len(chunk),), float(t), dtype=state.positions.dtype, device=device)
    noisy, _, _ = add_noise(state, t_systems, info.sde, generator)
    ts = get_timesteps(int(steps), info.sde, t_start=float(t), device=device)
    denoiser = HeldElements(
        guided(network, 0.0, generator=generator),  # null embeddings from the streams
        state.elements,
        info.sde,
    )
    out = sample_sde(
        denoiser, noisy, ts, sde=info.sde, generator=generator, noise_scale=noise_scale
    )
    return _as_inputs(out, chunk)


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
        atoms.info["refine_noise_energy"] = float(energy[k])
        if steps:
            atoms.info["refine_hmc_acceptance"] = float(accepted[k] / steps)
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
    optimizer = FIRE(atoms, logfile=None)
    converged = bool(optimizer.run(fmax=fmax, steps=int(steps)))
    energy = float(atoms.get_potential_energy())
    atoms.calc = None
    atoms.info.update(
        refine_noise_energy=energy,
        refine_fire_steps=int(optimizer.nsteps),
        refine_converged=converged,
    )
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

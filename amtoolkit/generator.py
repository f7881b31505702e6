"""`Generator`: property targets in, `ase.Atoms` out (a facade over nn/ and diffusion/).

    >>> gen = Generator.from_pretrained("a-sio2")          # or Generator.from_checkpoint(path)
    >>> structures = gen.generate(10, shear=40, seed=0)    # list[ase.Atoms]

One call plans the run (cell, number of atoms, ghosts, normalised targets, seeds,
batches; every input error is raised here, before any sampling), then for each batch
draws the prior, integrates the reverse process with classifier-free guidance, restarts
charge-unbalanced oxide samples, and decodes the result with `to_atoms` (argmax
elements, ghosts removed, positions wrapped). See docs/generator.md.

References:
    AMDEN (score SDE generator with ghost atoms, classifier-free guidance and
    charge-balance rejection); docs/diffusion.md.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from torch import nn

from amtoolkit.analysis._options import keyword_names, listed, nearest, shown
from amtoolkit.analysis._structures import MAX_NUMBER_DENSITY, frame_digest, perpendicular_widths
from amtoolkit.analysis.compare import CLOSE_PAIR_FACTOR, closest_pair
from amtoolkit.analysis.criteria import describe, unmeetable
from amtoolkit.checkpoint import ModelInfo, load_checkpoint
from amtoolkit.data.batch import Batch, to_atoms
from amtoolkit.data.ghosts import n_target
from amtoolkit.data.properties import (
    ELASTIC_LABEL_NAMES,
    TARGET_PREFIX,
    check_physical,
    elastic_label_setting,
    unit_suffix,
)
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion import (
    FORMAL_CHARGES,
    balanced_composition,
    charge_balance,
    check_noise_scale,
    check_score_gain,
    check_timesteps,
    class_charges,
    guided,
    is_charge_balanced,
    rebalance,
    restart_timesteps,
    sample_prior,
    sample_with_restarts,
    sampler_names,
    sampling_method,
)
from amtoolkit.diffusion.pore import Cylinder, WalledModel, inside, prior_outside
from amtoolkit.diffusion.streams import Streams

__all__ = [
    "AVOGADRO",
    "MAX_BATCH_ATOMS",
    "MAX_STRUCTURE_ATOMS",
    "OUT_OF_RANGE_FRACTION",
    "SMALL_CELL_FRACTION",
    "PROPERTY_ALIASES",
    "TARGET_PREFIX",
    "GenerationPlan",
    "Generator",
    "cubic_cell",
    "describe_model",
    "far_outside",
    "number_density",
    "model_kind",
    "parse_cell",
    "parse_target",
    "resolve_property",
    "resolve_targets",
    "short_name",
    "structure_seed",
    "noise_seed",
]

PROPERTY_ALIASES: dict[str, str] = {
    "shear": "shear_modulus",
    "bulk": "bulk_modulus",
    "young": "youngs_modulus",
    "youngs": "youngs_modulus",
    "young_modulus": "youngs_modulus",
    "poisson": "poisson_ratio",
    "ring": "ring_size",
    "rings": "ring_size",
    "energy": "relaxed_energy",
    "li": "li_fraction",
    "cooling": "cooling_rate",
    "rate": "cooling_rate",
}
"""Short target names -> property keys (`amtoolkit.data.PROPERTY_UNITS`). Any property
may also be given as ``target_<name>`` (e.g. ``target_density=2.2``, since ``density=``
sets the cell)."""

AVOGADRO = 6.02214076e23
"""Avogadro constant, 1/mol."""

MAX_BATCH_ATOMS = 4096
"""Default cap on the atoms (ghosts included) of one sampler call: bounds memory."""

MAX_STRUCTURE_ATOMS = 10_000_000
"""Most atoms (ghosts included) one generated structure may start with: a step of 10^5
atoms takes 1.5 GiB (docs/models.md), so beyond this no machine has the memory."""

SMALL_CELL_FRACTION = 0.5
"""`generate` warns for n_atoms below this fraction of the smallest training cell."""

OUT_OF_RANGE_FRACTION = 0.5
"""A target further than this fraction of the training range past either end warns."""

DEFAULT_RESTARTS_OXIDE = 3
"""Default charge-balance restarts for oxide models (vocabulary containing O)."""

RESTART_T = 0.3
"""Default time that charge-unbalanced samples are re-noised to (AMDEN-style restarts)."""

HMC_RANGE = (0.0, 0.5)
"""Default diffusion-time window of the HMC iterations (AMDEN; docs/diffusion.md, *Energy
models and HMC*)."""

HMC_DT0 = 0.4
"""Default HMC base step (dt = sigma_X(t) dt0; 0.4 for Si and SiO2, 0.2 for MEG)."""

ICG_ROWS = 256
"""Rows of the synthetic ICG table drawn uniformly in the training ranges (``icg=True``)."""

_MIN_VOLUME = 1e-6
"""Cell volumes (Å^3) at or below this count as non-positive."""

_OXYGEN = 8


# ------------------------------------------------------------------ pure helpers


def resolve_property(key: str, property_names: Sequence[str]) -> str:
    """Property name that a target keyword refers to.

    `key` may be a property name, an alias from `PROPERTY_ALIASES` (``shear`` ->
    ``shear_modulus``) or ``target_<name>``.

    Args:
        key: the keyword as the caller wrote it.
        property_names: the model's conditioning properties.

    Returns:
        An element of `property_names`.

    Raises:
        ValueError: naming the model's properties and the aliases that apply to them.
    """
    candidates = [key, PROPERTY_ALIASES.get(key, key)]
    if key.startswith(TARGET_PREFIX):
        bare = key[len(TARGET_PREFIX) :]
        candidates += [bare, PROPERTY_ALIASES.get(bare, bare)]
    for name in candidates:
        if name in property_names:
            return name
    if not property_names:
        raise ValueError(
            f"unknown target {key!r}: this model takes no property targets "
            "(check the spelling of options)"
        )
    aliases = [f"{a}={p}" for a, p in PROPERTY_ALIASES.items() if p in property_names]
    alias_text = f"; aliases: {', '.join(aliases)}" if aliases else ""
    names = [*property_names, *(a for a, p in PROPERTY_ALIASES.items() if p in property_names)]
    close = nearest(key, names, cutoff=0.75)
    hint = f" (did you mean {close!r}?)" if close else ""
    raise ValueError(
        f"unknown target {key!r}{hint}: the model's properties are "
        f"{', '.join(property_names)}{alias_text}"
    )


def _check_option_spelling(key: str, property_names: Sequence[str]) -> None:
    """Raise TypeError when target keyword `key` names no property or alias but is close
    to an option of `Generator.plan` (``step`` for ``steps``): a misspelt option would
    otherwise be reported as an unknown property."""
    try:
        resolve_property(key, property_names)
        return
    except ValueError:
        pass
    options = [*keyword_names(Generator.plan, keyword_only=True), "targets"]  # + the mapping
    close = nearest(key, options, cutoff=0.75)
    if close:
        raise TypeError(
            f"unknown keyword {key!r} (did you mean {close!r}?); properties to target "
            f"are {', '.join(property_names) or 'none for this model'}"
        )


def resolve_targets(
    targets: Mapping[str, Any], property_names: Sequence[str]
) -> dict[str, tuple[str, Any]]:
    """Targets by full property name, each as (the name it was given by, its value); a
    property named twice (an alias and its name) is refused.

    Raises:
        ValueError: an unknown name (`resolve_property`), or a property given twice.
    """
    out: dict[str, tuple[str, Any]] = {}
    for key, value in targets.items():
        name = resolve_property(key, property_names)
        if name in out:
            raise ValueError(f"target {name} is given twice ({out[name][0]} and {key})")
        out[name] = (key, value)
    return out


def mean_atomic_mass(composition: Mapping[str, float]) -> float:
    """Mean atomic mass (g/mol = amu) of a composition given as element -> fraction."""
    total = sum(float(f) for f in composition.values())
    if not composition or not total > 0:
        raise ValueError(f"composition must have positive fractions, got {dict(composition)}")
    mass = 0.0
    for symbol, fraction in composition.items():
        if symbol not in atomic_numbers:
            raise ValueError(f"unknown element {symbol!r} in composition")
        mass += float(fraction) * float(atomic_masses[atomic_numbers[symbol]])
    return mass / total


def far_outside(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Which `values` lie past [low, high] by more than OUT_OF_RANGE_FRACTION of its width."""
    margin = OUT_OF_RANGE_FRACTION * (high - low) if high > low else 0.0
    return (values < low - margin) | (values > high + margin)


def number_density(density: float, composition: Mapping[str, float]) -> float:
    """Atoms per Å^3 of a material of mass density `density` (g/cm^3) and `composition`.

    n/V = rho N_A / M * 1e-24 (1 cm^3 = 1e24 Å^3), M the mean atomic mass in g/mol.
    """
    if not (math.isfinite(density) and density > 0):
        raise ValueError(f"density must be a positive number of g/cm3, got {density}")
    return density * AVOGADRO / mean_atomic_mass(composition) * 1e-24


def cubic_cell(n_atoms: int, density: float) -> np.ndarray:
    """Cubic cell ``[3, 3]`` (Å) holding `n_atoms` at the number density `density` (1/Å^3)."""
    if not (n_atoms >= 1 and density > 0):
        raise ValueError(f"need n_atoms >= 1 and density > 0, got {n_atoms}, {density}")
    return (n_atoms / density) ** (1.0 / 3.0) * np.eye(3)


def structure_seed(seed: int, index: int) -> int:
    """Seed (63-bit) of structure `index` of a run with seed `seed`.

    Derived with numpy's SeedSequence from (seed, index), so each structure's prior
    depends only on the run seed and its index, not on how the run is batched.
    """
    state = np.random.SeedSequence(seed, spawn_key=(0, index)).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def noise_seed(seed: int, index: int) -> int:
    """Seed of the random stream structure `index` of a run with seed `seed` samples
    with (the noise the SDE injects, its null embeddings and ICG rows, its restarts): a
    SeedSequence child apart from its prior's (`structure_seed`), so the structure is
    the same whatever the batch it is sampled in."""
    state = np.random.SeedSequence(seed, spawn_key=(2, index)).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def batch_seed(seed: int, start: int, stop: int) -> int:
    """Seed of the sampler noise of the batch holding structures ``start..stop-1`` of a run
    with seed `seed` (a SeedSequence child: runs and batches draw independent streams)."""
    state = np.random.SeedSequence(seed, spawn_key=(1, start, stop)).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def _as_cell(cell: Any) -> np.ndarray:
    """A cell as a ``[3, 3]`` array: an edge length, three lengths, a matrix, or ase Cell."""
    if isinstance(cell, Atoms):
        if not cell.pbc.all():
            raise ValueError(
                f"cell: an Atoms periodic in {int(cell.pbc.sum())} directions (pbc="
                f"{cell.pbc.tolist()}); generated cells are periodic in all three"
            )
        cell = cell.cell
    try:
        array = np.asarray(getattr(cell, "array", cell), dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"cell must be an edge length, 3 lengths or a 3x3 matrix in Å, got {cell!r}"
        ) from None
    if not np.isfinite(array).all():
        raise ValueError(f"cell must hold finite numbers (Å), got {array.tolist()}")
    if array.ndim == 0:
        array = float(array) * np.eye(3)
    elif array.shape == (3,):
        array = np.diag(array)
    elif array.shape == (9,):
        array = array.reshape(3, 3)
    if array.shape != (3, 3):
        raise ValueError(
            "cell must be an edge length, 3 lengths or a 3x3 matrix of finite numbers (Å), "
            f"got shape {list(np.shape(cell))}"
        )
    volume = float(np.linalg.det(array))
    if not volume > _MIN_VOLUME:
        raise ValueError(f"cell volume must be positive, got {volume:.6g} Å^3")
    return array


def as_pore(pore: Cylinder | float | str | None) -> Cylinder | None:
    """A pore from `generate`'s ``pore``: a `Cylinder`, a radius in Å (along z through
    the cell's centre), ``"RADIUS,AXIS"`` text, or None."""
    if pore is None or isinstance(pore, Cylinder):
        return pore
    if isinstance(pore, str):
        return Cylinder.parse(pore)
    if isinstance(pore, (bool, np.bool_)) or not isinstance(pore, (int, float, np.number)):
        raise ValueError(f"pore must be a radius in Å, 'RADIUS,AXIS' or a Cylinder, got {pore!r}")
    return Cylinder(float(pore))


def _open_volume(cell: np.ndarray, pore: Cylinder | None) -> float:
    """Volume of `cell` outside `pore`, Å^3."""
    volume = float(abs(np.linalg.det(cell)))
    return volume if pore is None else volume - pore.volume(cell)


PORE_MARGIN = 0.1
"""Å: an atom this far inside a pore's radius counts as in the pore (`atoms.info
["pore_atoms"]`); the smoothed wall leaves atoms at the radius within about sigma_X(0)."""


def _check_size(n_atoms: int, cell: np.ndarray) -> None:
    """Refuse a structure too large to sample, before any memory is taken."""
    if n_atoms > MAX_STRUCTURE_ATOMS:
        raise ValueError(
            f"the cell (volume {np.linalg.det(cell):.4g} Å^3) would hold {n_atoms:.3g} atoms, "
            f"more than the {MAX_STRUCTURE_ATOMS:.0e} one structure may have"
        )


MIN_CELL_THICKNESS = 1.0
"""Å: the thinnest cell a model without a recorded closest pair samples."""


def _check_thickness(cell: np.ndarray, closest_pair: float | None) -> None:
    """Refuse a cell thinner (distance between opposite faces) than the closest pair of
    atoms the model saw: every atom would sit that near its own periodic image."""
    width, faces = _thinnest(cell)
    limit = closest_pair or MIN_CELL_THICKNESS
    if width < limit:
        raise ValueError(
            f"the cell is {width:.3g} Å thick across its {faces} faces, less than the "
            f"{limit:.3g} Å closest pair of atoms the model saw: every atom would sit that "
            "near its own periodic image; give a thicker cell"
        )


def _thinnest(cell: np.ndarray) -> tuple[float, str]:
    """The smallest distance between opposite faces of `cell`, Å, and which faces ("a",
    "b" or "c")."""
    widths = perpendicular_widths(cell)
    k = int(np.argmin(widths))
    return float(widths[k]), "abc"[k]


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """`value` as an int >= `minimum` (and <= `maximum` when given; a bool or a float is
    not one); ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum:,}, got {value:,}")
    return int(value)


MAX_STEPS = 100_000
"""Most reverse steps of one run (the longest documented schedule is HMC's 2000); a value
like 10^12 failed allocating the time grid (8 TB)."""

MAX_STRUCTURES = 10_000_000
"""Most structures of one `generate` call (their seeds are planned up front)."""

MAX_GUIDANCE = 20.0
"""Largest classifier-free guidance weight (the papers use 0.25-1; w = 10^6 made a-SiO2
with 0.57 Å O-Si pairs)."""


def _is_oxide(vocabulary: ElementVocabulary) -> bool:
    return _OXYGEN in vocabulary.numbers


# --------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class GenerationPlan:
    """Everything one `generate` run does, fixed and validated before any sampling.

    Attributes:
        n: number of structures.
        cell: the cell of every structure, rows, Å. [3, 3]
        n_initial: atoms per system the sampler starts with (real + ghost).
        n_atoms: requested real atoms (None when ghost atoms let the model decide).
        max_density: ghost maximum number density, atoms/Å^3 (None: no ghosts).
        targets: property name -> raw target per structure ``[n]`` (NaN = null);
            only the properties the caller named.
        properties: normalised model property columns. [n, m]
        sampler: sampler name (`amtoolkit.diffusion.sampler_names` of the model).
        steps: reverse steps (model evaluations) per run.
        timesteps: the caller's time grid ``[steps + 1]`` (decreasing, ending at 0), or
            None for the sampler's own grid of `steps`.
        sampler_options: extra keyword arguments of the sampler (SDE and HMC:
            ``noise_scale``; HMC also ``hmc_range`` and ``dt0``; SDE, ODE and shortcut
            ``score_gain``); empty for the others.
        guidance: classifier-free guidance weight w.
        icg_properties: normalised ICG rows [K, m], or None (all-null branch).
        seed: run seed.
        structure_seeds: per-structure seeds (prior draws). [n]
        batches: (start, stop) structure ranges of the sampler calls.
        charge_balance: reject and restart charge-unbalanced samples (oxide models).
        max_restarts: most restarts of one structure.
        restart_t: time unbalanced samples are re-noised to.
        rebalance: relabel samples still unbalanced after the restarts to their most
            likely balanced elements and denoise them again with those held.
        accept: the caller's test of a finished structure (`generate`'s `accept`), whose
            failures are restarted too; None: none.
        pore: a cylinder kept empty (`amtoolkit.diffusion.pore`), or None.
    """

    n: int
    cell: np.ndarray
    n_initial: int
    n_atoms: int | None
    max_density: float | None
    targets: dict[str, np.ndarray]
    properties: np.ndarray
    sampler: str
    steps: int
    timesteps: tuple[float, ...] | None
    sampler_options: dict[str, Any]
    guidance: float
    icg_properties: np.ndarray | None
    seed: int
    structure_seeds: tuple[int, ...]
    batches: tuple[tuple[int, int], ...]
    charge_balance: bool
    max_restarts: int
    restart_t: float
    rebalance: bool = False
    accept: Callable[[Atoms], bool] | None = None
    pore: Cylinder | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-structure arrays)."""
        return {
            "n": self.n,
            "cell": self.cell.tolist(),
            "n_initial": self.n_initial,
            "n_atoms": self.n_atoms,
            "max_density": self.max_density,
            "targets": {k: v.tolist() for k, v in self.targets.items()},
            "sampler": self.sampler,
            "steps": self.steps,
            "timesteps": None if self.timesteps is None else list(self.timesteps),
            "sampler_options": dict(self.sampler_options),
            "guidance": self.guidance,
            "icg": self.icg_properties is not None,
            "seed": self.seed,
            "batches": [list(b) for b in self.batches],
            "charge_balance": self.charge_balance,
            "max_restarts": self.max_restarts,
            "restart_t": self.restart_t,
            "rebalance": self.rebalance,
            "accept": None if self.accept is None else describe(self.accept),
            "pore": None if self.pore is None else self.pore.to_record(),
        }


def _sampler_option(
    options: dict[str, Any],
    name: str,
    value: float | None,
    card_value: float,
    *,
    neutral: float,
    takes: bool,
    check: Any,
    refusal: str,
) -> None:
    """Put sampler option `name` into `options` when the sampler takes it (`value`, or the
    card's when None, checked); otherwise refuse any value but the `neutral` one."""
    if value is None:
        value = card_value if takes else neutral
    value = check(value)
    if takes:
        options[name] = value
    elif value != neutral:
        raise ValueError(f"{refusal}, got {name}={value}")


# ---------------------------------------------------------------------- facade


class Generator:
    """Generate amorphous structures with a trained diffusion model.

    Args:
        model: the denoiser, (Batch, t, *, generator=) -> (eps_x, eps_e); put in eval mode.
        info: its model card (`amtoolkit.checkpoint.ModelInfo`).

    Attributes:
        model: the underlying torch module.
        info: the ModelInfo (vocabulary, properties, normalisation, typical sizes, ...).

    Example:
        >>> gen = Generator.from_checkpoint("runs/a-sio2/best")
        >>> frames = gen.generate(4, shear=[30, 35, 40, 45], seed=1, steps=100)
    """

    def __init__(self, model: nn.Module, info: ModelInfo) -> None:
        self.model = model.eval()
        self.info = info

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: torch.device | str = "cpu"
    ) -> Generator:
        """Load a checkpoint (``<stem>.pt`` + ``<stem>.json``; either file or the stem)."""
        model, info = load_checkpoint(path, device=device)
        return cls(model, info)

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device | str = "cpu") -> Generator:
        """Load a shipped model by name (`amtoolkit.pretrained.available()`).

        Raises:
            ValueError (`UnknownModelError`): an unknown name; the message lists the
                shipped models.
        """
        from amtoolkit import pretrained

        return cls.from_checkpoint(pretrained.checkpoint_stem(name), device=device)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, device: torch.device | str = "cpu") -> Generator:
        """A checkpoint path (stem, ``.pt`` or ``.json``) if one exists, else a shipped name."""
        from amtoolkit import pretrained

        return cls.from_checkpoint(pretrained.resolve(name_or_path), device=device)

    # ---------------------------------------------------------------- metadata
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def vocabulary(self) -> ElementVocabulary:
        return self.info.vocabulary

    @property
    def property_names(self) -> tuple[str, ...]:
        return self.info.property_names

    @functools.cached_property
    def weights_digest(self) -> str:
        """``"sha256-<16 hex>"`` of the model's weights: two checkpoints of one name (a
        model retrained under the same name) tell apart, so a resumed run refuses
        structures another set of weights made."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
        return f"sha256-{digest.hexdigest()[:16]}"

    @property
    def aliases(self) -> dict[str, str]:
        """The short target names that apply to this model's properties."""
        return {a: p for a, p in PROPERTY_ALIASES.items() if p in self.property_names}

    @property
    def close_pair_distance(self) -> float | None:
        """Distance below which a generated pair of atoms is flagged, Å:
        ``CLOSE_PAIR_FACTOR`` (0.8) times the closest pair of the training split (None
        when the model does not record it)."""
        nearest = self.info.typical.closest_pair
        return None if nearest is None else CLOSE_PAIR_FACTOR * nearest

    def held_out(self, dataset: str | os.PathLike | None = None) -> list[Atoms]:
        """The frames of `dataset` this model never trained on: the fair reference for
        judging its structures (`amtoolkit.held_out`).

        For the dataset its card records (the default), the test split of the training
        run, redrawn from the recorded fractions and seed; for that dataset grown by later
        samples, also every later frame; for any other dataset, all of its frames less
        those found by content among the frames the model trained or validated on (a
        copy of its training data under another name; warned about).

        Args:
            dataset: a shipped dataset name or a dataset file; None = the card's dataset.

        Raises:
            ValueError: no dataset given and the card records none that can be opened.
        """
        from amtoolkit.held_out import held_out_part

        spec = dataset if dataset is not None else self.info.dataset.get("dataset")
        try:
            if spec is None:
                raise FileNotFoundError
            return held_out_part(spec, self.info.dataset).frames
        except FileNotFoundError:
            if dataset is not None:
                raise
            raise ValueError(
                f"model {self.name!r} records its training data as {spec!r}, which is neither "
                "a file here nor a shipped dataset; pass held_out(dataset=...) (amtool: give that "
                "dataset's file as the reference instead of held-out:MODEL)"
            ) from None

    def describe(self) -> str:
        """The model card in words (`describe_model`): targets with their units and
        training ranges, training cells, default sampling and training data."""
        return describe_model(self.info)

    def __repr__(self) -> str:
        props = ", ".join(self.property_names) or "none"
        return (
            f"Generator({self.name!r}, elements={self.vocabulary.elements}, "
            f"properties=[{props}], max_density={self.info.max_density})"
        )

    # ---------------------------------------------------------------- planning
    def plan(
        self,
        n: int,
        *,
        cell: Any = None,
        n_atoms: int | None = None,
        density: float | None = None,
        max_density: float | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        guidance: float | None = None,
        icg: bool | np.ndarray = False,
        batch_size: int | None = None,
        seed: int | None = None,
        max_restarts: int | None = None,
        restart_t: float = RESTART_T,
        rebalance: bool | None = None,
        accept: Callable[[Atoms], bool] | None = None,
        hmc_range: tuple[float, float] | None = None,
        dt0: float | None = None,
        noise_scale: float | None = None,
        score_gain: float | None = None,
        timesteps: Any = None,
        pore: Cylinder | float | str | None = None,
        _stacklevel: int = 2,
        **targets: Any,
    ) -> GenerationPlan:
        """Validate the arguments of `generate` and fix the run; nothing is sampled.

        Raises:
            ValueError: one line naming the bad argument (see `generate`).
        """
        info = self.info
        n = check_int("n", n, 1, MAX_STRUCTURES)
        pore = as_pore(pore)
        if pore is not None and cell is None:
            raise ValueError("a pore needs the cell it runs through: give cell= (--cell) too")
        cell_array, n_initial, n_real, rho_max = self._plan_cell(
            cell, n_atoms, density, max_density, pore
        )
        self._check_density(cell_array, n_real, _stacklevel + 1, pore)
        self._check_request(
            n_atoms if n_atoms is not None else n_initial, density, rho_max, _stacklevel + 1
        )
        self._check_cutoff(cell_array, _stacklevel + 1)
        if max_density is not None and self.info.max_density is None:
            warnings.warn(
                f"{self.name} was trained without ghost atoms; max_density={max_density:g} "
                "adds them, and the model decides which atoms become ghosts without having "
                "learnt to",
                UserWarning,
                stacklevel=_stacklevel,
            )
        target_table = self._plan_targets(n, targets, _stacklevel + 1)
        properties = self._normalise(n, target_table)

        defaults = info.sampling
        grid = None if timesteps is None else _check_grid(timesteps, steps, info.sde.t_max)
        if grid is not None:
            steps = len(grid) - 1
        steps = check_int("steps", defaults.steps if steps is None else steps, 1, MAX_STEPS)
        usable = sampler_names(info.objective, info.kind)
        if sampler is None:
            sampler = defaults.sampler if defaults.sampler in usable else usable[0]
        method = sampling_method(info.objective, sampler, info.kind)
        if pore is not None and not method.score_gain:
            raise ValueError(
                f"a pore is kept empty through the score of the sampler; sampler {sampler!r} "
                "has none: use sde, ode or shortcut"
            )
        sampler_options: dict[str, Any] = {}
        if not method.needs_energy and (hmc_range is not None or dt0 is not None):
            raise ValueError(
                f"hmc_range and dt0 are options of sampler 'hmc'; sampler {sampler!r} does not "
                "take them"
            )
        if method.needs_energy:
            sampler_options = _hmc_options(
                HMC_RANGE if hmc_range is None else hmc_range, HMC_DT0 if dt0 is None else dt0
            )
            if guidance:
                raise ValueError(
                    f"sampler 'hmc' runs without guidance (w = 0), got guidance={guidance}"
                )
            guidance = 0.0
        _sampler_option(
            sampler_options,
            "noise_scale",
            noise_scale,
            defaults.noise_scale,
            neutral=1.0,
            takes=method.noise_scale,
            check=check_noise_scale,
            refusal=f"noise_scale scales the noise of a stochastic sampler (sde, hmc); sampler "
            f"{sampler!r} injects none",
        )
        _sampler_option(
            sampler_options,
            "score_gain",
            score_gain,
            defaults.gain_for(sampler),
            neutral=0.0,
            takes=method.score_gain,
            check=check_score_gain,
            refusal=f"score_gain scales the score of the samplers sde, ode and shortcut; "
            f"sampler {sampler!r} does not take it",
        )
        if guidance is None:  # the model's default, but only when there is something to guide
            targeted = any(np.isfinite(v).any() for v in target_table.values())
            guidance = (defaults.guidance or 0.0) if targeted else 0.0
        guidance = _real("guidance", guidance)
        if not (math.isfinite(guidance) and guidance >= 0):
            raise ValueError(
                f"guidance must be a number >= 0 (0: the conditional model alone, larger: "
                f"closer to the targets), got {guidance}; a negative weight steers away "
                "from the targets"
            )
        if guidance > MAX_GUIDANCE:
            raise ValueError(
                f"guidance={guidance:g} is above {MAX_GUIDANCE:g}: the papers use 0.25-1, and "
                "large weights push atoms onto each other"
            )
        if guidance and not self.property_names:
            raise ValueError(
                f"guidance={guidance:g} steers towards property targets, but {self.name} is "
                "unconditional (it has no properties)"
            )
        if seed is None:
            seed = secrets.randbits(63)
        seed = check_int("seed", seed, 0)
        if seed >= 2**63:  # info and extxyz keep integers up to 2^63 - 1 exactly
            raise ValueError(f"seed must be below 2^63, got {seed}")
        seeds = tuple(structure_seed(seed, i) for i in range(n))
        icg_rows = self._plan_icg(icg, seed) if guidance != 0.0 else None
        if icg_rows is None and not (icg is False or icg is None):
            warnings.warn(
                "icg is used only with guidance != 0, and this run has none (no target, or "
                "guidance=0): the structures are generated without it",
                UserWarning,
                stacklevel=_stacklevel,
            )

        if batch_size is None:
            per_system = n_initial * (2 if guidance != 0.0 else 1)
            batch_size = max(1, min(n, MAX_BATCH_ATOMS // per_system))
        batch_size = check_int("batch_size", batch_size, 1)
        batches = tuple((i, min(i + batch_size, n)) for i in range(0, n, batch_size))

        # charge balance: oxides whose elements all have a formal charge
        balance = _is_oxide(self.vocabulary) and all(
            z in FORMAL_CHARGES for z in self.vocabulary.numbers
        )
        if accept is not None and not callable(accept):
            raise ValueError(
                f"accept must be a function of one Atoms returning True to keep it, got "
                f"{type(accept).__name__}"
            )
        if accept is not None:
            why = unmeetable(accept, self.vocabulary.elements)
            if why is not None:
                raise ValueError(
                    f"accept: {why}, and {self.name} places only {self.vocabulary.elements}: "
                    "no structure could pass"
                )
        if accept is not None and not method.restarts:
            raise ValueError(
                f"accept restarts the structures it fails, which re-noises with the score "
                f"process; sampler {sampler!r} of this {info.objective} model cannot restart"
            )
        if max_restarts is None:
            restarting = (balance or accept is not None) and method.restarts
            max_restarts = DEFAULT_RESTARTS_OXIDE if restarting else 0
        max_restarts = check_int("max_restarts", max_restarts, 0)
        if max_restarts and not method.restarts:
            raise ValueError(
                f"max_restarts > 0 re-noises with the score process; sampler {sampler!r} of "
                f"this {info.objective} model cannot restart"
            )
        if max_restarts and not balance and accept is None:
            raise ValueError(
                "max_restarts > 0 restarts the structures that fail a test: give one "
                "(accept=, amtool generate --accept, e.g. closest>=2.0), or use an oxide "
                "model whose elements have formal charges (charge-balance restarts); this "
                f"model's elements are {self.vocabulary.elements}"
            )
        if rebalance is None:
            rebalance = balance and method.restarts
        if not isinstance(rebalance, (bool, np.bool_)):
            raise ValueError(f"rebalance must be True or False, got {rebalance!r}")
        rebalance = bool(rebalance)
        if rebalance and not balance:
            raise ValueError(
                "rebalance=True needs an oxide model whose elements have formal charges; this "
                f"model's elements are {self.vocabulary.elements}"
            )
        if rebalance and not method.restarts:
            raise ValueError(
                f"rebalance=True re-noises with the score process; sampler {sampler!r} of this "
                f"{info.objective} model cannot"
            )
        restart_t = _real("restart_t", restart_t)
        ts = method.timesteps(steps, info.sde) if grid is None else torch.tensor(grid, dtype=float)
        if max_restarts or rebalance:
            try:
                restart_timesteps(ts, restart_t)
            except ValueError as err:
                raise ValueError(
                    f"{err}; give a restart_t in that range, or max_restarts=0 and "
                    "rebalance=False (amtool generate: --restart-t, or --max-restarts 0 "
                    "--no-rebalance)"
                ) from None
            if balance:
                self._check_balance_possible(n_initial, ghosts=rho_max is not None)
        if method.needs_energy:
            low, high = sampler_options["hmc_range"]
            if not any(low <= float(t) <= high for t in ts[:-1]):
                raise ValueError(
                    f"no step of the {steps}-step grid lies in hmc_range=({low:g}, {high:g}): "
                    "sampler 'hmc' would run no HMC iteration; use more steps or a wider "
                    "hmc_range"
                )

        return GenerationPlan(
            n=n,
            cell=cell_array,
            n_initial=n_initial,
            n_atoms=n_real,
            max_density=rho_max,
            targets=target_table,
            properties=properties,
            sampler=sampler,
            steps=steps,
            timesteps=grid,
            sampler_options=sampler_options,
            guidance=guidance,
            icg_properties=icg_rows,
            seed=seed,
            structure_seeds=seeds,
            batches=batches,
            charge_balance=balance,
            max_restarts=max_restarts,
            restart_t=restart_t,
            rebalance=rebalance,
            accept=accept,
            pore=pore,
        )

    def _plan_cell(
        self,
        cell: Any,
        n_atoms: int | None,
        density: float | None,
        max_density: float | None,
        pore: Cylinder | None = None,
    ) -> tuple[np.ndarray, int, int | None, float | None]:
        """(cell [3, 3], atoms to start with, requested real atoms, rho_max); with a
        `pore`, atom counts follow the volume outside it."""
        typical = self.info.typical
        if max_density is None:
            max_density = self.info.max_density
        elif not (
            math.isfinite(_real("max_density", max_density))
            and 0 < max_density <= MAX_NUMBER_DENSITY
        ):
            raise ValueError(
                f"max_density must be a number of atoms/Å^3 in (0, {MAX_NUMBER_DENSITY:g}] "
                f"(solids hold at most about 0.18), got {max_density}"
            )
        elif self.info.max_density and abs(max_density / self.info.max_density - 1) > 0.1:
            warnings.warn(
                f"max_density={max_density:g}/Å^3 differs from the {self.info.max_density:g} "
                f"{self.name} was trained with: its training cells always held atoms and "
                "ghosts at that density, so other values ask it about cells it never saw",
                stacklevel=4,
            )
        if n_atoms is not None:
            n_atoms = check_int("n_atoms", n_atoms, 1)
        if density is not None and not (math.isfinite(_real("density", density)) and density > 0):
            raise ValueError(f"density must be a positive number of g/cm3, got {density}")

        if cell is not None:
            if density is not None:
                raise ValueError("give cell or density, not both (density sets the cell volume)")
            cell_array = _as_cell(cell)
            if isinstance(cell, Atoms) and max_density is None and n_atoms is None:
                n_atoms = len(cell)  # a structure to match: its box and its atom count
            if pore is not None:
                pore.check_fits(cell_array)
            if max_density is not None and n_atoms is not None:
                raise ValueError(
                    f"with ghost atoms (max_density={max_density:g}/Å^3) the model decides the "
                    "number of atoms in a given cell: give cell or n_atoms, not both"
                )
            if max_density is None and n_atoms is None:
                if typical is None:
                    raise ValueError("the model card has no typical density: give n_atoms too")
                rho = number_density(typical.density, typical.composition)
                n_atoms = round(rho * _open_volume(cell_array, pore))
                if n_atoms < 1:
                    raise ValueError(
                        "the cell is too small to hold one atom at the typical density "
                        f"{typical.density:g} g/cm3"
                    )
        else:
            if typical is None:
                raise ValueError(
                    "the model card has no typical size, density and composition: give cell="
                )
            if n_atoms is None:
                n_atoms = typical.n_atoms
            rho = number_density(density or typical.density, typical.composition)
            cell_array = cubic_cell(n_atoms, rho)

        _check_thickness(cell_array, typical.closest_pair if typical is not None else None)
        if max_density is None:
            _check_size(int(n_atoms), cell_array)  # type: ignore[arg-type]
            return cell_array, int(n_atoms), int(n_atoms), None  # type: ignore[arg-type]
        n_initial = n_target(Atoms(cell=cell_array, pbc=True), max_density)
        if pore is not None:  # the ghosts fill the volume outside the pore
            n_initial = int(math.floor(max_density * _open_volume(cell_array, pore)))
        if n_atoms is not None and n_atoms > n_initial:  # before "fewer than 1 atom" below
            if density is not None:  # the cell was sized for n_atoms at this density
                per_a3 = n_atoms / float(np.linalg.det(cell_array))
                raise ValueError(
                    f"density={density:g} g/cm3 is {per_a3:.3g} atoms/Å^3, above max_density="
                    f"{max_density:g} atoms/Å^3, the most the model's cells can hold (this "
                    f"cell of {n_atoms} atoms holds at most {n_initial}): give a lower "
                    "density (--density), or a higher max_density (--max-density)"
                )
            raise ValueError(
                f"{n_atoms} atoms do not fit: the cell holds at most {n_initial} at "
                f"max_density={max_density:g} atoms/Å^3; give fewer atoms (--atoms, n_atoms=), "
                "a larger cell (--cell) or a higher max_density (--max-density)"
            )
        if n_initial < 1:
            raise ValueError(
                f"the cell holds fewer than 1 atom at max_density={max_density:g}/Å^3 "
                f"(volume {np.linalg.det(cell_array):.4g} Å^3)"
            )
        _check_size(n_initial, cell_array)
        return cell_array, n_initial, n_atoms, float(max_density)

    def _plan_targets(
        self, n: int, targets: Mapping[str, Any], stacklevel: int
    ) -> dict[str, np.ndarray]:
        """Raw per-structure targets by property name; warns for out-of-range values.

        `targets` are `plan`'s extra keywords: properties by name or alias, and a
        ``targets=`` mapping of the same (as `refine` and `NoiseEnergyCalculator` take
        them). A keyword that is neither but is close to an option of `plan` is a
        misspelt option (TypeError, naming it)."""
        targets = dict(targets)
        for key in targets:  # a misspelt option, before a mapping's keys join the keywords
            if key != "targets":
                _check_option_spelling(key, self.property_names)
        given = targets.pop("targets", None)
        if given is not None:
            if not isinstance(given, Mapping):
                raise TypeError(
                    f"targets must map property names to values, e.g. targets={{'shear': 40}}, "
                    f"got {type(given).__name__}"
                )
            twice = sorted(set(given) & set(targets))
            if twice:
                raise ValueError(
                    f"target {twice[0]!r} is given twice (as a keyword and in targets)"
                )
            targets.update(given)
        table = {
            name: _target_values(key, value, n)
            for name, (key, value) in resolve_targets(targets, self.property_names).items()
        }
        for name, values in table.items():
            for value in np.unique(values[~np.isnan(values)]):
                check_physical(name, float(value))
        ranges = self.info.typical.property_ranges if self.info.typical else {}
        for name, values in table.items():
            if name not in ranges:
                continue
            low, high = ranges[name]
            known = values[~np.isnan(values)]
            outside = known[(known < low) | (known > high)]
            if outside.size:
                far = "far " if far_outside(outside, low, high).any() else ""
                warnings.warn(
                    f"target {name}={outside[0]:g} is {far}outside the training range "
                    f"[{low:g}, {high:g}]{unit_suffix(name)}; the model is extrapolating and "
                    "may fall short of it",
                    UserWarning,
                    stacklevel=stacklevel,
                )
        return table

    def _check_request(
        self, n_atoms: int | None, density: float | None, rho_max: float | None, stacklevel: int
    ) -> None:
        """Warn when `n_atoms` is far below the training sizes, or `density` is given to
        a model with ghost atoms (whose structures come out at a density it chooses)."""
        typical = self.info.typical
        sizes = typical.n_atoms_range if typical is not None else None
        if n_atoms is not None and sizes is not None and n_atoms < SMALL_CELL_FRACTION * sizes[0]:
            trained = f"{sizes[0]}" if sizes[0] == sizes[1] else f"{sizes[0]}-{sizes[1]}"
            warnings.warn(
                f"{n_atoms} atoms is far below the training sizes ({trained} atoms): the "
                "model never saw cells this small",
                UserWarning,
                stacklevel=stacklevel,
            )
        if density is not None and rho_max is not None:
            known = typical.density_range if typical is not None else None
            span = f" (its training range: {known[0]:.3g}-{known[1]:.3g} g/cm3)" if known else ""
            warnings.warn(
                f"density={density:g} g/cm3 only sizes the starting cell: with ghost atoms "
                f"the model decides how many atoms stay, so the structures come out at the "
                f"density it chooses{span}",
                UserWarning,
                stacklevel=stacklevel,
            )

    def _check_cutoff(self, cell: np.ndarray, stacklevel: int) -> None:
        """Warn when the cell is thinner than the model's neighbour cutoff: each atom then
        meets its own periodic images, which no training cell gave it."""
        cutoff = getattr(getattr(self.model, "config", None), "cutoff", None)
        if cutoff is None:
            return
        width, faces = _thinnest(cell)
        if width < cutoff:
            warnings.warn(
                f"the cell is {width:.3g} Å thick across its {faces} faces, under the "
                f"model's {cutoff:g} Å cutoff: each atom meets its own periodic images, "
                "which the model never saw; give a thicker cell",
                UserWarning,
                stacklevel=stacklevel,
            )

    def _check_balance_possible(self, n_atoms: int, *, ghosts: bool) -> None:
        """Refuse charge-balance restarts and relabelling when no labelling of `n_atoms`
        atoms balances (every restart would be wasted), naming counts that can."""
        charges = class_charges(self.vocabulary).tolist()
        if balanced_composition(n_atoms, charges, ghosts=ghosts) is not None:
            return
        formal = ", ".join(
            f"{el} {FORMAL_CHARGES[z]:+d}"
            for el, z in zip(self.vocabulary.elements, self.vocabulary.numbers[1:], strict=True)
        )
        if ghosts:  # the cell and max_density fix the count
            kind = "atoms, ghosts included,"
            remedy = "give a larger cell or max_density (--cell, --max-density)"
        else:
            near = (  # the nearest count that balances, the smaller first
                m
                for d in range(1, 13)
                for m in (n_atoms - d, n_atoms + d)
                if m > 0 and balanced_composition(m, charges, ghosts=False) is not None
            )
            count = next(near, None)
            kind = "real atoms"
            remedy = f"ask for {count} atoms" if count else "ask for more atoms"
        raise ValueError(
            f"no charge-balanced structure of {n_atoms} {kind} of {self.name} exists "
            f"(formal charges {formal}): {remedy}, or give max_restarts=0 and "
            "rebalance=False (amtool generate --max-restarts 0 --no-rebalance)"
        )

    def _check_density(
        self, cell: np.ndarray, n_real: int | None, stacklevel: int, pore: Cylinder | None = None
    ) -> None:
        """Warn when `n_real` atoms in `cell` (outside the `pore`) are far from the
        training densities."""
        typical = self.info.typical
        if n_real is None or typical is None or typical.density_range is None:
            return  # with ghosts and no n_atoms the model decides the density
        volume = _open_volume(cell, pore)
        rho = n_real / volume / number_density(1.0, typical.composition)
        low, high = typical.density_range
        if far_outside(np.array([rho]), low, high).any():
            atoms = f"{n_real} atom{'s' * (n_real != 1)} in {volume:.4g} Å^3"
            warnings.warn(
                f"density {rho:.3g} g/cm3 ({atoms}) is far outside the training range "
                f"[{low:.3g}, {high:.3g}] g/cm3; the model is extrapolating",
                UserWarning,
                stacklevel=stacklevel,
            )

    def _normalise(self, n: int, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Normalised property columns [n, m] in the model's order (NaN = null)."""
        properties = np.full((n, len(self.property_names)), np.nan)
        for col, name in enumerate(self.property_names):
            if name in table:
                mean, std = self.info.normalisation[name]
                properties[:, col] = (table[name] - mean) / std
        return properties

    def _plan_icg(self, icg: bool | np.ndarray, seed: int) -> np.ndarray | None:
        """Normalised ICG rows [K, m], or None for the all-null unconditional branch."""
        if icg is False or icg is None:
            return None
        names = self.property_names
        if not names:
            raise ValueError("icg needs a model with conditioning properties")
        if icg is True:
            typical = self.info.typical
            ranges = typical.property_ranges if typical else {}
            missing = [p for p in names if p not in ranges]
            if missing:
                raise ValueError(
                    f"icg=True needs training ranges of every property; the card lacks {missing}: "
                    "pass icg=<table of training rows>"
                )
            rng = np.random.default_rng(seed)
            low = np.array([ranges[p][0] for p in names])
            high = np.array([ranges[p][1] for p in names])
            raw = low + (high - low) * rng.random((ICG_ROWS, len(names)))
        else:
            try:
                raw = np.asarray(icg, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(
                    f"icg must be True, False or a table of property rows [K, {len(names)}] "
                    f"(columns {list(names)}), got {icg!r}"
                ) from None
            if raw.ndim != 2 or raw.shape[1] != len(names) or raw.shape[0] == 0:
                raise ValueError(
                    f"icg table must have shape [K, {len(names)}] (columns {list(names)}), "
                    f"got {list(raw.shape)}"
                )
        mean = np.array([self.info.normalisation[p][0] for p in names])
        std = np.array([self.info.normalisation[p][1] for p in names])
        return (raw - mean) / std

    # ---------------------------------------------------------------- sampling
    def generate(
        self,
        n: int,
        *,
        cell: Any = None,
        n_atoms: int | None = None,
        density: float | None = None,
        max_density: float | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        guidance: float | None = None,
        icg: bool | np.ndarray = False,
        batch_size: int | None = None,
        seed: int | None = None,
        max_restarts: int | None = None,
        restart_t: float = RESTART_T,
        rebalance: bool | None = None,
        accept: Callable[[Atoms], bool] | None = None,
        hmc_range: tuple[float, float] | None = None,
        dt0: float | None = None,
        noise_scale: float | None = None,
        score_gain: float | None = None,
        timesteps: Any = None,
        pore: Cylinder | float | str | None = None,
        progress: bool | None = True,
        **targets: Any,
    ) -> list[Atoms]:
        """Generate `n` structures, optionally conditioned on property targets.

        Args:
            n: number of structures.
            cell: one cell for every structure: an edge length (cubic), 3 lengths or a
                3x3 matrix (rows), Å, or an ``ase.Atoms`` to match (its cell and,
                without ghosts and `n_atoms`, its number of atoms). Default: a cubic cell
                holding `n_atoms` at the training set's typical density (or `density`).
            n_atoms: real atoms per structure when there are no ghosts (default: the
                training set's typical size, or the typical density times the given
                cell's volume). With ghosts it only sizes the default cell.
            density: mass density, g/cm^3, that sizes the default cubic cell (with the
                typical composition's mean atomic mass); not with `cell`.
            max_density: ghost maximum number density, atoms/Å^3 (default: the model's).
                With ghosts every system starts with floor(max_density V) atoms and the
                model decides how many end up as ghosts.
            steps: reverse steps = model evaluations (default: the model card's, else 200).
            sampler: ``"sde"`` (Euler-Maruyama), ``"ode"`` (probability flow; for a
                flow-matching model its learned flow), ``"shortcut"`` (few-step jumps of a
                shortcut model) or ``"hmc"`` (reverse SDE with HMC on the noise energy of an
                energy model, guidance off); default the model card's.
                ``amtoolkit.diffusion.sampler_names`` lists those a model supports.
            guidance: classifier-free guidance weight w (default: the model card's when a
                target is given, else 0).
            icg: independent condition guidance: True draws the unconditional branch's
                properties uniformly in the training ranges; a raw-unit table [K, m]
                (columns in ``property_names`` order) uses those rows. Default: all-null.
            batch_size: systems per sampler call (default: all `n`, capped at
                `MAX_BATCH_ATOMS` atoms per call).
            seed: run seed (default: a fresh random one, recorded in ``atoms.info``).
            max_restarts: restarts per structure of those that fail the charge balance
                (oxide models) or `accept` (default 3 for oxide models and with `accept`,
                0 otherwise).
            restart_t: time that unbalanced samples are re-noised to.
            rebalance: relabel the oxide structures still unbalanced after the restarts
                to their most likely balanced elements (the fewest, least sure atoms
                change) and denoise them again from `restart_t` with those elements held
                (default True for oxide models; `amtoolkit.diffusion.rebalance`).
            accept: your test of a finished structure, ``accept(atoms) -> bool`` (ghosts
                removed, elements decoded; e.g. ``analysis.criteria.BridgingFraction(0.9)``
                or a function of your own): the structures it fails are re-noised to
                `restart_t` and denoised again, at most `max_restarts` times; those that
                still fail are kept with ``atoms.info["accepted"] = False`` and a warning.
                It picks among the model's samples, so it trades their spread for the
                property it tests. Score models only (sde, ode, hmc samplers).
            hmc_range: ``sampler="hmc"``: the (t_min, t_max) window of diffusion times
                in which each reverse step is preceded by one HMC iteration (default
                `HMC_RANGE`); refused with another sampler, as is `dt0`.
            dt0: ``sampler="hmc"``: base leapfrog step, dt = sigma_X(t) dt0 (default
                `HMC_DT0`).
            noise_scale: ``sampler="sde"`` or ``"hmc"``: factor on the noise injected at
                each reverse step (default: the model card's, else 1 = the reverse SDE).
                Below 1 the samples concentrate where the model's density is high:
                sharper short-range order, less diversity (docs/generator.md).
            score_gain: ``sampler="sde"``, ``"ode"`` or ``"shortcut"``: gamma >= 0 of the
                factor 1 + gamma t on the position score (default: the model card's, else
                0 = the learned score). Above 0 colder where t is large: sharper
                short-range order from a network that blurs it (docs/generator.md,
                *Score gain*).
            timesteps: your own time grid instead of the sampler's: decreasing times from
                at most the model's t_max down to exactly 0, one model evaluation per
                interval (so `steps` is ``len(timesteps) - 1``; a `steps` that differs is
                refused). For grid studies; the samplers' grids are in docs/generator.md.
            pore: a cylinder to leave empty (DM2's porous starts): a radius in Å (along
                z through the cell's centre), ``"RADIUS,AXIS"`` (``"6,x"``) or an
                `amtoolkit.diffusion.pore.Cylinder`. Needs `cell` and a sampler of the
                score (sde, ode, shortcut): the start is uniform outside it and the score
                of its noise-smoothed wall keeps atoms out; atom counts (and ghosts)
                follow the volume outside it. Records ``pore`` ([radius, axis, centre])
                and ``pore_atoms`` (atoms left more than 0.1 Å inside; a warning when any).
            progress: show a tqdm bar over model steps (None: only on a terminal).
            **targets: property targets by name or alias (``shear=40``), each a scalar
                or a sequence of `n` values (None/NaN = null for that structure), raw
                units. Absent properties are null. ``targets={"shear": 40}`` (a mapping,
                as `refine` takes them) is the same. A keyword close to an option's name
                (``step=``) is a TypeError naming the option.

        Returns:
            `n` Atoms (ghosts removed, positions wrapped), in index order. Each
            ``atoms.info`` has ``model``, ``model_digest`` (of the weights), ``sampler``,
            ``steps``, ``guidance``, ``seed`` (run), ``structure_seed``, ``index``,
            ``n_structures`` (`n`), ``batch_size``, ``noise_scale`` for the stochastic
            samplers, ``score_gain`` for sde, ode and shortcut,
            ``target_<property>`` for every non-null target, ``max_density`` and
            ``n_initial`` with ghosts, and for oxide models ``max_restarts``,
            ``restart_t``, ``rebalance``, ``charge_balanced``, ``restarts`` and (with
            `rebalance`) ``relabelled``, the number of atoms whose element the
            relabelling changed; with `accept`, ``accept`` (the test, e.g.
            ``"bridging>=0.9"``), ``accepted`` and ``restarts``;
            with ``sampler="hmc"`` also ``hmc_range``, ``dt0`` and ``hmc_acceptance``
            (mean acceptance rate of the structure's batch).

        Raises:
            ValueError: an unknown target name (listing the model's properties and
                aliases), a bad value, or an impossible cell (non-positive volume, fewer
                than 1 atom, more atoms than fit at max_density, density <= 0).

        Warns:
            UserWarning: a target more than 50% of the training range past either end;
                after the run, how many oxide structures stayed charge-unbalanced and how
                many structures still fail `accept`.

        References:
            AMDEN (generation with ghosts, guidance and charge-balance rejection).
        """
        return list(
            self.generate_iter(
                n,
                cell=cell,
                n_atoms=n_atoms,
                density=density,
                max_density=max_density,
                steps=steps,
                sampler=sampler,
                guidance=guidance,
                icg=icg,
                batch_size=batch_size,
                seed=seed,
                max_restarts=max_restarts,
                restart_t=restart_t,
                rebalance=rebalance,
                accept=accept,
                hmc_range=hmc_range,
                dt0=dt0,
                noise_scale=noise_scale,
                score_gain=score_gain,
                timesteps=timesteps,
                pore=pore,
                progress=progress,
                _stacklevel=3,
                **targets,
            )
        )

    def generate_iter(
        self,
        n: int,
        *,
        progress: bool | None = True,
        resume: Sequence[Atoms] = (),
        note: Callable[[str], None] | None = None,
        _stacklevel: int = 2,
        **kwargs: Any,
    ) -> Iterator[Atoms]:
        """Like `generate`, but yield structures as each batch finishes (for streaming).

        Arguments are validated now (errors raise at the call, not at the first
        ``next``); sampling happens while iterating.

        Args:
            n: number of structures of the whole run.
            progress: show a progress bar (see `generate`).
            resume: the structures an interrupted run of the same call made (index 0 on,
                in order, as it wrote them). They are checked against this call's plan
                (model, seed, sampler, steps, targets, ... in their ``atoms.info``; the
                seed, when not given, is theirs) and only the structures after them are
                made: the same ones the uninterrupted run would have made, since a
                partly made batch is sampled again whole.
            note: called with a line as each batch starts (which structures, how many
                steps), for a log where no progress bar is drawn.
            **kwargs: the arguments of `generate`.

        Raises:
            ValueError: as `generate`; or a resumed structure that this call would not
                have made (naming it and the first differing record), or more of them
                than `n`.
        """
        if len(resume) and kwargs.get("seed") is None:
            kwargs["seed"] = resume[0].info.get("seed")
        plan = self.plan(n, _stacklevel=_stacklevel + 1, **kwargs)
        self._check_resumed(plan, resume)
        return self._run(plan, progress, _stacklevel, start=len(resume), note=note)

    def _check_resumed(self, plan: GenerationPlan, made: Sequence[Atoms]) -> None:
        """Raise unless `made` are structures 0.. of `plan` (by their recorded info, cell
        and, without ghosts, number of atoms)."""
        if len(made) > plan.n:
            raise ValueError(f"resuming a run of {plan.n} structures from {len(made)} made ones")
        per_batch = self._draws_per_batch(plan)
        for index, atoms in enumerate(made):  # first: another model explains every other
            for key, wanted in (("model", self.name), ("model_digest", self.weights_digest)):
                got = atoms.info.get(key, wanted if key == "model_digest" else None)
                if got != wanted:  # (files written before digests were kept have none)
                    raise ValueError(
                        f"structure {index} of the resumed run was made by another model "
                        f"({key}={shown(got)}, this run's {shown(wanted)}): resume with the "
                        "model of the interrupted run"
                    )
        if made:  # then: a target left out also changes the default guidance
            target_keys = {k for a in made for k in a.info if k.startswith(TARGET_PREFIX)}
            planned = {f"{TARGET_PREFIX}{name}" for name in plan.targets}
            if not target_keys <= planned:
                extra = ", ".join(sorted(target_keys - planned))
                raise ValueError(
                    f"the resumed structures have {extra}, which this run does not target: "
                    "resume with the options of the interrupted run"
                )
        for index, atoms in enumerate(made):
            if not np.allclose(atoms.cell.array, plan.cell, rtol=0.0, atol=1e-6):  # Å, as written
                raise ValueError(
                    f"structure {index} of the resumed run has another cell than this run's "
                    f"{np.round(plan.cell.diagonal(), 4).tolist()} Å: resume with the "
                    "options of the interrupted run"
                )
            if plan.max_density is None and len(atoms) != plan.n_initial:
                raise ValueError(
                    f"structure {index} of the resumed run has {len(atoms)} atoms, this run "
                    f"{plan.n_initial}: resume with the options of the interrupted run"
                )
            record = self._structure_info(plan, index)
            if not per_batch:  # its own streams: the same in any batch and any run length
                record = {k: v for k, v in record.items() if k not in _RUN_SHAPE}
            for key, wanted in record.items():
                if key == "model_digest" and key not in atoms.info:  # checked above
                    continue
                got = atoms.info.get(key)
                if not _same_record(got, wanted):
                    raise ValueError(
                        f"structure {index} of the resumed run has {key}={shown(got)}, this "
                        f"run {key}={shown(wanted)}: resume with the options of the "
                        "interrupted run"
                    )
            for key in _OPTIONAL_RECORDS:  # an option the interrupted run had, this one not
                if key in atoms.info and key not in record:
                    raise ValueError(
                        f"structure {index} of the resumed run has {key}="
                        f"{shown(atoms.info[key])}, which this run does not set: resume "
                        "with the options of the interrupted run"
                    )

    def _draws_per_batch(self, plan: GenerationPlan) -> bool:
        """Whether `plan`'s sampler draws one stream per batch (HMC, whose step adapts to
        its batch's acceptance) rather than one per structure (`Streams`)."""
        return sampling_method(self.info.objective, plan.sampler, self.info.kind).needs_energy

    def _run(
        self,
        plan: GenerationPlan,
        progress: bool | None,
        stacklevel: int,
        start: int = 0,
        note: Callable[[str], None] | None = None,
    ) -> Iterator[Atoms]:
        """Sample the batches of `plan` that hold structures from `start` on and yield
        those structures (for HMC, which draws per batch, the first batch whole, so its
        draws are the planned ones; the other samplers start at `start`)."""
        from tqdm.auto import tqdm

        batches = [(first, stop) for first, stop in plan.batches if stop > start]
        if batches and not self._draws_per_batch(plan):  # own streams: redo no other
            batches[0] = (max(batches[0][0], start), batches[0][1])
        runs = len(batches)
        made = plan.n - start
        bar = tqdm(
            total=runs * plan.steps,
            unit="step",
            desc=f"{self.name}",
            disable=(not progress) if progress is not None else None,
            leave=False,
        )
        unbalanced = failed = filled = 0
        close = self.close_pair_distance
        crowded, empty = 0, []
        try:
            for k, (first, stop) in enumerate(batches):
                bar.set_description(f"{self.name} {k + 1}/{runs}")
                if note is not None:
                    low = max(first, start) + 1
                    which = f"structure {stop}" if low == stop else f"structures {low}-{stop}"
                    note(
                        f"batch {k + 1} of {runs}: sampling {which} of {plan.n} "
                        f"({plan.steps} steps; written when it ends)"
                    )
                tick = None if note is None else _StepNotes(note, f"batch {k + 1} of {runs}")
                structures, balanced, counts, extra = self._sample_batch(
                    plan, first, stop, bar, tick
                )
                for offset, atoms in enumerate(structures):
                    index = first + offset
                    if index < start:  # made by the interrupted run
                        continue
                    atoms.set_cell(plan.cell)  # the planned cell, not its float32 copy
                    atoms.wrap()
                    atoms.info.update(self._structure_info(plan, index))
                    atoms.info.update(extra)
                    if balanced is not None:
                        atoms.info["charge_balanced"] = bool(balanced[offset])
                        unbalanced += not balanced[offset]
                    if balanced is not None or plan.accept is not None:
                        for key, values in counts.items():
                            atoms.info[key] = values[offset].item()
                    if plan.pore is not None:
                        atoms.info["pore_atoms"] = int(counts["pore_atoms"][offset])
                        filled += atoms.info["pore_atoms"] > 0
                    if plan.accept is not None:
                        failed += not counts["accepted"][offset]
                    if len(atoms) == 0:
                        empty.append(index)
                    elif close is not None:
                        nearest = closest_pair(atoms, cutoff=close)  # inf: none nearer
                        if nearest < close:
                            atoms.info["closest_pair"] = nearest
                            crowded += 1
                    yield atoms
        finally:
            bar.close()
        if filled:
            warnings.warn(
                f"{filled} of {made} structures keep atoms more than {PORE_MARGIN:g} Å inside "
                f"the pore (atoms.info['pore_atoms']); more steps push them out",
                UserWarning,
                stacklevel=stacklevel,
            )
        if failed:
            warnings.warn(
                f"{failed} of {made} structures fail accept={describe(plan.accept)} after "
                f"max_restarts={plan.max_restarts}; atoms.info['accepted'] is False (more "
                "restarts, or a looser test, keep more)",
                UserWarning,
                stacklevel=stacklevel,
            )
        if empty:
            shown = listed(empty)
            warnings.warn(
                f"{len(empty)} of {made} structures (index {shown}) have no atoms: every "
                "atom was decoded as a ghost. The model may be undertrained, or the cell far "
                "from the densities it trained on",
                UserWarning,
                stacklevel=stacklevel,
            )
        if crowded:
            remedy = "More steps"
            if "noise_scale" in plan.sampler_options:
                remedy += " or a lower noise scale"
            warnings.warn(
                f"{crowded} of {made} structures have two atoms nearer than {close:.2f} Å "
                f"({CLOSE_PAIR_FACTOR:g} x the training set's closest pair); their "
                f"atoms.info['closest_pair'] gives the distance. {remedy} usually remove "
                "such pairs",
                UserWarning,
                stacklevel=stacklevel,
            )
        if unbalanced:
            why = f"max_restarts={plan.max_restarts}"
            if plan.rebalance:
                why += ", and the relabelling found no balanced labelling"
            else:
                why += ", rebalance=False"
            warnings.warn(
                f"{unbalanced} of {made} structures are not charge balanced "
                f"({why}); atoms.info['charge_balanced'] is False",
                UserWarning,
                stacklevel=stacklevel,
            )

    def _sample_batch(
        self,
        plan: GenerationPlan,
        start: int,
        stop: int,
        bar: Any,
        tick: Callable[[int, int], None] | None = None,
    ) -> tuple[list[Atoms], np.ndarray | None, dict[str, np.ndarray], dict[str, Any]]:
        """Sample structures ``start..stop-1``: (Atoms, charge balanced or None, per-structure
        records (``restarts``, ``relabelled`` of oxide models; ``accepted`` with an accept
        test), batch-wide ``atoms.info`` entries). `tick(done, total)` follows the model
        steps of the batch."""
        param = next(self.model.parameters())
        device, dtype = param.device, param.dtype
        sde = self.info.sde
        cell = torch.as_tensor(plan.cell, dtype=dtype, device=device).reshape(1, 3, 3)
        counts = torch.tensor([plan.n_initial], device=device)
        properties = torch.as_tensor(plan.properties, dtype=dtype, device=device)
        priors = [
            sample_prior(
                cell,
                counts,
                len(self.vocabulary),
                sde,
                torch.Generator(device=device).manual_seed(plan.structure_seeds[i]),
                properties=properties[i : i + 1],
            )
            for i in range(start, stop)
        ]
        if plan.pore is not None:  # uniform outside the pore, from each prior's own stream
            priors = [
                prior_outside(
                    prior,
                    plan.pore,
                    torch.Generator(device=device).manual_seed(plan.structure_seeds[i] + 1),
                )
                for i, prior in zip(range(start, stop), priors, strict=True)
            ]
        state = _concat(priors)
        method = sampling_method(self.info.objective, plan.sampler, self.info.kind)
        generator: torch.Generator | Streams
        if self._draws_per_batch(plan):
            generator = torch.Generator(device=device).manual_seed(
                batch_seed(plan.seed, start, stop)
            )
        else:  # one stream per structure: the same structure in any batch
            generator = Streams.from_seeds(
                [noise_seed(plan.seed, i) for i in range(start, stop)], device
            )
        icg = None
        if plan.icg_properties is not None:
            icg = torch.as_tensor(plan.icg_properties, dtype=dtype, device=device)
        model = guided(self.model, plan.guidance, icg_properties=icg, generator=generator)
        if plan.pore is not None:
            model = WalledModel(model, plan.pore, sde)
        ts = method.timesteps(plan.steps, sde) if plan.timesteps is None else None
        if ts is None:
            ts = torch.tensor(plan.timesteps, dtype=torch.float64)
        options: dict[str, Any] = dict(plan.sampler_options)
        hmc_stats: list[dict[str, Any]] = []
        if method.needs_energy:
            options.update(stats=hmc_stats, energy_model=self.model)
        callback = _progress(bar, plan, ts, tick)
        sampler = functools.partial(method.sampler, callback=callback, **options)
        acceptance = _Acceptance(
            self.vocabulary, plan.max_density, plan.charge_balance, plan.accept
        )
        if plan.max_restarts:
            out, restarts = sample_with_restarts(
                sampler,
                model,
                state,
                ts,
                accept=acceptance,
                restart_t=plan.restart_t,
                max_restarts=plan.max_restarts,
                sde=sde,
                generator=generator,
            )
        else:
            out = sampler(model, state, ts, sde=sde, generator=generator)
            restarts = torch.zeros(out.n_systems, dtype=torch.long)
        counts = {"restarts": restarts.cpu().numpy()}
        if plan.rebalance:
            out, relabelled = rebalance(
                sampler,
                model,
                out,
                ts,
                class_numbers=self.vocabulary.numbers,
                restart_t=plan.restart_t,
                sde=sde,
                generator=generator,
                decode=functools.partial(_real_elements, max_density=plan.max_density),
            )
            counts["relabelled"] = relabelled.cpu().numpy()
        out = _real_elements(out, plan.max_density)
        if plan.pore is not None:
            in_pore = inside(out.positions, out.cell, out.system_idx, plan.pore, PORE_MARGIN)
            counts["pore_atoms"] = (
                torch.bincount(out.system_idx[in_pore], minlength=out.n_systems).cpu().numpy()
            )
        balanced = None
        if plan.charge_balance:
            balanced = is_charge_balanced(out, self.vocabulary).cpu().numpy()
        structures = to_atoms(out, self.vocabulary)
        if plan.accept is not None:
            counts["accepted"] = np.array([acceptance.verdict(a) for a in structures])
        extra: dict[str, Any] = {}
        if method.needs_energy:
            extra = {
                "hmc_range": list(plan.sampler_options["hmc_range"]),
                "dt0": plan.sampler_options["dt0"],
                "hmc_acceptance": _mean_acceptance(hmc_stats),
            }
        return structures, balanced, counts, extra

    def _structure_info(self, plan: GenerationPlan, index: int) -> dict[str, Any]:
        """``atoms.info`` entries recording how structure `index` was made."""
        info: dict[str, Any] = {
            "model": self.name,
            "model_digest": self.weights_digest,
            "sampler": plan.sampler,
            "steps": plan.steps,
            "guidance": plan.guidance,
            "seed": plan.seed,
            "structure_seed": plan.structure_seeds[index],
            "index": index,
            "n_structures": plan.n,  # with batch_size, fixes an HMC batch (and its draws)
            "batch_size": plan.batches[0][1] - plan.batches[0][0],
        }
        if plan.charge_balance:
            info.update(
                max_restarts=plan.max_restarts, restart_t=plan.restart_t, rebalance=plan.rebalance
            )
        if plan.accept is not None:
            info.update(
                accept=describe(plan.accept),
                max_restarts=plan.max_restarts,
                restart_t=plan.restart_t,
            )
        for option in ("noise_scale", "score_gain"):
            if option in plan.sampler_options:
                info[option] = plan.sampler_options[option]
        if plan.timesteps is not None:
            info["timesteps"] = np.array(plan.timesteps)
        if plan.icg_properties is not None:
            info["icg"] = True
        for name, values in plan.targets.items():
            if not np.isnan(values[index]):
                info[f"{TARGET_PREFIX}{name}"] = float(values[index])
        setting = elastic_label_setting(self.info.dataset)
        elastic = [n for n in ELASTIC_LABEL_NAMES if n in plan.targets]
        if setting is not None and any(not np.isnan(plan.targets[n][index]) for n in elastic):
            # how the targets were measured as labels, so an analysis can measure alike
            info.update(
                label_moduli=setting["moduli"],
                label_fmax=setting["fmax"],
                label_elastic_steps=setting["n_steps"],
            )
            if "delta" in setting:
                info["label_elastic_delta"] = setting["delta"]
        if plan.max_density is not None:
            info["max_density"] = plan.max_density
            info["n_initial"] = plan.n_initial
        if plan.pore is not None:
            info["pore"] = np.array(plan.pore.to_record())
        return info


# ---------------------------------------------------------------------- helpers


def short_name(prop: str) -> str:
    """The short target name of property `prop` (``shear`` for ``shear_modulus``; the
    name itself when it has none)."""
    return next((a for a, p in PROPERTY_ALIASES.items() if p == prop), prop)


def model_kind(info: ModelInfo) -> str:
    """One word for what a model is: ``"score"``, ``"shortcut"`` or ``"energy"`` (a score
    model whose score is the gradient of a learned energy, for HMC and refinement)."""
    if info.kind == "energy":
        return "energy"
    return "shortcut" if info.objective == "shortcut" else "score"


def _hours(seconds: float) -> str:
    """A training time as '0.4 h', or in minutes under 6 ('2.5 min')."""
    minutes = max(seconds / 60, 0.1)
    return f"{minutes / 60:.1f} h" if minutes >= 6 else f"{minutes:.1f} min"


def _training_record(info: ModelInfo) -> str:
    """The ``trained`` line of `describe_model`: epochs, structures, time and device of
    the run that wrote the checkpoint. A run that started from another model's weights
    (``init_from``) is the last of several stages: with the earlier stages recorded
    (``earlier_stages``, written since this package records them) the line gives the
    total; otherwise it says the line is the last stage (their epochs and time are in the
    model card), the number of stages being that of the ``amtool train`` commands chained
    in its record."""
    training = info.training
    trained = f"{training['epochs']} epochs"
    n_train = info.dataset.get("n_train")
    if n_train is not None:
        trained += f" on {n_train} structures"
    seconds = training.get("wall_time_s")
    hardware = training.get("hardware") or {}
    device = hardware.get("device_name")
    if str(hardware.get("device", "")).startswith("cpu"):
        device = f"{hardware.get('threads') or '?'} CPU thread(s)"
    if seconds is not None:
        trained += f", {_hours(seconds)}" + (f" on {device}" if device else "")
    start = (training.get("config") or {}).get("init_from")
    if not start:
        return trained
    earlier = training.get("earlier_stages") or []
    if earlier and not earlier[0].get("earlier_unrecorded"):  # the whole chain is known
        epochs = sum(int(stage["epochs"]) for stage in earlier) + int(training["epochs"])
        times = [stage.get("wall_time_s") for stage in earlier] + [seconds]
        total = f", {_hours(sum(times))} in all" if all(t is not None for t in times) else ""
        return f"{len(earlier) + 1} stages: {epochs} epochs{total} (last stage: {trained})"
    stages = str(training.get("command") or "").count("amtool train")
    origin = os.path.basename(str(start))  # a shipped name, or a checkpoint's stem
    last = f"last of {stages} stages" if stages > 1 else f"last stage, from {origin}"
    return f"{last}: {trained} (earlier stages not recorded in the checkpoint)"


def describe_model(info: ModelInfo, source: str | None = None) -> str:
    """A model card as a materials scientist reads it: what the model makes, which
    properties it can target (with their short names, units and training range), the
    cells it was trained on, its default sampling and where its training data came from.

    Args:
        info: the model card (`amtoolkit.checkpoint.read_info`, `Generator.info`).
        source: where the model lives (a path), shown last when given.
    """
    typical = info.typical
    rows: list[tuple[str, str]] = []
    arch = info.model
    rows.append(
        (
            "model",
            f"{model_kind(info)} EGNN, {arch.layers} layers of width {arch.hidden}, "
            f"cutoff {arch.cutoff:g} Å",
        )
    )
    elements = ", ".join(info.vocabulary.elements)
    if typical is not None and typical.composition:
        elements = ", ".join(f"{el} {x:.3f}" for el, x in sorted(typical.composition.items()))
    rows.append(("elements", elements))
    ranges = {} if typical is None else typical.property_ranges
    for k, name in enumerate(info.property_names):
        text = f"{name} (--target {short_name(name)}=...)"
        if name in ranges:
            low, high = ranges[name]
            text += f", trained on {low:.4g} to {high:.4g}{unit_suffix(name)}"
        rows.append(("targets" if k == 0 else "", text))
    if not info.property_names:
        rows.append(("targets", "none (unconditional)"))
    if typical is not None:
        atoms = f"{typical.n_atoms} atoms"
        low, high = typical.n_atoms_range or (typical.n_atoms, typical.n_atoms)
        if low != high:
            atoms = f"{low} to {high} atoms (median {typical.n_atoms})"
        dens = f"{typical.density:.3f} g/cm3"
        if typical.density_range is not None:
            dens = f"{typical.density_range[0]:.3f} to {typical.density_range[1]:.3f} g/cm3"
        rows.append(("cells", f"{atoms}, {dens}"))
    if info.max_density is not None:
        rows.append(("ghost atoms", f"up to {info.max_density:g} atoms/Å^3 (density control)"))
    sampling = info.sampling
    usable = sampler_names(info.objective, info.kind)
    default = sampling.sampler if sampling.sampler in usable else usable[0]
    plan = f"{default}, {sampling.steps} steps"
    if sampling.guidance is not None:
        plan += f", guidance {sampling.guidance:g}"
    if sampling.noise_scale != 1.0:
        plan += f", noise scale {sampling.noise_scale:g}"
    gain = sampling.score_gain
    gains = gain if isinstance(gain, Mapping) else dict.fromkeys(usable, gain)
    shown_gains = {name: g for name, g in gains.items() if g}
    if shown_gains:
        plan += ", score gain " + ", ".join(f"{g:g} ({name})" for name, g in shown_gains.items())
    rows.append(("sampling", f"{plan} (also: {', '.join(n for n in usable if n != default)})"))
    command = info.dataset.get("command")
    if command:
        first = info.dataset.get("first_frames")  # a run that grew after the model trained
        if isinstance(first, Mapping) and first.get("frames") is not None:
            command = f"{command} (its first {first['frames']} of {first.get('of', '?')} frames)"
        rows.append(("data", str(command)))
    resumed = info.dataset.get("resumed")
    if isinstance(resumed, list) and resumed:
        rows.append(("", f"then resumed or extended {len(resumed)} time(s): {resumed[-1]}"))
    parts = info.dataset.get("parts")
    records = [info.dataset]
    if isinstance(parts, list) and parts:  # a merged set: each part's own run
        records = [p.get("provenance") or {} for p in parts if isinstance(p, Mapping)]
        for part in parts:
            if isinstance(part, Mapping) and (part.get("provenance") or {}).get("command"):
                made = part["provenance"]["command"]
                rows.append(("", f"{part.get('name')} ({part.get('frames')}): {made}"))
    potential_files = {
        (r["potential"]["source"], r["potential"].get("digest", "?"))
        for r in records
        if isinstance(r.get("potential"), Mapping) and r["potential"].get("source")
    }
    for path, digest in sorted(potential_files):
        rows.append(("potential", f"{path} ({digest})"))
    setting = elastic_label_setting(info.dataset)
    if setting is not None:
        averages = "Voigt-Reuss-Hill" if setting["moduli"] == "hill" else "cubic (G = C44)"
        rows.append(
            (
                "elastic labels",
                f"{averages} averages, relaxed to fmax {setting['fmax']:g} eV/Å, "
                f"{setting['n_steps']} strains per pattern",
            )
        )
    if info.training.get("epochs") is not None:
        rows.append(("trained", _training_record(info)))
    if source is not None:
        rows.append(("files", source))
    width = max(len(label) for label, _ in rows) + 2
    lines = [info.name]
    lines += [f"  {label:<{width}}{text}" for label, text in rows]
    return "\n".join(lines)


_NULL_WORDS = ("null", "none", "nan", "")


def parse_target(text: str) -> tuple[str, float | list[float | None]]:
    """Parse a command-line target ``NAME=VALUE`` or ``NAME=V1,V2,...`` (one per structure).

    ``null`` (or ``none``, ``nan``) in a list leaves that structure unconditioned.

    Returns:
        (name as written, a float or a list of floats/None).

    Raises:
        ValueError: one line naming `text`.
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise ValueError(f"target {text!r} must look like NAME=VALUE, e.g. shear=40")
    words = [w.strip() for w in value.split(",")]
    try:
        values = [None if w.lower() in _NULL_WORDS else float(w) for w in words]
    except ValueError:
        raise ValueError(f"target {text!r}: {value!r} is not a number or list of numbers") from None
    if len(values) == 1:
        if values[0] is None:
            raise ValueError(f"target {text!r}: give a number (leave a target out to not set it)")
        return name, values[0]
    return name, values


def parse_cell(text: str) -> float | list[float]:
    """Parse a command-line cell: ``L`` (cubic), ``a,b,c`` or 9 comma-separated numbers, Å."""
    try:
        numbers = [float(w) for w in text.replace("x", ",").split(",")]
    except ValueError:
        raise ValueError(
            f"cell {text!r} must be L, a,b,c or 9 comma-separated numbers (Å)"
        ) from None
    if len(numbers) not in (1, 3, 9):
        raise ValueError(f"cell {text!r} must be L, a,b,c or 9 comma-separated numbers (Å)")
    return numbers[0] if len(numbers) == 1 else numbers


def _real(name: str, value: Any) -> float:
    """`value` as a float, for a real number (not a bool or a string); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real):  # numpy numbers are Real
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _target_values(key: str, value: Any, n: int) -> np.ndarray:
    """A scalar or length-`n` target as float array [n] (None -> NaN); rejects inf."""
    key = key.removeprefix(TARGET_PREFIX)  # messages name the target as the user wrote it
    if value is None:
        return np.full(n, np.nan)
    if isinstance(value, (str, bytes)):
        raise ValueError(f"target {key} must be a number or a sequence of {n} numbers")
    try:
        if np.ndim(value) == 0:
            array = np.full(n, _real(f"target {key}", np.asarray(value).item()))
        else:
            array = np.array(
                [np.nan if v is None else _real(f"target {key}", v) for v in value], dtype=float
            )
    except (TypeError, ValueError):
        raise ValueError(
            f"target {key} must be a number or a sequence of {n} numbers, got {value!r}"
        ) from None
    if array.shape != (n,):
        raise ValueError(f"target {key} has {array.size} values for n={n} structures")
    if np.isinf(array).any():
        raise ValueError(f"target {key} must be finite (NaN/None = null), got {value!r}")
    return array


def _real_elements(batch: Batch, max_density: float | None) -> Batch:
    """Without ghosts, rule the ghost class out of the argmax decoding (every atom is real)."""
    if max_density is not None:
        return batch
    elements = batch.elements.clone()
    elements[:, 0] = -torch.inf  # class 0 = ghost
    return batch.replace(elements=elements)


@dataclasses.dataclass(frozen=True)
class _Acceptance:
    """The restart test of a batch on the decoding `to_atoms` will use (see
    `_real_elements`): charge balance (oxide models, `balance`) and the caller's
    `accept`, which sees only the structures that balance."""

    vocabulary: ElementVocabulary
    max_density: float | None
    balance: bool
    accept: Callable[[Atoms], bool] | None

    verdicts: dict[str, bool] = dataclasses.field(default_factory=dict)

    def __call__(self, batch: Batch) -> torch.Tensor:
        real = _real_elements(batch, self.max_density)
        if self.balance:
            ok = charge_balance(self.vocabulary)(real).clone()
        else:
            ok = torch.ones(real.n_systems, dtype=torch.bool, device=real.positions.device)
        if self.accept is not None:
            for k, atoms in enumerate(to_atoms(real, self.vocabulary)):
                if ok[k]:
                    ok[k] = self.verdict(atoms)
        return ok

    def verdict(self, atoms: Atoms) -> bool:
        """`accept` on a finished structure (positions wrapped into the cell), asked once
        per structure: the record of a structure the restarts tested is that test's."""
        key = frame_digest(atoms)
        if key not in self.verdicts:
            wrapped = atoms.copy()
            wrapped.wrap()
            self.verdicts[key] = bool(self.accept(wrapped))  # type: ignore[misc]
        return self.verdicts[key]


_RUN_SHAPE = ("n_structures", "batch_size")
"""Records that fix a structure's draws only for a sampler drawing per batch (HMC): a
resumed run of another sampler may take another `n` (extending a finished run) or batch
size."""

_OPTIONAL_RECORDS = (
    "pore",
    "accept",
    "max_restarts",
    "restart_t",
    "rebalance",
    "noise_scale",
    "score_gain",
    "timesteps",
    "icg",
    "max_density",
    "n_initial",
)
"""``atoms.info`` records `Generator._structure_info` writes only for some options: a
resumed structure holding one that the resuming run does not write was made otherwise."""


def _same_record(got: Any, wanted: Any) -> bool:
    """Whether an ``atoms.info`` value read back (extended XYZ) records `wanted`: strings,
    booleans and integers (63-bit seeds) exactly, floats and grids to round-off."""
    if got is None:
        return False
    if isinstance(wanted, (str, bool, np.bool_)):
        return bool(got == wanted) and type(got) is type(wanted)
    if isinstance(wanted, (int, np.integer)):
        return isinstance(got, (int, np.integer)) and int(got) == int(wanted)
    try:
        return np.allclose(np.asarray(got, float), np.asarray(wanted, float), rtol=1e-12, atol=0)
    except (TypeError, ValueError):
        return False


def _concat(batches: Sequence[Batch]) -> Batch:
    """One batch holding the systems of `batches` in order."""
    offsets = np.cumsum([0] + [b.n_systems for b in batches[:-1]])
    return Batch(
        positions=torch.cat([b.positions for b in batches]),
        elements=torch.cat([b.elements for b in batches]),
        cell=torch.cat([b.cell for b in batches]),
        system_idx=torch.cat(
            [b.system_idx + int(o) for b, o in zip(batches, offsets, strict=True)]
        ),
        properties=torch.cat([b.properties for b in batches]),
    )


def _check_grid(timesteps: Any, steps: int | None, t_max: float) -> tuple[float, ...]:
    """A caller's sampling grid: decreasing, from at most `t_max` to exactly 0, with
    ``steps + 1`` points when `steps` is given."""
    try:
        values = np.asarray(timesteps, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"timesteps must be a sequence of times, got {timesteps!r}") from None
    grid = check_timesteps(torch.as_tensor(values), name="timesteps")
    if float(grid[-1]) != 0.0:
        raise ValueError(f"timesteps must end at 0, got {float(grid[-1])}")
    if float(grid[0]) > t_max:
        raise ValueError(
            f"timesteps must start at most at the model's t_max {t_max}, got {float(grid[0])}"
        )
    if steps is not None and steps != len(grid) - 1:
        raise ValueError(
            f"steps={steps} but timesteps has {len(grid) - 1} intervals; give one of them"
        )
    return tuple(float(t) for t in grid)


def _progress(
    bar: Any,
    plan: GenerationPlan,
    ts: torch.Tensor,
    tick: Callable[[int, int], None] | None = None,
) -> Callable[[dict[str, Any]], None]:
    """Sampler callback advancing `bar` one model step (restart runs extend its total)
    and calling `tick(done, total)` with the batch's steps done and planned."""
    runs = {"count": 0}
    steps = {"done": 0, "total": len(ts) - 1}
    restart_steps = 0
    if plan.max_restarts or plan.rebalance:
        restart_steps = len(restart_timesteps(ts, plan.restart_t)) - 1

    def callback(record: dict[str, Any]) -> None:
        if record["i"] == 0:
            if runs["count"]:
                bar.total += restart_steps
                bar.refresh()
                steps["total"] += restart_steps
            runs["count"] += 1
        bar.update(1)
        steps["done"] += 1
        if tick is not None:
            tick(steps["done"], steps["total"])

    return callback


class _StepNotes:
    """A line to `note` at each tenth of a batch's model steps, with the time taken and
    the time left at that pace: the progress of a log, where no bar is drawn. A tenth
    reached within `MIN_INTERVAL` seconds of the last line (or of the start) is passed
    over, so a quick batch adds no lines."""

    MIN_INTERVAL = 20.0  # s

    def __init__(self, note: Callable[[str], None], label: str, tenths: int = 10):
        self.note, self.label, self.tenths = note, label, tenths
        self.start = self.last = time.monotonic()
        self.next = 1  # the next tenth to report

    def __call__(self, done: int, total: int) -> None:
        if done >= total or done * self.tenths < self.next * total:
            return  # the last step is reported by the structures being written
        now = time.monotonic()
        if now - self.last < self.MIN_INTERVAL:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (total - done) / done
        self.note(
            f"{self.label}: step {done} of {total} ({100 * done // total}%), "
            f"{_duration(elapsed)} so far, about {_duration(left)} left"
        )
        self.next = done * self.tenths // total + 1


def _duration(seconds: float) -> str:
    """'42 s', '3.5 min' or '1.2 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _hmc_options(hmc_range: Any, dt0: Any) -> dict[str, Any]:
    """Validated HMC sampler options (``hmc_range`` a pair in [0, 1], ``dt0`` > 0)."""
    try:
        lo, hi = (_real("hmc_range", x) for x in hmc_range)
    except (TypeError, ValueError):
        raise ValueError(f"hmc_range must be a pair (t_lo, t_hi), got {hmc_range!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"hmc_range must satisfy 0 <= t_lo <= t_hi <= 1, got {hmc_range!r}")
    from amtoolkit.diffusion.hmc import check_dt0

    return {"hmc_range": (lo, hi), "dt0": check_dt0(_real("dt0", dt0))}


def _mean_acceptance(stats: Sequence[Mapping[str, Any]]) -> float:
    """Mean acceptance rate over the HMC iterations of one sampler call (NaN if none)."""
    rates = [float(r["acceptance"]) for r in stats]
    return float(np.mean(rates)) if rates else math.nan

"""Training data: load and split a dataset, typical sizes, deterministic shards and batches.

Randomness here is keyed, not sequential: the shuffle of epoch e is drawn from
``default_rng([seed, 1, e])`` and the ghosts of frame i in epoch e from
``default_rng([seed, 2, e, i])``, so any epoch can be rebuilt after a restart and the
batches do not depend on how many processes share the work.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from amtoolkit.analysis._structures import MAX_NUMBER_DENSITY
from amtoolkit.analysis.compare import closest_pair
from amtoolkit.checkpoint import Typical
from amtoolkit.data._files import condensed_provenance
from amtoolkit.data.batch import Batch, from_atoms
from amtoolkit.data.dataset import Dataset, DatasetError, open_dataset
from amtoolkit.data.ghosts import add_ghosts, ghost_mask
from amtoolkit.data.properties import AMU_PER_A3_TO_G_PER_CM3
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.potentials.calculator import COINCIDENT, overlapping_pair
from amtoolkit.training.config import ConfigError, DataConfig

_SHUFFLE, _GHOSTS, _VAL_GHOSTS = 1, 2, 3  # stream tags of the keyed generators

MIN_CELL_VOLUME = 1e-6
"""Smallest cell volume (Å^3) taken for a real cell when checking training frames."""


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The structures and metadata a run trains on.

    Attributes:
        train: training structures (real atoms only; properties in ``atoms.info``).
        val: validation structures.
        vocabulary: element classes of the model (ghost first).
        property_names: conditioning properties in column order.
        normalisation: property name -> (mean, std) on the training split.
        typical: typical sizes of the training split (`compute_typical`).
        provenance: where the frames came from, with the split record.
        test: the test split, never trained on (kept to check that a run started from
            another model does not test on that model's training frames).
    """

    train: list[Atoms]
    val: list[Atoms]
    vocabulary: ElementVocabulary
    property_names: tuple[str, ...]
    normalisation: dict[str, tuple[float, float]]
    typical: Typical
    provenance: dict[str, Any]
    test: list[Atoms] = dataclasses.field(default_factory=list)


def run_frames(config: DataConfig, dataset: Dataset) -> Dataset:
    """The frames of `dataset` (the one ``config.dataset`` names) that a run splits: the
    first ``max_frames`` of them (`Dataset.head`), or all.

    Raises:
        ConfigError: ``max_frames`` beyond the dataset.
    """
    if config.max_frames is None:
        return dataset
    if config.max_frames > len(dataset):
        raise ConfigError(
            f"data.max_frames is {config.max_frames} but {config.dataset} holds "
            f"{len(dataset)} frames"
        )
    return dataset.head(config.max_frames)


def load_training_data(config: DataConfig) -> TrainingData:
    """Open, split and load the dataset of a run (frames kept in memory).

    Raises:
        ConfigError: a property that the dataset lacks or that has no training values,
            an element outside ``elements``, a split without training frames, or
            structures that already hold ghost atoms while ``max_density`` is set.
    """
    try:
        opened = open_dataset(config.dataset)
    except (FileNotFoundError, IsADirectoryError) as err:
        where = ""
        if not Path(config.dataset).is_absolute() and isinstance(err, FileNotFoundError):
            where = (
                "; a relative path is looked for next to the config file and in the working "
                f"folder ({Path.cwd()})"
            )
        raise type(err)(f"data.dataset: {err}{where}") from None
    dataset = run_frames(config, opened)
    missing = [p for p in config.property_names if p not in dataset.property_names]
    if missing:
        from amtoolkit.generator import PROPERTY_ALIASES

        meant = [
            f"{p} -> {PROPERTY_ALIASES[p]}"
            for p in missing
            if PROPERTY_ALIASES.get(p) in dataset.property_names
        ]
        hint = f"; did you mean {', '.join(meant)}? (aliases are for targets only)" if meant else ""
        raise ConfigError(
            f"data.property_names: {missing} not in the dataset (it has "
            f"{dataset.property_names or 'no properties'}){hint}"
        )
    try:
        train_set, val_set, test_set = dataset.split(
            val=config.val_fraction,
            test=config.test_fraction,
            seed=config.seed,
            grown_from=config.grown_from,
        )
    except DatasetError as err:
        raise ConfigError(f"data: {err}") from None
    _warn_implausible(dataset, config)
    normalisation = train_set.normalisation or {}
    no_values = [p for p in config.property_names if p not in normalisation]
    if no_values:
        raise ConfigError(f"data.property_names: {no_values} have no values in the train split")
    train, val = list(train_set), list(val_set)
    _warn_degenerate(train_set, len(val), config)
    everything = train + val
    if config.elements is not None:
        try:
            vocabulary = ElementVocabulary.from_elements(config.elements)
            for atoms in everything:
                vocabulary.encode(atoms.numbers)
        except ValueError as err:
            raise ConfigError(f"data.elements: {err}") from None
        present = {int(z) for a in train for z in np.unique(a.numbers)}
        absent = [chemical_symbols[z] for z in vocabulary.numbers[1:] if z not in present]
        if absent:
            warnings.warn(
                f"data.elements: {absent} in no training frame; the model learns never to "
                "place them, so they cannot be asked for",
                stacklevel=2,
            )
    else:
        vocabulary = ElementVocabulary.from_structures(everything)
    if config.max_density is not None and any(ghost_mask(a).any() for a in everything):
        raise ConfigError("data.max_density is set but the dataset already holds ghost atoms")
    check_frames(dataset, config)
    provenance = condensed_provenance(train_set.provenance)
    provenance["dataset"] = config.dataset
    provenance["n_train"] = len(train)
    provenance["n_val"] = len(val)
    return TrainingData(
        train=train,
        val=val,
        vocabulary=vocabulary,
        property_names=tuple(config.property_names),
        normalisation={p: normalisation[p] for p in config.property_names},
        typical=compute_typical(train, config.property_names),
        provenance=provenance,
        test=list(test_set),
    )


def _warn_degenerate(train: Dataset, n_val: int, config: DataConfig) -> None:
    """Warn about a split that leaves fewer training than validation frames, or none for
    validation although `val_fraction` asks for some, and about a conditioning property
    with one value in the train split (nothing to learn from)."""
    if n_val == 0 and config.val_fraction > 0:  # too few frames: round(val_fraction n) is 0
        warnings.warn(
            f"data: the split leaves no validation frames ({len(train)} training frame(s), "
            f"val_fraction {config.val_fraction:g}); the best model is selected by training "
            "loss",
            stacklevel=3,
        )
    if len(train) < n_val:
        warnings.warn(
            f"data: the split leaves {len(train)} training frame(s) against {n_val} for "
            f"validation (val_fraction {config.val_fraction:g}, test_fraction "
            f"{config.test_fraction:g}); the model learns from the training frames only",
            stacklevel=3,
        )
    for name in config.property_names:
        values = np.asarray(train.properties[name], dtype=float)
        known = np.unique(values[np.isfinite(values)])
        if len(known) == 1:
            warnings.warn(
                f"data.property_names: {name} has one value ({known[0]:g}) in every training "
                "frame; the model cannot learn what it changes, and targets of it do nothing",
                stacklevel=3,
            )


def _warn_implausible(dataset: Dataset, config: DataConfig) -> None:
    """Warn about conditioning labels outside `PLAUSIBLE_LABELS` (a broken elastic fit):
    the model learns them as they are."""
    from amtoolkit.analysis._options import listed
    from amtoolkit.data.properties import PLAUSIBLE_LABELS
    from amtoolkit.data.summary import implausible_structures

    wanted = {p: dataset.properties[p] for p in config.property_names}
    for name, indices in implausible_structures(wanted).items():
        low, high = PLAUSIBLE_LABELS[name]
        shown = listed(indices)
        warnings.warn(
            f"data.dataset {config.dataset}: {len(indices)} of {len(dataset)} structures have "
            f"{name} outside ({low:g}, {high:g}) (frames {shown}); the model learns them as "
            "they are: drop them with Dataset.subset (docs/datasets.md, *Implausible labels*)",
            stacklevel=3,
        )


def check_frames(dataset: Dataset, config: DataConfig) -> None:
    """Refuse frames a model cannot train on, naming the first: from the dataset's cell
    and size arrays, then each frame's closest pair (a neighbour search within 0.1 Å).

    Raises:
        ConfigError: a frame without a 3D-periodic cell, one denser than any solid
            (`MAX_NUMBER_DENSITY`: lengths in nm), one with two atoms on one site, or one
            with more atoms than ``max_density`` lets its cell hold (ghosts fill each cell
            up to it; a dataset with ghosts and ``max_density`` is refused before this).
    """
    volumes = np.abs(np.linalg.det(dataset.cells))
    pbc = dataset.pbc
    flat = ~pbc.all(axis=1) | (volumes < MIN_CELL_VOLUME)
    if flat.any():
        k = int(np.argmax(flat))
        raise ConfigError(
            f"data.dataset {config.dataset}: frame {k} has no 3D-periodic cell (pbc "
            f"{pbc[k].tolist()}, volume {volumes[k]:.3g} Å^3); models train on periodic cells"
        )
    density = dataset.n_atoms / volumes
    where = int(np.argmax(density)) if len(density) else 0
    if len(density) and density[where] > MAX_NUMBER_DENSITY:
        raise ConfigError(
            f"data.dataset {config.dataset}: frame {where} holds {density[where]:.3g} "
            f"atoms/Å^3, above any solid (diamond: 0.18): are its lengths in nm or bohr?"
        )
    for k in range(len(dataset)):
        pair = overlapping_pair(dataset.atoms(k), COINCIDENT)
        if pair is not None:
            i, j, d = pair
            raise ConfigError(
                f"data.dataset {config.dataset}: frame {k}: atoms {i} and {j} are {d:.3g} Å "
                "apart, one site holding two atoms"
            )
    if config.max_density is not None and len(density) and density[where] > config.max_density:
        raise ConfigError(
            f"data.max_density={config.max_density:g} atoms/Å^3 is below the atom density of "
            f"frame {where} ({density[where]:.4g}/Å^3): ghosts fill each cell up to max_density, "
            "so it must be at least the densest frame's"
        )


def mass_density(atoms: Atoms) -> float:
    """Mass density of the real (non-ghost) atoms, g/cm^3."""
    real = atoms[~ghost_mask(atoms)]
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    return float(real.get_masses().sum()) / volume * AMU_PER_A3_TO_G_PER_CM3


def compute_typical(structures: Sequence[Atoms], property_names: Sequence[str] = ()) -> Typical:
    """Typical systems of a training split: the defaults a Generator starts from.

    Args:
        structures: the training structures.
        property_names: properties whose [min, max] of known raw values (``atoms.info``)
            are recorded.

    Returns:
        Median real-atom count and mass density (g/cm^3) with their ranges, the overall
        atom fractions of each element, property ranges and the closest pair of atoms.
    """
    if not structures:
        raise ConfigError("the training split is empty")
    counts = np.array([int((~ghost_mask(a)).sum()) for a in structures])
    densities = np.array([mass_density(a) for a in structures])
    symbols: dict[str, int] = {}
    for atoms in structures:
        for s in atoms[~ghost_mask(atoms)].get_chemical_symbols():
            symbols[s] = symbols.get(s, 0) + 1
    total = sum(symbols.values())
    nearest = min(closest_pair(a[~ghost_mask(a)]) for a in structures)  # inf: none in 5 Å
    ranges = {}
    for name in property_names:
        values = np.array([float(a.info.get(name, np.nan)) for a in structures])
        values = values[np.isfinite(values)]
        if values.size:
            ranges[name] = (float(values.min()), float(values.max()))
    return Typical(
        n_atoms=int(round(float(np.median(counts)))),
        density=float(np.median(densities)),
        composition={s: n / total for s, n in sorted(symbols.items())},
        property_ranges=ranges,
        n_atoms_range=(int(counts.min()), int(counts.max())),
        density_range=(float(densities.min()), float(densities.max())),
        closest_pair=nearest if math.isfinite(nearest) else None,
    )


def epoch_batches(
    n_frames: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """Frame indices of the training batches of one process in one epoch.

    The frames are shuffled with ``default_rng([seed, 1, epoch])``; as in torch's
    DistributedSampler the order is padded (by repeating its start) to a multiple of
    `world_size` and process `rank` takes every `world_size`-th frame from `rank` on, so
    all processes run the same number of batches. Its share is cut into batches of
    `batch_size` (the last one may be smaller).

    Returns:
        One int64 index array per batch.
    """
    order = np.random.default_rng([seed, _SHUFFLE, epoch]).permutation(n_frames)
    per_rank = -(-n_frames // world_size)
    padded = np.resize(order, per_rank * world_size)  # np.resize repeats from the start
    share = padded[rank::world_size]
    return [share[i : i + batch_size] for i in range(0, len(share), batch_size)]


def val_batches(n_frames: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list:
    """(batch number, frame indices) of the validation batches of one process.

    Validation frames are taken in order; batch k goes to process k mod `world_size`, so
    the batches (and their keyed noise) do not depend on the number of processes.
    """
    batches = [np.arange(i, min(i + batch_size, n_frames)) for i in range(0, n_frames, batch_size)]
    return [(k, b) for k, b in enumerate(batches) if k % world_size == rank]


def make_batch(
    structures: Sequence[Atoms],
    indices: np.ndarray,
    data: TrainingData,
    max_density: float | None,
    ghost_key: Sequence[int],
) -> Batch:
    """A flat batch of `structures[indices]`, with ghosts when `max_density` is set.

    Frame i gets its ghosts from ``default_rng([*ghost_key, i])`` (`add_ghosts`).
    Properties are read from ``atoms.info`` and normalised with the training statistics
    (missing ones are NaN, i.e. null).
    """
    chosen = [structures[int(i)] for i in indices]
    if max_density is not None:
        chosen = [
            add_ghosts(a, max_density, np.random.default_rng([*ghost_key, int(i)]))
            for a, i in zip(chosen, indices, strict=True)
        ]
    return from_atoms(
        chosen,
        data.vocabulary,
        property_names=data.property_names,
        normalisation=data.normalisation,
    )


def train_ghost_key(seed: int, epoch: int) -> tuple[int, int, int]:
    """Key of the ghost generators of the training frames in `epoch`."""
    return (seed, _GHOSTS, epoch)


def val_ghost_key(seed: int) -> tuple[int, int]:
    """Key of the ghost generators of the validation frames (the same every epoch)."""
    return (seed, _VAL_GHOSTS)

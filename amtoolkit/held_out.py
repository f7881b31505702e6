"""The frames of a dataset that a model never trained on: its held-out reference.

A model card records its training data (``info.dataset``: the dataset's name or path,
its provenance source, the count and digest of its per-sample run records, and the
train/validation/test split with its seed). From that record the split is redrawn
(`Dataset.split`) to give back the frames the model did not see, the fair reference for
judging generated structures:

    >>> gen = Generator.from_pretrained("a-si")
    >>> reference = gen.held_out()                 # the 32 test cells of a-si-anneal
    >>> Analyzer().compare(gen.generate(8, seed=0), reference).summary()

Which part is held out (`held_out_part`):

- the card's dataset itself: its test split, or the validation split when the model was
  trained without a test split;
- the card's dataset grown by later samples (a resumed workflow, `grown_from`): that
  part of the frames the model saw, plus every later frame;
- any other dataset: all of its frames, less those found by content (`FrameIndex`) among
  the frames the model trained or validated on, when the card's dataset can be opened
  (a copy of the training data under another name holds out only what the model did
  not see).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from amtoolkit.data._files import records_digest
from amtoolkit.data.dataset import Dataset, open_dataset

__all__ = [
    "FrameIndex",
    "HeldOut",
    "frame_key",
    "grown_from",
    "held_out_by_all",
    "held_out_part",
    "same_dataset",
]


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The held-out frames of a dataset, with a record of how they were chosen.

    Attributes:
        frames: the frames, in dataset order.
        part: which part they are, in words (``"test split of the model's split (val
            0.1, test 0.16, seed 0)"``).
        frames_in_dataset: the size of the whole dataset.
    """

    frames: list[Atoms]
    part: str
    frames_in_dataset: int


def same_dataset(spec: str | os.PathLike, dataset: Dataset, card: Mapping[str, Any]) -> bool:
    """Whether the model card's training data (``info.dataset``) is `dataset`.

    True when the card names the same shipped dataset or file (``card["dataset"]``) or
    the same provenance source, and the split it records was taken from as many frames.
    """
    recorded = card.get("dataset")
    split = card.get("split") or {}
    if recorded is None or split.get("parent_frames") not in (None, len(dataset)):
        return False
    if str(spec) == str(recorded):
        return True
    mine, theirs = Path(spec), Path(str(recorded))
    if mine.exists() and theirs.exists() and mine.resolve() == theirs.resolve():
        return True
    source = dataset.provenance.get("source")
    return source is not None and source == card.get("source")


def grown_from(dataset: Dataset, card: Mapping[str, Any]) -> int | None:
    """How many leading frames of `dataset` the card's training data was, when `dataset`
    is that data grown by later samples (a resumed workflow), else None.

    The card keeps the count and digest of its dataset's per-sample run records; the
    data grew when `dataset` holds more records and its first ``count`` have that digest.
    """
    recorded, records = card.get("samples"), dataset.provenance.get("samples")
    if not isinstance(recorded, Mapping) or not isinstance(records, list):
        return None
    count = recorded.get("count")
    if not isinstance(count, int) or not 0 < count < len(records) or len(records) != len(dataset):
        return None
    return count if records_digest(records[:count]) == recorded.get("sha256") else None


def held_out_part(
    spec: str | os.PathLike,
    card: Mapping[str, Any],
    *,
    dataset: Dataset | None = None,
    whole: bool = False,
) -> HeldOut:
    """The frames of dataset `spec` that the model with card `card` did not train on.

    Args:
        spec: a shipped dataset name or a dataset file (`open_dataset`).
        card: the model card's training-data record, ``ModelInfo.dataset``.
        dataset: the dataset `spec` names, when already open.
        whole: every frame, whatever the card says.

    Raises:
        FileNotFoundError: `spec` is neither a file nor a shipped dataset.
    """
    return _held_out(spec, card, dataset, whole, check_overlap=True)


def _held_out(
    spec: str | os.PathLike,
    card: Mapping[str, Any],
    dataset: Dataset | None,
    whole: bool,
    check_overlap: bool,
) -> HeldOut:
    dataset = open_dataset(str(spec)) if dataset is None else dataset
    n = len(dataset)
    split = card.get("split") or {}
    recorded_split = {"val", "test", "seed"} <= set(split)
    if whole:
        return HeldOut(list(dataset), "all frames (asked for the whole dataset)", n)
    grown = grown_from(dataset, card)
    same = same_dataset(spec, dataset, card)
    if recorded_split and (grown is not None or same):
        seen = dataset if grown is None else dataset[:grown]
        _, val, test = seen.split(
            val=split["val"],
            test=split["test"],
            seed=split["seed"],
            grown_from=split.get("grown_from"),
        )
        frames, part = (
            (list(test), "test split") if len(test) else (list(val), "validation split (no test)")
        )
        fractions = f"val {split['val']}, test {split['test']}, seed {split['seed']}"
        part += f" of the model's split ({fractions})"
        if grown is not None:
            frames += list(dataset[grown:])
            part = f"{part} of the first {grown} frames, and the {n - grown} after them"
        return HeldOut(frames, part, n)
    if same:
        return HeldOut(list(dataset), "all frames (the model card records no split)", n)
    seen = _trained_frames(card) if check_overlap else None
    if seen is None:
        unchecked = ", not at hand to check for shared frames" if check_overlap else ""
        part = f"all frames (the model card names other training data{unchecked})"
        return HeldOut(list(dataset), part, n)
    frames = [a for a in dataset if a not in seen]
    if len(frames) == n:
        return HeldOut(frames, "all frames (none is among the model's training data)", n)
    recorded = card.get("dataset")
    warnings.warn(
        f"{spec}: {n - len(frames)} of its {n} frames are frames the model trained or validated "
        f"on (found in {recorded}); they are left out of the held-out reference",
        stacklevel=3,
    )
    part = f"all frames but the {n - len(frames)} found in the model's training data ({recorded})"
    return HeldOut(frames, part, n)


def _trained_frames(card: Mapping[str, Any]) -> FrameIndex | None:
    """The frames the model with `card` trained or validated on, or None when its dataset
    cannot be opened here."""
    recorded = card.get("dataset")
    if recorded is None:
        return None
    try:
        trained = open_dataset(str(recorded))
    except (OSError, ValueError):
        return None
    unseen = _held_out(recorded, card, trained, whole=False, check_overlap=False).frames
    if len(unseen) == len(trained):  # the record no longer matches that file
        return None
    held = {frame_key(a) for a in unseen}
    return FrameIndex(a for a in trained if frame_key(a) not in held)


def held_out_by_all(
    spec: str | os.PathLike,
    cards: Sequence[Mapping[str, Any]],
    *,
    dataset: Dataset | None = None,
) -> HeldOut:
    """The frames of dataset `spec` that none of the models with `cards` trained on.

    For benchmarks that compare models on one reference (e.g. a shortcut model and the
    score model beside it, trained on different splits or on more of a grown dataset):
    the first card's `held_out_part`, less every frame another card's part lacks.

    Args:
        spec: a shipped dataset name or a dataset file (`open_dataset`).
        cards: the models' training-data records, ``ModelInfo.dataset``; at least one.
        dataset: the dataset `spec` names, when already open.
    """
    if not cards:
        raise ValueError("held_out_by_all needs at least one model card")
    dataset = open_dataset(str(spec)) if dataset is None else dataset
    parts = [held_out_part(spec, card, dataset=dataset) for card in cards]
    if len(parts) == 1:
        return parts[0]
    frames = parts[0].frames
    for other in parts[1:]:
        unseen = {frame_key(a) for a in other.frames}
        frames = [a for a in frames if frame_key(a) in unseen]
    words = "; ".join(f"model {k + 1}: {p.part}" for k, p in enumerate(parts))
    return HeldOut(frames, f"frames held out from every model ({words})", len(dataset))


def frame_key(atoms: Atoms) -> bytes:
    """Identity of a frame by content: element numbers, positions and cell."""
    return atoms.numbers.tobytes() + atoms.positions.tobytes() + atoms.cell.array.tobytes()


SAME_FRAME_TOLERANCE = 1e-3
"""Largest displacement (Å, minimum image) between the atoms of two copies of one frame
(`FrameIndex`): a copy written to another format or wrapped into the cell keeps to it."""


class FrameIndex:
    """Frames looked up by content, to a tolerance: ``atoms in index`` is True when a
    frame with the same elements in the same order, the same cell (to 0.01 Å) and every
    atom within `SAME_FRAME_TOLERANCE` of its place (minimum image) is indexed."""

    def __init__(self, frames: Iterable[Atoms]) -> None:
        self._buckets: dict[bytes, list[Atoms]] = {}
        for atoms in frames:
            self.add(atoms)

    def add(self, atoms: Atoms) -> None:
        """Index one more frame."""
        self._buckets.setdefault(self._bucket(atoms), []).append(atoms)

    @staticmethod
    def _bucket(atoms: Atoms) -> bytes:
        cell = np.round(atoms.cell.array, 2) + 0.0  # -0.0 and 0.0 in one bucket
        return atoms.numbers.astype(np.int64).tobytes() + cell.tobytes()

    def __contains__(self, atoms: object) -> bool:
        if not isinstance(atoms, Atoms):
            return False
        for other in self._buckets.get(self._bucket(atoms), ()):
            if _displacement(atoms, other, slice(0, 1)) <= SAME_FRAME_TOLERANCE and (
                _displacement(atoms, other, slice(None)) <= SAME_FRAME_TOLERANCE
            ):
                return True
        return False


def _displacement(a: Atoms, b: Atoms, atoms: slice) -> float:
    """Largest minimum-image distance between the atoms `atoms` of `a` and `b`, Å."""
    delta = a.positions[atoms] - b.positions[atoms]
    if a.cell.rank == 3:
        fractions = np.linalg.solve(a.cell.array.T, delta.T).T
        delta = (fractions - np.round(fractions)) @ a.cell.array
    return float(np.sqrt((delta**2).sum(axis=1)).max()) if len(delta) else 0.0

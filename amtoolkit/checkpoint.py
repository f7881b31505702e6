"""Model checkpoints: a plain state_dict (``<stem>.pt``) plus a JSON card (``<stem>.json``).

The ``.pt`` file holds only tensors (``torch.save`` of a state_dict) and is read with
``torch.load(..., weights_only=True)``; everything needed to rebuild and use the model
(architecture, element vocabulary, property names and normalisation, schedule
constants, ghost density, typical sizes, dataset provenance, training record and
sampling defaults) lives in the JSON file, described by `ModelInfo`. Whole modules are
never pickled (docs/training.md, *Checkpoint format*).

JSON layout (``format`` = ``"amtoolkit-model"``, ``version`` = 1)::

    {"format": "amtoolkit-model", "version": 1, "name": "a-si", "kind": "score",
     "model": DenoiserConfig.to_dict(), "sde": MaterialSDE.to_dict(),
     "vocabulary": ["X", "Si"], "property_names": [...], "normalisation": {name: [mean, std]},
     "max_density": 0.05 | null,
     "typical": {"n_atoms": 216, "density": 2.28, "composition": {"Si": 1.0},
                 "property_ranges": {name: [min, max]}, ...},
     "dataset": {...provenance...}, "training": {...},
     "sampling": {"sampler": "sde", "steps": 200, "guidance": null},
     "objective": "score" | "flow" | "shortcut"}

A card without ``objective`` (written before the key existed) reads as ``"score"``.

Example:
    >>> save_checkpoint("runs/a-si/model", model, info)      # model.pt + model.json
    >>> model, info = load_checkpoint("runs/a-si/model")     # or ".../model.pt"
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amtoolkit.analysis._result import to_jsonable
from amtoolkit.data._files import atomic_path
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion.objectives import OBJECTIVES
from amtoolkit.diffusion.samplers import check_score_gain
from amtoolkit.diffusion.schedules import MaterialSDE
from amtoolkit.nn.denoiser import DENOISERS, DenoiserConfig, build_denoiser

FORMAT = "amtoolkit-model"
"""Value of the ``format`` key of a model checkpoint's JSON file."""

VERSION = 1
"""Version of the checkpoint layout written by this module."""

WEIGHTS_SUFFIX = ".pt"
INFO_SUFFIX = ".json"


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed or does not match its model; names the file."""


@dataclasses.dataclass(frozen=True)
class Typical:
    """Typical systems of the training split, used as generation defaults.

    Attributes:
        n_atoms: median number of real (non-ghost) atoms per structure.
        density: median mass density of the real atoms, g/cm^3.
        composition: element symbol -> atom fraction over the whole split (sums to 1).
        property_ranges: property name -> [min, max] of its known (non-NaN) raw values.
        n_atoms_range: [min, max] real atoms per structure (None if unknown).
        density_range: [min, max] mass density, g/cm^3 (None if unknown).
        closest_pair: the smallest interatomic distance in the split, Å (None if
            unknown); `Generator.generate` flags structures with a pair much nearer.
    """

    n_atoms: int
    density: float
    composition: dict[str, float]
    property_ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    n_atoms_range: tuple[int, int] | None = None
    density_range: tuple[float, float] | None = None
    closest_pair: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Typical:
        _check_keys(data, cls, "typical")
        n_range = data.get("n_atoms_range")
        d_range = data.get("density_range")
        return cls(
            n_atoms=int(data["n_atoms"]),
            density=float(data["density"]),
            composition={str(k): float(v) for k, v in dict(data["composition"]).items()},
            property_ranges={
                str(k): (float(v[0]), float(v[1]))
                for k, v in dict(data.get("property_ranges", {})).items()
            },
            n_atoms_range=None if n_range is None else (int(n_range[0]), int(n_range[1])),
            density_range=None if d_range is None else (float(d_range[0]), float(d_range[1])),
            closest_pair=None if data.get("closest_pair") is None else float(data["closest_pair"]),
        )


@dataclasses.dataclass(frozen=True)
class SamplingDefaults:
    """Default generation settings stored with a model.

    Attributes:
        sampler: "sde" or "ode" (`amtoolkit.diffusion.SAMPLERS`), "shortcut" (shortcut
            models) or "hmc" (energy models).
        steps: number of reverse steps (model evaluations).
        guidance: classifier-free guidance weight w, or None for none.
        noise_scale: factor on the injected noise of the stochastic samplers (1 = the
            reverse SDE; a card without it means 1).
        score_gain: gamma of the factor 1 + gamma t on the position score of the
            samplers ``sde``, ``ode`` and ``shortcut`` (0 = the learned score; a card
            without it means 0): one number for every sampler, or a mapping sampler name
            -> gamma (samplers not named get 0), since each sampler has its own best gain.
    """

    sampler: str = "sde"
    steps: int = 200
    guidance: float | None = None
    noise_scale: float = 1.0
    score_gain: float | dict[str, float] = 0.0

    def __post_init__(self) -> None:
        gain_map = isinstance(self.score_gain, Mapping)
        for gain in self.score_gain.values() if gain_map else (self.score_gain,):
            check_score_gain(gain)

    def gain_for(self, sampler: str) -> float:
        """The default score gain of `sampler` (0 when the card names others only)."""
        if isinstance(self.score_gain, Mapping):
            return float(self.score_gain.get(sampler, 0.0))
        return float(self.score_gain)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SamplingDefaults:
        _check_keys(data, cls, "sampling")
        g = data.get("guidance")
        return cls(
            sampler=str(data.get("sampler", "sde")),
            steps=int(data.get("steps", 200)),
            guidance=None if g is None else float(g),
            noise_scale=float(data.get("noise_scale", 1.0)),
            score_gain=_gains(data.get("score_gain", 0.0)),
        )


def _gains(value: Any) -> float | dict[str, float]:
    """A card's ``sampling.score_gain``: a number, or a mapping sampler -> number."""
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    return float(value)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything about a trained model except its weights (the ``<stem>.json`` file).

    Attributes:
        name: model name, e.g. ``"a-si"``.
        kind: `amtoolkit.nn.DENOISERS` key (``"score"``); equals ``model.kind``.
        model: the architecture.
        sde: the diffusion process constants.
        vocabulary: element classes (ghost first).
        property_names: conditioning properties in column order (= ``model.property_names``).
        normalisation: property name -> (mean, std) of the training split (raw units).
        max_density: ghost-atom maximum number density, atoms/Å^3 (None: no ghosts).
        typical: typical sizes, densities, composition and property ranges.
        dataset: provenance of the training data (free-form JSON).
        training: training record: config, epochs, best validation loss, wall time,
            hardware, command (free-form JSON).
        sampling: default sampler settings for generation.
        objective: the training objective (`amtoolkit.diffusion.OBJECTIVES`): ``"score"``
            (the outputs are noise predictions), ``"flow"`` (velocities of the material
            ODE) or ``"shortcut"`` (noise predictions that also take the step size d;
            needs ``model.step_size_embedding``). It decides which samplers fit.
    """

    name: str
    model: DenoiserConfig
    sde: MaterialSDE
    vocabulary: ElementVocabulary
    normalisation: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    max_density: float | None = None
    typical: Typical | None = None
    dataset: dict[str, Any] = dataclasses.field(default_factory=dict)
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    sampling: SamplingDefaults = dataclasses.field(default_factory=SamplingDefaults)
    objective: str = "score"

    def __post_init__(self) -> None:
        if len(self.vocabulary) != self.model.n_classes:
            raise CheckpointError(
                f"vocabulary {self.vocabulary.symbols} has {len(self.vocabulary)} classes but "
                f"the model has n_classes = {self.model.n_classes}"
            )
        missing = [p for p in self.model.property_names if p not in self.normalisation]
        if missing:
            raise CheckpointError(f"no normalisation for conditioning properties {missing}")
        for name, (_, std) in self.normalisation.items():
            if not (math.isfinite(std) and std > 0):
                raise CheckpointError(f"normalisation std of {name!r} must be > 0, got {std}")
        if self.max_density is not None and not self.max_density > 0:
            raise CheckpointError(f"max_density must be positive or null, got {self.max_density}")
        if self.objective not in OBJECTIVES:
            raise CheckpointError(
                f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}"
            )
        if self.objective == "shortcut" and not self.model.step_size_embedding:
            raise CheckpointError("objective 'shortcut' needs model.step_size_embedding = true")

    @property
    def kind(self) -> str:
        """`DENOISERS` key of the model."""
        return self.model.kind

    @property
    def property_names(self) -> tuple[str, ...]:
        """Conditioning properties, in column order."""
        return self.model.property_names

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "sde": self.sde.to_dict(),
            "vocabulary": self.vocabulary.to_list(),
            "property_names": list(self.property_names),
            "normalisation": {k: [float(m), float(s)] for k, (m, s) in self.normalisation.items()},
            "max_density": self.max_density,
            "typical": None if self.typical is None else self.typical.to_dict(),
            "dataset": to_jsonable(self.dataset),
            "training": to_jsonable(self.training),
            "sampling": self.sampling.to_dict(),
            "objective": self.objective,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        """Inverse of `to_dict`; checks format, version and consistency.

        Raises:
            CheckpointError: wrong format or version, unknown or missing keys, a
                ``kind`` or ``property_names`` that disagrees with ``model``.
        """
        if data.get("format") != FORMAT:
            raise CheckpointError(
                f"not an amtoolkit model card: format is {data.get('format')!r}, "
                f"expected {FORMAT!r}"
            )
        if data.get("version") != VERSION:
            raise CheckpointError(
                f"unsupported checkpoint version {data.get('version')!r} "
                f"(this amtoolkit reads version {VERSION})"
            )
        known = {f.name for f in dataclasses.fields(cls)} | {
            "format",
            "version",
            "kind",
            "property_names",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"unknown keys in model card: {unknown}")
        for key in ("name", "model", "sde", "vocabulary"):
            if key not in data:
                raise CheckpointError(f"model card lacks the key {key!r}")
        try:
            model = DenoiserConfig.from_dict(data["model"])
            sde = MaterialSDE.from_dict(data["sde"])
            vocabulary = ElementVocabulary.from_list(data["vocabulary"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"invalid model card: {err}") from None
        if "kind" in data and data["kind"] != model.kind:
            raise CheckpointError(
                f"model card kind {data['kind']!r} differs from model.kind {model.kind!r}"
            )
        if "property_names" in data and tuple(data["property_names"]) != model.property_names:
            raise CheckpointError(
                f"property_names {list(data['property_names'])} differ from the model's "
                f"{list(model.property_names)}"
            )
        typical = data.get("typical")
        max_density = data.get("max_density")
        return cls(
            name=str(data["name"]),
            model=model,
            sde=sde,
            vocabulary=vocabulary,
            normalisation={
                str(k): (float(v[0]), float(v[1]))
                for k, v in dict(data.get("normalisation") or {}).items()
            },
            max_density=None if max_density is None else float(max_density),
            typical=None if typical is None else Typical.from_dict(typical),
            dataset=dict(data.get("dataset") or {}),
            training=dict(data.get("training") or {}),
            sampling=SamplingDefaults.from_dict(data.get("sampling") or {}),
            objective=str(data.get("objective", "score")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        return cls.from_dict(json.loads(text))


def checkpoint_paths(path_or_stem: str | os.PathLike) -> tuple[Path, Path]:
    """The (weights ``.pt``, card ``.json``) paths of a checkpoint given either file or the stem."""
    p = Path(path_or_stem)
    if p.suffix in (WEIGHTS_SUFFIX, INFO_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + WEIGHTS_SUFFIX), p.with_name(p.name + INFO_SUFFIX)


def save_checkpoint(
    path_or_stem: str | os.PathLike, model: nn.Module, info: ModelInfo
) -> tuple[Path, Path]:
    """Write ``<stem>.pt`` (state_dict, tensors only) and ``<stem>.json`` (`ModelInfo`).

    Both files are written atomically (temporary file + rename); the JSON is written
    last, so a card always describes complete weights. Parent directories are created.

    Args:
        path_or_stem: the stem, or either file name.
        model: the denoiser (its ``config``, if it has one, must equal ``info.model``).
        info: the model card.

    Returns:
        (weights path, card path).
    """
    weights_path, info_path = checkpoint_paths(path_or_stem)
    config = getattr(model, "config", None)
    if isinstance(config, DenoiserConfig) and config != info.model:
        raise CheckpointError("the model's config differs from info.model")
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        torch.save(state, tmp)
    text = info.to_json()
    with atomic_path(info_path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return weights_path, info_path


def read_info(path_or_stem: str | os.PathLike) -> ModelInfo:
    """Read only the model card (``<stem>.json``) of a checkpoint."""
    _, info_path = checkpoint_paths(path_or_stem)
    if not info_path.is_file():
        raise FileNotFoundError(f"model card not found: {info_path}{card_hint(path_or_stem)}")
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{info_path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{info_path}: a model card is a JSON object, got a {type(data).__name__}"
        )
    try:
        return ModelInfo.from_dict(data)
    except CheckpointError as err:
        raise CheckpointError(f"{info_path}: {err}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as err:  # a field of the wrong kind
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{info_path}: malformed model card ({type(err).__name__}: {why}); was it edited?"
        ) from None


def card_hint(path_or_stem: str | os.PathLike) -> str:
    """Where the model is, when a training run's folder or resume state was given."""
    given = Path(path_or_stem)
    resume_state = given.name in ("last", "last.pt", "last.json")
    folder = given if given.is_dir() else given.parent if resume_state else None
    if folder is None:
        return ""
    cards = sorted(p.with_suffix("") for p in folder.glob("*.json"))
    cards = [c for c in cards if c.with_suffix(".pt").is_file()]
    hint = "; a training run's model is <out_dir>/<name> (last.pt is its resume state)"
    return hint + (f": {', '.join(str(c) for c in cards)}" if cards else "")


def load_checkpoint(
    path_or_stem: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ModelInfo]:
    """Rebuild a model from its checkpoint, in eval mode on `device`.

    The weights are read with ``torch.load(weights_only=True)``: nothing but tensors is
    unpickled. The architecture comes from the JSON card (`build_denoiser`).

    Args:
        path_or_stem: the stem, or the ``.pt`` or ``.json`` file.
        device: where to put the model.

    Returns:
        (model in eval mode, its ModelInfo).

    Raises:
        FileNotFoundError: a file is missing (named).
        CheckpointError: a malformed card, unknown kind, weights that do not match it or
            that hold NaN or inf.
    """
    weights_path, _ = checkpoint_paths(path_or_stem)
    info = read_info(path_or_stem)
    if not weights_path.is_file():
        raise FileNotFoundError(f"model weights not found: {weights_path}")
    if info.kind not in DENOISERS:
        raise CheckpointError(
            f"{weights_path}: unknown model kind {info.kind!r}; known: {sorted(DENOISERS)}"
        )
    device = usable_device(device)
    state = read_tensors(weights_path, device, "model weights file")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{weights_path}: expected a state_dict, got {type(state).__name__}")
    bad = next((k for k, v in state.items() if torch.is_tensor(v) and not v.isfinite().all()), None)
    if bad is not None:
        raise CheckpointError(
            f"{weights_path}: weight {bad!r} holds NaN or inf (saved from a diverged run?)"
        )
    model = build_denoiser(info.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise CheckpointError(
            f"{weights_path}: weights do not match the model card "
            f"({_state_mismatch(model.state_dict(), state)}): are the .pt and .json of one "
            "model?"
        ) from None
    return model.to(device).eval(), info


def _state_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """What differs between a model's state_dict and a file's, in a few words: counts of
    missing, unexpected and reshaped weights, each with its first name."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    reshaped = [
        k
        for k in expected
        if k in found
        and torch.is_tensor(found[k])
        and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights the card needs are missing, e.g. {missing[0]!r}")
    if extra:
        parts.append(f"{len(extra)} in the file the card has no place for, e.g. {extra[0]!r}")
    if reshaped:
        k = reshaped[0]
        parts.append(
            f"{len(reshaped)} of another shape, e.g. {k!r} {list(found[k].shape)} in the file, "
            f"{list(expected[k].shape)} in the card"
        )
    return "; ".join(parts) or "the weights differ"


def usable_device(device: torch.device | str) -> torch.device:
    """`device` as a torch.device, if this machine has it.

    Raises:
        ValueError: a CUDA (or MPS) device on a machine without one, another device type,
            or a name torch does not know.
    """
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for but CUDA is not available")
    if device.type == "mps" and not (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device {str(device)!r} asked for but MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {str(device)!r} is not one amtoolkit runs on: use cpu or cuda")
    return device


def read_tensors(path: str | os.PathLike, device: torch.device | str, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` onto `device`, nothing but tensors unpickled.

    Raises:
        CheckpointError: the file is empty, cut short or not a torch file of tensors (named).
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        # torch's own message would suggest weights_only=False, unsafe for an unknown file
        raise CheckpointError(
            f"{path}: not a readable {what}: empty, cut short or not a file of tensors "
            f"({type(err).__name__})"
        ) from None


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    """Raise CheckpointError naming keys of `data` that are not fields of dataclass `cls`."""
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{where}: expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise CheckpointError(f"unknown keys in {where}: {unknown}")

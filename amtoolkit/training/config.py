"""Training configuration: frozen dataclasses read from and written to YAML.

A config file mirrors `TrainConfig`; nested sections are `DataConfig`, `ModelConfig`,
`SDEConfig` (= `amtoolkit.diffusion.MaterialSDE`), `OptimConfig` and `SamplingDefaults`.
Every key is optional except ``data.dataset``; an unknown key is an error that names it
(``unknown config key 'optim.learning_rate'``), as is a value of the wrong type.

Example (``configs/tiny.yaml``)::

    name: tiny-si
    data: {dataset: data/tiny-si.extxyz, batch_size: 2, val_fraction: 0.25}
    model: {hidden: 16, layers: 2}
    epochs: 3
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from amtoolkit.checkpoint import SamplingDefaults
from amtoolkit.data.dataset import grown_sizes
from amtoolkit.diffusion.forward import check_time_focus
from amtoolkit.diffusion.objectives import OBJECTIVES, sampling_method
from amtoolkit.diffusion.samplers import check_noise_scale, check_score_gain
from amtoolkit.diffusion.schedules import MaterialSDE
from amtoolkit.nn.denoiser import DenoiserConfig


class ConfigError(ValueError):
    """A training config is invalid; the message names the key (``optim.lr``) or the file."""


SDEConfig = MaterialSDE
"""The ``sde`` section: constants of the diffusion process (sigma_max_x, sigma_max_e,
t_min, t_max); see `amtoolkit.diffusion.MaterialSDE`."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: which structures to train on and how to batch them.

    Attributes:
        dataset: an amtoolkit HDF5 dataset (``.h5``), an extxyz file or any file ASE
            reads, or the name of a dataset shipped with amtoolkit (`Dataset.load`). A
            relative path is looked up next to the config file first, then in the
            current directory.
        property_names: conditioning properties (keys of the dataset's property table),
            in model column order; empty = unconditional model.
        elements: element symbols of the model's vocabulary, in class order (after the
            ghost); None = every element of the dataset, sorted by atomic number.
        max_density: ghost-atom maximum number density rho_max, atoms/Å^3 (0.09 for
            SiO2); each training structure is padded with floor(rho_max V) - n ghosts.
            None = no ghosts (fixed composition and density).
        val_fraction: fraction of the frames held out for validation.
        test_fraction: fraction held out as a test split (never used in training).
        seed: seed of the train/val/test split.
        batch_size: systems per batch (per process under DDP).
        grown_from: for a dataset grown by later samples, the number of frames it grew
            from: those keep the split they had and the later frames are split on their
            own (`Dataset.split`). Needed to fine-tune (``init_from``) a model trained on
            the first frames without putting its training frames in the test split. A
            list of increasing counts for a dataset grown more than once.
        max_frames: use only the first frames of the dataset (`Dataset.head`), as it was
            when it held that many: keeps a run reproducible after its dataset grows.
    """

    dataset: str
    property_names: tuple[str, ...] = ()
    elements: tuple[str, ...] | None = None
    max_density: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0
    batch_size: int = 8
    grown_from: int | tuple[int, ...] | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ConfigError("data.dataset must name a dataset file or a shipped dataset")
        if len(set(self.property_names)) != len(self.property_names):
            raise ConfigError(f"data.property_names has duplicates: {list(self.property_names)}")
        if self.max_density is not None and not self.max_density > 0:
            raise ConfigError(f"data.max_density must be > 0 or null, got {self.max_density}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ConfigError(
                f"data.val_fraction and data.test_fraction must lie in [0, 1), got "
                f"{self.val_fraction} and {self.test_fraction}"
            )
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
        if self.seed < 0:
            raise ConfigError(f"data.seed must be >= 0, got {self.seed}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"data.max_frames must be >= 1 or null, got {self.max_frames}")
        if self.grown_from is not None:
            try:
                sizes = grown_sizes(self.grown_from)
            except ValueError:
                sizes = ()
            steps = zip(sizes, sizes[1:], strict=False)
            if not sizes or sizes[0] < 1 or any(b <= a for a, b in steps):
                raise ConfigError(
                    "data.grown_from must be a frame count >= 1, a list of increasing "
                    f"counts (a dataset grown more than once) or null, got {self.grown_from}"
                )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section: the fields of `amtoolkit.nn.DenoiserConfig`.

    ``n_classes`` and ``property_names`` are not set here: they follow from the element
    vocabulary and ``data.property_names``. See `DenoiserConfig` for the meaning of each
    field (hidden width, EGNN layers, vector channels k, cutoff in Å, n_norm, property
    embedding width, null probability, step-size embedding, time Fourier octaves,
    `DENOISERS` kind, edge chunk size, radial basis).
    """

    hidden: int = 128
    layers: int = 4
    vector_channels: int = 8
    cutoff: float = 6.5
    n_norm: float = 40.0
    property_dim: int = 8
    null_probability: float = 0.1
    step_size_embedding: bool = False
    time_frequencies: int = 0
    kind: str = "score"
    edge_chunk_size: int = 32768
    radial_basis: int = 0

    def __post_init__(self) -> None:
        from amtoolkit.nn import DENOISERS  # the registry is complete once nn is imported

        if self.kind not in DENOISERS:
            raise ConfigError(f"unknown model.kind {self.kind!r}; known: {', '.join(DENOISERS)}")
        self.to_denoiser_config(1)  # the architecture's own checks, when the file is read

    def to_denoiser_config(
        self, n_classes: int, property_names: tuple[str, ...] = ()
    ) -> DenoiserConfig:
        """The full architecture for a vocabulary of `n_classes` and these properties."""
        try:
            return DenoiserConfig(
                n_classes=n_classes, property_names=tuple(property_names), **_asdict(self)
            )
        except ValueError as err:
            raise ConfigError(f"model.{err}") from None


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """The ``optim`` section: Adam, EMA of the weights, gradient clipping.

    Attributes:
        lr: Adam learning rate (1e-3; 5e-4 for SiO2 in AMDEN).
        betas: Adam (beta1, beta2).
        weight_decay: Adam L2 weight decay.
        ema_decay: decay of the exponential moving average of the weights, or None for
            no EMA. The effective decay warms up as min(decay, (1 + n) / (10 + n)) after
            n updates, so short runs are not dominated by the initial weights.
        grad_clip: maximum global gradient norm, or None for no clipping.
        schedule: learning-rate schedule, a key of `LR_SCHEDULES`: ``"constant"`` (lr
            throughout) or ``"cosine"`` (from lr down to ``min_lr`` along half a cosine
            over the run; the run's progress is the larger of epochs done / ``epochs``
            and training time / ``max_minutes``, measured at the start of each epoch).
        min_lr: the learning rate a cosine schedule ends at.
        warmup_epochs: epochs of linear warm-up from lr / (warmup_epochs + 1) to lr
            before the schedule (useful when ``init_from`` starts a fresh optimiser).
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    ema_decay: float | None = 0.999
    grad_clip: float | None = 1.0
    schedule: str = "constant"
    min_lr: float = 0.0
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must lie in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ConfigError(
                f"optim.ema_decay must lie in [0, 1) or be null, got {self.ema_decay}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"optim.grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown optim.schedule {self.schedule!r}; known: {', '.join(LR_SCHEDULES)}"
            )
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"optim.min_lr must lie in [0, lr = {self.lr}], got {self.min_lr}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"optim.warmup_epochs must be >= 0, got {self.warmup_epochs}")

    def learning_rate(self, epoch: int, progress: float) -> float:
        """The learning rate of 1-based `epoch`, at `progress` in [0, 1] of the run
        (measured before the epoch starts)."""
        if epoch <= self.warmup_epochs:
            return self.lr * epoch / (self.warmup_epochs + 1)
        fraction = LR_SCHEDULES[self.schedule](min(max(progress, 0.0), 1.0))
        return self.min_lr + (self.lr - self.min_lr) * fraction


LR_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda progress: 1.0,
    "cosine": lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress)),
}
"""Learning-rate schedules: progress of the run in [0, 1] -> fraction of the way from
``min_lr`` to ``lr`` (configuration is data, STYLE item 11)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Sections (`data`, `model`, `sde`, `optim`, `sampling`) may be given as their
    dataclasses or as mappings of their keys, which are checked and converted as
    `from_dict` does.

    Attributes:
        data: dataset, properties, ghosts, split and batching.
        name: model name written into the checkpoint (and the default output folder).
        model: architecture (`ModelConfig`).
        sde: diffusion process constants (`SDEConfig`).
        optim: optimiser, EMA and clipping (`OptimConfig`).
        sampling: generation defaults stored in the checkpoint (sampler, steps, guidance).
        epochs: number of passes over the training split.
        checkpoint_every: write a model checkpoint every this many epochs (the resume
            state ``last.pt`` is written after every epoch).
        out_dir: output folder; None = ``runs/<name>``.
        seed: seed of the weight initialisation, shuffling, ghosts, t and noise draws.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        threads: torch CPU threads (None = torch's default).
        t_bins: number of equal bins of t in [t_min, t_max] for the per-bin losses.
        tensorboard: also log to TensorBoard when the ``tensorboard`` package is installed.
        objective: training objective, a key of `amtoolkit.diffusion.LOSSES`: ``"score"``
            (noise prediction, AMDEN), ``"flow"`` (material ODE, flow matching) or
            ``"shortcut"`` (AMShortcut; needs ``model.step_size_embedding: true``).
        shortcut_fraction: for ``objective: shortcut``, the fraction of training
            batches that also get the self-consistency term (the others get the
            denoising loss at d = 0); 0.25 in AMShortcut.
        shortcut_score_gain: for ``objective: shortcut``, the score gain gamma of the
            jumps its self-consistency targets are built from (`shortcut_loss`): the model
            learns the jumps of the gained flow that ``sampler="shortcut"`` follows with
            the same ``score_gain``. 0 = the learned flow itself.
        t_focus: (low, high): draw half the training times (``t_focus_fraction``) from
            U[low, high] instead of U[t_min, t_max], for more training where the network
            is weakest (`amtoolkit.diffusion.sample_time`); validation keeps uniform t, so
            its losses stay comparable with runs without it. None = uniform.
        t_focus_fraction: probability that a training time is drawn from ``t_focus``.
        max_minutes: stop after the first epoch that ends past this much training time
            (minutes, summed over resumed runs) and export the best weights, as if
            `epochs` had been reached; None = no time limit.
        init_from: a checkpoint (stem, ``.pt`` or ``.json``) or shipped model name whose
            weights start the run (fine-tuning, or more training with a new schedule);
            its architecture, elements and property normalisation must match this
            config and dataset. The optimiser starts afresh. None = random weights.
    """

    data: DataConfig
    name: str = "model"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    sde: MaterialSDE = dataclasses.field(default_factory=MaterialSDE)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    sampling: SamplingDefaults = dataclasses.field(default_factory=SamplingDefaults)
    epochs: int = 100
    checkpoint_every: int = 10
    out_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    t_bins: int = 5
    tensorboard: bool = True
    objective: str = "score"
    shortcut_fraction: float = 0.25
    shortcut_score_gain: float = 0.0
    t_focus: tuple[float, float] | None = None
    t_focus_fraction: float = 0.5
    max_minutes: float | None = None
    init_from: str | None = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(TrainConfig)
        for field in dataclasses.fields(self):  # a section given as a mapping, as from_dict
            section, value = hints[field.name], getattr(self, field.name)
            if not dataclasses.is_dataclass(section) or isinstance(value, section):
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{field.name} must be a {section.__name__} or a mapping of its keys, got "
                    f"{type(value).__name__}"
                )
            object.__setattr__(self, field.name, _build(section, value, field.name + "."))
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"name must be a non-empty file stem without '/', got {self.name!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.t_bins < 1:
            raise ConfigError(f"t_bins must be >= 1, got {self.t_bins}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or null, got {self.threads}")
        device = self.device
        if not (device in ("auto", "cpu", "cuda") or _is_cuda_index(device)):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        if self.sampling.steps < 1:
            raise ConfigError(f"sampling.steps must be >= 1, got {self.sampling.steps}")
        try:
            check_noise_scale(self.sampling.noise_scale)
        except ValueError as err:
            raise ConfigError(f"sampling.{err}") from None
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}"
            )
        try:  # the default ("sde") may not suit the objective: generation then uses its own
            if self.sampling.sampler != SamplingDefaults.sampler:
                sampling_method(self.objective, self.sampling.sampler, self.model.kind)
        except ValueError as err:
            raise ConfigError(f"sampling.sampler: {err}") from None
        if not 0.0 <= self.shortcut_fraction <= 1.0:
            raise ConfigError(f"shortcut_fraction must lie in [0, 1], got {self.shortcut_fraction}")
        try:
            check_score_gain(self.shortcut_score_gain)
        except ValueError as err:
            raise ConfigError(f"shortcut_{err}") from None
        if self.shortcut_score_gain and self.objective != "shortcut":
            raise ConfigError(
                f"shortcut_score_gain is for objective 'shortcut', not {self.objective!r}"
            )
        if self.t_focus is not None:
            try:
                check_time_focus(self.t_focus, self.t_focus_fraction, self.sde)
            except ValueError as err:
                raise ConfigError(f"t_focus: {err}") from None
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be > 0 or null, got {self.max_minutes}")
        if self.objective == "shortcut" and not self.model.step_size_embedding:
            raise ConfigError(
                "objective 'shortcut' needs model.step_size_embedding: true (the model "
                "must read the step size d)"
            )

    @property
    def output_dir(self) -> Path:
        """The output folder (``out_dir``, or ``runs/<name>``)."""
        return Path(self.out_dir) if self.out_dir is not None else Path("runs") / self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready dict (tuples as lists)."""
        return _asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a nested dict; unknown keys and wrong types raise ConfigError."""
        return _build(cls, data, "")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with top-level fields replaced, checked as a config file is (types and
        values; a section may be given as its dataclass or as a mapping)."""
        data = self.to_dict()
        for key, value in changes.items():
            if key not in data:
                raise ConfigError(f"unknown config key {key!r} (known: {', '.join(data)})")
            data[key] = _asdict(value)
        return TrainConfig.from_dict(data)


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a YAML (or JSON) training config.

    A relative ``data.dataset`` that exists next to the config file is made absolute,
    so a config can sit beside its data and be used from any directory.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not YAML, not a mapping, unknown keys, wrong types or bad values.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"config {p} is a folder; give its YAML file")
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).strip().splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: a config must be a mapping of keys, got {type(data).__name__}")
    try:
        config = TrainConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{p}: {err}") from None
    beside = p.parent / config.data.dataset
    if not Path(config.data.dataset).is_absolute() and beside.exists():
        data_section = dataclasses.replace(config.data, dataset=str(beside.resolve()))
        config = config.replace(data=data_section)
    start = config.init_from
    if start is not None and not Path(start).is_absolute():  # looked up as the dataset is
        stem = p.parent / start
        if any(stem.with_name(stem.name + end).exists() for end in ("", ".pt", ".json")):
            config = config.replace(init_from=str(stem.resolve()))
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the
    last one silently, so a second ``data:`` section would replace the first)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    """Write `config` as YAML (readable back with `load_config`)."""
    from amtoolkit.data._files import atomic_path

    target = Path(path)
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


# --------------------------------------------------------------------------- helpers


def _is_cuda_index(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()


def _asdict(obj: Any) -> Any:
    """Dataclass -> nested dict with tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _asdict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_asdict(v) for v in obj]
    return obj


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate dataclass `cls` from `data`, checking keys and value types."""
    where = prefix.rstrip(".") or "config"
    if data is None and prefix:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r} (known in {where}: {', '.join(fields)})"
            )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], prefix + name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing config key {prefix + name!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


_KIND_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    tuple: "a list",
    dict: "a mapping",
}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the type `hint` (int, float, bool, str, tuples, Optional,
    nested dataclasses) and convert where lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"config key {key!r} must not be null")
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], key)
        for alternative in inner:  # the first type that takes the value
            try:
                return _coerce(value, alternative, key)
            except ConfigError:
                pass
        kinds = " or ".join(_KIND_WORDS.get(typing.get_origin(a) or a, str(a)) for a in inner)
        raise ConfigError(f"config key {key!r} must be {kinds}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    if value is None:
        raise ConfigError(f"config key {key!r} must not be null")
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"config key {key!r} must have {len(args)} entries, got {value!r}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in pairs)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key {key!r}: unsupported type {hint}")  # pragma: no cover

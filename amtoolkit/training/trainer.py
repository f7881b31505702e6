"""The training loop of the score denoiser: epochs, EMA, validation, checkpoints, resume, DDP.

Outputs of a run (only rank 0 writes), in ``config.output_dir``:

- ``config.yaml``: the resolved config;
- ``metrics.csv``: one row per epoch (losses, losses per t bin, learning rate, mean
  gradient norm, epoch time);
- ``last.pt``: the resume state (weights, EMA, optimiser, epoch, best weights, history,
  RNG state; tensors and plain values only, readable with ``weights_only=True``);
- ``checkpoints/epoch_NNNN.{pt,json}``: model checkpoints (EMA weights if EMA is on) every
  ``checkpoint_every`` epochs and at the last epoch;
- ``<name>.{pt,json}``: the exported model, holding the best-by-validation EMA (or raw)
  weights (`amtoolkit.checkpoint`);
- ``tensorboard/``: TensorBoard scalars, if the ``tensorboard`` package is installed.

References:
    AMDEN (training of the material score model; docs/diffusion.md, *Training loss*);
    Kingma & Ba, ICLR 2015 (Adam).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from amtoolkit.analysis._result import Result
from amtoolkit.checkpoint import ModelInfo, read_tensors, save_checkpoint
from amtoolkit.data._files import atomic_path
from amtoolkit.data.dataset import grown_sizes, open_dataset
from amtoolkit.diffusion.forward import sample_time
from amtoolkit.diffusion.loss import denoising_loss
from amtoolkit.diffusion.objectives import LOSSES
from amtoolkit.held_out import frame_key, grown_from, held_out_part
from amtoolkit.nn import build_denoiser, with_radial_basis, with_step_size_embedding
from amtoolkit.training.config import ConfigError, TrainConfig, save_config
from amtoolkit.training.data import (
    TrainingData,
    epoch_batches,
    load_training_data,
    make_batch,
    run_frames,
    train_ghost_key,
    val_batches,
    val_ghost_key,
)
from amtoolkit.training.distributed import (
    DistributedContext,
    all_reduce_sum,
    barrier,
    setup_distributed,
    teardown_distributed,
)
from amtoolkit.training.ema import ema_init, ema_update
from amtoolkit.training.plots import LOSS_FIGURE, plot_metrics

STATE_FORMAT = "amtoolkit-trainer"
STATE_VERSION = 1
STATE_FILE = "last.pt"
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"

RESUMABLE_CHANGES = (
    "epochs",
    "checkpoint_every",
    "device",
    "threads",
    "tensorboard",
    "out_dir",
    "max_minutes",
)
"""Top-level config keys that may differ between a run and its resumption."""

_TRAIN_NOISE, _VAL_NOISE = 4, 5  # stream tags of the keyed torch generators
_SHORTCUT_BATCHES = 6  # stream tag of the choice of shortcut batches


@dataclasses.dataclass(frozen=True)
class TrainResult(Result):
    """Summary of a finished run.

    Attributes:
        out_dir: the output folder.
        checkpoint: stem of the exported model (``<stem>.pt`` + ``<stem>.json``).
        epochs: epochs completed.
        best_epoch: epoch whose weights were exported (1-based).
        best_loss: its validation loss (training loss when there is no validation split).
        selected_by: ``"val_loss"`` or ``"train_loss"``.
        weights: ``"ema"`` or ``"raw"``.
        wall_time_s: training time over all sessions of the run, s.
        history: the metrics rows (as in ``metrics.csv``).
        trained: whether this call trained any epoch (False when a resume only wrote the
            export an interrupt had left out).
    """

    out_dir: str
    checkpoint: str
    epochs: int
    best_epoch: int
    best_loss: float
    selected_by: str
    weights: str
    wall_time_s: float
    history: list[dict[str, float]]
    trained: bool = True


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA (device `local_rank`) if available, else CPU; otherwise as named.

    Raises:
        ConfigError: CUDA asked for but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for but CUDA is not available")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


def t_bin_edges(t_min: float, t_max: float, n_bins: int) -> np.ndarray:
    """Edges of `n_bins` equal bins of t over [t_min, t_max]. [n_bins + 1]"""
    return np.linspace(t_min, t_max, n_bins + 1)


def t_bin_names(prefix: str, edges: np.ndarray) -> list[str]:
    """Metric column names of the t bins, e.g. ``val_loss_t0.01-0.21``."""
    return [f"{prefix}_t{a:.2f}-{b:.2f}" for a, b in zip(edges[:-1], edges[1:], strict=True)]


def binned_loss_sums(
    per_system: torch.Tensor, t: torch.Tensor, edges: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums and counts of per-system losses in bins of t (t_max falls in the last bin).

    Args:
        per_system: loss of each system. [S]
        t: diffusion time of each system. [S]
        edges: bin edges, increasing. [n_bins + 1]

    Returns:
        (sum of losses per bin [n_bins], number of systems per bin [n_bins]).
    """
    n_bins = edges.numel() - 1
    index = (torch.bucketize(t.to(edges.dtype), edges[1:-1], right=True)).clamp(0, n_bins - 1)
    sums = torch.zeros(n_bins, dtype=torch.float64, device=t.device)
    sums.index_add_(0, index, per_system.detach().to(torch.float64))
    counts = torch.bincount(index, minlength=n_bins).to(torch.float64)
    return sums, counts


class Trainer:
    """Holds the state of a training run: model, EMA, optimiser, epoch, best weights.

    ``Trainer(config).fit()`` runs the whole schedule; `train` does the same in one
    call. With ``resume=True`` the state is read from ``<out_dir>/last.pt`` and training
    continues up to ``config.epochs``.

    Args:
        config: the run.
        resume: continue the run in ``config.output_dir``.
        overwrite: start afresh even if the output folder holds a run.
        progress: show a progress bar (rank 0 only).
        log: receives one line per epoch (rank 0 only); None = silent.
        command: the command line recorded in the checkpoint.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        command: str | None = None,
    ) -> None:
        self.config = config
        self.replaces_run = overwrite and not resume
        self.progress = progress
        self.log = log
        self.command = command or "amtoolkit.training.train(config)"
        self.out_dir = config.output_dir
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ConfigError(f"out_dir {self.out_dir} is a file, not a folder")
        state_path = self.out_dir / STATE_FILE
        if resume and not state_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {state_path} not found")
        if not resume and not overwrite and state_path.is_file():
            raise ConfigError(
                f"{self.out_dir} already holds a run ({STATE_FILE}); resume it or choose "
                "another out_dir (or overwrite)"
            )
        wanted = resolve_device(config.device)  # fails early if CUDA is missing
        self.context: DistributedContext = setup_distributed(wanted.type)
        try:
            self.device = (
                torch.device(f"cuda:{self.context.local_rank}")
                if wanted.type == "cuda" and self.context.enabled and config.device != "cpu"
                else wanted
            )
            if config.threads is not None:
                torch.set_num_threads(config.threads)
            self.data: TrainingData = load_training_data(config.data)
            self.data_fingerprint = data_fingerprint(self.data)  # kept in every last.pt
            self.model_config = config.model.to_denoiser_config(
                len(self.data.vocabulary), self.data.property_names
            )
            torch.manual_seed(config.seed)
            self.model: nn.Module = build_denoiser(self.model_config).to(self.device)
            self.optimizer = torch.optim.Adam(
                self.model.parameters(),
                lr=config.optim.lr,
                betas=config.optim.betas,
                weight_decay=config.optim.weight_decay,
            )
            # the training stages of the model this run starts from (init_from)
            self.earlier_stages: list[dict[str, Any]] = []
            if config.init_from is not None and not resume:
                self.model.load_state_dict(self._initial_weights(config.init_from))
            self.ema = ema_init(self.model) if config.optim.ema_decay is not None else None
            self.epoch = 0
            self.n_updates = 0
            self.wall_time_s = 0.0
            self.history: list[dict[str, float]] = []
            self.best_epoch = 0
            self.best_loss = math.inf
            self.best_state: dict[str, torch.Tensor] | None = None
            self.world_sizes = [self.context.world_size]
            self.finished = False  # resumed after its last epoch, for the missing export
            if resume:
                self.load_state_dict(read_tensors(state_path, self.device, "resume state"))
                self._check_resume_has_work(state_path)
                if self.log is not None and self.context.is_main and not self.finished:
                    self.log(f"resuming {self.out_dir} after epoch {self.epoch} of {config.epochs}")
            self.network: nn.Module = self.model
            if self.context.enabled:
                # zero-size parameters (e.g. the property embedding of an unconditional
                # model) never receive gradients; DDP must then look for unused ones
                unused = any(p.numel() == 0 for p in self.model.parameters())
                self.network = nn.parallel.DistributedDataParallel(
                    self.model,
                    device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    find_unused_parameters=unused,
                )
            self._eval_model = build_denoiser(self.model_config).to(self.device).eval()
            sde = config.sde
            self._edges = t_bin_edges(sde.t_min, sde.t_max, config.t_bins)
            self._edges_t = torch.as_tensor(self._edges, dtype=torch.float64, device=self.device)
        except BaseException:
            teardown_distributed(self.context)
            raise

    def _check_resume_has_work(self, state_path: Path) -> None:
        """On resume: refuse a run with nothing left to do, unless it finished training
        but its export (``<name>.pt`` / ``.json``) is missing or older than its state (an
        interrupt between the two): then `fit` only writes the export."""
        config = self.config
        limit = config.max_minutes
        if self.epoch >= config.epochs:
            reason = (
                f"has trained {self.epoch} epochs and epochs is {config.epochs}; give more "
                "epochs (--epochs) to continue it"
            )
        elif limit is not None and self.wall_time_s >= 60.0 * limit:
            reason = (
                f"has trained {self.wall_time_s / 60.0:.3g} minutes and max_minutes is "
                f"{limit:g}; raise max_minutes in the config to continue it"
            )
        else:
            return
        stem = self.out_dir / config.name
        exports = [stem.with_suffix(".pt"), stem.with_suffix(".json")]
        written = state_path.stat().st_mtime
        if all(p.is_file() and p.stat().st_mtime >= written for p in exports):
            raise ConfigError(f"nothing to do: the run in {self.out_dir} {reason}")
        self.finished = True
        if self.log is not None and self.context.is_main:
            self.log(
                f"the run in {self.out_dir} finished training but its export is missing: "
                f"writing {stem.name}.pt and .json from its best weights"
            )

    # ------------------------------------------------------------------ running

    def fit(self) -> TrainResult:
        """Train up to ``config.epochs``, then export the best weights; returns a summary."""
        cfg = self.config
        writer = None
        try:
            if self.context.is_main:
                if self.replaces_run:
                    self._clear_previous_run()
                self.out_dir.mkdir(parents=True, exist_ok=True)
                save_config(cfg, self.out_dir / CONFIG_FILE)
                writer = self._tensorboard()
            while self.epoch < cfg.epochs and not self.finished:
                self._set_learning_rate()
                start = time.perf_counter()
                row: dict[str, float] = {"epoch": self.epoch + 1}  # an int, in CSV and JSON
                row.update(self.train_epoch(self.epoch + 1))
                row.update(self.validate())
                elapsed = time.perf_counter() - start
                row["time_s"] = elapsed
                self.epoch += 1
                self.wall_time_s += elapsed
                self.history.append(row)
                self._update_best(row)
                stop = self.out_of_time()  # on every process (a collective under DDP)
                written = time.perf_counter()
                if self.context.is_main:
                    self._write_epoch_outputs(row, writer, last=stop or self.epoch == cfg.epochs)
                barrier(self.context)
                # the outputs (metrics, checkpoints) count towards max_minutes from the
                # next epoch on: a run of many short epochs spent half its time on them
                self.wall_time_s += time.perf_counter() - written
                if stop:
                    break
            stem = self.out_dir / cfg.name
            if self.context.is_main:
                save_checkpoint(stem, self.model_for(self.best_state), self.model_info())
                if self.history:
                    plot_metrics(self.history, self.out_dir / LOSS_FIGURE)
            barrier(self.context)
            return TrainResult(
                out_dir=str(self.out_dir),
                checkpoint=str(stem),
                epochs=self.epoch,
                best_epoch=self.best_epoch,
                best_loss=self.best_loss,
                selected_by=self.selected_by,
                weights=self.weights_kind,
                wall_time_s=self.wall_time_s,
                history=list(self.history),
                trained=not self.finished,
            )
        finally:
            if writer is not None:
                writer.close()
            teardown_distributed(self.context)

    def _clear_previous_run(self) -> None:
        """Remove what an earlier run in `out_dir` wrote (``--overwrite``), so that none of
        its periodic checkpoints or metrics pass for this run's."""
        for folder in (CHECKPOINT_DIR, TENSORBOARD_DIR):
            shutil.rmtree(self.out_dir / folder, ignore_errors=True)
        for name in (STATE_FILE, METRICS_FILE):
            (self.out_dir / name).unlink(missing_ok=True)

    def run_fraction(self) -> float:
        """How far the run is, in [0, 1]: the larger of epochs done / ``epochs`` and
        training time / ``max_minutes`` (averaged over processes under DDP)."""
        cfg = self.config
        done = self.epoch / cfg.epochs
        if cfg.max_minutes is not None:
            done = max(done, self.wall_time_s / (60.0 * cfg.max_minutes))
        mean = torch.tensor([done], dtype=torch.float64, device=self.device)
        return min(1.0, float(all_reduce_sum(mean, self.context)[0]) / self.context.world_size)

    def _set_learning_rate(self) -> None:
        lr = self.config.optim.learning_rate(self.epoch + 1, self.run_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def out_of_time(self) -> bool:
        """True once the training time has passed ``max_minutes`` (the same answer on every
        process under DDP: any process past the limit stops all)."""
        limit = self.config.max_minutes
        if limit is None:
            return False
        flag = torch.tensor(
            [float(self.wall_time_s >= 60.0 * limit)], dtype=torch.float64, device=self.device
        )
        return bool(all_reduce_sum(flag, self.context)[0] > 0)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this process's share of the training split (1-based `epoch`).

        Returns:
            ``train_loss`` (atom-weighted over all processes), per-t-bin losses, ``lr``
            and the mean pre-clipping gradient norm ``grad_norm``.
        """
        cfg, ctx = self.config, self.context
        self.model.train()
        batches = epoch_batches(
            len(self.data.train), cfg.data.batch_size, cfg.seed, epoch, ctx.rank, ctx.world_size
        )
        generator = self._generator(_TRAIN_NOISE, epoch, ctx.rank)
        ghost_key = train_ghost_key(cfg.seed, epoch)
        shortcut = iter(self.objective_batches(epoch, len(batches)))
        totals = self._zero_totals()
        grad_norms = torch.zeros(2, dtype=torch.float64, device=self.device)
        bar = self._bar(len(batches), f"epoch {epoch}/{cfg.epochs}")
        for indices in batches:
            batch = make_batch(
                self.data.train, indices, self.data, cfg.data.max_density, ghost_key
            ).to(self.device)
            loss_fn = self.objective_loss if next(shortcut) else denoising_loss
            t = None
            if cfg.t_focus is not None:
                t = sample_time(
                    batch.n_systems,
                    cfg.sde,
                    generator,
                    dtype=batch.positions.dtype,
                    device=batch.positions.device,
                    focus=cfg.t_focus,
                    focus_fraction=cfg.t_focus_fraction,
                )
            loss, per_system, t = loss_fn(
                self._with_generator(self.network, generator), batch, cfg.sde, generator, t=t
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss is {loss.item()} at epoch {epoch}; lower optim.lr or set "
                    "optim.grad_clip"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else math.inf
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            if self.ema is not None:
                ema_update(self.ema, self.model, cfg.optim.ema_decay, self.n_updates)
            self.n_updates += 1
            grad_norms += torch.stack([norm.detach().to(torch.float64), norm.new_ones(()).double()])
            self._accumulate(totals, per_system, t, batch)
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                bar.update(1)
        if bar is not None:
            bar.close()
        grad_norms = all_reduce_sum(grad_norms, ctx)
        out = self._summarise(totals, "train_loss")
        out["lr"] = float(self.optimizer.param_groups[0]["lr"])
        out["grad_norm"] = float(grad_norms[0] / grad_norms[1].clamp_min(1))
        return out

    def objective_loss(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """The loss of ``config.objective`` (`amtoolkit.diffusion.LOSSES`), with the
        shortcut objective's score gain (``shortcut_score_gain``) when it has one."""
        cfg = self.config
        if cfg.shortcut_score_gain:  # TrainConfig allows it with objective 'shortcut' only
            kwargs["score_gain"] = cfg.shortcut_score_gain
        return LOSSES[cfg.objective](*args, **kwargs)

    def objective_batches(self, epoch: int, n_batches: int) -> list[bool]:
        """Which of an epoch's batches get the objective's loss (the others get the
        denoising loss at d = 0): all, except for ``objective: shortcut``
        (`shortcut_batches` with ``shortcut_fraction``)."""
        cfg = self.config
        if cfg.objective != "shortcut":
            return [True] * n_batches
        return shortcut_batches(cfg.seed, epoch, n_batches, cfg.shortcut_fraction)

    def validate(self) -> dict[str, float]:
        """Validation loss of the selected weights (EMA if on): `evaluate` on the
        validation split; ``val_loss`` columns are NaN when there is no validation split."""
        return self.evaluate(self.data.val, prefix="val_loss")

    @torch.no_grad()
    def evaluate(
        self,
        structures: list,
        *,
        prefix: str = "loss",
        state: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, float]:
        """Loss of `structures` with fixed t and noise (comparable between epochs).

        The loss is that of ``config.objective`` (`amtoolkit.diffusion.LOSSES`; for
        ``shortcut`` on every batch, the self-consistency term included).

        Batch k (of ``data.batch_size`` structures, in order) draws t and noise from a
        generator keyed by (seed, k) and its ghosts from keys (seed, i); properties are
        not nulled at random (eval mode). Under DDP the batches are shared out and every
        process must call this.

        Args:
            structures: the structures (e.g. ``trainer.data.val``).
            prefix: name of the loss column (and prefix of the t-bin columns).
            state: weights to evaluate; None = the selected ones (EMA if on, else raw).

        Returns:
            ``{prefix: atom-weighted loss, "<prefix>_t<a>-<b>": loss per t bin}``.
        """
        cfg, ctx = self.config, self.context
        if state is None and self.ema is not None:
            state = self.ema
        model = self.model_for(state)
        model.eval()
        totals = self._zero_totals()
        ghost_key = val_ghost_key(cfg.seed)
        for k, indices in val_batches(
            len(structures), cfg.data.batch_size, ctx.rank, ctx.world_size
        ):
            generator = self._generator(_VAL_NOISE, k)
            batch = make_batch(structures, indices, self.data, cfg.data.max_density, ghost_key).to(
                self.device
            )
            _, per_system, t = self.objective_loss(
                self._with_generator(model, generator), batch, cfg.sde, generator
            )
            self._accumulate(totals, per_system, t, batch)
        self.model.train()
        return self._summarise(totals, prefix)

    # ------------------------------------------------------------------ state

    @property
    def weights_kind(self) -> str:
        return "ema" if self.ema is not None else "raw"

    @property
    def selected_by(self) -> str:
        return "val_loss" if self.data.val else "train_loss"

    def selected_state(self) -> dict[str, torch.Tensor]:
        """The weights validated and exported: the EMA if on, else the raw weights."""
        return self.ema if self.ema is not None else self.model.state_dict()

    def model_for(self, state: dict[str, torch.Tensor] | None) -> nn.Module:
        """A model holding `state` (a second module, not the one being trained); the
        trained model itself for None."""
        if state is None:
            return self.model
        self._eval_model.load_state_dict(state)
        return self._eval_model

    def state_dict(self) -> dict[str, Any]:
        """The resume state: tensors, numbers, strings, lists and dicts only."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "vocabulary": self.data.vocabulary.to_list(),
            "normalisation": {k: list(v) for k, v in self.data.normalisation.items()},
            "data": self.data_fingerprint,
            "epoch": self.epoch,
            "n_updates": self.n_updates,
            "wall_time_s": self.wall_time_s,
            "model": _cpu(self.model.state_dict()),
            "ema": None if self.ema is None else _cpu(self.ema),
            "optimizer": self.optimizer.state_dict(),
            "best": {
                "epoch": self.best_epoch,
                "loss": self.best_loss,
                "state": None if self.best_state is None else _cpu(self.best_state),
            },
            "history": [dict(row) for row in self.history],
            "world_sizes": list(self.world_sizes),
            "earlier_stages": json.dumps(self.earlier_stages),
            "rng": {"torch": torch.get_rng_state()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` (from ``last.pt``), checking that it is the same run.

        Raises:
            ConfigError: a different format, vocabulary or config (other than the keys
                in `RESUMABLE_CHANGES`), naming the differing keys.
        """
        if not isinstance(state, Mapping) or (
            state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION
        ):
            raise ConfigError(f"{self.out_dir / STATE_FILE} is not an amtoolkit trainer state")
        differing = _config_differences(_with_defaults(state["config"]), self.config.to_dict())
        if differing:
            raise ConfigError(
                f"cannot resume: the config differs from the run in {self.out_dir} in "
                f"{', '.join(differing)} (only {', '.join(RESUMABLE_CHANGES)} may change)"
            )
        if state["vocabulary"] != self.data.vocabulary.to_list():
            raise ConfigError(
                f"cannot resume: the dataset's elements {self.data.vocabulary.to_list()} "
                f"differ from the run's {state['vocabulary']}"
            )
        saved, current = state.get("data"), self.data_fingerprint
        if saved is not None and saved != current:  # states before the fingerprint: unchecked
            raise ConfigError(
                f"cannot resume: the training data differ from the run in {self.out_dir} "
                f"({saved['n_train']} training / {saved['n_val']} validation frames then, "
                f"{current['n_train']} / {current['n_val']} now, or their content changed); "
                "the dataset file has changed: start a new run (another out_dir, or --overwrite)"
            )
        if "normalisation" in state:  # an init_from run keeps its start model's
            self._set_normalisation({k: _mean_std(v) for k, v in state["normalisation"].items()})
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema = {k: v.to(self.device) for k, v in state["ema"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.n_updates = int(state["n_updates"])
        self.wall_time_s = float(state["wall_time_s"])
        best = state["best"]
        self.best_epoch = int(best["epoch"])
        self.best_loss = float(best["loss"])
        self.best_state = (
            None
            if best["state"] is None
            else {k: v.to(self.device) for k, v in best["state"].items()}
        )
        self.history = [_metrics_row(row) for row in state["history"]]
        torch.set_rng_state(state["rng"]["torch"].cpu())
        self.earlier_stages = json.loads(state.get("earlier_stages", "[]"))
        before = [int(n) for n in state.get("world_sizes", [])]  # older states: unknown
        now = self.context.world_size
        if before and before[-1] != now and self.context.is_main:
            batch = self.config.data.batch_size
            warnings.warn(
                f"resuming with {now} process(es) a run that trained with {before[-1]}: the "
                f"structures per optimiser step change from {batch * before[-1]} to "
                f"{batch * now}, so it will not repeat an uninterrupted run",
                UserWarning,
                stacklevel=2,
            )
        self.world_sizes = before if before and before[-1] == now else [*before, now]

    def model_info(self, epoch: int | None = None) -> ModelInfo:
        """The model card of the exported (or, for `epoch`, a periodic) checkpoint."""
        cfg = self.config
        training = {
            "config": cfg.to_dict(),
            "epochs": self.epoch,
            "best_epoch": self.best_epoch,
            "best_loss": _finite_or_none(self.best_loss),
            "selected_by": self.selected_by,
            "weights": self.weights_kind,
            "weights_epoch": self.best_epoch if epoch is None else epoch,
            "wall_time_s": self.wall_time_s,
            "hardware": _hardware(self.device, self.world_sizes),
            "command": self.command,
            "final": self.history[-1] if self.history else None,
            "earlier_stages": list(self.earlier_stages),
        }
        return ModelInfo(
            name=cfg.name,
            model=self.model_config,
            sde=cfg.sde,
            vocabulary=self.data.vocabulary,
            normalisation=dict(self.data.normalisation),
            max_density=cfg.data.max_density,
            typical=self.data.typical,
            dataset=self.data.provenance,
            training=_jsonable_floats(training),
            sampling=cfg.sampling,
            objective=cfg.objective,
        )

    # ------------------------------------------------------------------ internals

    def _initial_weights(self, source: str) -> dict[str, torch.Tensor]:
        """The weights of checkpoint or shipped model `source`, checked against this run."""
        from amtoolkit.checkpoint import load_checkpoint
        from amtoolkit.pretrained import resolve

        try:
            stem = resolve(source)
        except ValueError as err:
            raise ConfigError(f"init_from: {err}") from None
        model, info = load_checkpoint(stem, device=self.device)
        where = f"init_from {source!r}"
        theirs, ours = dataclasses.asdict(info.model), dataclasses.asdict(self.model_config)
        keys = sorted(k for k in ours if theirs.get(k) != ours[k])
        widen = {  # what the start model lacks and gains here, starting as that model
            "radial_basis": theirs.get("radial_basis") == 0,
            "step_size_embedding": not theirs.get("step_size_embedding"),
        }
        fixed = [k for k in keys if not widen.get(k)]
        if fixed:
            raise ConfigError(f"{where}: its architecture differs in {', '.join(fixed)}")
        if info.vocabulary != self.data.vocabulary:
            raise ConfigError(
                f"{where}: its elements {info.vocabulary.to_list()} differ from the "
                f"dataset's {self.data.vocabulary.to_list()}"
            )
        self._adopt_normalisation(where, info.normalisation)
        self._check_test_split_unseen(where, info.dataset)
        self.earlier_stages = training_stages(info)
        state = model.state_dict()
        if "radial_basis" in keys:
            state = with_radial_basis(state, ours["radial_basis"])
        if "step_size_embedding" in keys:
            state = with_step_size_embedding(state, self.model_config)
        if keys and self.log is not None:
            self.log(f"{where}: widened for {' and '.join(keys)}; it starts as that model")
        return state

    def _adopt_normalisation(self, where: str, theirs: Mapping[str, Any]) -> None:
        """Normalise properties as the ``init_from`` model did (its property embeddings
        learned those inputs), not by this run's training split, which differs when the
        data grew or changed."""
        missing = [name for name in self.data.normalisation if name not in theirs]
        if missing:
            raise ConfigError(f"{where}: it has no normalisation of {', '.join(missing)}")
        adopted = {name: _mean_std(theirs[name]) for name in self.data.normalisation}
        changed = [name for name in adopted if adopted[name] != self.data.normalisation[name]]
        if changed and self.log is not None:
            values = "; ".join(
                f"{n}: mean {adopted[n][0]:.6g}, std {adopted[n][1]:.6g}" for n in changed
            )
            self.log(
                f"{where}: normalising {', '.join(changed)} as that model did ({values}), "
                "not by this training split"
            )
        self._set_normalisation(adopted)

    def _set_normalisation(self, normalisation: Mapping[str, tuple[float, float]]) -> None:
        self.data = dataclasses.replace(self.data, normalisation=dict(normalisation))

    def _check_test_split_unseen(self, where: str, card: dict[str, Any]) -> None:
        """ConfigError when this run's test split holds frames that the ``init_from``
        model trained or validated on (its card's data record is `card`): the test split
        is the reference of the benchmarks and must stay unseen."""
        data, test = self.config.data, self.data.test
        if not test:
            return
        dataset = open_dataset(data.dataset)
        unseen = {frame_key(a) for a in held_out_part(data.dataset, card, dataset=dataset).frames}
        leaked = sum(frame_key(a) not in unseen for a in test)
        if not leaked:
            return
        grown = grown_from(run_frames(data, dataset), card)
        split = card.get("split") or {}
        wanted = (*grown_sizes(split.get("grown_from")), grown)
        if grown is not None and grown_sizes(data.grown_from) != wanted:
            value = str(grown) if len(wanted) == 1 else "[" + ", ".join(map(str, wanted)) + "]"
            fix = f"it trained on the first {grown} frames: set data.grown_from: {value}"
        else:
            keys = ("val", "test", "seed") + (("grown_from",) if split.get("grown_from") else ())
            fix = "use its split (" + ", ".join(f"{k} {split.get(k)}" for k in keys) + ")"
        raise ConfigError(
            f"{where}: {leaked} of this run's {len(test)} test frames were in its training or "
            f"validation data; {fix}"
        )

    def _update_best(self, row: dict[str, float]) -> None:
        score = row["val_loss"] if self.data.val else row["train_loss"]
        if score < self.best_loss:
            self.best_loss = score
            self.best_epoch = self.epoch
            self.best_state = {k: v.detach().clone() for k, v in self.selected_state().items()}

    def _write_epoch_outputs(self, row: dict[str, float], writer: Any, last: bool) -> None:
        """Metrics, resume state and (every ``checkpoint_every`` epochs and at the `last`
        epoch of the run, also one stopped by ``max_minutes``) a checkpoint."""
        cfg = self.config
        write_metrics(self.out_dir / METRICS_FILE, self.history)
        with atomic_path(self.out_dir / STATE_FILE) as tmp:
            torch.save(self.state_dict(), tmp)
        if self.epoch % cfg.checkpoint_every == 0 or last:
            stem = self.out_dir / CHECKPOINT_DIR / f"epoch_{self.epoch:04d}"
            save_checkpoint(
                stem, self.model_for(self.selected_state()), self.model_info(self.epoch)
            )
        if writer is not None:
            for key, value in row.items():
                if key != "epoch" and math.isfinite(value):
                    writer.add_scalar(key, value, self.epoch)
        if self.log is not None:
            val = row["val_loss"]
            self.log(
                f"epoch {self.epoch}/{cfg.epochs}: train {row['train_loss']:.4f}"
                + (f", val {val:.4f}" if math.isfinite(val) else "")
                + f" ({row['time_s']:.1f} s)"
            )

    def _zero_totals(self) -> torch.Tensor:
        # [loss x atoms, atoms, bin sums..., bin counts...]
        return torch.zeros(2 + 2 * self.config.t_bins, dtype=torch.float64, device=self.device)

    def _accumulate(
        self, totals: torch.Tensor, per_system: torch.Tensor, t: torch.Tensor, batch: Any
    ) -> None:
        atoms = batch.atoms_per_system.to(torch.float64)
        sums, counts = binned_loss_sums(per_system, t, self._edges_t)
        n = self.config.t_bins
        totals[0] += (per_system.detach().double() * atoms).sum()
        totals[1] += atoms.sum()
        totals[2 : 2 + n] += sums
        totals[2 + n :] += counts

    def _summarise(self, totals: torch.Tensor, prefix: str) -> dict[str, float]:
        totals = all_reduce_sum(totals, self.context).cpu()
        n = self.config.t_bins
        out = {prefix: float(totals[0] / totals[1]) if totals[1] > 0 else math.nan}
        names = t_bin_names(prefix, self._edges)
        for name, s, c in zip(names, totals[2 : 2 + n], totals[2 + n :], strict=True):
            out[name] = float(s / c) if c > 0 else math.nan
        return out

    def _generator(self, *key: int) -> torch.Generator:
        seed = int(np.random.SeedSequence([self.config.seed, *key]).generate_state(1)[0])
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator

    @staticmethod
    def _with_generator(
        model: nn.Module, generator: torch.Generator
    ) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
        def call(batch: Any, t: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return model(batch, t, generator=generator, **kwargs)

        return call

    def _bar(self, total: int, desc: str) -> Any:
        if not (self.progress and self.context.is_main):
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)

    def _tensorboard(self) -> Any:
        if not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional tensorboard package is not installed
            return None
        return SummaryWriter(str(self.out_dir / TENSORBOARD_DIR), purge_step=self.epoch + 1)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train a score denoiser as `config` says (see `Trainer`); returns the summary.

    Example:
        >>> from amtoolkit.training import load_config, train
        >>> result = train(load_config("configs/a-si.yaml"), progress=True)
        >>> result.checkpoint  # 'runs/a-si/a-si' -> a-si.pt + a-si.json
    """
    trainer = Trainer(
        config, resume=resume, overwrite=overwrite, progress=progress, log=log, command=command
    )
    return trainer.fit()


def data_fingerprint(data: TrainingData) -> dict[str, Any]:
    """Sizes and a SHA-256 digest of the training and validation frames (elements, cells,
    positions, properties, in order): a resumed run must train on the same data."""
    digest = hashlib.sha256()
    for part in (data.train, data.val):
        for atoms in part:
            digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
            digest.update(np.asarray(atoms.cell.array, dtype=np.float64).tobytes())
            digest.update(np.asarray(atoms.positions, dtype=np.float64).tobytes())
            labels = [float(atoms.info.get(name, math.nan)) for name in data.property_names]
            digest.update(np.asarray(labels, dtype=np.float64).tobytes())
        digest.update(b"|")
    return {"n_train": len(data.train), "n_val": len(data.val), "sha256": digest.hexdigest()}


def shortcut_batches(seed: int, epoch: int, n_batches: int, fraction: float) -> list[bool]:
    """Which batches of an epoch get the AMShortcut self-consistency term.

    Each batch is chosen with probability `fraction` by a generator keyed by
    (seed, epoch) alone, so a resumed run repeats the choice and every DDP process
    makes the same one (they all take the same code path).

    Args:
        seed: the run's seed.
        epoch: the epoch (1-based).
        n_batches: batches of the epoch (on this process).
        fraction: probability of a shortcut batch (0.25 in AMShortcut).

    Returns:
        One flag per batch.

    References:
        AMShortcut (self-consistency on 25 % of batches); docs/diffusion.md, *AMShortcut*.
    """
    key = np.random.SeedSequence([seed, _SHORTCUT_BATCHES, epoch]).generate_state(1)[0]
    generator = torch.Generator().manual_seed(int(key))
    u = torch.rand(n_batches, generator=generator, dtype=torch.float64)
    return (u < fraction).tolist()


def write_metrics(path: Path, history: list[dict[str, float]]) -> Path:
    """Write the metrics rows as CSV (atomically; NaN as ``nan``)."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    out = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    out.writeheader()
    for row in history:
        out.writerow({k: _csv_value(k, v) for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Read a ``metrics.csv`` back as rows of floats (``epoch`` an int)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [_metrics_row(row) for row in csv.DictReader(fh)]


def _metrics_row(row: dict[str, Any]) -> dict[str, float]:
    """A metrics row with float values and an int ``epoch`` (older states hold a float)."""
    return {k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items()}


# ------------------------------------------------------------------------ helpers


def _csv_value(key: str, value: float) -> str:
    if key == "epoch":
        return str(int(value))
    return repr(float(value)) if math.isfinite(value) else "nan"


def _mean_std(value: Any) -> tuple[float, float]:
    mean, std = value
    return float(mean), float(std)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict with the defaults of every key it predates (``objective``,
    ``optim.schedule``)."""
    from amtoolkit.training.config import DataConfig

    return _merged(TrainConfig(data=DataConfig(dataset="-")).to_dict(), saved)


def _merged(defaults: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in saved.items():
        nested = isinstance(value, dict) and isinstance(defaults.get(key), dict)
        out[key] = _merged(defaults[key], value) if nested else value
    return out


def _config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    a = {k: v for k, v in _flatten(saved).items() if k.split(".")[0] not in RESUMABLE_CHANGES}
    b = {k: v for k, v in _flatten(current).items() if k.split(".")[0] not in RESUMABLE_CHANGES}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _jsonable_floats(data: Any) -> Any:
    """Replace non-finite floats by None so the card is strict JSON."""
    if isinstance(data, dict):
        return {k: _jsonable_floats(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_jsonable_floats(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def training_stages(info: ModelInfo) -> list[dict[str, Any]]:
    """Every training stage of the model `info` describes, oldest first: the stages it
    recorded from the model it started from (``earlier_stages``), then its own (name,
    epochs, training time, hardware). A stage that started from a model whose card holds
    no such record (an older checkpoint) is marked ``"earlier_unrecorded": True``."""
    training = info.training
    if training.get("epochs") is None:
        return []
    stages = [dict(stage) for stage in training.get("earlier_stages") or []]
    own = {
        "name": info.name,
        "epochs": int(training["epochs"]),
        "wall_time_s": training.get("wall_time_s"),
        "hardware": training.get("hardware") or {},
    }
    started_from = (training.get("config") or {}).get("init_from")
    if started_from and not stages:
        own["earlier_unrecorded"] = True
    return [*stages, own]


def _hardware(device: torch.device, world_sizes: list[int]) -> dict[str, Any]:
    """The machine of the run; ``world_size`` the processes of its last part, and
    ``world_sizes`` every count it ran with when a resume changed it."""
    name = platform.processor() or platform.machine()
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            name = torch.cuda.get_device_name(device)
    extra = {"world_sizes": list(world_sizes)} if len(world_sizes) > 1 else {}
    return {
        "device": str(device),
        "device_name": name,
        "world_size": world_sizes[-1],
        **extra,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }

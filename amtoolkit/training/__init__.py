"""Training of the diffusion denoisers: YAML configs, the training loop, checkpoints, DDP.

- `TrainConfig` (with `DataConfig`, `ModelConfig`, `SDEConfig`, `OptimConfig`),
  `load_config`, `save_config`, `ConfigError`.
- `train(config)` / `Trainer`: Adam, EMA, gradient clipping, per-epoch train and
  validation losses (also per bin of t) in ``metrics.csv``, resume from ``last.pt``,
  periodic and best-by-validation model checkpoints (`amtoolkit.checkpoint`),
  data-parallel runs under ``torchrun``; ``loss.png`` (`plot_metrics`) at the end.
- `compute_typical`, `epoch_batches`, `make_batch`: the data side.

Command line: ``amtool train CONFIG.yaml [--resume]`` or
``torchrun --nproc_per_node=4 -m amtoolkit.training CONFIG.yaml``.
See docs/training.md.
"""

from __future__ import annotations

from amtoolkit.checkpoint import SamplingDefaults
from amtoolkit.training.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    SDEConfig,
    TrainConfig,
    load_config,
    save_config,
)
from amtoolkit.training.data import (
    TrainingData,
    compute_typical,
    epoch_batches,
    load_training_data,
    make_batch,
    mass_density,
    open_dataset,
)
from amtoolkit.training.ema import ema_decay_at, ema_init, ema_update
from amtoolkit.training.plots import LOSS_FIGURE, plot_metrics
from amtoolkit.training.trainer import (
    Trainer,
    TrainResult,
    binned_loss_sums,
    read_metrics,
    resolve_device,
    t_bin_edges,
    t_bin_names,
    train,
    write_metrics,
)

__all__ = [
    "LOSS_FIGURE",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "SDEConfig",
    "SamplingDefaults",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingData",
    "binned_loss_sums",
    "compute_typical",
    "ema_decay_at",
    "ema_init",
    "ema_update",
    "epoch_batches",
    "load_config",
    "load_training_data",
    "make_batch",
    "mass_density",
    "open_dataset",
    "plot_metrics",
    "read_metrics",
    "resolve_device",
    "save_config",
    "t_bin_edges",
    "t_bin_names",
    "train",
    "write_metrics",
]

"""Data-parallel training: two Gloo processes on CPU end with identical weights."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from amtoolkit.training import TrainConfig, Trainer

from .conftest import tiny_config

WORLD_SIZE = 2
DDP_DECREASE_FACTOR = 0.95  # fixed-noise training loss after 4 epochs vs the initial model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, config: dict, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
    )
    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig.from_dict(config))
    assert trainer.context.world_size == WORLD_SIZE and trainer.context.rank == rank
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    torch.save(
        {
            "initial": initial,
            "final": trainer.model.state_dict(),
            "ema": trainer.ema,
            "train_loss": [row["train_loss"] for row in result.history],
        },
        os.path.join(out, f"rank{rank}.pt"),
    )


@pytest.mark.parametrize("properties", [("density",), ()], ids=["conditional", "unconditional"])
def test_two_gloo_processes_train_identically(tiny_dataset, tmp_path, properties):
    config = tiny_config(
        tiny_dataset,
        tmp_path / "run",
        epochs=4,
        optim={"lr": 3e-3},
        data={"property_names": properties},
        threads=1,
    )
    mp.spawn(
        _worker,
        args=(_free_port(), config.to_dict(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    for key in ("initial", "final", "ema"):
        a, b = ranks[0][key], ranks[1][key]
        assert all(torch.equal(a[k], b[k]) for k in a), key  # bit-identical across ranks
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]  # all-reduced metrics
    assert not all(
        torch.equal(ranks[0]["initial"][k], ranks[0]["final"][k]) for k in ranks[0]["final"]
    )

    # only rank 0 wrote the outputs, and the exported model is usable
    assert (tmp_path / "run" / "tiny.pt").is_file() and (tmp_path / "run" / "metrics.csv").is_file()

    # the loss went down: evaluate both weight sets with the same fixed t and noise
    evaluator = Trainer(config.replace(out_dir=str(tmp_path / "eval")))
    before = evaluator.evaluate(evaluator.data.train, state=ranks[0]["initial"])["loss"]
    after = evaluator.evaluate(evaluator.data.train, state=ranks[0]["ema"])["loss"]
    assert after < DDP_DECREASE_FACTOR * before

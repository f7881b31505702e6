"""Training objectives: config and model-card keys, the loss switch, flow and shortcut runs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from amtoolkit.checkpoint import CheckpointError, ModelInfo, load_checkpoint, read_info
from amtoolkit.data import ElementVocabulary
from amtoolkit.diffusion import LOSSES, OBJECTIVES, MaterialSDE, denoising_loss
from amtoolkit.nn import DenoiserConfig
from amtoolkit.training import ConfigError, TrainConfig, Trainer, load_config, train
from amtoolkit.training.trainer import STATE_FILE, shortcut_batches

from .conftest import TINY_MODEL, tiny_config

TINY_SI = Path(__file__).resolve().parents[2] / "configs" / "data" / "tiny-si.extxyz"
SHORTCUT_MODEL = dataclasses.replace(TINY_MODEL, step_size_embedding=True)
FRACTION_TOL = 0.03  # |share of shortcut batches - fraction| over 4000 batches (~5 sigma)


def _card(**changes) -> ModelInfo:
    fields = dict(
        name="tiny",
        model=DenoiserConfig(n_classes=2, hidden=8, layers=1),
        sde=MaterialSDE(),
        vocabulary=ElementVocabulary(["Si"]),
    )
    fields.update(changes)
    return ModelInfo(**fields)


def test_config_reads_and_checks_the_objective(tmp_path):
    assert OBJECTIVES == ("score", "flow", "shortcut") and set(LOSSES) == set(OBJECTIVES)
    assert LOSSES["score"] is denoising_loss
    data = {"dataset": "data.extxyz"}
    assert TrainConfig.from_dict({"data": data}).objective == "score"
    with pytest.raises(ConfigError, match="unknown objective 'diffusion'"):
        TrainConfig.from_dict({"data": data, "objective": "diffusion"})
    with pytest.raises(ConfigError, match="objective 'shortcut' needs model.step_size_embedding"):
        TrainConfig.from_dict({"data": data, "objective": "shortcut"})
    with pytest.raises(ConfigError, match="shortcut_fraction must lie in"):
        TrainConfig.from_dict({"data": data, "shortcut_fraction": 1.5})
    path = tmp_path / "run.yaml"
    path.write_text(
        "data: {dataset: data.extxyz}\nmodel: {step_size_embedding: true}\n"
        "objective: shortcut\nshortcut_fraction: 0.5\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.objective == "shortcut" and config.shortcut_fraction == 0.5
    assert config.to_dict()["objective"] == "shortcut"


def test_config_reads_and_checks_the_shortcut_score_gain(tmp_path):
    data = {"dataset": "data.extxyz"}
    shortcut = {"data": data, "model": {"step_size_embedding": True}, "objective": "shortcut"}
    assert TrainConfig.from_dict(shortcut).shortcut_score_gain == 0.0
    path = tmp_path / "run.yaml"
    path.write_text(
        "data: {dataset: data.extxyz}\nmodel: {step_size_embedding: true}\n"
        "objective: shortcut\nshortcut_score_gain: 5\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.shortcut_score_gain == 5.0 and config.to_dict()["shortcut_score_gain"] == 5.0
    with pytest.raises(ConfigError, match="shortcut_score_gain must be a number in \\[0, 100\\]"):
        TrainConfig.from_dict({**shortcut, "shortcut_score_gain": -1})
    with pytest.raises(ConfigError, match="shortcut_score_gain is for objective 'shortcut'"):
        TrainConfig.from_dict({"data": data, "shortcut_score_gain": 2.0})


def test_config_reads_and_checks_the_time_focus(tmp_path):
    data = {"dataset": "data.extxyz"}
    assert TrainConfig.from_dict({"data": data}).t_focus is None
    path = tmp_path / "run.yaml"
    path.write_text(
        "data: {dataset: data.extxyz}\nt_focus: [0.2, 0.6]\nt_focus_fraction: 0.7\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.t_focus == (0.2, 0.6) and config.t_focus_fraction == 0.7
    assert config.to_dict()["t_focus"] == [0.2, 0.6]
    with pytest.raises(ConfigError, match="t_focus: .*low < high"):
        TrainConfig.from_dict({"data": data, "t_focus": [0.6, 0.2]})
    with pytest.raises(ConfigError, match="t_focus: .*fraction must lie in"):
        TrainConfig.from_dict({"data": data, "t_focus": [0.2, 0.6], "t_focus_fraction": -1})


def test_config_reads_per_sampler_score_gains():
    data = {"dataset": "data.extxyz"}
    config = TrainConfig.from_dict({"data": data, "sampling": {"score_gain": {"sde": 6}}})
    assert config.sampling.score_gain == {"sde": 6.0}
    assert config.sampling.gain_for("sde") == 6.0 and config.sampling.gain_for("ode") == 0.0
    assert config.to_dict()["sampling"]["score_gain"] == {"sde": 6.0}
    number = TrainConfig.from_dict({"data": data, "sampling": {"score_gain": 3}})
    assert number.sampling.gain_for("shortcut") == 3.0
    with pytest.raises(ConfigError, match="score_gain must be a number in \\[0, 100\\]"):
        TrainConfig.from_dict({"data": data, "sampling": {"score_gain": {"sde": -1}}})
    with pytest.raises(ConfigError, match="must be a number or a mapping"):
        TrainConfig.from_dict({"data": data, "sampling": {"score_gain": "hot"}})


def test_time_focus_trains_only_in_its_window(tmp_path):
    # the t bins of [0.01, 0.99] are 0.196 wide: a focus of [0.25, 0.35] at fraction 1
    # puts every training time in the second bin; validation keeps uniform t
    config = tiny_config(
        TINY_SI, tmp_path / "run", epochs=1, t_focus=(0.25, 0.35), t_focus_fraction=1.0
    )
    trainer = Trainer(config)
    row = trainer.train_epoch(1)
    binned = {k: v for k, v in row.items() if k.startswith("train_loss_t")}
    assert len(binned) == config.t_bins
    assert [math.isnan(v) for v in binned.values()] == [True, False, True, True, True]
    assert math.isfinite(row["train_loss"])
    val = trainer.validate()
    assert sum(math.isfinite(v) for k, v in val.items() if k.startswith("val_loss_t")) > 1


def test_model_card_records_the_objective():
    card = _card(objective="flow")
    assert ModelInfo.from_json(card.to_json()).objective == "flow"
    older = card.to_dict()
    del older["objective"]  # a card written before the key existed
    assert ModelInfo.from_dict(older).objective == "score"
    with pytest.raises(CheckpointError, match="unknown objective 'noise'"):
        _card(objective="noise")
    with pytest.raises(CheckpointError, match="needs model.step_size_embedding"):
        _card(objective="shortcut")
    shortcut_model = DenoiserConfig(n_classes=2, hidden=8, layers=1, step_size_embedding=True)
    assert _card(model=shortcut_model, objective="shortcut").objective == "shortcut"


def test_shortcut_batches_are_a_reproducible_fraction():
    mask = shortcut_batches(0, 3, 4000, 0.25)
    assert mask == shortcut_batches(0, 3, 4000, 0.25)
    assert abs(sum(mask) / len(mask) - 0.25) < FRACTION_TOL
    assert mask != shortcut_batches(0, 4, 4000, 0.25)  # a new choice every epoch
    assert mask != shortcut_batches(1, 3, 4000, 0.25)
    assert not any(shortcut_batches(0, 1, 50, 0.0)) and all(shortcut_batches(0, 1, 50, 1.0))


def test_trainer_calls_the_objective_loss_on_the_chosen_batches(tmp_path, monkeypatch):
    calls = []
    original = LOSSES["shortcut"]

    def counting(*args, **kwargs):
        calls.append((torch.is_grad_enabled(), kwargs.get("score_gain")))
        return original(*args, **kwargs)

    monkeypatch.setitem(LOSSES, "shortcut", counting)
    config = tiny_config(
        TINY_SI,
        tmp_path / "run",
        epochs=1,
        model=SHORTCUT_MODEL,
        objective="shortcut",
        shortcut_fraction=0.5,
        shortcut_score_gain=4.0,
        data={"batch_size": 1},
    )
    trainer = Trainer(config)
    chosen = trainer.objective_batches(1, len(trainer.data.train))
    assert chosen == shortcut_batches(config.seed, 1, len(trainer.data.train), 0.5)
    assert 0 < sum(chosen) < len(chosen)
    trainer.train_epoch(1)
    # training batches: only the chosen ones, with the targets' score gain
    assert calls == [(True, 4.0)] * sum(chosen)
    calls.clear()
    trainer.validate()
    assert calls == [(False, 4.0)] * len(trainer.data.val)  # validation: every batch, no grad
    calls.clear()
    Trainer(config.replace(shortcut_score_gain=0.0)).validate()
    assert calls == [(False, None)] * len(trainer.data.val)  # no gain: called as before


@pytest.mark.parametrize(
    ("objective", "model"), [("flow", TINY_MODEL), ("shortcut", SHORTCUT_MODEL)]
)
def test_one_epoch_writes_a_checkpoint_with_its_objective(objective, model, tmp_path):
    config = tiny_config(
        TINY_SI,
        tmp_path / "run",
        epochs=1,
        model=model,
        objective=objective,
        shortcut_fraction=1.0,  # every batch takes the shortcut term
        data={"batch_size": 3},
    )
    result = train(config)
    row = result.history[0]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
    loaded, info = load_checkpoint(result.checkpoint)
    assert info.objective == objective and read_info(result.checkpoint).objective == objective
    card = json.loads(Path(f"{result.checkpoint}.json").read_text(encoding="utf-8"))
    assert card["objective"] == objective
    assert loaded.config.step_size_embedding == (objective == "shortcut")
    assert info.training["config"]["objective"] == objective


def test_shortcut_run_resumes_exactly(tmp_path):
    def config(out: str, epochs: int) -> TrainConfig:
        return tiny_config(
            TINY_SI,
            tmp_path / out,
            epochs=epochs,
            model=SHORTCUT_MODEL,
            objective="shortcut",
            shortcut_fraction=0.75,
        )

    n_batches = math.ceil(9 / 2)  # 9 training frames of 12, batches of 2
    assert all(any(shortcut_batches(0, epoch, n_batches, 0.75)) for epoch in (1, 2))
    full = train(config("full", 2))
    train(config("part", 1))
    resumed = train(config("part", 2), resume=True)
    a = torch.load(tmp_path / "full" / STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "part" / STATE_FILE, weights_only=True)
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]


def test_a_run_saved_before_the_objective_key_resumes_as_score(tmp_path):
    config = tiny_config(TINY_SI, tmp_path / "run", epochs=1)
    train(config)
    path = tmp_path / "run" / STATE_FILE
    state = torch.load(path, weights_only=True)
    del state["config"]["objective"], state["config"]["shortcut_fraction"]
    torch.save(state, path)
    assert train(config.replace(epochs=2), resume=True).epochs == 2
    with pytest.raises(ConfigError, match="cannot resume.*objective"):
        train(config.replace(epochs=3, objective="flow"), resume=True)


def test_max_minutes_stops_after_the_first_epoch_past_the_limit(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=50, max_minutes=1e-9)
    result = train(config, progress=False)
    assert result.epochs == 1  # one epoch always runs, then the limit stops the run
    assert Path(f"{result.checkpoint}.pt").is_file()
    assert (tmp_path / "run" / "checkpoints" / "epoch_0001.pt").is_file()  # the last epoch's
    with pytest.raises(ConfigError, match="nothing to do: .* max_minutes is 1e-09"):
        train(config, resume=True)  # no further epoch past the limit
    with pytest.raises(ConfigError, match="max_minutes"):
        config.replace(max_minutes=0.0)

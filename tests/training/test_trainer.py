"""The training loop: loss goes down, resume is exact, metrics, EMA and exported weights."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from amtoolkit.checkpoint import load_checkpoint
from amtoolkit.data import Dataset
from amtoolkit.data.batch import from_atoms
from amtoolkit.held_out import held_out_part
from amtoolkit.training import ConfigError, Trainer, read_metrics, t_bin_edges, t_bin_names, train
from amtoolkit.training.data import load_training_data
from amtoolkit.training.trainer import STATE_FILE

from .conftest import make_structures, tiny_config

OVERFIT_FACTOR = 0.85  # fixed-noise training loss must drop at least 15 % in 6 epochs
WEIGHT_TOL = 0.0  # same seed, same CPU: resumed and uninterrupted runs are bit-identical


def _state(stem_or_model):
    if isinstance(stem_or_model, torch.nn.Module):
        return stem_or_model.state_dict()
    return torch.load(f"{stem_or_model}.pt", weights_only=True)


def _val_batch(trainer, info):
    """The trainer's validation frames as a batch, encoded as the checkpoint `info` says."""
    return from_atoms(
        trainer.data.val,
        info.vocabulary,
        property_names=info.property_names,
        normalisation=info.normalisation,
    )


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def test_loss_decreases_on_a_tiny_overfit_set(tiny_dataset, tmp_path):
    config = tiny_config(
        tiny_dataset,
        tmp_path / "run",
        epochs=6,
        optim={"lr": 3e-3},
        data={"val_fraction": 0.0, "batch_size": 3},
    )
    trainer = Trainer(config)
    before = trainer.evaluate(trainer.data.train)["loss"]
    result = trainer.fit()
    after = trainer.evaluate(trainer.data.train)["loss"]  # EMA weights, same t and noise
    assert after < OVERFIT_FACTOR * before
    assert result.selected_by == "train_loss"  # no validation split
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_resume_continues_exactly(tiny_dataset, tmp_path):
    full = train(tiny_config(tiny_dataset, tmp_path / "full", epochs=4))
    interrupted = tiny_config(tiny_dataset, tmp_path / "part", epochs=2)
    train(interrupted)
    state = torch.load(tmp_path / "part" / STATE_FILE, weights_only=True)  # tensors only
    assert state["epoch"] == 2 and len(state["history"]) == 2
    resumed = train(interrupted.replace(epochs=4), resume=True)

    assert resumed.epochs == 4 and len(resumed.history) == 4
    last_full = torch.load(tmp_path / "full" / STATE_FILE, weights_only=True)
    last_resumed = torch.load(tmp_path / "part" / STATE_FILE, weights_only=True)
    for key in ("model", "ema"):
        assert _max_difference(last_full[key], last_resumed[key]) <= WEIGHT_TOL
    assert _max_difference(_state(full.checkpoint), _state(resumed.checkpoint)) <= WEIGHT_TOL
    for row_full, row_resumed in zip(full.history, resumed.history, strict=True):
        assert row_full["train_loss"] == row_resumed["train_loss"]
        assert row_full["val_loss"] == row_resumed["val_loss"]
    assert len(read_metrics(tmp_path / "part" / "metrics.csv")) == 4


def test_resume_writes_an_export_an_interrupt_left_out(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=2)
    done = train(config)
    exported = _state(done.checkpoint)
    for suffix in (".pt", ".json"):  # interrupted after last.pt, before the export
        (tmp_path / "run" / f"{config.name}{suffix}").unlink()
    messages = []
    again = Trainer(config, resume=True, log=messages.append).fit()
    assert again.epochs == 2 and len(read_metrics(tmp_path / "run" / "metrics.csv")) == 2
    assert done.trained and not again.trained
    assert any("export is missing" in m for m in messages)
    assert _max_difference(exported, _state(again.checkpoint)) <= WEIGHT_TOL
    with pytest.raises(ConfigError, match="nothing to do: .* has trained 2 epochs"):
        train(config, resume=True)  # the export is there now


def test_a_resume_with_another_process_count_warns_and_is_recorded(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=1)
    train(config)
    path = tmp_path / "run" / STATE_FILE
    state = torch.load(path, weights_only=True)
    assert state["world_sizes"] == [1]
    state["world_sizes"] = [2]  # as if the first part ran under torchrun with 2 processes
    torch.save(state, path)
    with pytest.warns(UserWarning, match="resuming with 1 process.*trained with 2.*from 4 to 2"):
        result = train(config.replace(epochs=2), resume=True)
    hardware = load_checkpoint(result.checkpoint)[1].training["hardware"]
    assert hardware["world_size"] == 1 and hardware["world_sizes"] == [2, 1]


def test_resume_refuses_a_changed_config_and_a_missing_run(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=1)
    train(config)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config)
    changed = config.replace(optim=config.optim.__class__(lr=5e-4, ema_decay=0.9))
    with pytest.raises(ConfigError, match=r"cannot resume.*optim\.lr"):
        train(changed.replace(epochs=2), resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config.replace(out_dir=str(tmp_path / "empty")), resume=True)


def test_resume_refuses_changed_training_data(tmp_path):
    import ase.io

    from .conftest import make_structures

    data = tmp_path / "grow.extxyz"
    ase.io.write(data, make_structures(8), format="extxyz")
    config = tiny_config(data, tmp_path / "run", epochs=1)
    train(config)
    ase.io.write(data, make_structures(12), format="extxyz")  # the file grew
    with pytest.raises(ConfigError, match="cannot resume: the training data differ"):
        train(config.replace(epochs=2), resume=True)


def test_overwrite_clears_the_earlier_runs_checkpoints(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset, tmp_path / "run", epochs=3))
    train(tiny_config(tiny_dataset, tmp_path / "run", epochs=1), overwrite=True)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["epoch_0001.json", "epoch_0001.pt"]
    assert len(read_metrics(tmp_path / "run" / "metrics.csv")) == 1


def test_metrics_csv_has_losses_per_t_bin(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=2, t_bins=3)
    train(config)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(isinstance(r["epoch"], int) for r in rows)
    record = json.loads((tmp_path / "run" / "checkpoints" / "epoch_0002.json").read_text())
    assert json.dumps(record["training"]["final"]["epoch"]) == "2"
    columns = list(rows[0])
    bins = t_bin_names("train_loss", t_bin_edges(0.01, 0.99, 3))
    assert bins == ["train_loss_t0.01-0.34", "train_loss_t0.34-0.66", "train_loss_t0.66-0.99"]
    for name in ["train_loss", "val_loss", "lr", "grad_norm", "time_s", *bins]:
        assert name in columns
    assert sum(c.startswith("val_loss_t") for c in columns) == 3
    for row in rows:
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
        assert row["lr"] == config.optim.lr
        # the atom-weighted mean lies within the range of the per-bin means
        binned = [row[b] for b in bins if math.isfinite(row[b])]
        assert min(binned) - 1e-9 <= row["train_loss"] <= max(binned) + 1e-9


def test_ema_differs_from_raw_and_best_ema_is_exported(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=3, optim={"lr": 3e-3})
    trainer = Trainer(config)
    result = trainer.fit()
    exported = _state(result.checkpoint)
    assert _max_difference(exported, trainer.model.state_dict()) > 1e-4  # not the raw weights
    assert _max_difference(trainer.ema, trainer.model.state_dict()) > 1e-4
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    best = min(rows, key=lambda r: r["val_loss"])
    assert result.best_epoch == int(best["epoch"]) and result.best_loss == best["val_loss"]
    periodic = _state(tmp_path / "run" / "checkpoints" / f"epoch_{result.best_epoch:04d}")
    assert _max_difference(exported, periodic) == 0.0  # the EMA of the best epoch
    if result.best_epoch == result.epochs:
        assert _max_difference(exported, trainer.ema) == 0.0
    _, info = load_checkpoint(result.checkpoint)
    assert info.training["weights"] == "ema" and info.training["best_epoch"] == result.best_epoch


def test_without_ema_the_raw_weights_are_exported(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=1, optim={"ema_decay": None})
    trainer = Trainer(config)
    result = trainer.fit()
    assert result.weights == "raw"
    assert _max_difference(_state(result.checkpoint), trainer.model.state_dict()) == 0.0


def test_exported_checkpoint_reproduces_the_model(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=1)
    trainer = Trainer(config)
    result = trainer.fit()
    model, info = load_checkpoint(result.checkpoint)
    reference = trainer.model_for(trainer.best_state).eval()
    batch = _val_batch(trainer, info)
    t = torch.full((batch.n_systems,), 0.3)
    out = model(batch, t, generator=torch.Generator().manual_seed(1))
    ref = reference(batch, t, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    # the card describes the data the model was trained on
    assert info.name == "tiny" and info.max_density == config.data.max_density
    assert info.vocabulary.to_list() == ["X", "Si"]
    assert info.normalisation["density"] == trainer.data.normalisation["density"]
    assert info.typical.composition == {"Si": 1.0}
    assert info.typical.n_atoms_range[0] >= 8 and info.typical.n_atoms_range[1] <= 16
    assert info.dataset["n_train"] == 6 and info.dataset["n_val"] == 2
    assert info.training["config"] == config.to_dict()


def _grown_pair(tmp_path, grown: int = 8):
    """The same sample records, six and then `grown` of them: a dataset grown by the rest."""
    return _grown_sets(tmp_path, (6, grown))


def _grown_sets(tmp_path, sizes):
    """Datasets of the first `sizes` frames of the same sample records."""
    frames = make_structures(max(sizes))
    samples = [{"index": k, "seed": 100 + k} for k in range(max(sizes))]
    paths = []
    for n in sizes:
        data = Dataset.from_atoms(frames[:n], provenance={"source": "tiny", "samples": samples[:n]})
        paths.append(data.to_hdf5(tmp_path / f"grown{n}.h5"))
    return paths


def test_fine_tuning_never_tests_on_frames_the_start_model_saw(tmp_path):
    first_data, grown_data = _grown_pair(tmp_path)
    # no properties: the start model's normalisation must match the new training split's
    split = {"dataset": str(first_data), "test_fraction": 0.25, "property_names": ()}
    first = train(tiny_config(first_data, tmp_path / "first", epochs=1, data=split))
    # the data grew: the plain split of eight frames tests on frames the first run saw
    grown = {**split, "dataset": str(grown_data)}
    config = tiny_config(grown_data, tmp_path / "b", data=grown, init_from=first.checkpoint)
    with pytest.raises(
        ConfigError,
        match="test frames were in its training or validation "
        "data; it trained on the first 6 frames: set data.grown_from: 6",
    ):
        Trainer(config)
    kept = config.replace(data=dataclasses.replace(config.data, grown_from=6))
    result = train(kept.replace(epochs=1))
    info = load_checkpoint(result.checkpoint)[1]
    assert info.dataset["split"]["grown_from"] == 6
    # its test split is the first run's test frame plus one of the two new frames
    first_test = held_out_part(first_data, load_checkpoint(first.checkpoint)[1].dataset).frames
    held = held_out_part(grown_data, info.dataset).frames
    assert len(first_test) == 2 and len(held) == 2 + 1  # round(0.25 * 6), round(0.25 * 2)
    assert [a.positions.tobytes() for a in held[:2]] == [a.positions.tobytes() for a in first_test]
    # the same data with another split seed also tests on frames the first run saw
    reseeded = tiny_config(
        first_data, tmp_path / "c", data={**split, "seed": 1}, init_from=first.checkpoint
    )
    with pytest.raises(ConfigError, match=r"use its split \(val 0.25, test 0.25, seed 0\)"):
        Trainer(reseeded)


def test_fine_tuning_on_data_grown_twice_names_both_counts(tmp_path):
    """A model trained on 8 frames grown from 6: fine-tuning it on 12 frames keeps both
    splits with grown_from [6, 8]."""
    first, second, third = _grown_sets(tmp_path, (6, 8, 12))
    split = {"dataset": str(first), "test_fraction": 0.25, "property_names": ()}
    one = train(tiny_config(first, tmp_path / "one", epochs=1, data=split))
    grown = {**split, "dataset": str(second), "grown_from": 6}
    two = train(
        tiny_config(second, tmp_path / "two", epochs=1, data=grown, init_from=one.checkpoint)
    )
    again = {**split, "dataset": str(third), "grown_from": 8}
    config = tiny_config(third, tmp_path / "three", epochs=1, data=again, init_from=two.checkpoint)
    with pytest.raises(ConfigError, match=r"first 8 frames: set data.grown_from: \[6, 8\]"):
        Trainer(config)
    kept = config.replace(data=dataclasses.replace(config.data, grown_from=(6, 8)))
    trainer = Trainer(kept)
    card = load_checkpoint(two.checkpoint)[1].dataset
    unseen = {a.positions.tobytes() for a in held_out_part(third, card).frames}
    assert trainer.data.test and all(a.positions.tobytes() in unseen for a in trainer.data.test)
    assert trainer.data.provenance["split"]["grown_from"] == [6, 8]


def test_max_frames_trains_on_the_dataset_as_it_was(tmp_path):
    """data.max_frames: 8 on a set grown to 12 trains on what the 8-frame set gives, and
    the card names the 8-frame set, so the 4 later frames count as held out."""
    _, eight, twelve = _grown_sets(tmp_path, (6, 8, 12))
    split = {"test_fraction": 0.25, "grown_from": 6, "property_names": ()}
    as_was = Trainer(tiny_config(eight, tmp_path / "a", data={**split, "dataset": str(eight)}))
    config = tiny_config(
        twelve, tmp_path / "b", epochs=1, data={**split, "dataset": str(twelve), "max_frames": 8}
    )
    head = Trainer(config)
    for part in ("train", "val", "test"):
        got = [a.positions.tobytes() for a in getattr(head.data, part)]
        assert got == [a.positions.tobytes() for a in getattr(as_was.data, part)]
    card = load_checkpoint(train(config).checkpoint)[1].dataset
    assert card["samples"] == as_was.data.provenance["samples"]  # count 8 and its digest
    assert card["first_frames"] == {"frames": 8, "of": 12}
    held = held_out_part(twelve, card).frames
    assert len(held) == len(head.data.test) + 4
    with pytest.raises(ConfigError, match="data.max_frames is 13 but .* holds 12 frames"):
        Trainer(
            config.replace(
                out_dir=str(tmp_path / "c"), data=dataclasses.replace(config.data, max_frames=13)
            )
        )


def test_fine_tuning_a_conditioned_model_keeps_its_normalisation(tmp_path):
    """A property model fine-tuned on grown data normalises its property as the start
    model did: the new training split's mean and std differ, and the embeddings learned
    the old inputs. Kept through --resume and written to the exported card."""
    first_data, grown_data = _grown_pair(tmp_path, grown=12)  # 2 of the 6 new frames train
    split = {"dataset": str(first_data), "test_fraction": 0.25}
    first_config = tiny_config(first_data, tmp_path / "first", epochs=1, data=split)
    first_val = Trainer(first_config).data.val
    first = train(first_config)
    theirs = load_checkpoint(first.checkpoint)[1].normalisation
    grown = {**split, "dataset": str(grown_data), "grown_from": 6}
    config = tiny_config(grown_data, tmp_path / "b", data=grown, init_from=first.checkpoint)
    own = load_training_data(config.data).normalisation["density"]
    assert own != pytest.approx(theirs["density"], rel=1e-3)  # the data did change it
    messages = []
    trainer = Trainer(config, log=messages.append)
    assert trainer.data.normalisation["density"] == pytest.approx(theirs["density"], rel=1e-12)
    assert any("normalising density as that model did" in m for m in messages)
    # the start model scores its own validation frames as before: same inputs, same loss
    loss = trainer.evaluate(first_val, prefix="val_loss")["val_loss"]
    assert loss == pytest.approx(first.best_loss, rel=1e-6)

    train(config.replace(epochs=1))
    resumed = train(config.replace(epochs=2), resume=True)
    card = load_checkpoint(resumed.checkpoint)[1].normalisation
    assert card["density"] == pytest.approx(theirs["density"], rel=1e-12)


def test_cosine_schedule_decays_to_min_lr_and_warms_up(tiny_dataset, tmp_path):
    config = tiny_config(
        tiny_dataset,
        tmp_path / "run",
        epochs=5,
        optim={"lr": 2e-3, "schedule": "cosine", "min_lr": 1e-4, "warmup_epochs": 1},
    )
    rows = train(config).history
    lrs = [row["lr"] for row in rows]
    # warm-up: epoch 1 at lr / 2; then the cosine of the progress before each epoch
    expected = [1e-3] + [
        1e-4 + (2e-3 - 1e-4) * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(1, 5)
    ]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # decays after warm-up


def test_cosine_schedule_follows_training_time_when_it_binds(tiny_dataset):
    optim = tiny_config(tiny_dataset, "unused").optim.__class__(lr=1e-3, schedule="cosine")
    # the progress passed in is what the trainer measured: here half of max_minutes
    assert optim.learning_rate(2, 0.5) == pytest.approx(5e-4)
    assert optim.learning_rate(2, 1.0) == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="optim.schedule"):
        optim.__class__(schedule="linear")
    with pytest.raises(ConfigError, match="optim.min_lr"):
        optim.__class__(lr=1e-3, min_lr=2e-3)


def test_init_from_starts_at_a_checkpoints_weights(tiny_dataset, tmp_path):
    first = train(tiny_config(tiny_dataset, tmp_path / "first", epochs=2))
    config = tiny_config(
        tiny_dataset, tmp_path / "second", epochs=1, init_from=first.checkpoint + ".pt"
    )
    trainer = Trainer(config)
    assert _max_difference(trainer.model.state_dict(), _state(first.checkpoint)) == 0.0
    # the exported weights of the first run score its own validation loss again
    assert trainer.validate()["val_loss"] == pytest.approx(first.best_loss, rel=1e-6)

    # a radial basis added to the trained model: the new inputs start at zero weight
    basis = tiny_config(tiny_dataset, tmp_path / "basis", epochs=1, init_from=first.checkpoint)
    basis = basis.replace(model=dataclasses.replace(basis.model, radial_basis=8))
    widened = Trainer(basis)
    assert widened.validate()["val_loss"] == pytest.approx(first.best_loss, rel=1e-6)
    assert widened.train_epoch(1)["train_loss"] > 0  # the widened weights train

    # a score model as the start of a shortcut model: its jumps start as PF-ODE steps
    lines = []
    jumps = tiny_config(tiny_dataset, tmp_path / "jumps", epochs=1, init_from=first.checkpoint)
    jumps = jumps.replace(
        model=dataclasses.replace(jumps.model, step_size_embedding=True), objective="shortcut"
    )
    shortcut = Trainer(jumps, log=lines.append)
    assert any("widened for step_size_embedding" in line for line in lines)
    start, info = load_checkpoint(first.checkpoint)
    batch = _val_batch(shortcut, info)
    t = torch.full((batch.n_systems,), 0.3)
    gen = torch.Generator()
    expected = start(batch, t, generator=gen.manual_seed(0))
    widened = shortcut.model.eval()(batch, t, step_size=t / 3, generator=gen.manual_seed(0))
    for a, b in zip(expected, widened, strict=True):
        torch.testing.assert_close(a, b)
    assert shortcut.train_epoch(1)["train_loss"] > 0  # the self-consistency jumps train

    other = tiny_config(tiny_dataset, tmp_path / "third", init_from=first.checkpoint)
    wider = other.replace(model=dataclasses.replace(other.model, hidden=32))
    with pytest.raises(ConfigError, match="architecture differs in hidden$"):
        Trainer(wider)
    with pytest.raises(ConfigError, match="neither a checkpoint"):
        Trainer(other.replace(init_from=str(tmp_path / "missing")))


def test_a_chain_of_runs_records_every_stage_and_a_resume_keeps_them(tiny_dataset, tmp_path):
    from amtoolkit.generator import describe_model
    from amtoolkit.training.trainer import training_stages

    one = train(tiny_config(tiny_dataset, tmp_path / "one", epochs=2))
    two = train(tiny_config(tiny_dataset, tmp_path / "two", epochs=1, init_from=one.checkpoint))
    third = tiny_config(tiny_dataset, tmp_path / "three", epochs=1, init_from=two.checkpoint)
    train(third)
    three = train(third.replace(epochs=3), resume=True)  # the record survives a resume
    info = load_checkpoint(three.checkpoint)[1]
    stages = training_stages(info)
    assert [stage["epochs"] for stage in stages] == [2, 1, 3]
    assert not any(stage.get("earlier_unrecorded") for stage in stages)
    line = next(row for row in describe_model(info).splitlines() if "trained  " in row)
    assert "3 stages: 6 epochs" in line and " in all (last stage: 3 epochs" in line

"""Training configs: YAML round trip, unknown keys, type and value errors."""

from __future__ import annotations

import dataclasses

import pytest

from amtoolkit.nn import DenoiserConfig
from amtoolkit.training import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_config,
    save_config,
)
from amtoolkit.training.config import SDEConfig


def test_yaml_round_trip_keeps_every_field(tmp_path):
    config = TrainConfig(
        data=DataConfig(
            dataset="/data/a.h5",
            property_names=("density", "shear_modulus"),
            elements=("O", "Si"),
            max_density=0.09,
            val_fraction=0.2,
            test_fraction=0.1,
            seed=3,
            batch_size=4,
        ),
        name="a-sio2",
        model=ModelConfig(hidden=32, layers=3, cutoff=5.0, null_probability=0.2),
        sde=SDEConfig(sigma_max_x=1.7),
        optim=OptimConfig(lr=5e-4, ema_decay=None, grad_clip=None, betas=(0.8, 0.99)),
        epochs=7,
        checkpoint_every=2,
        out_dir="runs/x",
        seed=5,
        device="cpu",
        threads=2,
        t_bins=4,
    )
    path = save_config(config, tmp_path / "c.yaml")
    assert load_config(path) == config


def test_minimal_config_gets_the_documented_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: a-si}\n")
    config = load_config(path)
    assert config.data.batch_size == 8 and config.data.max_density is None
    assert config.optim.lr == 1e-3 and config.optim.ema_decay == 0.999
    assert config.model == ModelConfig() and config.sde == SDEConfig()
    assert config.output_dir.as_posix() == "runs/model"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("data: {dataset: a}\nlearning_rate: 1\n", "'learning_rate'"),
        ("data: {dataset: a, batchsize: 2}\n", "'data.batchsize'"),
        ("data: {dataset: a}\noptim: {lr: 1.0e-3, ema: 0.9}\n", "'optim.ema'"),
        ("data: {dataset: a}\nsde: {sigma_max: 1.0}\n", "'sde.sigma_max'"),
    ],
)
def test_unknown_key_is_an_error_naming_it(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"unknown config key {key}"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: 3\n", "missing config key 'data'"),
        ("data: {dataset: a, batch_size: two}\n", "'data.batch_size' must be an integer"),
        ("data: {dataset: a}\noptim: {lr: fast}\n", "'optim.lr' must be a number"),
        ("data: {dataset: a}\nepochs: 0\n", "epochs must be >= 1"),
        ("data: {dataset: a}\nsde: {t_min: 0.5, t_max: 0.4}\n", "sde: need 0 < t_min < t_max"),
        ("data: {dataset: a, property_names: density}\n", "must be a list"),
        ("data: {dataset: a}\ndevice: gpu\n", "device must be"),
        ("data: {dataset: a, grown_from: 0}\n", "data.grown_from must be a frame count >= 1"),
        ("data: {dataset: a, grown_from: [300, 200]}\n", "a list of increasing counts"),
        ("data: {dataset: a, grown_from: two}\n", "'data.grown_from' must be an integer or a list"),
        ("- a\n- b\n", "must be a mapping"),
        ("data: {dataset: a}\noptim: {lr: .inf}\n", "'optim.lr' must be a finite number"),
        ("data: {dataset: a}\noptim: {weight_decay: 'nan'}\n", "weight_decay' must be a finite"),
        ("data: {dataset: a}\nmodel: {hidden: 0}\n", "model.hidden must be >= 1, got 0"),
        ("data: {dataset: a}\nmodel: {layers: 1000000000000}\n", "model.layers must be <= 64"),
        ("data: {dataset: a}\nmodel: {kind: foo}\n", "unknown model.kind 'foo'; known: score"),
        ("data: {dataset: a}\nepochs: 2\ndata: {dataset: b}\n", "line 3.*key 'data' given twice"),
        ("data: {dataset: a\nepochs: 2\n", r"not valid YAML at line 2, column \d+: expected"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_yaml_exponent_without_dot_is_read_as_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: a}\noptim: {lr: 5e-4}\n")  # YAML 1.1 reads this as str
    assert load_config(path).optim.lr == 5e-4


def test_dataset_path_is_resolved_next_to_the_config(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.extxyz").write_text("")
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data: {dataset: d.extxyz}\n")
    assert load_config(path).data.dataset == str((tmp_path / "sub" / "d.extxyz").resolve())
    path.write_text("data: {dataset: a-si}\n")  # not a file there: a shipped name, kept
    assert load_config(path).data.dataset == "a-si"
    (tmp_path / "sub" / "start.pt").write_text("")  # init_from: a stem, found the same way
    path.write_text("data: {dataset: d.extxyz}\ninit_from: start\n")
    assert load_config(path).init_from == str((tmp_path / "sub" / "start").resolve())
    path.write_text("data: {dataset: d.extxyz}\ninit_from: a-si\n")
    assert load_config(path).init_from == "a-si"


def test_model_section_mirrors_denoiser_config():
    derived = {"n_classes", "property_names"}
    denoiser_fields = {f.name for f in dataclasses.fields(DenoiserConfig)} - derived
    assert {f.name for f in dataclasses.fields(ModelConfig)} == denoiser_fields
    full = ModelConfig(hidden=24).to_denoiser_config(3, ("density",))
    assert full == DenoiserConfig(n_classes=3, property_names=("density",), hidden=24)
    defaults = DenoiserConfig(n_classes=2)
    for name in denoiser_fields:  # same defaults as the architecture
        assert getattr(ModelConfig(), name) == getattr(defaults, name)


def test_sections_given_as_mappings_are_built_as_from_a_file():
    config = TrainConfig(data={"dataset": "train6.extxyz"}, epochs=1, optim={"lr": 1e-3})
    assert config == TrainConfig.from_dict(
        {"data": {"dataset": "train6.extxyz"}, "epochs": 1, "optim": {"lr": 1e-3}}
    )
    assert isinstance(config.data, DataConfig) and config.optim.lr == 1e-3
    with pytest.raises(ConfigError, match="unknown config key 'data.datset'"):
        TrainConfig(data={"datset": "train6.extxyz"})
    with pytest.raises(ConfigError, match="config key 'model.hidden' must be an integer"):
        TrainConfig(data=DataConfig(dataset="a"), model={"hidden": "wide"})
    with pytest.raises(ConfigError, match="^data must be a DataConfig or a mapping .*, got str$"):
        TrainConfig(data="train6.extxyz")


def test_replace_checks_types_and_values_like_a_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: a}\n")
    config = load_config(path)
    assert config.replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="'epochs' must be an integer, got 2.5"):
        config.replace(epochs=2.5)
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        config.replace(epoch=3)

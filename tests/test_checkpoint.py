"""Model checkpoints: state_dict + JSON card round trip, weights_only loading, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from ase.build import bulk

from amtoolkit.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    ModelInfo,
    SamplingDefaults,
    Typical,
    checkpoint_paths,
    load_checkpoint,
    read_info,
    save_checkpoint,
)
from amtoolkit.data import ElementVocabulary
from amtoolkit.data.batch import from_atoms
from amtoolkit.diffusion import MaterialSDE
from amtoolkit.nn import DenoiserConfig, build_denoiser

CONFIG = DenoiserConfig(
    n_classes=3, property_names=("density",), hidden=16, layers=2, vector_channels=4, cutoff=4.0
)


def _info(**changes) -> ModelInfo:
    fields = dict(
        name="tiny-sio2",
        model=CONFIG,
        sde=MaterialSDE(sigma_max_x=1.7),
        vocabulary=ElementVocabulary(["O", "Si"]),
        normalisation={"density": (2.2, 0.05)},
        max_density=0.09,
        typical=Typical(
            n_atoms=12,
            density=2.2,
            composition={"O": 2 / 3, "Si": 1 / 3},
            property_ranges={"density": (2.1, 2.3)},
            n_atoms_range=(9, 24),
            density_range=(2.1, 2.3),
        ),
        dataset={"source": "test", "n_train": 3},
        training={"epochs": 2, "best_loss": 1.25},
        sampling=SamplingDefaults(sampler="ode", steps=20, guidance=0.5),
    )
    fields.update(changes)
    return ModelInfo(**fields)


def _batch():
    cell = bulk("Si", "diamond", a=5.43, cubic=True)
    cell.numbers[:4] = 8  # O on half the sites
    cell.info["density"] = 2.25
    return from_atoms(
        [cell, cell.repeat((1, 1, 2))],
        ElementVocabulary(["O", "Si"]),
        property_names=("density",),
        normalisation={"density": (2.2, 0.05)},
    )


def _model():
    torch.manual_seed(0)
    return build_denoiser(CONFIG)


def test_round_trip_gives_identical_outputs(tmp_path):
    model, info = _model(), _info()
    weights, card = save_checkpoint(tmp_path / "m", model, info)
    assert (weights.name, card.name) == ("m.pt", "m.json")
    loaded, loaded_info = load_checkpoint(tmp_path / "m")
    assert loaded_info == info
    assert not loaded.training  # eval mode
    batch, t = _batch(), torch.tensor([0.2, 0.7])
    model.eval()
    expected = model(batch, t, generator=torch.Generator().manual_seed(3))
    got = loaded(batch, t, generator=torch.Generator().manual_seed(3))
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*tmp"))  # no temp leftovers


def test_weights_file_is_a_plain_state_dict(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "m", model, _info())
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state.keys() == model.state_dict().keys()
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_card_json_layout(tmp_path):
    save_checkpoint(tmp_path / "m", _model(), _info())
    data = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["kind"] == "score" and data["vocabulary"] == ["X", "O", "Si"]
    assert data["property_names"] == ["density"] and data["normalisation"] == {
        "density": [2.2, 0.05]
    }
    assert data["model"] == CONFIG.to_dict() and data["sde"]["sigma_max_x"] == 1.7
    assert data["max_density"] == 0.09
    assert data["typical"]["composition"] == {"O": 2 / 3, "Si": 1 / 3}
    assert data["sampling"] == {
        "sampler": "ode",
        "steps": 20,
        "guidance": 0.5,
        "noise_scale": 1.0,
        "score_gain": 0.0,
    }
    assert ModelInfo.from_dict(data) == _info()


@pytest.mark.parametrize("name", ["m", "m.pt", "m.json"])
def test_any_of_stem_or_file_names_the_checkpoint(tmp_path, name):
    save_checkpoint(tmp_path / "m", _model(), _info())
    assert checkpoint_paths(tmp_path / name) == (tmp_path / "m.pt", tmp_path / "m.json")
    assert read_info(tmp_path / name).name == "tiny-sio2"


def test_mismatched_weights_are_rejected(tmp_path):
    save_checkpoint(tmp_path / "m", _model(), _info())
    data = json.loads((tmp_path / "m.json").read_text())
    data["model"]["hidden"] = 32
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="weights do not match the model card") as err:
        load_checkpoint(tmp_path / "m")
    message = str(err.value)
    assert "of another shape, e.g." in message and "in the file" in message
    assert "\n" not in message and len(message) < 400  # a summary, not every key
    data["model"]["layers"] += 1  # one layer more than the weights hold
    data["model"]["hidden"] = 16
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"weights the card needs are missing, e\.g\."):
        load_checkpoint(tmp_path / "m")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"format": "something-else"}, "not an amtoolkit model card"),
        ({"version": 99}, "unsupported checkpoint version 99"),
        ({"extra": 1}, r"unknown keys in model card: \['extra'\]"),
        ({"kind": "energy"}, "kind 'energy' differs"),
        ({"property_names": ["shear_modulus"]}, "differ from the model's"),
        ({"vocabulary": ["X", "Si"]}, "has 2 classes but the model has n_classes = 3"),
        ({"normalisation": {}}, r"no normalisation for conditioning properties \['density'\]"),
    ],
)
def test_malformed_cards_raise_naming_the_problem(tmp_path, edit, message):
    save_checkpoint(tmp_path / "m", _model(), _info())
    data = json.loads((tmp_path / "m.json").read_text())
    data.update(edit)
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "m.pt")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="m.json"):
        load_checkpoint(tmp_path / "m")
    save_checkpoint(tmp_path / "m", _model(), _info())
    (tmp_path / "m.pt").unlink()
    with pytest.raises(FileNotFoundError, match="m.pt"):
        load_checkpoint(tmp_path / "m")


def test_weights_with_nan_are_refused_naming_the_tensor(tmp_path):
    model = _model()
    with torch.no_grad():
        next(iter(model.parameters())).fill_(float("nan"))
    save_checkpoint(tmp_path / "m", model, _info())
    with pytest.raises(CheckpointError, match="holds NaN or inf .*diverged"):
        load_checkpoint(tmp_path / "m")


def test_a_run_folder_or_its_resume_state_points_at_the_model(tmp_path):
    save_checkpoint(tmp_path / "run" / "tiny", _model(), _info())
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    for given in (tmp_path / "run", tmp_path / "run" / "last.pt"):
        with pytest.raises(FileNotFoundError, match=r"resume state\): .*run/tiny$"):
            load_checkpoint(given)
    # the same by the name Generator and amtool take (a folder is no checkpoint stem)
    from amtoolkit.pretrained import resolve

    with pytest.raises(ValueError, match=r"resume state\): .*run/tiny$"):
        resolve(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"resume state\): .*run/tiny$"):
        load_checkpoint(resolve(tmp_path / "run" / "last.pt"))


@pytest.mark.parametrize(
    ("content", "cause"), [(b"", "EOFError"), (b"\x80\x02garbage" * 50, "UnpicklingError")]
)
def test_unreadable_weights_are_named_without_unsafe_advice(tmp_path, content, cause):
    save_checkpoint(tmp_path / "m", _model(), _info())
    (tmp_path / "m.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"m.pt: not a readable model weights file.*{cause}"):
        load_checkpoint(tmp_path / "m")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "m")
    assert "weights_only" not in str(err.value)  # torch's advice to unpickle anything


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_named(tmp_path):
    save_checkpoint(tmp_path / "m", _model(), _info())
    with pytest.raises(ValueError, match="device 'cuda' asked for but CUDA is not available"):
        load_checkpoint(tmp_path / "m", device="cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'; use cpu, cuda or cuda:N"):
        load_checkpoint(tmp_path / "m", device="gpu")


def test_saving_a_model_with_another_config_is_refused(tmp_path):
    other = build_denoiser(DenoiserConfig(n_classes=3, property_names=("density",), hidden=8))
    with pytest.raises(CheckpointError, match="differs from info.model"):
        save_checkpoint(tmp_path / "m", other, _info())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda card: [], "a model card is a JSON object, got a list"),
        (lambda card: {**card, "property_names": 5}, r"malformed model card \(TypeError"),
        (lambda card: {**card, "max_density": "abc"}, r"malformed model card \(ValueError"),
        (lambda card: {**card, "normalisation": [1, 2]}, "malformed model card"),
    ],
)
def test_an_edited_card_is_named_not_an_internal_error(tmp_path, edit, message):
    from amtoolkit import pretrained

    card = json.loads(pretrained.checkpoint_stem("a-si").with_suffix(".json").read_text())
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edit(card)))
    with pytest.raises(CheckpointError, match=rf"edited.json: {message}"):
        read_info(path)


def test_mps_and_other_device_types_are_named():
    from amtoolkit.checkpoint import usable_device

    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        with pytest.raises(ValueError, match="device 'mps' asked for but MPS is not available"):
            usable_device("mps")
    with pytest.raises(ValueError, match="device 'meta' is not one amtoolkit runs on"):
        usable_device("meta")

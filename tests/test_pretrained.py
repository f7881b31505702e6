"""The models shipped inside the package: cards, loading by name, and a cheap generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amtoolkit import Generator, pretrained
from amtoolkit.diffusion import sampler_names

SHIPPED = pretrained.available()
EXPECTED = {"a-si", "a-si-energy", "a-si-shortcut", "a-sio2"}


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_the_documented_models_are_shipped():
    assert EXPECTED <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_card_and_weights_load(name):
    gen = Generator.from_pretrained(name)
    info = gen.info
    assert gen.name == name
    assert info.training.get("best_epoch") is not None
    assert info.typical is not None and info.typical.n_atoms > 0
    assert (pretrained.PRETRAINED_DIR / f"{name}.md").is_file()  # human-readable card
    assert set(sampler_names(info.objective, info.kind)) >= {"sde", "ode"} or (
        info.objective == "flow"
    )
    described = gen.describe()  # the card in words: each target with its training range
    assert described.startswith(f"{name}\n") and " epochs on " in described
    for prop in info.property_names:
        assert prop in described
    if not info.property_names:
        assert "none (unconditional)" in described


def test_description_says_the_training_record_is_the_last_stage():
    """A model trained in stages records only its last; the description says so rather
    than pass it off as the whole training (a-si: 3 stages, 67 minutes in all by its card;
    the checkpoint holds the third's 417 epochs and 0.4 h), and names the part of a grown
    run it trained on."""
    import dataclasses

    from amtoolkit.generator import describe_model

    def trained(name: str, **training) -> str:
        info = pretrained.model_info(name)
        info = dataclasses.replace(info, training={**info.training, **training})
        return next(line for line in describe_model(info).splitlines() if "trained  " in line)

    assert "trained   last of 3 stages: 417 epochs on 222 structures, 0.4 h" in trained("a-si")
    assert "last of 2 stages: 476 epochs on 240" in trained("a-sio2")
    assert "last stage, from a-si: 87 epochs" in trained("a-si-shortcut")
    assert "not recorded in the checkpoint" in trained("a-si")
    one = trained("a-si", config={}, command="amtool train a-si.yaml")  # no init_from
    assert "stage" not in one and one.split()[1:3] == ["417", "epochs"]
    data = Generator.from_pretrained("a-si-shortcut").describe()
    assert "-n 350 -o a-si-anneal.h5" in data and "(its first 300 of 350 frames)" in data


def test_description_names_the_potential_file_and_how_elastic_labels_were_made():
    import dataclasses

    from amtoolkit.generator import describe_model

    card = Generator.from_pretrained("a-sio2").describe()
    assert "elastic labels  cubic (G = C44) averages, relaxed to fmax 0.01 eV/Å, 3 strains" in card
    glass = {
        "command": "amtool dataset make glass ... -n 8 -o cuzr.h5",
        "resumed": ["amtool dataset make glass ... -n 26 -o cuzr.h5 --resume"],
        "protocol": "glass",
        "parameters": {"relax_fmax": 1e-3, "elastic_steps": 3},
        "potential": {"source": "/data/cuzr.yaml", "digest": "sha256-9902b2d42fc233fb"},
    }
    info = dataclasses.replace(pretrained.model_info("a-sio2"), dataset=glass)
    lines = describe_model(info).splitlines()
    assert any("then resumed or extended 1 time(s): " in line and "-n 26" in line for line in lines)
    assert any(line.split()[:2] == ["potential", "/data/cuzr.yaml"] for line in lines)
    assert any("Voigt-Reuss-Hill averages, relaxed to fmax 0.001 eV/Å" in line for line in lines)
    merged = {  # a merge of two glass runs: each part's command, one potential and setting
        "command": "amtool dataset merge a.h5 b.h5 -o ab.h5",
        "parts": [
            {"name": "a.h5", "frames": 4, "provenance": {**glass, "command": "make a"}},
            {"name": "b.h5", "frames": 6, "provenance": {**glass, "command": "make b"}},
        ],
    }
    info = dataclasses.replace(info, dataset=merged)
    text = describe_model(info, "runs/ab/ab.pt")
    assert "a.h5 (4): make a" in text and "b.h5 (6): make b" in text
    assert text.count("potential       /data/cuzr.yaml") == 1
    assert "Voigt-Reuss-Hill averages" in text and "files           runs/ab/ab.pt" in text
    other = {**glass, "parameters": {"relax_fmax": 1e-2, "elastic_steps": 3}}
    merged["parts"][1]["provenance"] = other
    assert "elastic labels" not in describe_model(dataclasses.replace(info, dataset=merged))


# few steps and small cells: close pairs, unbalanced charges and a size warning are expected
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.filterwarnings("ignore:.*(nearer than|not charge balanced|far below):UserWarning")
def test_shipped_model_generates_a_small_cell(name):
    gen = Generator.from_pretrained(name)
    # a shortcut model at its 5 jumps (at 2, a-sio2-shortcut can leave only ghosts)
    sampler, steps = ("shortcut", 5) if gen.info.objective == "shortcut" else (None, 2)
    kwargs = {"n_atoms": 24} if gen.info.max_density is None else {"cell": 7.0}
    (atoms,) = gen.generate(1, steps=steps, seed=0, sampler=sampler, progress=False, **kwargs)
    assert np.isfinite(atoms.positions).all() and len(atoms) > 0
    assert set(atoms.get_chemical_symbols()) <= set(gen.vocabulary.symbols)


def test_shipped_model_card_matches_its_dataset_by_digest():
    from amtoolkit.data import Dataset, condensed_provenance

    card = pretrained.model_info("a-sio2").dataset
    shipped = condensed_provenance(Dataset.load("a-sio2").provenance)
    assert card["samples"] == shipped["samples"] and card["samples"]["count"] == 300


def test_a_file_named_like_a_shipped_model_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-si.json").write_text('{"frames": ["x.extxyz[0]"]}')  # an analyze --json
    assert pretrained.resolve("a-si") == pretrained.checkpoint_stem("a-si")
    assert Generator.load("a-si").name == "a-si"
    # a whole checkpoint of that name in the folder is the user's choice: it wins
    shipped = pretrained.checkpoint_stem("a-si")
    for suffix in (".pt", ".json"):
        (tmp_path / f"a-si{suffix}").write_bytes(shipped.with_suffix(suffix).read_bytes())
    assert pretrained.resolve("a-si") == tmp_path.joinpath("a-si").relative_to(tmp_path)


@pytest.mark.parametrize("name", ["", " ", "/", "."])
def test_an_empty_model_name_is_named(name):
    from amtoolkit.pretrained import resolve

    with pytest.raises(ValueError, match=r"names no model: give a shipped model \(a-si"):
        resolve(name)

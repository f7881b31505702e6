"""The held-out reference of a model: the frames of its dataset it never trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from amtoolkit import Generator
from amtoolkit.data import Dataset, condensed_provenance
from amtoolkit.held_out import FrameIndex, frame_key, held_out_by_all, held_out_part
from amtoolkit.pretrained import model_info
from amtoolkit.training import ConfigError, Trainer
from amtoolkit.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _key(atoms) -> bytes:
    return np.round(atoms.positions, 6).tobytes()


def _tiny(n: int) -> Dataset:
    frames = []
    for k in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.positions += 0.01 * k  # tell the frames apart
        frames.append(atoms)
    samples = [{"index": k, "seed": 100 + k} for k in range(n)]
    return Dataset.from_atoms(frames, provenance={"source": "tiny", "samples": samples})


def _card(dataset: Dataset, name: str = "tiny.h5") -> dict:
    card = condensed_provenance(dict(dataset.provenance))
    card.update(
        dataset=name,
        split={"part": "train", "seed": 3, "val": 0.2, "test": 0.3, "parent_frames": len(dataset)},
    )
    return card


def test_a_model_of_the_first_frames_holds_out_its_test_split_and_the_later_frames():
    gen = Generator.from_pretrained("a-si-energy")  # trained on the first 200 frames
    held = gen.held_out()
    card = model_info("a-si-energy").dataset
    split, trained_on = card["split"], card["samples"]["count"]
    dataset = Dataset.load("a-si-anneal")
    assert len(dataset) > trained_on == split["parent_frames"]  # the set grew after training
    train, val, test = dataset[:trained_on].split(
        val=split["val"], test=split["test"], seed=split["seed"]
    )
    assert len(train) == split["frames"]  # the card's training part is redrawn exactly
    later = list(dataset[trained_on:])
    assert [_key(a) for a in held] == [_key(a) for a in test] + [_key(a) for a in later]
    seen = {_key(a) for a in train} | {_key(a) for a in val}
    assert not seen & {_key(a) for a in held}


def test_shipped_a_si_holds_out_the_grown_split_test_cells():
    """a-si trained last on the first 300 frames with grown_from 200: its reference is that
    split's 48 test cells, which hold the 32 test cells of the first 200 frames, and every
    frame after the 300."""
    held = [_key(a) for a in Generator.from_pretrained("a-si").held_out()]
    split = model_info("a-si").dataset["split"]
    assert (split["grown_from"], split["parent_frames"], split["frames"]) == (200, 300, 222)
    dataset = Dataset.load("a-si-anneal")
    train, val, test = dataset[:300].split(val=0.1, test=0.16, seed=0, grown_from=200)
    later = [_key(a) for a in dataset[300:]]
    assert held == [_key(a) for a in test] + later and len(test) == 48
    assert not ({_key(a) for a in train} | {_key(a) for a in val}) & set(held)
    _, _, first_test = dataset[:200].split(val=0.1, test=0.16, seed=0)
    assert {_key(a) for a in first_test} <= set(held)


def test_fine_tuning_the_shipped_a_si_keeps_its_test_cells_unseen(tmp_path):
    """configs/a-si-grown.yaml started from the second stage; continuing from the shipped
    a-si with its split is allowed, and a split without grown_from, which would test on
    cells a-si trained on, is refused with the split to use."""
    config = load_config(CONFIGS / "a-si-grown.yaml").replace(
        out_dir=str(tmp_path), device="cpu", init_from="a-si"
    )
    trainer = Trainer(config)
    held = [_key(a) for a in Generator.from_pretrained("a-si").held_out()]
    assert [_key(a) for a in trainer.data.test] == held[:48]  # the later frames come after
    assert trainer.data.provenance["split"]["grown_from"] == 200
    plain = config.replace(data=dataclasses.replace(config.data, grown_from=None))
    with pytest.raises(
        ConfigError,
        match="test frames were in its training or validation data; "
        r"use its split \(val 0.1, test 0.16, seed 0, grown_from 200\)",
    ):
        Trainer(plain)


def test_a_grown_dataset_adds_every_later_frame():
    first = _tiny(10)
    card = _card(first)
    grown = _tiny(13)  # the same first ten sample records, three more after them
    part = held_out_part("elsewhere.h5", card, dataset=grown)
    _, _, test = first.split(val=0.2, test=0.3, seed=3)
    assert [_key(a) for a in part.frames] == [_key(a) for a in test] + [
        _key(a) for a in list(grown)[10:]
    ]
    assert "first 10 frames, and the 3 after them" in part.part


def test_other_data_and_the_whole_dataset_give_every_frame():
    data = _tiny(10)
    other = held_out_part("other.h5", {"dataset": "x.h5", "source": "elsewhere"}, dataset=data)
    assert len(other.frames) == 10 and "other training data" in other.part
    same = held_out_part("tiny.h5", _card(data), dataset=data)
    assert len(same.frames) == 3  # round(0.3 * 10) test frames
    whole = held_out_part("tiny.h5", _card(data), dataset=data, whole=True)
    assert len(whole.frames) == 10


def test_a_card_naming_a_missing_file_asks_for_the_dataset(tmp_path):
    gen = Generator.from_pretrained("a-si")
    info = gen.info.__class__.from_dict(
        {
            **gen.info.to_dict(),
            "dataset": {**gen.info.dataset, "dataset": str(tmp_path / "gone.h5")},
        }
    )
    moved = Generator(gen.model, info)
    with pytest.raises(ValueError, match=r"gone\.h5.*held_out\(dataset=\.\.\.\)"):
        moved.held_out()
    assert len(moved.held_out("a-si-anneal")) == len(gen.held_out())


def test_models_compared_side_by_side_share_the_frames_neither_saw():
    """a-si-energy holds out 32 test cells and every frame after its 200, a-si (trained
    on more of the grown set) fewer: the common reference is a-si's, in the dataset's
    order."""
    cards = [model_info(name).dataset for name in ("a-si-energy", "a-si")]
    both = held_out_by_all("a-si-anneal", cards)
    n = len(Dataset.load("a-si-anneal"))
    assert len(held_out_part("a-si-anneal", cards[0]).frames) == 32 + n - 200
    assert sorted(_key(a) for a in both.frames) == sorted(
        _key(a) for a in Generator.from_pretrained("a-si").held_out()
    )
    assert "frames held out from every model" in both.part
    first = held_out_part("a-si-anneal", cards[0]).frames
    order = {frame_key(a): k for k, a in enumerate(first)}
    assert [order[frame_key(a)] for a in both.frames] == sorted(
        order[frame_key(a)] for a in both.frames
    )


def test_held_out_by_one_model_is_its_part():
    data = _tiny(10)
    alone = held_out_by_all("tiny.h5", [_card(data)], dataset=data)
    assert [_key(a) for a in alone.frames] == [
        _key(a) for a in held_out_part("tiny.h5", _card(data), dataset=data).frames
    ]
    with pytest.raises(ValueError, match="at least one model card"):
        held_out_by_all("tiny.h5", [], dataset=data)


def test_frame_index_finds_copies_and_only_copies():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    index = FrameIndex([atoms])
    moved = atoms.copy()
    moved.positions[3] += moved.cell[0]  # a periodic image: the same frame
    moved.positions += 4e-4 * (np.arange(24).reshape(8, 3) % 2)  # written to fewer decimals
    assert moved in index
    rattled, other_order = atoms.copy(), atoms[[1, 0, *range(2, 8)]]
    rattled.positions[5, 0] += 0.01
    assert rattled not in index and other_order not in index
    assert atoms[:7] not in index and "not atoms" not in index


def test_a_copy_of_the_training_data_holds_out_only_what_the_model_did_not_see(tmp_path):
    """The a-si training data under another name and format: the frames a-si trained or
    validated on are found by content and left out, with a warning."""
    gen = Generator.from_pretrained("a-si")
    copy = tmp_path / "my-a-si.extxyz"
    Dataset.load("a-si-anneal").to_extxyz(copy)
    with pytest.warns(UserWarning, match=r"my-a-si\.extxyz: \d+ of its \d+ frames are frames"):
        frames = gen.held_out(str(copy))
    unseen = gen.held_out()
    assert len(frames) == len(unseen) and all(a in FrameIndex(unseen) for a in frames)
    elsewhere = held_out_part(str(copy), {**gen.info.dataset, "dataset": str(tmp_path / "gone")})
    assert len(elsewhere.frames) == len(Dataset.load("a-si-anneal"))
    assert "not at hand to check" in elsewhere.part

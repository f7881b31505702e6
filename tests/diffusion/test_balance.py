"""Charge-balanced relabelling: the most likely balanced labelling and the re-denoising
with the elements held."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion import (
    HeldElements,
    MaterialSDE,
    add_noise,
    balance,
    balanced_classes,
    class_charges,
    get_timesteps,
    is_charge_balanced,
    net_charge,
    rebalance,
    restart_timesteps,
    sample_ode,
    sample_sde,
)
from tests.diffusion.toy_models import DeltaModel

SDE = MaterialSDE()
SIO2 = ElementVocabulary(["O", "Si"])  # classes X (ghost), O, Si
CHARGES = class_charges(SIO2).tolist()  # [0, -2, 4]


def _brute_force(scores: np.ndarray, charges: list[int]) -> tuple[float, tuple[int, ...]] | None:
    best = None
    n, c = scores.shape
    for labels in itertools.product(range(c), repeat=n):
        if sum(charges[k] for k in labels) != 0 or not any(labels):
            continue
        value = sum(scores[i, k] for i, k in enumerate(labels))
        if np.isfinite(value) and (best is None or value > best[0]):
            best = (value, labels)
    return best


@pytest.mark.parametrize(
    ("elements", "n_atoms"),
    [(["O", "Si"], 7), (["O", "Si"], 8), (["O", "Na", "Ca", "Si"], 5)],
)
def test_balanced_classes_is_the_best_balanced_labelling(elements, n_atoms):
    charges = class_charges(ElementVocabulary(elements)).tolist()
    rng = np.random.default_rng(n_atoms)
    for _ in range(5):
        scores = rng.normal(size=(n_atoms, len(charges)))
        value, labels = _brute_force(scores, charges)
        chosen = balanced_classes(scores, charges)
        assert sum(charges[k] for k in chosen) == 0
        assert scores[np.arange(n_atoms), chosen].sum() == pytest.approx(value, abs=1e-9)
        assert tuple(chosen) == labels


@pytest.mark.parametrize("first_free", [1, 4, 64])
def test_solving_over_the_least_sure_atoms_is_exact(monkeypatch, first_free):
    """The reduced program (least sure atoms free, grown until no held atom could pay)
    finds the optimum of the program over all atoms."""
    monkeypatch.setattr(balance, "FIRST_FREE", first_free)
    rng = np.random.default_rng(first_free)
    for noise in (0.1, 0.3, 0.6):
        labels = rng.choice(3, size=300, p=[0.1, 0.6, 0.3])
        scores = np.eye(3)[labels] + rng.normal(0.0, noise, size=(300, 3))
        scores[:20, 0] = -np.inf
        chosen = balanced_classes(scores, CHARGES)
        full = balance._best_balanced(scores, np.asarray(CHARGES, float), net=0.0, held_real=0)
        assert np.dot(np.asarray(CHARGES)[chosen], np.ones(300)) == 0
        assert np.all(chosen[:20] != 0)
        value = scores[np.arange(300), chosen].sum()
        assert value == pytest.approx(scores[np.arange(300), full].sum(), abs=1e-9)


@pytest.mark.parametrize(
    ("n_atoms", "ghosts", "counts"),
    [(99, False, [0, 66, 33]), (100, False, None), (2, True, None), (3, True, [0, 2, 1])],
)
def test_balanced_composition(n_atoms, ghosts, counts):
    got = balance.balanced_composition(n_atoms, CHARGES, ghosts=ghosts)
    assert (got is None) if counts is None else got.tolist() == counts
    if ghosts:  # any count from 3 up balances with ghosts
        found = balance.balanced_composition(100, CHARGES, ghosts=True)
        assert found.sum() == 100 and np.dot(found, CHARGES) == 0 and found[1:].sum() > 0
    # Na2O-SiO2 (+1, -2, +4) also needs a multiple of 3 real atoms; with Al (+3) too, 100
    na = class_charges(ElementVocabulary(["O", "Na", "Si"])).tolist()
    assert balance.balanced_composition(100, na, ghosts=False) is None
    na_al = class_charges(ElementVocabulary(["O", "Na", "Al", "Si"])).tolist()
    assert balance.balanced_composition(100, na_al, ghosts=False) is not None


def test_balanced_argmax_is_kept_and_forbidden_classes_are_never_chosen():
    si_o2 = np.array([[0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=float)
    assert balanced_classes(si_o2 + 0.1, CHARGES).tolist() == [2, 1, 1, 0]
    # Si O O O: the least sure O becomes the ghost
    scores = np.array([[0, 0, 1], [0, 1, 0], [0, 1, 0], [0.4, 0.5, 0.1]])
    assert balanced_classes(scores, CHARGES).tolist() == [2, 1, 1, 0]
    # without the ghost class, 3 O are balanced only with a second Si (six atoms do it)
    no_ghost = np.vstack([scores, [[0, 0.6, 0.4], [0, 0.9, 0.1]]])
    no_ghost[:, 0] = -np.inf
    chosen = balanced_classes(no_ghost, CHARGES)
    assert chosen.tolist() == [2, 1, 1, 1, 2, 1]  # the least sure O of the two turns Si


def test_no_balanced_labelling_gives_none():
    scores = np.random.default_rng(0).normal(size=(7, 3))
    scores[:, 0] = -np.inf  # no ghosts: 7 real atoms of SiO2 cannot balance
    assert balanced_classes(scores, CHARGES) is None
    with pytest.raises(ValueError, match="2 charges for 3 element classes"):
        balanced_classes(scores, CHARGES[:2])


def _state(classes: list[list[int]], generator: torch.Generator) -> tuple[Batch, DeltaModel]:
    """Clean batch of the given class lists (cubic 6 Å cells) and its delta model (which
    finds a sub-batch's systems by their id, properties[:, 0])."""
    flat = torch.tensor([k for system in classes for k in system])
    sizes = torch.tensor([len(system) for system in classes])
    n = int(sizes.sum())
    system_idx = torch.repeat_interleave(torch.arange(len(classes)), sizes)
    positions = 6.0 * torch.rand((n, 3), generator=generator, dtype=torch.float64)
    elements = torch.nn.functional.one_hot(flat, 3).double()
    batch = Batch(
        positions=positions,
        elements=elements,
        cell=6.0 * torch.eye(3, dtype=torch.float64).expand(len(classes), 3, 3).clone(),
        system_idx=system_idx,
        properties=torch.arange(len(classes), dtype=torch.float64)[:, None],  # system ids
    )
    return batch, DeltaModel(positions, elements, SDE, system_idx)


@pytest.mark.parametrize(("sampler", "atol"), [(sample_ode, 0.05), (sample_sde, 0.3)])
def test_held_elements_take_the_element_channel_to_the_held_ones(sampler, atol, generator):
    clean, model = _state([[2, 1, 1, 0], [2, 1, 1, 1, 1, 2]], generator)
    held = torch.nn.functional.one_hot(torch.tensor([2, 1, 0, 1, 2, 1, 1, 1, 2, 0]), 3).double()
    t = torch.full((2,), 0.3, dtype=torch.float64)
    noisy, _, _ = add_noise(clean.replace(elements=held), t, SDE, generator)
    ts = restart_timesteps(get_timesteps(60, SDE), 0.3)
    out = sampler(HeldElements(model, held, SDE), noisy, ts, sde=SDE, generator=generator)
    assert torch.equal(out.elements.argmax(-1), held.argmax(-1))
    assert torch.allclose(out.elements, held, atol=atol)
    # the positions follow the wrapped model: the delta model's structure comes back
    assert torch.allclose(out.positions, clean.positions, atol=atol)


def test_rebalance_relabels_only_unbalanced_systems(generator):
    # system 0 is SiO2 plus a ghost; system 1 (Si O O O) has one unsure O
    clean, model = _state([[2, 1, 1, 0], [2, 1, 1, 1]], generator)
    final = clean.elements.clone()
    final[7] = torch.tensor([0.4, 0.5, 0.1], dtype=torch.float64)
    state = clean.replace(elements=final)
    ts = get_timesteps(40, SDE)
    assert is_charge_balanced(state, SIO2).tolist() == [True, False]
    out, relabelled = rebalance(
        sample_ode, model, state, ts, class_numbers=SIO2.numbers, restart_t=0.3, sde=SDE
    )
    assert relabelled.tolist() == [0, 1]
    assert net_charge(out, SIO2).tolist() == [0, 0]
    assert out.elements[4:].argmax(-1).tolist() == [2, 1, 1, 0]  # the unsure O is a ghost
    one_hot = torch.nn.functional.one_hot(out.elements[4:].argmax(-1), 3).double()
    assert torch.equal(out.elements[4:], one_hot)  # decoded to the held elements exactly
    assert torch.equal(out.positions[:4], state.positions[:4])  # system 0 untouched
    assert torch.equal(out.elements[:4], state.elements[:4])
    assert torch.allclose(out.positions[4:], clean.positions[4:], atol=0.05)


def test_rebalance_leaves_systems_with_no_balanced_labelling(generator):
    clean, model = _state([[2, 1, 1, 1], [2, 2, 1, 1, 1, 1]], generator)  # Si O3 | Si2 O4

    def real_only(batch: Batch) -> Batch:
        elements = batch.elements.clone()
        elements[:, 0] = -torch.inf
        return batch.replace(elements=elements)

    out, relabelled = rebalance(
        sample_ode,
        model,
        clean,
        get_timesteps(20, SDE),
        class_numbers=SIO2.numbers,
        sde=SDE,
        decode=real_only,
    )
    assert relabelled.tolist() == [0, 0]  # 4 real atoms cannot balance; 6 already do
    assert torch.equal(out.positions, clean.positions)
    assert torch.equal(out.elements, clean.elements)

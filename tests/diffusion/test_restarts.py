"""Restarts and the formal-charge accept test."""

from __future__ import annotations

import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion import (
    MaterialSDE,
    charge_balance,
    class_charges,
    get_timesteps,
    is_charge_balanced,
    net_charge,
    restart_timesteps,
    sample_ode,
    sample_sde,
    sample_with_restarts,
)
from amtoolkit.diffusion._batch_ops import select_systems
from tests.diffusion.toy_models import DeltaModel, RecordingModel, make_state

SDE = MaterialSDE()
STEPS = 12
RESTART_T = 0.3
VOCAB = ElementVocabulary(["O", "Si"])  # classes X (ghost), O, Si


def _delta(generator, n_systems=3, n_atoms=3, classes=None):
    """Delta-distribution problem whose model finds systems by id (properties[:, 0])."""
    state = make_state(n_systems, n_atoms, 3, generator, sde=SDE, n_properties=1)
    state = state.replace(properties=torch.arange(n_systems, dtype=torch.float64)[:, None])
    x0 = 6.0 * torch.rand((state.n_atoms, 3), generator=generator, dtype=torch.float64)
    if classes is None:
        classes = torch.randint(3, (state.n_atoms,), generator=generator)
    e0 = torch.nn.functional.one_hot(classes, 3).double()
    return state, DeltaModel(x0, e0, SDE, state.system_idx)


def reject_system(index: int):
    def accept(batch: Batch) -> torch.Tensor:
        ok = torch.ones(batch.n_systems, dtype=torch.bool)
        if batch.n_systems == 3:  # the full batch
            ok[index] = False
        else:  # a re-run of the rejected system alone
            ok[:] = False
        return ok

    return accept


@pytest.mark.parametrize("sampler", [sample_sde, sample_ode])
def test_only_rejected_systems_rerun_up_to_max(sampler):
    state, model = _delta(torch.Generator().manual_seed(0))
    ts = get_timesteps(STEPS, SDE)
    recorder = RecordingModel(model)
    out, restarts = sample_with_restarts(
        sampler,
        recorder,
        state,
        ts,
        accept=reject_system(1),
        restart_t=RESTART_T,
        max_restarts=2,
        generator=torch.Generator().manual_seed(1),
    )
    assert restarts.tolist() == [0, 2, 0]
    short = restart_timesteps(ts, RESTART_T)
    assert float(short[0]) == RESTART_T and bool((short[1:] < RESTART_T).all())
    sizes = [n for n, _ in recorder.calls]
    assert sizes == [3] * STEPS + [1] * (2 * (short.numel() - 1))
    restart_times = [float(t[0]) for _, t in recorder.calls[STEPS:]]
    assert restart_times == pytest.approx(2 * short[:-1].tolist())
    # accepted systems are exactly those of a plain run with the same generator
    plain = sampler(model, state, ts, sde=SDE, generator=torch.Generator().manual_seed(1))
    keep = torch.tensor([True, False, True])
    assert torch.equal(select_systems(out, keep).positions, select_systems(plain, keep).positions)
    assert torch.equal(select_systems(out, keep).elements, select_systems(plain, keep).elements)
    # the restarted system was re-noised and denoised again
    rerun = select_systems(out, ~keep)
    if sampler is sample_sde:
        assert not torch.equal(rerun.positions, select_systems(plain, ~keep).positions)
    else:  # the VE flow lands exactly on the data whatever the noise
        target = model.positions[state.system_idx == 1]
        torch.testing.assert_close(rerun.positions, target, atol=1e-10, rtol=0)


def test_accepted_after_one_restart_stops():
    state, model = _delta(torch.Generator().manual_seed(0))
    calls = []

    def accept(batch: Batch) -> torch.Tensor:
        calls.append(batch.n_systems)
        ok = torch.ones(batch.n_systems, dtype=torch.bool)
        if len(calls) == 1:
            ok[2] = False
        return ok

    _, restarts = sample_with_restarts(
        sample_ode, model, state, get_timesteps(STEPS, SDE), accept=accept, max_restarts=5
    )
    assert restarts.tolist() == [0, 0, 1]
    assert calls == [3, 1]


def test_zero_max_restarts_is_plain_sampling():
    state, model = _delta(torch.Generator().manual_seed(0))
    ts = get_timesteps(STEPS, SDE)
    out, restarts = sample_with_restarts(
        sample_sde,
        model,
        state,
        ts,
        accept=reject_system(0),
        max_restarts=0,
        generator=torch.Generator().manual_seed(3),
    )
    plain = sample_sde(model, state, ts, generator=torch.Generator().manual_seed(3))
    assert restarts.tolist() == [0, 0, 0]
    assert torch.equal(out.positions, plain.positions)


def test_charge_balance_drives_restarts():
    """System 0 denoises to SiO2 (kept), system 1 to Si2O5 (rejected every time)."""
    classes = torch.tensor(
        [2, 1, 1, 0, 0, 0, 0] + [2, 2, 1, 1, 1, 1, 1]
    )  # Si O O +4 ghosts | Si2O5
    state, model = _delta(torch.Generator().manual_seed(0), n_systems=2, n_atoms=7, classes=classes)
    out, restarts = sample_with_restarts(
        sample_ode,
        model,
        state,
        get_timesteps(STEPS, SDE),
        accept=charge_balance(VOCAB),
        max_restarts=2,
    )
    assert restarts.tolist() == [0, 2]
    assert net_charge(out, VOCAB).tolist() == [0, -2]


def test_restart_argument_errors(generator):
    state, model = _delta(generator)
    ts = get_timesteps(STEPS, SDE)
    with pytest.raises(ValueError, match="restart_t"):
        sample_with_restarts(sample_ode, model, state, ts, accept=reject_system(0), restart_t=1.0)
    with pytest.raises(ValueError, match="max_restarts"):
        sample_with_restarts(sample_ode, model, state, ts, accept=reject_system(0), max_restarts=-1)
    with pytest.raises(ValueError, match="bool tensor"):
        sample_with_restarts(sample_ode, model, state, ts, accept=lambda b: torch.ones(2))


def _batch_of(class_lists: list[list[int]], n_classes: int = 3) -> Batch:
    classes = torch.tensor([c for system in class_lists for c in system])
    sizes = torch.tensor([len(system) for system in class_lists])
    n = int(sizes.sum())
    return Batch(
        positions=torch.zeros((n, 3)),
        elements=torch.nn.functional.one_hot(classes, n_classes).float(),
        cell=torch.eye(3).expand(len(class_lists), 3, 3),
        system_idx=torch.repeat_interleave(torch.arange(len(class_lists)), sizes),
        properties=torch.zeros((len(class_lists), 0)),
    )


def test_formal_charges_of_examples():
    si, o, ghost = 2, 1, 0
    batch = _batch_of(
        [
            [si, o, o],  # SiO2: balanced
            [si, si, o, o, o, o, o],  # Si2O5: -2
            [si, o, o, ghost, ghost, si, o, o],  # Si2O4 with ghosts: balanced
            [si, o, o, o],  # SiO3: -2
            [ghost, ghost],  # empty after ghost removal: no charge, but not a structure
        ]
    )
    assert net_charge(batch, VOCAB).tolist() == [0, -2, 0, -2, 0]
    assert is_charge_balanced(batch, VOCAB.numbers).tolist() == [True, False, True, False, False]
    assert class_charges(VOCAB).tolist() == [0, -2, 4]


def test_charges_of_a_modified_glass_and_argmax_decoding():
    vocab = ElementVocabulary(["O", "Na", "Si"])  # X O Na Si
    na2o_sio2 = [2, 2, 1, 3, 1, 1]  # Na2 Si O3: 2 + 4 - 6 = 0
    batch = _batch_of([na2o_sio2, [2, 3, 1, 1]], n_classes=4)  # Na Si O2: +1
    noisy = batch.replace(elements=0.8 * batch.elements + 0.05)  # continuous, same argmax
    assert net_charge(noisy, vocab).tolist() == [0, 1]


def test_unknown_charge_and_size_mismatch():
    with pytest.raises(ValueError, match="26"):
        class_charges([0, 8, 26])
    with pytest.raises(ValueError, match="26"):
        charge_balance(ElementVocabulary(["O", "Fe"]))
    with pytest.raises(ValueError, match="element classes"):
        net_charge(_batch_of([[1, 2]]), [0, 8])

"""One random stream per system: a system's draws do not depend on its batch."""

from __future__ import annotations

import pytest
import torch

from amtoolkit.diffusion.streams import Streams, integers, random_rows, select_streams


def test_a_systems_rows_come_from_its_own_stream_wherever_it_sits():
    seeds = [11, 22, 33]
    system_idx = torch.tensor([0, 0, 1, 2, 2, 2])
    drawn = random_rows((6, 3), Streams.from_seeds(seeds), dtype=torch.float64,
                        device=torch.device("cpu"), system_idx=system_idx, n_systems=3)  # fmt: skip
    alone = random_rows((3, 3), Streams.from_seeds([33]), dtype=torch.float64,
                        device=torch.device("cpu"), system_idx=torch.zeros(3, dtype=torch.long),
                        n_systems=1)  # fmt: skip
    assert torch.equal(drawn[3:], alone)
    # atoms listed out of system order still get their own system's rows, in order
    shuffled = random_rows((6, 3), Streams.from_seeds(seeds), dtype=torch.float64,
                           device=torch.device("cpu"), system_idx=torch.tensor([2, 0, 2, 1, 0, 2]),
                           n_systems=3)  # fmt: skip
    assert torch.equal(shuffled[[0, 2, 5]], alone) and torch.equal(shuffled[[1, 4]], drawn[:2])


def test_select_add_and_integers():
    streams = Streams.from_seeds([1, 2, 3])
    picked = select_streams(streams, torch.tensor([True, False, True]))
    assert len(picked) == 2 and len(streams + picked) == 5
    first = integers(100, 3, Streams.from_seeds([1, 2, 3]), torch.device("cpu"))
    again = integers(100, 2, Streams.from_seeds([1, 3]), torch.device("cpu"))
    assert first[[0, 2]].tolist() == again.tolist()
    g = torch.Generator().manual_seed(0)
    assert select_streams(g, torch.tensor([True])) is g  # one generator for the batch
    with pytest.raises(ValueError, match="3 random streams for a batch of 2 systems"):
        integers(10, 2, streams, torch.device("cpu"))
    with pytest.raises(ValueError, match="mask of 2 systems for 3 streams"):
        streams.select(torch.tensor([True, False]))

"""Excluded cylinders: distances to the axis, the wall's score, the start outside the
pore, and generation that leaves it empty."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion.pore import (
    Cylinder,
    WalledModel,
    cross_section_width,
    inside,
    prior_outside,
    radial,
    wall_score,
)
from amtoolkit.diffusion.schedules import MaterialSDE

EXACT = 1e-10


def _one(positions, cell) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    positions = torch.tensor(positions, dtype=torch.float64)
    cell = torch.tensor(cell, dtype=torch.float64).reshape(1, 3, 3)
    return positions, cell, torch.zeros(len(positions), dtype=torch.long)


def test_distance_to_the_axis_known_answers_and_nearest_image():
    positions, cell, idx = _one(
        [[5.0, 5.0, 1.0], [8.0, 5.0, 3.0], [5.0, 1.0, 7.0], [9.5, 9.5, 0.0], [0.5, 5.0, 2.0]],
        np.diag([10.0, 10.0, 8.0]),
    )
    rho, outward = radial(positions, cell, idx, Cylinder(3.0))  # along z through (5, 5)
    np.testing.assert_allclose(rho, [0.0, 3.0, 4.0, math.hypot(4.5, 4.5), 4.5], atol=EXACT)
    np.testing.assert_allclose(outward[1], [1.0, 0.0, 0.0], atol=EXACT)
    np.testing.assert_allclose(outward[2], [0.0, -1.0, 0.0], atol=EXACT)
    np.testing.assert_allclose(torch.linalg.norm(outward, dim=1), 1.0, atol=EXACT)
    along_x, _ = radial(positions, cell, idx, Cylinder(3.0, axis=0, center=(0.5, 0.125)))
    np.testing.assert_allclose(along_x[0], 0.0, atol=EXACT)  # y = 5, z = 1 is on that axis
    shifted = positions + torch.tensor([20.0, -10.0, 16.0], dtype=torch.float64)  # images
    np.testing.assert_allclose(radial(shifted, cell, idx, Cylinder(3.0))[0], rho, atol=EXACT)


def test_wall_score_points_out_inside_the_pore_and_vanishes_outside():
    positions, cell, idx = _one([[6.0, 5.0, 0.0], [5.0, 9.0, 0.0]], np.diag([10.0, 10.0, 8.0]))
    sigma = torch.tensor([0.5, 0.5], dtype=torch.float64)
    score = wall_score(positions, cell, idx, Cylinder(3.0), sigma)
    np.testing.assert_allclose(score[0], [(3.0 - 1.0) / 0.25, 0.0, 0.0], atol=EXACT)
    np.testing.assert_allclose(score[1], 0.0, atol=EXACT)


def test_the_start_is_outside_the_pore_and_reproducible():
    cell = torch.diag(torch.tensor([16.0, 16.0, 10.0], dtype=torch.float64)).reshape(1, 3, 3)
    n = 400
    batch = Batch(
        positions=torch.rand((n, 3), dtype=torch.float64) * torch.tensor([16.0, 16.0, 10.0]),
        elements=torch.zeros((n, 2), dtype=torch.float64),
        cell=cell,
        system_idx=torch.zeros(n, dtype=torch.long),
        properties=torch.zeros((1, 0), dtype=torch.float64),
    )
    pore = Cylinder(5.0)
    before = inside(batch.positions, cell, batch.system_idx, pore)
    assert before.any()
    out = prior_outside(batch, pore, torch.Generator().manual_seed(1))
    assert not inside(out.positions, cell, out.system_idx, pore).any()
    np.testing.assert_array_equal(out.positions[~before], batch.positions[~before])  # kept
    again = prior_outside(batch, pore, torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(out.positions, again.positions)


def test_walled_model_moves_only_positions_inside_the_pore():
    sde = MaterialSDE()
    positions, cell, idx = _one([[6.0, 5.0, 0.0], [5.0, 9.0, 0.0]], np.diag([10.0, 10.0, 8.0]))
    batch = Batch(positions, torch.ones((2, 2), dtype=torch.float64), cell, idx,
                  torch.zeros((1, 0), dtype=torch.float64))  # fmt: skip

    def model(batch, t, **kwargs):
        return torch.zeros_like(batch.positions), batch.elements.clone()

    t = torch.tensor([0.3], dtype=torch.float64)
    eps_x, eps_e = WalledModel(model, Cylinder(3.0), sde)(batch, t)
    sigma = float(sde.sigma_x(t)[0])
    np.testing.assert_allclose(eps_x[0], [-(3.0 - 1.0) / sigma, 0.0, 0.0], atol=EXACT)
    np.testing.assert_allclose(eps_x[1], 0.0, atol=EXACT)
    np.testing.assert_array_equal(eps_e, batch.elements)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("6", Cylinder(6.0)), ("6.5,x", Cylinder(6.5, axis=0)), (" 4 , Y ", Cylinder(4.0, axis=1))],
)
def test_parse(text, expected):
    assert Cylinder.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wide", "pore radius 'wide' is not a number"),
        ("6,w", "pore axis 'w' is not one of x, y, z"),
        ("6,x,1", "is not RADIUS or RADIUS,AXIS"),
        ("-2", "pore radius must be a positive length"),
    ],
)
def test_bad_pores_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        Cylinder.parse(text)


def test_a_pore_must_leave_a_wall():
    cell = np.diag([12.0, 14.0, 30.0])
    assert cross_section_width(cell, 2) == pytest.approx(12.0)
    Cylinder(5.0).check_fits(cell)
    with pytest.raises(ValueError, match=r"radius 5.5 Å does not fit a cell 12 Å wide .*\(z\)"):
        Cylinder(5.5).check_fits(cell)
    assert Cylinder(4.0).volume(cell) == pytest.approx(math.pi * 16.0 * 30.0)
    skewed = np.array([[12.0, 0.0, 0.0], [3.0, 14.0, 0.0], [1.0, 2.0, 30.0]])
    u = skewed[2] / np.linalg.norm(skewed[2])  # heights of the cross-section seen along c
    a, b = (skewed[k] - np.dot(skewed[k], u) * u for k in (0, 1))
    area = np.linalg.norm(np.cross(a, b))
    heights = (area / np.linalg.norm(a), area / np.linalg.norm(b))
    assert cross_section_width(skewed, 2) == pytest.approx(min(heights), rel=1e-12)

"""Formal-charge balance of generated oxide samples (an `accept` test for restarts).

A generated SiO2 (or oxide glass) sample is kept only when the formal charges of its
real atoms sum to zero (Si +4, O -2, ...); ghosts carry no charge. Elements are decoded
by argmax, as at output.

References:
    AMDEN (charge-balance rejection of generated SiO2); BMP potential element set,
    Bertani et al., Phys. Rev. Mater. 5, 045602 (2021).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion.restarts import sample_with_restarts

__all__ = [
    "FORMAL_CHARGES",
    "ChargeBalance",
    "charge_balance",
    "class_charges",
    "is_charge_balanced",
    "net_charge",
    "sample_with_restarts",
]

FORMAL_CHARGES: dict[int, int] = {
    0: 0,  # ghost
    3: 1,  # Li
    4: 2,  # Be
    5: 3,  # B
    8: -2,  # O
    9: -1,  # F
    11: 1,  # Na
    12: 2,  # Mg
    13: 3,  # Al
    14: 4,  # Si
    15: 5,  # P
    17: -1,  # Cl
    19: 1,  # K
    20: 2,  # Ca
    22: 4,  # Ti
    30: 2,  # Zn
    32: 4,  # Ge
    38: 2,  # Sr
    40: 4,  # Zr
    56: 2,  # Ba
}
"""Formal (oxidation-state) charges by atomic number, e: the BMP glass elements (Si, O,
Li, K, Al, P, Ti, Ba, Be, Ca, Zn) and common oxide-glass formers/modifiers; ghost 0."""


def _numbers(class_numbers: Sequence[int] | object) -> list[int]:
    numbers = getattr(class_numbers, "numbers", class_numbers)  # an ElementVocabulary too
    return [int(z) for z in numbers]  # type: ignore[union-attr]


def class_charges(class_numbers: Sequence[int] | object) -> torch.Tensor:
    """Formal charge of each element class.

    Args:
        class_numbers: atomic number of each class index (``vocabulary.numbers``, ghost 0
            first), or an ElementVocabulary.

    Returns:
        Charges ``[n_classes]`` (long).

    Raises:
        ValueError: naming an atomic number without a formal charge in `FORMAL_CHARGES`.
    """
    numbers = _numbers(class_numbers)
    missing = [z for z in numbers if z not in FORMAL_CHARGES]
    if missing:
        raise ValueError(
            f"no formal charge known for atomic number(s) {missing}; "
            f"known: {sorted(FORMAL_CHARGES)}"
        )
    return torch.tensor([FORMAL_CHARGES[z] for z in numbers], dtype=torch.long)


def net_charge(batch: Batch, class_numbers: Sequence[int] | object) -> torch.Tensor:
    """Sum of the formal charges of each system (elements decoded by argmax). [S] long"""
    charges = class_charges(class_numbers).to(batch.elements.device)
    if charges.numel() != batch.elements.shape[-1]:
        raise ValueError(
            f"{charges.numel()} class numbers for {batch.elements.shape[-1]} element classes"
        )
    per_atom = charges[batch.elements.argmax(dim=-1)]  # [N]
    return torch.zeros(batch.n_systems, dtype=torch.long, device=per_atom.device).index_add_(
        0, batch.system_idx, per_atom
    )


def is_charge_balanced(batch: Batch, class_numbers: Sequence[int] | object) -> torch.Tensor:
    """True for each system whose formal charges sum to zero and that holds at least one
    real (non-ghost) atom: an empty structure is not a balanced one. [S] bool"""
    real = (batch.elements.argmax(dim=-1) != 0).long()  # class 0 = ghost
    n_real = torch.zeros(batch.n_systems, dtype=torch.long, device=real.device).index_add_(
        0, batch.system_idx, real
    )
    return (net_charge(batch, class_numbers) == 0) & (n_real > 0)


@dataclasses.dataclass(frozen=True)
class ChargeBalance:
    """Accept function for `sample_with_restarts`: keep charge-balanced systems.

    Attributes:
        class_numbers: atomic number of each class index (ghost 0 first).
    """

    class_numbers: tuple[int, ...]

    def __call__(self, batch: Batch) -> torch.Tensor:
        return is_charge_balanced(batch, self.class_numbers)


def charge_balance(class_numbers: Sequence[int] | object) -> ChargeBalance:
    """Accept function keeping charge-balanced systems (`class_numbers` checked now)."""
    numbers = tuple(_numbers(class_numbers))
    class_charges(numbers)
    return ChargeBalance(numbers)

"""Information entropy and overlap of atomic environments (QUESTS, optional extra).

Needs the optional ``quests`` package (``pip install 'amtoolkit[entropy]'``); it pulls
numba and ~330 MB of dependencies, so it is imported only when these functions run.
Descriptors are QUESTS' species-agnostic ones (k nearest neighbours within `cutoff`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from ase import Atoms

from amtoolkit.analysis._result import Result
from amtoolkit.analysis._structures import prepare

QUESTS_MISSING = (
    "QUESTS entropy and overlap need the optional 'quests' package: "
    "pip install 'amtoolkit[entropy]'"
)

#: environments with dH below this (nats) count as covered by the reference (QUESTS)
OVERLAP_EPS = 1e-5


def _import_quests():
    """Return (get_descriptors, get_all_metrics, kernel_sum) from quests, or raise."""
    try:
        from quests.descriptor import get_descriptors
        from quests.entropy import get_all_metrics, kernel_sum
    except ImportError as err:
        raise ImportError(QUESTS_MISSING) from err
    return get_descriptors, get_all_metrics, kernel_sum


@dataclasses.dataclass(frozen=True)
class EntropyResult(Result):
    """QUESTS information entropy of a set of structures.

    Attributes:
        entropy: entropy of all environments of the set pooled together, nats.
        per_structure: entropy of each structure alone, nats, shape [n_structures].
        diversity: log of the effective number of distinct environments of the set, nats.
        n_environments: number of atomic environments (real atoms) in the set.
        k: neighbours per descriptor.
        cutoff: descriptor cutoff, Å.
        bandwidth: Gaussian kernel bandwidth (descriptor units, 1/Å).
    """

    entropy: float
    per_structure: np.ndarray
    diversity: float
    n_environments: int
    k: int
    cutoff: float
    bandwidth: float


@dataclasses.dataclass(frozen=True)
class OverlapResult(Result):
    """Overlap of the environments of a test set with a reference set.

    Attributes:
        overlap: fraction of test environments with dH < `eps` (0 to 1).
        dH: differential entropy dH(test | reference) per test environment, nats,
            shape [n_test_environments]; +inf where no reference environment is
            within reach of the kernel (serialised as None by to_dict).
        eps: threshold on dH, nats.
        k: neighbours per descriptor.
        cutoff: descriptor cutoff, Å.
        bandwidth: Gaussian kernel bandwidth.
    """

    overlap: float
    dH: np.ndarray
    eps: float
    k: int
    cutoff: float
    bandwidth: float

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["dH"] = [float(x) if np.isfinite(x) else None for x in self.dH]
        return out


def descriptors(
    structures: Atoms | Iterable[Atoms], k: int = 32, cutoff: float = 5.0
) -> np.ndarray:
    """QUESTS descriptors of every real atom of a structure or set.

    Args:
        structures: one periodic Atoms or a sequence of them (ghosts are dropped).
        k: number of nearest neighbours in each descriptor.
        cutoff: smooth cutoff radius, Å.

    Returns:
        Descriptor matrix, shape [n_environments, 2k - 1], float64.

    References:
        D. Schwalbe-Koda, S. Hamel, B. Sadigh, F. Zhou, V. Lordi, Nat. Commun. 16,
        4014 (2025), Eqs. 1-2 (QUESTS descriptors).
    """
    get_descriptors, _, _ = _import_quests()
    _check_descriptor_args(k, cutoff)
    frames = prepare(structures)
    return get_descriptors(frames, k=k, cutoff=cutoff)


def entropy(
    structures: Atoms | Iterable[Atoms],
    k: int = 32,
    cutoff: float = 5.0,
    bandwidth: float = 0.015,
) -> EntropyResult:
    """Information entropy H = -(1/N) sum_i log[(1/N) sum_j K_h(x_i, x_j)] of the environments.

    K_h is a Gaussian kernel of width `bandwidth` on QUESTS descriptors. H is 0 when
    all environments are identical and log N when all are distinct.

    Args:
        structures: one periodic Atoms or a sequence of them (ghosts are dropped).
        k: neighbours per descriptor.
        cutoff: descriptor cutoff, Å.
        bandwidth: kernel bandwidth h.

    Returns:
        EntropyResult with the pooled entropy of the set and per-structure entropies (nats).

    References:
        D. Schwalbe-Koda et al., Nat. Commun. 16, 4014 (2025), Eq. 4 (entropy).
    """
    get_descriptors, get_all_metrics, _ = _import_quests()
    _check_descriptor_args(k, cutoff)
    _check_bandwidth(bandwidth)
    frames = prepare(structures)
    per_frame = [get_descriptors([atoms], k=k, cutoff=cutoff) for atoms in frames]
    pooled = np.concatenate(per_frame)
    set_entropy, diversity, _ = get_all_metrics(pooled, h=bandwidth)
    if len(per_frame) == 1:
        per_structure = np.array([set_entropy], dtype=float)
    else:
        per_structure = np.array([get_all_metrics(x, h=bandwidth)[0] for x in per_frame])
    return EntropyResult(
        entropy=float(set_entropy),
        per_structure=per_structure.astype(float),
        diversity=float(diversity),
        n_environments=int(len(pooled)),
        k=int(k),
        cutoff=float(cutoff),
        bandwidth=float(bandwidth),
    )


def overlap(
    structures: Atoms | Iterable[Atoms],
    reference: Atoms | Iterable[Atoms],
    k: int = 32,
    cutoff: float = 5.0,
    bandwidth: float = 0.015,
    eps: float = OVERLAP_EPS,
) -> OverlapResult:
    """Fraction of the environments of `structures` that the `reference` set covers.

    dH(y | X) = -log sum_j K_h(y, x_j) per test environment y; an environment is
    covered when dH < `eps` (an identical reference environment gives dH <= 0).
    Where the kernel sum underflows to zero dH is +inf (never covered).

    Args:
        structures: test structure or set.
        reference: reference structure or set.
        k: neighbours per descriptor.
        cutoff: descriptor cutoff, Å.
        bandwidth: kernel bandwidth h.
        eps: dH threshold, nats.

    Returns:
        OverlapResult with the covered fraction and dH per test environment.

    References:
        D. Schwalbe-Koda et al., Nat. Commun. 16, 4014 (2025), Eq. 6 (differential
        entropy) and the overlap criterion of the QUESTS `overlap` command.
    """
    get_descriptors, _, _ = _import_quests()
    _check_descriptor_args(k, cutoff)
    _check_bandwidth(bandwidth)
    x_test = get_descriptors(prepare(structures), k=k, cutoff=cutoff)
    x_ref = get_descriptors(prepare(reference), k=k, cutoff=cutoff)
    dH = differential_entropy(x_test, x_ref, bandwidth)
    return OverlapResult(
        overlap=float(np.mean(dH < eps)),
        dH=dH,
        eps=float(eps),
        k=int(k),
        cutoff=float(cutoff),
        bandwidth=float(bandwidth),
    )


def differential_entropy(x_test: np.ndarray, x_ref: np.ndarray, bandwidth: float) -> np.ndarray:
    """dH(y | X) = -log sum_j exp(-|y - x_j|^2 / (2 h^2)) for each row y of `x_test`.

    Args:
        x_test: test descriptors, shape [m, d].
        x_ref: reference descriptors, shape [n, d].
        bandwidth: kernel bandwidth h.

    Returns:
        dH per test row, nats, shape [m]; +inf (without a warning) where the kernel
        sum is zero.

    References:
        D. Schwalbe-Koda et al., Nat. Commun. 16, 4014 (2025), Eq. 6.
    """
    _, _, kernel_sum = _import_quests()
    # quests.entropy.delta_entropy is -log(kernel_sum); computed here to guard log(0)
    kernel = np.asarray(kernel_sum(x_test, x_ref, h=bandwidth), dtype=float)  # [m]
    dH = np.full(kernel.shape, np.inf)
    positive = kernel > 0
    dH[positive] = -np.log(kernel[positive])
    return dH


def _check_descriptor_args(k: int, cutoff: float) -> None:
    if int(k) != k or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k}")
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")


def _check_bandwidth(bandwidth: float) -> None:
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")

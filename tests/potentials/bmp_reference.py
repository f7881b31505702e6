"""Independent numpy evaluation of the BMP-shrm energy, for checking the LAMMPS set-up.

Written from the functional forms (not from the LAMMPS code):

- Coulomb, damped shifted force (Fennell & Gezelter 2006, eq. 18):
  E = k sum_{i<j} q_i q_j V(r) + k sum_i q_i^2 / 2 lim_{r->0} [V(r) - 1/r], with
  V(r) = erfc(a r)/r - erfc(a rc)/rc + S (r - rc),
  S = erfc(a rc)/rc^2 + 2a/sqrt(pi) e^{-a^2 rc^2}/rc;
  the self term is the r -> 0 limit of the same shifted-force pair function,
  -(k/2) sum_i q_i^2 (2a/sqrt(pi) + erfc(a rc)/rc + S rc).
- Morse + r^-12 per X-O pair, D[(1 - e^{-a(r-r0)})^2 - 1] + B/r^12, optionally shifted to 0
  at the 7 Å cutoff;
- Buckingham A e^{-r/rho} - C/r^6 for former-former pairs, optionally shifted;
- screened harmonic three-body on T-O-T' with O at the centre:
  K (theta - theta0)^2 exp(-r_OT/rho - r_OT'/rho), for r_OT, r_OT' < 3.3 Å.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.special import erfc

from amtoolkit.potentials.bmp import parameters

COULOMB_K = 14.399645  # e^2 / (4 pi eps0) in eV Å, the constant LAMMPS metal units use
# Three-body constants of BMP-shrm (K already holds the 1/2; theta0 in degrees, rho and
# cutoff in Å), keyed by the unordered pair of O's neighbours.
THREE_BODY = {
    ("Si", "Si"): 12.5,
    ("P", "P"): 32.5,
    ("P", "Si"): 60.0,
}
THETA0 = np.deg2rad(109.47)
THREE_BODY_RHO = 1.0
THREE_BODY_CUTOFF = 3.3


def erfc_abramowitz_stegun(x: np.ndarray) -> np.ndarray:
    """erfc from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), as LAMMPS coul/dsf uses."""
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return poly * np.exp(-x * x)


def coulomb_dsf(atoms: Atoms, alpha: float, cutoff: float, exact_erfc: bool = False) -> float:
    """DSF Coulomb energy (eV) including the self term."""
    p = parameters()
    q = np.array([p.charges[s] for s in atoms.get_chemical_symbols()])
    i, j, r = neighbor_list("ijd", atoms, cutoff)  # full list: each pair twice
    erfc_r = erfc(alpha * r) if exact_erfc else erfc_abramowitz_stegun(alpha * r)
    erfc_c = erfc(alpha * cutoff)
    slope = (
        erfc_c / cutoff**2 + 2 * alpha / np.sqrt(np.pi) * np.exp(-(alpha**2) * cutoff**2) / cutoff
    )
    pair = q[i] * q[j] * (erfc_r / r - erfc_c / cutoff + slope * (r - cutoff))
    self_term = 0.5 * (q**2).sum() * (2 * alpha / np.sqrt(np.pi) + erfc_c / cutoff + slope * cutoff)
    return COULOMB_K * (0.5 * pair.sum() - self_term)


def morse_r12(r: np.ndarray, d: float, a: float, r0: float, b: float) -> np.ndarray:
    return d * ((1.0 - np.exp(-a * (r - r0))) ** 2 - 1.0) + b / r**12


def buckingham(r: np.ndarray, big_a: float, rho: float, c: float) -> np.ndarray:
    return big_a * np.exp(-r / rho) - c / r**6


def short_range(atoms: Atoms, cutoff: float, shift: bool) -> float:
    """Morse + r^-12 (X-O, O-O) and Buckingham (former-former) energy (eV)."""
    p = parameters()
    symbols = np.array(atoms.get_chemical_symbols())
    i, j, r = neighbor_list("ijd", atoms, cutoff)
    si, sj = symbols[i], symbols[j]
    energy = 0.0
    for element, (d, a, r0, b) in p.morse.items():
        mask = (si == element) & (sj == "O") | (si == "O") & (sj == element)
        e_pair = morse_r12(r[mask], d, a, r0, b)
        if shift:
            e_pair = e_pair - morse_r12(np.array(cutoff), d, a, r0, b)
        energy += 0.5 * e_pair.sum()
    for (x, y), (big_a, rho, c) in p.buckingham.items():
        mask = (si == x) & (sj == y) | (si == y) & (sj == x)
        e_pair = buckingham(r[mask], big_a, rho, c)
        if shift:
            e_pair = e_pair - buckingham(np.array(cutoff), big_a, rho, c)
        energy += 0.5 * e_pair.sum()
    return float(energy)


def three_body(atoms: Atoms) -> float:
    """Screened harmonic T-O-T' energy (eV), O at the centre, T, T' in {Si, P}."""
    symbols = np.array(atoms.get_chemical_symbols())
    i, j, r, vec = neighbor_list("ijdD", atoms, THREE_BODY_CUTOFF)
    energy = 0.0
    for centre in np.flatnonzero(symbols == "O"):
        mask = (i == centre) & np.isin(symbols[j], ("Si", "P"))
        neigh, dist, bond = symbols[j[mask]], r[mask], vec[mask]
        for m in range(len(dist)):
            for n in range(m + 1, len(dist)):
                k = THREE_BODY[tuple(sorted((neigh[m], neigh[n])))]
                cos_t = bond[m] @ bond[n] / (dist[m] * dist[n])
                theta = np.arccos(np.clip(cos_t, -1.0, 1.0))
                screen = np.exp(-dist[m] / THREE_BODY_RHO - dist[n] / THREE_BODY_RHO)
                energy += k * (theta - THETA0) ** 2 * screen
    return float(energy)


def bmp_energy(
    atoms: Atoms,
    *,
    alpha: float = 0.2,
    coulomb_cutoff: float = 12.0,
    short_range_cutoff: float = 7.0,
    shift: bool = True,
    with_three_body: bool = True,
    exact_erfc: bool = False,
) -> float:
    """Total BMP-shrm energy (eV) of a periodic structure."""
    energy = coulomb_dsf(atoms, alpha, coulomb_cutoff, exact_erfc) + short_range(
        atoms, short_range_cutoff, shift
    )
    if with_three_body:
        energy += three_body(atoms)
    return energy

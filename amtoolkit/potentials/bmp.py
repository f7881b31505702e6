"""Bertani-Menziani-Pedone (BMP-shrm) force field for multicomponent oxide glasses.

Energy (one sum over pairs i<j, one over O-centred triplets):

    E = sum_ij q_i q_j / r  (damped shifted force, alpha = 0.2 1/Å, cutoff 12 Å)
      + sum_{cation-O, O-O} D [(1 - exp(-a (r - r0)))^2 - 1] + B / r^12   (r < 7 Å)
      + sum_{former-former} A exp(-r / rho) - C / r^6                    (r < 7 Å)
      + sum_{T-O-T'} K (theta - theta0)^2 exp(-r_OT / rho - r_OT' / rho) (nb3b/screened)

with charges 0.6 x formal (Si 2.4, O -1.2, ...). The Morse + r^-12 term is LAMMPS
`pedone` (D [e^{-2a(r-r0)} - 2 e^{-a(r-r0)}] + B / r^12, the same function), the
former-former repulsion `buck`, the Coulomb term `coul/dsf`, the three-body term
`nb3b/screened` with LAMMPS' shipped `PSiO.nb3b.screened` (O-Si-Si, O-P-P, O-P-Si).
Parameters and their provenance are in `data/bmp_shrm.json`.

With `shift=True` (default) the Morse and Buckingham energies are shifted to zero at
the 7 Å cutoff (`pair_modify shift yes`): forces are unchanged, the energy becomes
continuous, and stress equals the volume derivative of the energy. (LAMMPS `pedone`
subtracts B/rc^12 instead of adding it in its shift, leaving 2 B/rc^12 <= 1.5e-8 eV
per pair at the cutoff.) The three-body term is cut at 3.3 Å (shipped file), where
its energy and force jump; see docs/potentials.md.

References: M. Bertani, M. C. Menziani, A. Pedone, Phys. Rev. Mater. 5, 045602 (2021);
A. Pedone et al., J. Phys. Chem. B 110, 11780 (2006) (PMMCS functional form);
C. J. Fennell and J. D. Gezelter, J. Chem. Phys. 124, 234104 (2006) (DSF Coulomb).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_FILE = Path(__file__).parent / "data" / "bmp_shrm.json"
THREE_BODY_FILE = "PSiO.nb3b.screened"
THREE_BODY_ELEMENTS = ("O", "P", "Si")
DSF_ALPHA = 0.2  # 1/Å
COULOMB_CUTOFF = 12.0  # Å
SHORT_RANGE_CUTOFF = 7.0  # Å
REFERENCE = "M. Bertani, M. C. Menziani, A. Pedone, Phys. Rev. Mater. 5, 045602 (2021)"


@dataclass(frozen=True)
class BMPParameters:
    """BMP-shrm two-body parameters.

    Attributes:
        charges: element -> charge (e).
        morse: element X -> (D eV, a 1/Å, r0 Å, B eV Å^12) of the X-O pair ("O": O-O).
        buckingham: (X, Y) sorted pair -> (A eV, rho Å, C eV Å^6).
    """

    charges: dict[str, float]
    morse: dict[str, tuple[float, float, float, float]]
    buckingham: dict[tuple[str, str], tuple[float, float, float]]


@lru_cache(maxsize=1)
def parameters() -> BMPParameters:
    """The BMP-shrm parameter set from `data/bmp_shrm.json`."""
    raw = json.loads(DATA_FILE.read_text())
    morse = {k: tuple(v) for k, v in raw["morse_O"].items() if not k.startswith("_")}
    buck = {
        tuple(sorted(k.split("-"))): tuple(v)
        for k, v in raw["buckingham"].items()
        if not k.startswith("_")
    }
    return BMPParameters(charges=dict(raw["charges"]), morse=morse, buckingham=buck)


ELEMENTS: tuple[str, ...] = tuple(parameters().charges)


def lammps_commands(
    species: Sequence[str],
    *,
    alpha: float = DSF_ALPHA,
    coulomb_cutoff: float = COULOMB_CUTOFF,
    short_range_cutoff: float = SHORT_RANGE_CUTOFF,
    shift: bool = True,
    three_body: bool = True,
    three_body_file: str = THREE_BODY_FILE,
) -> list[str]:
    """LAMMPS commands for BMP-shrm with atom type i+1 = `species[i]`.

    Args:
        species: element symbols of the LAMMPS atom types, all in `ELEMENTS`.
        alpha: DSF damping parameter (1/Å).
        coulomb_cutoff: DSF cutoff (Å).
        short_range_cutoff: cutoff of the Morse/r^-12 and Buckingham terms (Å).
        shift: shift the short-range energies to zero at their cutoff.
        three_body: include the screened three-body term.
        three_body_file: path of the nb3b/screened parameter file (quoted if needed).

    Returns:
        `pair_style`, `pair_coeff`, `pair_modify` and `set type ... charge` commands;
        the `set` commands need the atoms to exist already.
    """
    params = parameters()
    types = {el: i + 1 for i, el in enumerate(species)}
    morse_lines = []
    if "O" in types:
        o = types["O"]
        for el in species:
            i, j = sorted((types[el], o))
            d, a, r0, b = params.morse[el]
            morse_lines.append(f"pair_coeff {i} {j} pedone {d} {a} {r0} {b}")
    buck_lines = []
    for (x, y), (big_a, rho, c) in params.buckingham.items():
        if x in types and y in types:
            i, j = sorted((types[x], types[y]))
            buck_lines.append(f"pair_coeff {i} {j} buck {big_a} {rho} {c}")
    use_three_body = three_body and "O" in types and ("Si" in types or "P" in types)

    style = f"pair_style hybrid/overlay coul/dsf {alpha} {coulomb_cutoff}"
    if morse_lines:
        style += f" pedone {short_range_cutoff}"
    if buck_lines:
        style += f" buck {short_range_cutoff}"
    if use_three_body:
        style += " nb3b/screened"
    commands = [style, "pair_coeff * * coul/dsf", *morse_lines, *buck_lines]
    if use_three_body:
        mapping = " ".join(el if el in THREE_BODY_ELEMENTS else "NULL" for el in species)
        commands.append(f"pair_coeff * * nb3b/screened {three_body_file} {mapping}")
    if shift:
        commands.append("pair_modify shift yes")
    commands += [f"set type {types[el]} charge {params.charges[el]}" for el in species]
    return commands

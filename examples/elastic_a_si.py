"""Elastic constants of amorphous and crystalline Si with the Stillinger-Weber potential.

Usage:
    python examples/elastic_a_si.py

Relaxed-ion elastic constants by finite-difference stress-strain fits
(``Analyzer("sw-si").elastic``) on diamond Si and on the 216-atom a-Si structure shipped
with amtoolkit. Each structure is first relaxed (positions and cell, zero pressure);
then each of the 6 Voigt strains is applied at 5 values from -1 % to +1 %, the ions are
relaxed at every strain, and C is fitted to the stresses.

Diamond checks the method against the known SW constants C11/C12/C44 =
151.4/76.4/56.4 GPa. The isotropic moduli (K = (C11 + 2 C12)/3, G = C44,
E = (C11 - C12)(C11 + 2 C12)/(C11 + C12), nu = E/(2G) - 1 from the cubic averages of
C) are printed for the amorphous cell only: they describe an isotropic solid, and
diamond's C44 differs from (C11 - C12)/2. About 30 s on one core.
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from amtoolkit import Analyzer, examples
from amtoolkit.analysis.elastic import ElasticResult, cubic_averages

#: Stillinger-Weber diamond Si, relaxed-ion, GPa
SW_DIAMOND = (151.4, 76.4, 56.4)


def print_stiffness(name: str, result: ElasticResult) -> None:
    """The 6x6 stiffness matrix (GPa), its cubic averages and the fit residual."""
    print(f"\n{name}: stiffness C (GPa), Voigt order xx yy zz yz xz xy")
    for row in result.C:
        print("  " + " ".join(f"{c:7.1f}" for c in row))
    c11, c12, c44 = cubic_averages(result.C)
    print(f"  C11 {c11:.1f}   C12 {c12:.1f}   C44 {c44:.1f} GPa   (cubic averages)")
    print(f"  anisotropy 2 C44 / (C11 - C12) = {2 * c44 / (c11 - c12):.2f} (isotropic: 1)")
    print(f"  stress-strain fit residual {float(np.mean(result.residual)):.4f} GPa")


def main() -> dict[str, ElasticResult]:
    analyzer = Analyzer("sw-si")
    diamond = analyzer.elastic(bulk("Si", "diamond", a=5.431, cubic=True))
    amorphous = analyzer.elastic(examples.load("a-si"))

    print_stiffness("diamond Si, 8 atoms", diamond)
    measured = cubic_averages(diamond.C)
    print(
        "  known SW values   "
        + "   ".join(
            f"{name} {ref:.1f} ({got - ref:+.1f})"
            for name, ref, got in zip(("C11", "C12", "C44"), SW_DIAMOND, measured, strict=True)
        )
    )

    print_stiffness("a-Si (example:a-si), 216 atoms", amorphous)
    print(
        f"  isotropic moduli  K {amorphous.mean_bulk_modulus:.1f}  "
        f"G {amorphous.mean_shear_modulus:.1f}  E {amorphous.mean_youngs_modulus:.1f} GPa"
        f"   Poisson ratio {amorphous.mean_poisson_ratio:.3f}"
    )
    return {"diamond": diamond, "a-Si": amorphous}


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help
    main()

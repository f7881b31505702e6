"""Published values the tests check against."""

SW_LATTICE = 5.431  # Å, diamond Si at the Stillinger-Weber minimum
SW_DIAMOND_ENERGY = -2 * 2.1683  # eV/atom: 4 bonds x epsilon / 2 (Stillinger & Weber 1985)

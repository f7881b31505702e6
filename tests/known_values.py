"""Published values the tests check against."""

SW_LATTICE = 5.431  # Å, diamond Si at the Stillinger-Weber minimum
SW_DIAMOND_ENERGY = -2 * 2.1683  # eV/atom: 4 bonds x epsilon / 2 (Stillinger & Weber 1985)

# alpha-quartz, P3_221, a = 4.916 Å, c = 5.405 Å (Levien, Prewitt & Weidner, Am. Mineral. 65,
# 920 (1980))
QUARTZ_SI_O_BONDS = (1.605, 1.614)  # Å, the two Si-O bond lengths of each SiO4 (2 of each)
QUARTZ_DENSITY = 2.65  # g/cm^3

"""Import the DM2 amorphous SiO2 glasses into one amtoolkit HDF5 dataset.

Usage:
    python examples/import_dm2_sio2.py [FOLDER] [OUTPUT]

FOLDER defaults to ../shared/data/dm2-sio2 (next to the repository), OUTPUT to
dm2_sio2.h5. The 20 structures (4 cooling rates x 5 samples, 3000 atoms each) become
one dataset with the properties ``cooling_rate`` (K/ps) and ``density`` (g/cm^3).
A FOLDER without DM2 glass files, or an OUTPUT that cannot be written, is a usage
error (exit status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from amtoolkit.data import Dataset, DatasetError, import_dm2_sio2
from amtoolkit.io import check_writable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "data" / "dm2-sio2"


def main(folder: Path = DEFAULT_FOLDER, output: Path = Path("dm2_sio2.h5")) -> Dataset:
    dataset = import_dm2_sio2(folder)
    dataset.to_hdf5(output)
    print(f"{dataset}")
    rates = dataset.properties["cooling_rate"]
    density = dataset.properties["density"]
    for rate in np.unique(rates):
        sel = rates == rate
        print(
            f"  {rate:6g} K/ps: {sel.sum()} structures, "
            f"density {density[sel].mean():.3f} +- {density[sel].std():.3f} g/cm3"
        )
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB)")
    reopened = Dataset.from_hdf5(output)  # lazy: frames are read when asked for
    print(f"reopened: {reopened}")
    return reopened


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=DEFAULT_FOLDER,
        help=f"the DM2 dm2-sio2 folder (default {DEFAULT_FOLDER})",
    )
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        default=Path("dm2_sio2.h5"),
        help="HDF5 dataset to write (default dm2_sio2.h5)",
    )
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: no such folder")
    try:
        check_writable(args.output)
    except OSError as err:
        parser.error(str(err))
    try:
        main(args.folder, args.output)
    except DatasetError as err:  # e.g. a folder without DM2 glass files
        parser.error(str(err))

"""Datasets of amorphous structures, ghost atoms and element vocabularies.

- `Dataset`: frames + property table (NaN = missing) + provenance; extxyz, AMDEN
  (extxyz + JSON), LAMMPS data and HDF5 (lazy) readers; deterministic splits with
  train-set normalisation.
- Ghost atoms (`add_ghosts`, `remove_ghosts`, `n_target`, `MAX_DENSITY`).
- `ElementVocabulary`: atomic numbers <-> model class indices, ghost = class 0.
- `import_dm2_sio2`: the DM2 a-SiO2 glasses (LAMMPS data) as a Dataset.
- `PROPERTY_UNITS`: documented property keys and units.
- `open_dataset`, `summarize`: a dataset from a file or shipped name; its statistics.
- `condensed_provenance`: a provenance record with per-sample run records as digests.
"""

from __future__ import annotations

from amtoolkit.data._files import condensed_provenance, records_digest
from amtoolkit.data.dataset import (
    Dataset,
    DatasetError,
    Frame,
    available_datasets,
    compute_normalisation,
    open_dataset,
)
from amtoolkit.data.dm2 import import_dm2_sio2
from amtoolkit.data.ghosts import (
    GHOST_NUMBER,
    GHOST_SYMBOL,
    MAX_DENSITY,
    add_ghosts,
    ghost_mask,
    n_target,
    remove_ghosts,
)
from amtoolkit.data.properties import PROPERTY_UNITS
from amtoolkit.data.summary import ColumnStats, DatasetSummary, summarize
from amtoolkit.data.vocabulary import ElementVocabulary, VocabularyError

__all__ = [
    "GHOST_NUMBER",
    "GHOST_SYMBOL",
    "MAX_DENSITY",
    "PROPERTY_UNITS",
    "ColumnStats",
    "Dataset",
    "DatasetError",
    "DatasetSummary",
    "ElementVocabulary",
    "Frame",
    "VocabularyError",
    "add_ghosts",
    "available_datasets",
    "compute_normalisation",
    "condensed_provenance",
    "ghost_mask",
    "import_dm2_sio2",
    "n_target",
    "open_dataset",
    "records_digest",
    "remove_ghosts",
    "summarize",
]

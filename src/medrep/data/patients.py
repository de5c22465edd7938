"""Patient-level structure for intervals: a source with patient ids (a column, or a recipe's rule such as
CheXpert's ``patient00001`` path part) makes every interval a cluster bootstrap over patients.  (Splits
medrep draws itself keep patients whole: :mod:`medrep.data.autosplit`.)
"""
from __future__ import annotations

import numpy as np


def bootstrap_groups(dataset) -> np.ndarray | None:
    """Patient id per item for a cluster bootstrap, or None (items resampled independently)."""
    patients = dataset.patients
    return None if patients is None else np.asarray(patients, dtype=object)

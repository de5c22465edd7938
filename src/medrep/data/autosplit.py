"""A train/test split for data that has none: seeded, stratified by class and grouped by patient.

Analyses that fit on one split and measure on another (probes, kNN, anchors) need two; a plain folder or
a CSV without a split column has one.  Rather than fail, such data is divided 70/30 with the seed, whole
patients on one side (``dataset.patients``), or — without patient ids — whole source files (the frames
of one DICOM, ids ``<path>#frame=N``, are near-duplicates).  The split is announced in one line and
recorded in the manifest.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from medrep.data.base import ImageDataset, SplitDataset
from medrep.errors import MedrepError, Param

TRAIN_FRACTION = 0.7


def grouped_split(dataset: ImageDataset, seed: int = 0, train_fraction: float = TRAIN_FRACTION,
                  where: str = Param("data")) -> tuple[list[int], list[int], str]:
    """(train indices, test indices, what the groups are): per class, whole groups go to train while that
    brings it closer to ``train_fraction`` of the class's items; a group counts for its most common label."""
    patients = dataset.patients
    by = "patient" if patients is not None else "source file"
    keys = [str(p) for p in patients] if patients is not None else [i.split("#", 1)[0] for i in dataset.ids]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    members = list(groups.values())
    labels = np.asarray(dataset.labels)
    group_labels = np.array([np.bincount(labels[m]).argmax() for m in members])
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for c in np.unique(group_labels):
        order = rng.permutation(np.flatnonzero(group_labels == c))
        target = int(round(train_fraction * sum(len(members[g]) for g in order)))
        taken = 0
        for g in order:  # a group goes to train while that brings train closer to its target (one item: until it holds it)
            if taken + len(members[g]) / 2 <= target:
                train.extend(members[g])
                taken += len(members[g])
            else:
                test.extend(members[g])
    if not train or not test:
        raise MedrepError(f"the data has no train/test splits and its {len(members)} {by}(s) cannot be split "
                          f"{round(train_fraction * 100)}/{round((1 - train_fraction) * 100)} without putting one "
                          f"{by} on both sides; give the data train and test splits (a CSV split column, or "
                          "ROOT/train/<class>/… and ROOT/test/<class>/… folders)", where=where)
    return sorted(train), sorted(test), by


def with_train_test(dataset: ImageDataset, train_split: str = "train", test_split: str = "test", seed: int = 0,
                    where: str = Param("data")) -> tuple[ImageDataset, dict[str, Any] | None]:
    """``dataset`` itself when it has no need of a split (it has both, or some other named splits: then the
    caller's own error names them); for data without any split, a dataset whose ``train_split`` and
    ``test_split`` are a seeded grouped 70/30 split, with the record of that split (for the manifest)."""
    if getattr(dataset, "splits", None):
        return dataset, None
    train, test, by = grouped_split(dataset, seed=seed, where=where)
    name = getattr(dataset, "name", "data")
    split = SplitDataset({train_split: dataset.subset(train), test_split: dataset.subset(test)}, name)
    record = {"kind": f"seeded stratified {round(TRAIN_FRACTION * 100)}/{round((1 - TRAIN_FRACTION) * 100)} split "
                      f"grouped by {by}", "seed": seed, "grouped_by": by, train_split: len(train), test_split: len(test)}
    return split, record


def announce_split(record: dict[str, Any] | None, train_split: str = "train", test_split: str = "test") -> str | None:
    """The one line that says the data was split here (None when it came with its splits)."""
    if record is None:
        return None
    return (f"the data has no splits: using a {record['kind']} (seed {record['seed']}): {record[train_split]} "
            f"{train_split} / {record[test_split]} {test_split} items; give the data its own splits to choose them")

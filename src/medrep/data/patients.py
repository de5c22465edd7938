"""Patient-level structure: the groups a split must keep whole and a bootstrap must resample together.

A source with patient ids (a column, or a recipe's rule such as CheXpert's ``patient00001`` path part) makes
every split medrep draws itself patient-disjoint and every interval a cluster bootstrap over patients.
Without patient ids the groups are the source files (the frames of one DICOM stay together), which for one
item per file is the plain per-item split.
"""
from __future__ import annotations

import numpy as np

from medrep.errors import MedrepError


def split_groups(dataset) -> tuple[np.ndarray, str]:
    """(group key per item, what the groups are): patients when the source has them, else source files."""
    patients = dataset.patients
    if patients is not None:
        return np.asarray(patients, dtype=object), "patient"
    return np.array([i.split("#", 1)[0] for i in dataset.ids], dtype=object), "source file"


def bootstrap_groups(dataset) -> np.ndarray | None:
    """Patient id per item for a cluster bootstrap, or None (items resampled independently)."""
    patients = dataset.patients
    return None if patients is None else np.asarray(patients, dtype=object)


def grouped_split(labels: np.ndarray, groups: np.ndarray, fraction: float = 0.7, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded split of items into (first, second) with every group wholly on one side, stratified by each
    group's most common label: per label, groups in a seeded order go to the first part while adding them
    brings it closer to ``fraction`` of that label's items (with one item per group: until it holds them)."""
    labels = np.asarray(labels)
    members: dict[object, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    member_lists = list(members.values())
    group_labels = np.array([np.bincount(labels[m]).argmax() for m in member_lists])
    rng = np.random.default_rng(seed)
    first: list[int] = []
    second: list[int] = []
    for c in np.unique(group_labels):
        order = rng.permutation(np.flatnonzero(group_labels == c))
        target = int(round(fraction * sum(len(member_lists[g]) for g in order)))
        taken = 0
        for g in order:  # a group goes first while that brings the first part closer to its target
            if taken + len(member_lists[g]) / 2 <= target:
                first.extend(member_lists[g])
                taken += len(member_lists[g])
            else:
                second.extend(member_lists[g])
    return sorted(first), sorted(second)


def split_dataset(dataset, fraction: float = 0.7, seed: int = 0, labels: np.ndarray | None = None):
    """(first, second, note): a seeded, stratified, group-disjoint split of a single-split dataset."""
    groups, kind = split_groups(dataset)
    first, second = grouped_split(dataset.labels if labels is None else labels, groups, fraction, seed)
    if not first or not second:
        raise MedrepError(f"the data has no train/test splits and its {len(set(groups.tolist()))} {kind}(s) cannot be "
                          f"split {round(fraction * 100)}/{round((1 - fraction) * 100)} without putting one {kind} on "
                          "both sides; give train and test splits", where="--data")
    return dataset.subset(first), dataset.subset(second), \
        f"the data has no train/test splits: used a seeded stratified {round(fraction * 100)}/" \
        f"{round((1 - fraction) * 100)} split by {kind}"

"""Patients: grouped splits never put one patient on both sides; intervals resample whole patients."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medrep.data.autosplit import grouped_split
from medrep.data.base import TensorDataset
from medrep.intervals import CLUSTER_INTERVAL, bootstrap_metric


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 2)), min_size=2, max_size=60),
       st.floats(0.1, 0.9), st.integers(0, 5))
def test_grouped_split_never_puts_a_patient_on_both_sides(rows, fraction, seed):
    from medrep.errors import MedrepError

    groups = np.array([f"p{g}" for g, _ in rows], dtype=object)
    labels = np.array([y for _, y in rows])
    ds = TensorDataset(torch.zeros(len(rows), 1, 2, 2), labels, ["a", "b", "c"], patients=groups)
    try:
        first, second, by = grouped_split(ds, seed=seed, train_fraction=fraction)
    except MedrepError:  # too few patients to have both sides: refused, never split across a patient
        return
    assert by == "patient" and sorted(first + second) == list(range(len(rows)))
    assert not set(groups[first].tolist()) & set(groups[second].tolist())


def test_split_keeps_patients_whole_and_near_the_fraction():
    patients = [f"p{i // 3}" for i in range(30)]  # 10 patients, 3 images each
    ds = TensorDataset(torch.zeros(30, 1, 4, 4), [(i // 3) % 2 for i in range(30)], ["a", "b"], patients=patients)
    first, second, by = grouped_split(ds, seed=0)
    assert by == "patient" and len(first) + len(second) == 30
    assert not {patients[i] for i in first} & {patients[i] for i in second}
    # per class 5 patients (15 images), target round(0.7 · 15) = 10: 3 patients (9 images) are closer than 4 (12)
    assert len(first) == 18


def test_cluster_bootstrap_matches_the_hand_computed_distribution():
    # patients A (two images, both 1), B (one image, 0), C (three images, all 0): the mean over images is 2/6.
    # A cluster resample draws 3 patients with replacement (27 equally likely ordered draws); by hand, the
    # resampled mean Σ sums / Σ counts is 0 in 8 draws (only B and C), 1/4 in 3 (ACC), 1/3 in 6 (ABC),
    # 1/2 in 3 (ABB), 4/7 in 3 (AAC), 4/5 in 3 (AAB), 1 in 1 (AAA).  Cumulative: P(≤ 4/7) = 23/27 = 0.852
    # and P(≤ 4/5) = 26/27 = 0.963, so the 90% percentile interval is [0, 4/5].
    values = np.array([1, 1, 0, 0, 0, 0], dtype=float)
    groups = np.array(["A", "A", "B", "C", "C", "C"], dtype=object)
    m = bootstrap_metric(values, n_boot=20000, confidence=0.90, seed=0, groups=groups)
    assert m.value == 2 / 6 and m.low == 0.0 and abs(m.high - 0.8) < 1e-12
    assert m.interval == CLUSTER_INTERVAL and m.n == 6 and m.n_patients == 3
    assert m.to_dict()["interval"] == CLUSTER_INTERVAL
    # one image per patient is no clustering: the per-item interval (Wilson for 0/1 values), as before
    flat = bootstrap_metric(values, confidence=0.90, groups=np.array(list("abcdef"), dtype=object))
    assert flat.interval is None and "interval" not in flat.to_dict()
    assert flat == bootstrap_metric(values, confidence=0.90)


def test_few_shot_draws_take_each_shot_from_another_patient():
    from medrep.features.probes import few_shot_accuracy

    rng = np.random.default_rng(0)
    # class 0: patients a (5 images) and b (1 image); class 1: patients c, d, e (2 images each)
    train_y = np.array([0] * 6 + [1] * 6)
    groups = np.array(list("aaaaab") + list("ccddee"), dtype=object)
    x = rng.normal(size=(12, 4)) + train_y[:, None]
    test_x, test_y = rng.normal(size=(8, 4)) + np.arange(8)[:, None] % 2, np.arange(8) % 2
    assert few_shot_accuracy(x, train_y, test_x, test_y, shots=2, n_draws=3, groups=groups) is not None
    # three shots of class 0 would need three patients; it has two (per image there would be six)
    assert few_shot_accuracy(x, train_y, test_x, test_y, shots=3, n_draws=3, groups=groups) is None
    assert few_shot_accuracy(x, train_y, test_x, test_y, shots=3, n_draws=3) is not None

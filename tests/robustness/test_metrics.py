"""The noise-relabelling detector's AUC interval resamples whole patients when patient ids exist, like every
other interval of the attack; checked against a cluster bootstrap written out here with scikit-learn's AUC."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medrep.robustness.metrics import detector_auc_bootstrap


def test_detector_auc_interval_is_a_cluster_bootstrap_over_patients():
    rng = np.random.default_rng(5)
    n_patients, per = 12, 3
    patients = np.repeat([f"p{k:02d}" for k in range(n_patients)], per).astype(object)
    # a patient's images score alike: the clean and attacked scores share a per-patient offset
    offset = np.repeat(rng.normal(0, 0.3, n_patients), per)
    clean = np.round(offset + rng.normal(0, 0.1, n_patients * per), 2)
    attacked = np.round(offset + 0.15 + rng.normal(0, 0.1, n_patients * per), 2)
    got = detector_auc_bootstrap(clean, attacked, n_boot=300, seed=7, groups=patients)

    # by hand: draw 12 patients with replacement (the same generator and order), AUC of their images' scores
    draw = np.random.default_rng(7)
    members = [np.arange(k * per, (k + 1) * per) for k in range(n_patients)]
    boots = []
    for _ in range(300):
        idx = np.concatenate([members[k] for k in draw.integers(0, n_patients, size=n_patients)])
        y = np.r_[np.zeros(len(idx)), np.ones(len(idx))]
        boots.append(roc_auc_score(y, np.r_[clean[idx], attacked[idx]]))
    assert got.value == pytest.approx(roc_auc_score(np.r_[np.zeros(36), np.ones(36)], np.r_[clean, attacked]))
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])))
    d = got.to_dict()
    assert d["interval"] == "cluster bootstrap over patients" and d["n_patients"] == 12 and d["n"] == 36
    # images of one patient are not independent: resampling them one by one gives a narrower interval
    items = detector_auc_bootstrap(clean, attacked, n_boot=300, seed=7)
    assert "interval" not in items.to_dict() and items.high - items.low < got.high - got.low
    # one image per patient: nothing to cluster, the item bootstrap as before
    single = detector_auc_bootstrap(clean, attacked, n_boot=300, seed=7, groups=np.arange(36).astype(str))
    assert single == items

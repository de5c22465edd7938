"""Anchor selection (random and nested, class-balanced, one per k-means cluster) and the anchor counts."""
from __future__ import annotations

import numpy as np
import pytest

from medrep.align.anchors import parse_anchor_counts, select_anchors
from medrep.errors import MedrepError


def test_anchor_selection():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    r = select_anchors(40, labels, "random", seed=1)
    assert len(np.unique(r)) == 40 and set(r) <= set(range(100))
    assert set(select_anchors(20, labels, "random", seed=1)) <= set(r)  # nested for sweeps
    b = select_anchors(30, labels, "balanced", seed=1)
    assert np.bincount(labels[b]).tolist() == [10, 10, 10]
    # 70 > 3 × 20: the small class is exhausted, the rest fills from the others
    assert np.bincount(labels[select_anchors(70, labels, "balanced", seed=1)]).tolist() == [25, 25, 20]
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], float)
    vecs = np.concatenate([c + rng.standard_normal((25, 2)) for c in centres])
    k = select_anchors(4, np.zeros(100, int), "kmeans", seed=0, vectors=vecs)
    assert sorted(k // 25) == [0, 1, 2, 3]  # one representative per cluster
    with pytest.raises(MedrepError, match="training split has only 100"):
        select_anchors(101, labels)
    with pytest.raises(MedrepError, match="^anchor_selection: "):
        select_anchors(5, labels, "farthest")
    assert parse_anchor_counts("500, 10,50,10") == [10, 50, 500]
    with pytest.raises(MedrepError, match="^anchors: "):
        parse_anchor_counts("10,abc")

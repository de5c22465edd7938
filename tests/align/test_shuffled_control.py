"""The shuffled-pairs control is the mean over several seeded permutations of the anchor pairs, with its
spread: one permutation swings with the anchor count, the mean does not."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from medrep.align.analysis import SHUFFLES, default_factory, fit_probe, shuffled_pairs, stitch


def _spaces(n=600, d_src=12, d_tgt=16, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((3, d_src)) * 2.0
    labels = rng.integers(0, 3, n)
    src = means[labels] + rng.standard_normal((n, d_src))
    tgt = np.pad(src, ((0, 0), (0, d_tgt - d_src))) @ ortho_group.rvs(d_tgt, random_state=seed)
    return src, tgt, labels


def test_shuffled_pairs_averages_the_seeded_permutations():
    seen = []
    per_item, runs = shuffled_pairs(lambda perm: (seen.append(perm), perm[:4] % 2 == 0)[1], 10, seed=3, n_shuffles=5)
    rng = np.random.default_rng(4)  # seed + 1, as before the control was averaged
    expected = [rng.permutation(10) for _ in range(5)]
    assert all((a == b).all() for a, b in zip(seen, expected))
    hits = np.stack([p[:4] % 2 == 0 for p in expected]).astype(float)
    np.testing.assert_allclose(per_item, hits.mean(0))
    np.testing.assert_allclose(runs, hits.mean(1))


def test_stitch_reports_the_mean_of_the_permutations_and_their_spread():
    src, tgt, y = _spaces()
    tr, te = slice(0, 400), slice(400, 600)
    probe = fit_probe(tgt[tr], y[tr])
    a = np.arange(10)  # few anchors: each wrong pairing gives a very different map
    v = stitch(default_factory("ortho"), probe, src[a], tgt[a], src[te], tgt[te], y[te], seed=0)
    rng = np.random.default_rng(1)
    by_hand = []
    for _ in range(SHUFFLES):
        perm = rng.permutation(10)
        t = default_factory("ortho")().fit(src[a], tgt[a][perm])
        by_hand.append(np.mean(probe.predict(t.transform(src[te])) == y[te]))
    assert len(v.shuffled_runs) == SHUFFLES == 5
    np.testing.assert_allclose(v.shuffled_runs, by_hand)
    assert v.shuffled.mean() == pytest.approx(np.mean(by_hand))
    assert np.ptp(by_hand) > 0.05  # one permutation alone would not be a stable control


def test_alignment_results_carry_the_spread(small_phantoms):
    from medrep.align.run import run_alignment
    from medrep.models import load_encoder

    enc = load_encoder("demo-cnn")
    res = run_alignment(enc, small_phantoms, target_encoder=enc, anchors="10,40", n_boot=50).to_dict()
    for n in ("10", "40"):
        m = res["by_anchors"][n]
        sd = m["shuffled_accuracy_sd"]
        assert sd["n"] == 5 and sd["low"] <= m["shuffled_accuracy"]["value"] <= sd["high"] and sd["value"] >= 0

"""Stitching, retrieval and zero-shot on synthetic spaces where the right answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from medrep.align.analysis import (class_embeddings, default_factory, fit_probe, retrieval_ranks, stitch, zero_shot,
                                   zero_shot_predict)


def _spaces(seed=0, n=900, d_src=12, d_tgt=20):
    """Three Gaussian classes in a source space; the target is an unknown rotation of it into more dims."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((3, d_src)) * 2.0
    labels = rng.integers(0, 3, n)
    src = means[labels] + rng.standard_normal((n, d_src))
    q = ortho_group.rvs(d_tgt, random_state=seed)
    tgt = np.pad(src, ((0, 0), (0, d_tgt - d_src))) @ q * 3.0 + 1.0
    return src, tgt, labels


def test_stitching_through_a_known_rotation_matches_the_target_and_beats_the_baselines():
    src, tgt, y = _spaces()
    tr, te = slice(0, 600), slice(600, 900)
    probe = fit_probe(tgt[tr], y[tr])
    own = (probe.predict(tgt[te]) == y[te]).mean()
    a = np.arange(100)
    v = stitch(default_factory("linear"), probe, src[a], tgt[a], src[te], tgt[te], y[te], seed=0, relative=True,
               tgt_train=tgt[tr], y_train=y[tr])
    assert v.stitched.mean() == pytest.approx(own)  # T is exact, so predictions are identical
    assert v.top1.mean() == 1.0 and v.cosine.min() > 0.999999
    assert v.naive.mean() < own - 0.2 and v.shuffled.mean() < own - 0.2
    assert v.relative.mean() > 0.8 * own


def test_retrieval_ranks_against_brute_force():
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    ranks = retrieval_ranks(q, k)
    cos = (q / np.linalg.norm(q, axis=1)[:, None]) @ (k / np.linalg.norm(k, axis=1)[:, None]).T
    assert ranks.tolist() == [int(np.sum(cos[i] > cos[i, i])) for i in range(30)]


def test_zero_shot_on_a_rotated_text_space_equals_classifying_the_captions():
    """Images = rotated 'caption' vectors, so T is exact and zero-shot must equal the caption/prompt accuracy."""
    rng = np.random.default_rng(4)
    d = 16
    protos = rng.standard_normal((3, d)) * 2
    y = rng.integers(0, 3, 400)
    txt = protos[y] + rng.standard_normal((400, d)) * 1.5
    img = txt @ ortho_group.rvs(d, random_state=5)
    prompts = [protos[c][None] + rng.standard_normal((4, d)) * 0.3 for c in range(3)]
    a, te = np.arange(200), np.arange(200, 400)
    v = zero_shot(default_factory("ortho"), img[a], txt[a], img[te], y[te], prompts, center=True, txt_test=txt[te])
    c = txt[a].mean(0)
    ceiling = (zero_shot_predict(txt[te], class_embeddings(prompts, c), c) == y[te]).mean()
    assert v.accuracy.mean() == pytest.approx(ceiling) and ceiling > 0.8
    assert v.top1.mean() == 1.0
    assert v.naive.mean() < 0.6 and v.shuffled.mean() < 0.6

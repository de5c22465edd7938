"""Anchor selection, stitching and zero-shot on synthetic spaces where the right answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from medrep.align.analysis import (class_embeddings, default_factory, fit_probe, retrieval_ranks, stitch, zero_shot,
                                   zero_shot_predict)
from medrep.align.anchors import parse_anchor_counts, select_anchors
from medrep.align.text import class_prompts, modality_noun
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


def test_prompts_default_file_and_templates(tmp_path):
    caps = ["a radiograph showing a small smooth oval benign lesion in the centre", "a radiograph of normal tissue with no lesion"]
    assert modality_noun(caps) == "radiograph"
    p = class_prompts(["normal", "benign", "malignant"], caps)
    assert len(p["benign"]) == 4 and all(s.startswith("a radiograph") for s in p["malignant"])
    assert class_prompts(["pleural_effusion"], [], templates=["a {image} of {label}"]) == {"pleural_effusion": ["a medical image of pleural effusion"]}
    f = tmp_path / "prompts.json"
    f.write_text('{"a": "an a", "b": ["one b", "two b"]}')
    assert class_prompts(["a", "b"], prompts=str(f)) == {"a": ["an a"], "b": ["one b", "two b"]}
    with pytest.raises(MedrepError, match=r"prompts.json: no prompts for class\(es\) c"):
        class_prompts(["a", "b", "c"], prompts=str(f))
    with pytest.raises(MedrepError, match="^prompt: "):
        class_prompts(["a"], templates=["no placeholder"])


def test_native_zero_shot_uses_the_models_own_text_tower():
    from types import SimpleNamespace

    import torch

    from medrep.align.result import AlignResult
    from medrep.align.run import _native_zero_shot

    protos = np.eye(3, 8) * 5

    class Tower:
        name, fingerprint = "stub-tower", "stub-tower-v1"

        def encode_text(self, texts):  # each prompt names its class index
            return torch.as_tensor(np.stack([protos[int(t[-1])] for t in texts]), dtype=torch.float32)

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    img = protos[y] + rng.standard_normal((50, 8)) * 0.5
    prompts = {c: [f"p{i}"] for i, c in enumerate("abc")}
    res = AlignResult("s", None, "t", "ortho", "random", 0, [10])
    boot = lambda v: __import__("medrep.results").results.bootstrap_metric(v, n_boot=20)  # noqa: E731
    m = _native_zero_shot(SimpleNamespace(text_encoder=Tower()), img, y, prompts, list("abc"), boot, res)
    assert m.value == 1.0
    assert _native_zero_shot(SimpleNamespace(text_encoder=Tower()), img[:, :5], y, prompts, list("abc"), boot, res) is None
    assert "native zero-shot skipped" in res.notes[0]
    assert _native_zero_shot(SimpleNamespace(), img, y, prompts, list("abc"), boot, res) is None

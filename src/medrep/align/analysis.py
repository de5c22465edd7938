"""Stitching and zero-shot as pure functions of embeddings (numpy in, per-item values out).

Everything here works on already-extracted vectors, so it is fast, testable on synthetic spaces, and
the same code serves the CLI, the audit report and the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medrep.align.estimators import RelativeProjection, Translator
from medrep.align.functional import pad_or_truncate
from medrep.errors import MedrepError


def fit_probe(vectors: np.ndarray, labels: np.ndarray, seed: int = 0, max_iter: int = 2000):
    """The 'classifier trained on the target's space': medrep's linear probe on the vectors as they are (no L2
    normalisation: a translated vector's norm is part of what the stitching test measures)."""
    from medrep.features.probes import LinearProbe

    if len(np.unique(labels)) < 2:
        raise MedrepError("the training split holds a single class; a classifier cannot be trained", where="labels")
    return LinearProbe(max_iter=max_iter, seed=seed, normalise=False).fit(vectors, labels)


def _torch_pad(x: np.ndarray, dim: int) -> np.ndarray:
    import torch

    return pad_or_truncate(torch.as_tensor(x), dim).numpy()


def retrieval_ranks(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of key i among all keys by cosine to query i; the held-out pairs are (i, i)."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    k = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    sims = q @ k.T
    own = np.diag(sims)
    return (sims > own[:, None]).sum(1)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
    nb = np.maximum(np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(1) / (na * nb)


# Wrongly paired anchors give a different map for every permutation (with 10 anchors one permutation may
# land at 0.0 and another at 0.6), so the control is the mean over this many seeded permutations, with its spread.
SHUFFLES = 5


def shuffled_pairs(fit_and_score, n_anchors: int, seed: int = 0, n_shuffles: int = SHUFFLES) -> tuple[np.ndarray, np.ndarray]:
    """The shuffled-pairs control: ``fit_and_score(perm)`` (per-item hits of T fitted with the target side permuted)
    for ``n_shuffles`` seeded permutations.  Returns the per-item hit rate over permutations (its mean is the
    control's accuracy, bootstrapped over items) and each permutation's accuracy (the spread)."""
    rng = np.random.default_rng(seed + 1)
    hits = np.stack([np.asarray(fit_and_score(rng.permutation(n_anchors)), dtype=float) for _ in range(n_shuffles)])
    return hits.mean(0), hits.mean(1)


@dataclass
class StitchValues:
    """Per-test-item values for one anchor count (bootstrapped into Metrics by the caller)."""

    stitched: np.ndarray
    naive: np.ndarray
    shuffled: np.ndarray
    top1: np.ndarray
    top5: np.ndarray
    cosine: np.ndarray
    relative: np.ndarray | None = None
    shuffled_runs: np.ndarray | None = None  # accuracy of each permutation behind ``shuffled``


def stitch(translator_factory, probe, src_anchor: np.ndarray, tgt_anchor: np.ndarray, src_test: np.ndarray,
           tgt_test: np.ndarray, y_test: np.ndarray, seed: int = 0, relative: bool = False,
           tgt_train: np.ndarray | None = None, y_train: np.ndarray | None = None) -> StitchValues:
    """source → T → target's classifier, beside the naive (padded identity) and shuffled-pairs baselines."""
    t = translator_factory().fit(src_anchor, tgt_anchor)
    mapped = t.transform(src_test)
    stitched = probe.predict(mapped) == y_test
    naive = probe.predict(_torch_pad(src_test, tgt_test.shape[1])) == y_test
    # wrong pairs: the same anchors with the target side permuted (seeded), so only correspondence differs
    shuffled, runs = shuffled_pairs(
        lambda perm: probe.predict(translator_factory().fit(src_anchor, tgt_anchor[perm]).transform(src_test)) == y_test,
        len(src_anchor), seed)
    ranks = retrieval_ranks(mapped, tgt_test)
    rel = None
    if relative:
        if tgt_train is None or y_train is None:
            raise MedrepError("relative stitching needs the target's training vectors", where="relative")
        rs, rt = RelativeProjection().fit(src_anchor), RelativeProjection().fit(tgt_anchor)
        rel_probe = fit_probe(rt.transform(tgt_train), y_train, seed)
        rel = rel_probe.predict(rs.transform(src_test)) == y_test
    return StitchValues(stitched.astype(float), naive.astype(float), shuffled, (ranks < 1).astype(float),
                        (ranks < 5).astype(float), row_cosine(mapped, tgt_test), None if rel is None else rel.astype(float),
                        runs)


def class_embeddings(prompt_vectors: Sequence[np.ndarray], center: np.ndarray | None) -> np.ndarray:
    """One unit vector per class: mean of its (centred, normalised) prompt embeddings, renormalised."""
    out = []
    for v in prompt_vectors:
        v = v - center if center is not None else v
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        m = v.mean(0)
        out.append(m / max(np.linalg.norm(m), 1e-12))
    return np.stack(out)


def zero_shot_predict(vectors: np.ndarray, classes: np.ndarray, center: np.ndarray | None) -> np.ndarray:
    """argmax over cosine(vector − centre, class embedding)."""
    v = vectors - center if center is not None else vectors
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return (v @ classes.T).argmax(1)


@dataclass
class ZeroShotValues:
    accuracy: np.ndarray
    naive: np.ndarray
    shuffled: np.ndarray
    top1: np.ndarray | None = None
    top5: np.ndarray | None = None
    cosine: np.ndarray | None = None
    shuffled_runs: np.ndarray | None = None


def zero_shot(translator_factory, img_anchor: np.ndarray, txt_anchor: np.ndarray, img_test: np.ndarray,
              y_test: np.ndarray, prompt_vectors: Sequence[np.ndarray], center: bool = True, seed: int = 0,
              txt_test: np.ndarray | None = None) -> ZeroShotValues:
    """Map images into text space with T fitted on image–caption anchors; classify by the class prompts."""
    c = txt_anchor.mean(0) if center else None
    classes = class_embeddings(prompt_vectors, c)
    t = translator_factory().fit(img_anchor, txt_anchor)
    mapped = t.transform(img_test)
    acc = zero_shot_predict(mapped, classes, c) == y_test
    naive = zero_shot_predict(_torch_pad(img_test, txt_anchor.shape[1]), classes, c) == y_test
    shuffled, runs = shuffled_pairs(
        lambda perm: zero_shot_predict(translator_factory().fit(img_anchor, txt_anchor[perm]).transform(img_test), classes, c)
        == y_test, len(img_anchor), seed)
    top1 = top5 = cos = None
    if txt_test is not None:
        ranks = retrieval_ranks(mapped, txt_test)
        top1, top5, cos = (ranks < 1).astype(float), (ranks < 5).astype(float), row_cosine(mapped, txt_test)
    return ZeroShotValues(acc.astype(float), naive.astype(float), shuffled, top1, top5, cos, runs)


def default_factory(estimator: str = "ortho", ridge: float = 0.0, scale: bool = True, **options):
    return lambda: Translator(estimator, scale=scale, ridge=ridge, **options)

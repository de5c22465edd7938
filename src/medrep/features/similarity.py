"""Representation similarity between two spaces over the same items: linear CKA (biased and
unbiased), mutual-kNN alignment, and permutation nulls for both.

Linear CKA is computed from feature-space products (Dx×Dy), never the N×N Gram matrix, and can be
streamed over row batches (:class:`LinearCKA`), so 100k × 768 fits in a few hundred MB.  The
permutation null answers "is this score more than two unrelated spaces of these widths would
give?" — wide spaces get inflated scores from chance alone (Huh et al. 2024; Murphy et al. 2024).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from medrep.errors import MedrepError
from medrep.features.neighbours import cosine_topk
from medrep.progress import progress_bar
from medrep.intervals import bootstrap_metric, half_sample_interval
from medrep.results import Metric


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x).reshape(len(x), -1)
    y = np.asarray(y).reshape(len(y), -1)
    if x.shape[0] != y.shape[0]:
        raise MedrepError(f"the two spaces cover different items ({x.shape[0]} vs {y.shape[0]} rows)", where="similarity")
    if x.shape[0] < 4:
        raise MedrepError(f"needs at least 4 items, got {x.shape[0]}", where="similarity")
    for name, a in (("first", x), ("second", y)):
        if not np.isfinite(a).all():
            raise MedrepError(f"the {name} space contains NaN or infinite values", where="similarity")
    return x, y


class LinearCKA:
    """Streaming linear CKA: ``update(x_batch, y_batch)`` over row batches, then ``compute()``.

    Keeps only D×D sufficient statistics (float64), so N is unbounded.  ``unbiased=True`` gives the
    CKA built on the unbiased HSIC estimator (Song et al. 2012; the estimator of minibatch CKA,
    Nguyen et al. 2021), which removes the upward bias of the plain estimator when D is large vs N.
    """

    def __init__(self, unbiased: bool = False):
        self.unbiased = unbiased
        self.n = 0
        self._shift: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, x: np.ndarray, y: np.ndarray) -> "LinearCKA":
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if self._shift is None:
            # Both estimators are translation invariant; shifting by the first batch's mean keeps
            # the float32 products and the later subtractions well conditioned.
            self._shift = (x.mean(0, dtype=np.float64).astype(np.float32), y.mean(0, dtype=np.float64).astype(np.float32))
            dx, dy = x.shape[1], y.shape[1]
            self.sx, self.sy = np.zeros(dx), np.zeros(dy)
            self.xy, self.xx, self.yy = np.zeros((dx, dy)), np.zeros((dx, dx)), np.zeros((dy, dy))
            self.sa = self.sb = self.sab = self.saa = self.sbb = 0.0
            self.ax, self.ay, self.bx, self.by = np.zeros(dx), np.zeros(dy), np.zeros(dx), np.zeros(dy)
        xs = x - self._shift[0]
        ys = y - self._shift[1]
        # float32 BLAS per batch (fast), float64 accumulation across batches (accurate)
        self.xy += xs.T @ ys
        self.xx += xs.T @ xs
        self.yy += ys.T @ ys
        self.sx += xs.sum(0, dtype=np.float64)
        self.sy += ys.sum(0, dtype=np.float64)
        if self.unbiased:
            a = np.einsum("ij,ij->i", xs, xs, dtype=np.float64)
            b = np.einsum("ij,ij->i", ys, ys, dtype=np.float64)
            self.sa += a.sum()
            self.sb += b.sum()
            self.sab += (a * b).sum()
            self.saa += (a * a).sum()
            self.sbb += (b * b).sum()
            self.ax += a.astype(np.float32) @ xs
            self.ay += a.astype(np.float32) @ ys
            self.bx += b.astype(np.float32) @ xs
            self.by += b.astype(np.float32) @ ys
        self.n += x.shape[0]
        return self

    def _hsic_biased(self, cross: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> float:
        centred = cross - np.outer(s1, s2) / self.n
        return float((centred ** 2).sum())

    def _hsic_unbiased(self, cross, s1, s2, sum1, sum2, sum12, w1_on_2, w2_on_1) -> float:
        # HSIC_u with K = XXᵀ, L = YYᵀ and zeroed diagonals, expressed through feature-space
        # statistics: tr(K̃L̃) = ‖XᵀY‖² − Σaᵢbᵢ;  1ᵀK̃1 = ‖Σxᵢ‖² − Σaᵢ;
        # 1ᵀK̃L̃1 = s_xᵀ(XᵀY)s_y − (Σaᵢyᵢ)·s_y − (Σbᵢxᵢ)·s_x + Σaᵢbᵢ.
        n = self.n
        tr = float((cross ** 2).sum()) - sum12
        one_k = float(s1 @ s1) - sum1
        one_l = float(s2 @ s2) - sum2
        one_kl = float(s1 @ cross @ s2) - float(w1_on_2 @ s2) - float(w2_on_1 @ s1) + sum12
        return (tr + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl) / (n * (n - 3))

    def compute(self) -> float:
        if self.n < 4:
            raise MedrepError(f"needs at least 4 items, got {self.n}", where="cka")
        if self.unbiased:
            xy = self._hsic_unbiased(self.xy, self.sx, self.sy, self.sa, self.sb, self.sab, self.ay, self.bx)
            xx = self._hsic_unbiased(self.xx, self.sx, self.sx, self.sa, self.sa, self.saa, self.ax, self.ax)
            yy = self._hsic_unbiased(self.yy, self.sy, self.sy, self.sb, self.sb, self.sbb, self.by, self.by)
        else:
            xy = self._hsic_biased(self.xy, self.sx, self.sy)
            xx = self._hsic_biased(self.xx, self.sx, self.sx)
            yy = self._hsic_biased(self.yy, self.sy, self.sy)
        denom = np.sqrt(max(xx, 0.0) * max(yy, 0.0))
        if denom == 0:
            return float("nan")  # a constant space: similarity is undefined
        if not self.unbiased:  # in [0, 1] by Cauchy–Schwarz; only rounding can step outside (1 + 7e-8 seen)
            return float(min(max(xy / denom, 0.0), 1.0))
        return float(xy / denom)


def linear_cka(x: np.ndarray, y: np.ndarray, unbiased: bool = False, batch_size: int = 8192) -> float:
    """Linear CKA between two representations of the same N items (rows), in feature space."""
    x, y = _check_pair(x, y)
    acc = LinearCKA(unbiased=unbiased)
    for start in range(0, len(x), batch_size):
        acc.update(x[start:start + batch_size], y[start:start + batch_size])
    return acc.compute()


@dataclass
class PermutationTest:
    statistic: float
    p_value: float
    null_mean: float
    null_q95: float
    n_permutations: int
    n_items: int


def _p_value(observed: float, null: np.ndarray) -> float:
    # (1 + #{null ≥ observed}) / (1 + B): never 0, exact under exchangeability
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def cka_permutation_test(x: np.ndarray, y: np.ndarray, n_permutations: int = 200, seed: int = 0,
                         max_items: int = 2000, unbiased: bool = False) -> PermutationTest:
    """Permutation null for linear CKA: rows of ``y`` shuffled, breaking the item correspondence.

    Centring and the denominator are permutation invariant, so they are computed once; each null
    draw is then one product — ‖X̃ᵀ Ỹ[π]‖² (N·Dx·Dy) or ⟨K̃, L̃[π, π]⟩ (N², re-indexing the centred
    Gram), whichever is cheaper.  With ``unbiased`` the null is of the unbiased statistic, whose
    permutation-dependent terms are that same product plus two O(N) dot products.  Above
    ``max_items`` rows a seeded subsample is tested.
    """
    x, y = _check_pair(x, y)
    rng = np.random.default_rng(seed)
    if len(x) > max_items:
        keep = np.sort(rng.choice(len(x), size=max_items, replace=False))
        x, y = x[keep], y[keep]
    n = len(x)
    xc = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    yc = np.asarray(y, np.float64) - np.asarray(y, np.float64).mean(0)
    denom = float(np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    if denom == 0:
        raise MedrepError("one of the spaces is constant over the items; CKA is undefined", where="cka")
    if unbiased:
        # HSIC_u(K, L[π,π]) = (‖X̃ᵀỸ[π]‖² − Σ aᵢ b_π(i) + c − 2/(n−2) Σ uᵢ v_π(i)) / (n(n−3)), with
        # aᵢ = ‖x̃ᵢ‖², uᵢ = (K̃1)ᵢ; c is permutation invariant (centred data: Σx̃ᵢ = 0 so 1ᵀK̃1 = −Σaᵢ).
        a, b = (xc ** 2).sum(1), (yc ** 2).sum(1)
        u, v = -a, -b
        const = a.sum() * b.sum() / ((n - 1) * (n - 2))
        acc = LinearCKA(unbiased=True).update(xc, yc)
        hxx = acc._hsic_unbiased(acc.xx, acc.sx, acc.sx, acc.sa, acc.sa, acc.saa, acc.ax, acc.ax)
        hyy = acc._hsic_unbiased(acc.yy, acc.sy, acc.sy, acc.sb, acc.sb, acc.sbb, acc.by, acc.by)
        denom_u = np.sqrt(max(hxx, 0.0) * max(hyy, 0.0)) * n * (n - 3)
        if denom_u == 0:
            raise MedrepError("one of the spaces is constant over the items; CKA is undefined", where="cka")

    def finish(cross: float, p: np.ndarray | None) -> float:
        if not unbiased:
            return cross / denom
        bp, vp = (b, v) if p is None else (b[p], v[p])
        return float((cross - float(a @ bp) + const - 2.0 / (n - 2) * float(u @ vp)) / denom_u)

    observed = finish(float(np.linalg.norm(xc.T @ yc) ** 2), None)
    # a random gather costs roughly 100× a multiply-add, hence the factor
    use_gram = n * 100 < xc.shape[1] * yc.shape[1]
    if use_gram:
        kc = (xc @ xc.T).astype(np.float32)
        lc = (yc @ yc.T).astype(np.float32)
    else:
        xt, yt = xc.astype(np.float32).T.copy(), yc.astype(np.float32)
    null = np.empty(n_permutations)
    block = 16  # permutations per BLAS call: one Dx × (16·Dy) product is far faster than 16 small ones
    with progress_bar("CKA permutation null", n_permutations) as bar:
        for start in range(0, n_permutations, block):
            perms = [rng.permutation(n) for _ in range(min(block, n_permutations - start))]
            if use_gram:
                vals = [np.einsum("ij,ij->", kc, lc.take(p, 0).take(p, 1), dtype=np.float64) for p in perms]
            else:
                stacked = np.concatenate([yt[p] for p in perms], axis=1)  # (n, B·Dy)
                prod = (xt @ stacked).astype(np.float64).reshape(xt.shape[0], len(perms), -1)
                vals = np.square(prod).sum(axis=(0, 2))
            null[start:start + len(perms)] = [finish(float(c), p) for c, p in zip(vals, perms)]
            bar.advance(len(perms))
    return PermutationTest(observed, _p_value(observed, null), float(null.mean()), float(np.quantile(null, 0.95)),
                           n_permutations, n)


def knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    """Each row's k cosine nearest neighbours among the other rows (N, k), ranked in float64: in a tightly
    clustered space (cosines ≈ 0.99998) float32 rounding would decide the order of neighbours; exact ties
    go to the lower index."""
    return cosine_topk(x, x, k, exclude_self=True, dtype=np.float64)[1]


def neighbour_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|A_i ∩ B_i| / k per row for two (N, k) index arrays of distinct neighbours."""
    k = a.shape[1]
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(1) / k


def mutual_knn_scores(x: np.ndarray, y: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-item mutual-kNN alignment (Huh et al. 2024): share of shared cosine neighbours."""
    x, y = _check_pair(x, y)
    return neighbour_overlap(knn_sets(x, k), knn_sets(y, k))


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    return float(mutual_knn_scores(x, y, k).mean())


def mutual_knn_permutation_test(x: np.ndarray, y: np.ndarray, k: int = 10, n_permutations: int = 500,
                                seed: int = 0) -> PermutationTest:
    """Null for mutual kNN by relabelling the items of ``y``: no neighbour search is repeated,
    since item i's neighbours under a permutation π are π⁻¹(N_y(π(i)))."""
    x, y = _check_pair(x, y)
    return _mutual_knn_null(knn_sets(x, k), knn_sets(y, k), n_permutations, seed)


def _mutual_knn_null(nx: np.ndarray, ny: np.ndarray, n_permutations: int, seed: int,
                     per_item: np.ndarray | None = None) -> PermutationTest:
    """The permutation test from the two spaces' (N, k) neighbour sets, found once by the caller
    (``per_item``: their neighbour overlap, when the caller has it too)."""
    observed = float((neighbour_overlap(nx, ny) if per_item is None else per_item).mean())
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        perm = rng.permutation(len(nx))
        inv = np.argsort(perm)
        null[b] = neighbour_overlap(nx, inv[ny[perm]]).mean()
    return PermutationTest(observed, _p_value(observed, null), float(null.mean()), float(np.quantile(null, 0.95)),
                           n_permutations, len(nx))


@dataclass
class PairSimilarity:
    """Everything medrep reports for one pair of representations."""

    a: str
    b: str
    cka: Metric
    cka_p_value: float
    cka_null_mean: float
    mutual_knn: Metric
    mutual_knn_p_value: float
    mutual_knn_null_mean: float
    unbiased: bool
    k: int
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "cka": self.cka.to_dict(), "cka_p_value": self.cka_p_value,
                "cka_null_mean": self.cka_null_mean, "mutual_knn": self.mutual_knn.to_dict(),
                "mutual_knn_p_value": self.mutual_knn_p_value, "mutual_knn_null_mean": self.mutual_knn_null_mean,
                "cka_estimator": "unbiased" if self.unbiased else "biased", "k": self.k, **self.extra}


def compare_spaces(x: np.ndarray, y: np.ndarray, a: str = "a", b: str = "b", k: int = 10, unbiased: bool = False,
                   n_permutations: int = 200, n_boot: int = 100, seed: int = 0, max_items: int = 2000) -> PairSimilarity:
    """CKA and mutual kNN with 95% intervals and permutation p-values for one pair.

    CKA's value, interval (delete-half jackknife), null and p-value all come from the same rows: at
    most ``max_items``, a seeded subsample above that (``extra`` then holds the all-rows value as
    ``cka_all_rows`` and the rows used as ``cka_rows_used``).  Mutual kNN uses every row for its
    value, its interval (a bootstrap over the per-item overlaps) and its null.
    """
    x, y = _check_pair(x, y)
    extra: dict = {"n_permutations": n_permutations}
    if len(x) > max_items:
        # Biased CKA's chance level rises as N falls, so a value from all rows next to an
        # interval and null from a subsample can disagree outright; report the subsample's.
        rng = np.random.default_rng(seed)
        sub = np.sort(rng.choice(len(x), size=max_items, replace=False))
        extra.update(cka_all_rows=linear_cka(x, y, unbiased=unbiased), cka_rows_used=max_items)
        xs, ys = x[sub], y[sub]
    else:
        xs, ys = x, y
    value = linear_cka(xs, ys, unbiased=unbiased)
    boot = half_sample_interval(lambda i: linear_cka(xs[i], ys[i], unbiased=unbiased), len(xs), n_draws=n_boot,
                                seed=seed)
    cka_metric = Metric(value, boot.low, boot.high, len(xs))
    perm = cka_permutation_test(xs, ys, n_permutations=n_permutations, seed=seed, max_items=max_items, unbiased=unbiased)
    nx, ny = knn_sets(x, k), knn_sets(y, k)  # one neighbour search per space serves the score and its null
    overlap = neighbour_overlap(nx, ny)
    mknn = bootstrap_metric(overlap, n_boot=max(n_boot, 1000), seed=seed, proportion=False)  # fractions of k, not 0/1 outcomes
    mperm = _mutual_knn_null(nx, ny, n_permutations, seed, overlap)
    extra.update(cka_null_q95=perm.null_q95, mutual_knn_null_q95=mperm.null_q95)
    return PairSimilarity(a, b, cka_metric, perm.p_value, perm.null_mean, mknn, mperm.p_value, mperm.null_mean,
                          unbiased, k, extra)

"""Estimators against independent references (scipy, numpy) and exact recovery of known maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from medrep.align import functional as AF
from medrep.align.estimators import (Affine, LeastSquares, LeastSquaresOrtho, Orthogonal, Procrustes, RelativeProjection,
                                     StandardScaling, Translator, ZeroPadding)
from medrep.errors import MedrepError


def _data(n=300, d=24, seed=0):
    rng = np.random.default_rng(seed)
    # anisotropic, shifted: scaling has real work to do
    return rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, d) + rng.uniform(-2, 2, d)


def test_ortho_equals_scipy_orthogonal_procrustes_on_the_same_scaled_padded_anchors():
    rng = np.random.default_rng(1)
    x, y = _data(200, 20, 1), rng.standard_normal((200, 32)) * 2 + 1
    t = Procrustes().fit(x, y)
    # independent reference: numpy scaling + zero padding + scipy Procrustes
    xs = (x - x.mean(0)) / x.std(0, ddof=1)
    ys = (y - y.mean(0)) / y.std(0, ddof=1)
    xs = np.pad(xs, ((0, 0), (0, 12)))
    r_ref, _ = orthogonal_procrustes(xs, ys)
    # medrep solves the padded problem unpadded: its 20 × 32 map is the rows of the square solution that meet the
    # source's 20 real coordinates (the other 12 rows only ever multiply padded zeros)
    np.testing.assert_allclose(t.aligner.matrix.numpy(), r_ref[:20], atol=1e-9)
    expected = (xs[:50] @ r_ref) * y.std(0, ddof=1) + y.mean(0)
    np.testing.assert_allclose(t.transform(x[:50]), expected, atol=1e-8)


@pytest.mark.parametrize("dx,dy", [(40, 12), (12, 40)])
def test_unpadded_procrustes_is_the_padded_square_solution_with_enough_anchors(dx, dy):
    # scipy on zero-padded anchors (the square problem) against medrep's unpadded semi-orthogonal map, both ways
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((100, dx)), rng.standard_normal((100, dy))
    d = max(dx, dy)
    ref, _ = orthogonal_procrustes(np.pad(a, ((0, 0), (0, d - dx))), np.pad(b, ((0, 0), (0, d - dy))))
    got = AF.procrustes(torch.as_tensor(a), torch.as_tensor(b)).numpy()
    assert got.shape == (dx, dy)
    np.testing.assert_allclose(got, ref[:dx, :dy], atol=1e-10)
    test = rng.standard_normal((30, dx))
    np.testing.assert_allclose(test @ got, (np.pad(test, ((0, 0), (0, d - dx))) @ ref)[:, :dy], atol=1e-10)


def test_procrustes_function_matches_scipy_on_raw_tensors():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((80, 16)), rng.standard_normal((80, 16))
    ref, _ = orthogonal_procrustes(a, b)
    np.testing.assert_allclose(AF.procrustes(torch.as_tensor(a), torch.as_tensor(b)).numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("fit", [AF.procrustes, AF.lstsq_ortho, AF.least_squares])
def test_rotation_is_recovered_exactly(fit):
    x = torch.as_tensor(_data(200, 16, 3))
    q = torch.as_tensor(ortho_group.rvs(16, random_state=4))
    r = fit(x, x @ q)
    torch.testing.assert_close(r, q, atol=1e-9, rtol=0)


@pytest.mark.parametrize("aligner", [Orthogonal(), LeastSquaresOrtho(), LeastSquares(), Affine()])
def test_translator_without_scaling_recovers_a_rotation_across_widths(aligner):
    # a 16-d space embedded by a rotation into 24-d (zero-pad then rotate): every estimator maps it exactly
    x = _data(300, 16, 5) - _data(300, 16, 5).mean(0)
    q = ortho_group.rvs(24, random_state=6)
    y = np.pad(x, ((0, 0), (0, 8))) @ q
    t = Translator(aligner, scale=False).fit(x, y)
    x_new = _data(40, 16, 7)
    np.testing.assert_allclose(t.transform(x_new), np.pad(x_new, ((0, 0), (0, 8))) @ q, atol=1e-8)


@pytest.mark.parametrize("solver", ["closed", "gd"])
def test_affine_map_is_recovered(solver):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 12))
    w, b = rng.standard_normal((12, 20)), rng.standard_normal(20) * 3
    y = x @ w + b
    if solver == "closed":
        wf, bf = AF.affine_closed_form(torch.as_tensor(x), torch.as_tensor(y))
        np.testing.assert_allclose(wf.numpy(), w, atol=1e-9)
        np.testing.assert_allclose(bf.numpy(), b, atol=1e-9)
        # and through the full translator, scaling on: an affine map stays affine under standardisation
        t = Translator("affine").fit(x, y)
        np.testing.assert_allclose(t.transform(x[:30] * 2), (x[:30] * 2) @ w + b, atol=1e-8)
    else:
        x, w, b = x[:200, :6], w[:6, :5], b[:5]  # small problem: Adam converges to machine precision in 600 steps
        wf, bf = AF.affine_gradient_descent(torch.as_tensor(x), torch.as_tensor(x @ w + b), steps=600, lr=0.1, seed=0)
        np.testing.assert_allclose(wf.numpy(), w, atol=1e-6)
        np.testing.assert_allclose(bf.numpy(), b, atol=1e-6)


def test_linear_with_scaling_recovers_a_general_linear_map_exactly():
    rng = np.random.default_rng(9)
    x = _data(300, 10, 9)
    w = rng.standard_normal((10, 7))
    t = Translator("linear").fit(x, x @ w)
    np.testing.assert_allclose(t.transform(x[:20] + 5), (x[:20] + 5) @ w, atol=1e-8)


def test_ridge_matches_the_normal_equations():
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((30, 50)), rng.standard_normal((30, 4))
    ref = np.linalg.solve(x.T @ x + 0.5 * np.eye(50), x.T @ y)
    np.testing.assert_allclose(AF.least_squares(torch.as_tensor(x), torch.as_tensor(y), ridge=0.5).numpy(), ref, atol=1e-9)


def test_inverse_scaling_round_trips_and_uses_anchor_statistics():
    x = _data(100, 9, 11)
    x[:, 3] = 4.0  # a constant dimension must not divide by zero
    s = StandardScaling().fit(x[:60])
    z = s.transform(x)
    np.testing.assert_allclose(z[:60, [0, 1, 2]].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:60, [0, 1, 2]].std(0, ddof=1), 1, atol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(z), x, atol=1e-12)
    assert np.isfinite(z).all()


def test_padding_and_unpadding():
    p = ZeroPadding().fit(5, 8)
    x = torch.randn(3, 5)
    padded = p.pad(x)
    assert padded.shape == (3, 8) and torch.equal(padded[:, 5:], torch.zeros(3, 3)) and torch.equal(padded[:, :5], x)
    assert p.unpad_target(torch.randn(3, 8)).shape == (3, 8)
    assert ZeroPadding().fit(8, 5).unpad_target(torch.randn(3, 8)).shape == (3, 5)


def test_relative_projection_is_cosine_to_anchors_and_rotation_invariant():
    rng = np.random.default_rng(12)
    a, x = rng.standard_normal((7, 6)), rng.standard_normal((5, 6))
    rel = RelativeProjection(center=False).fit(a).transform(x)
    ref = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (a / np.linalg.norm(a, axis=1, keepdims=True)).T
    np.testing.assert_allclose(rel, ref, atol=1e-6)
    q = ortho_group.rvs(6, random_state=13)
    np.testing.assert_allclose(RelativeProjection().fit(a @ q).transform(x @ q), RelativeProjection().fit(a).transform(x), atol=1e-6)


def test_mismatched_anchor_counts_are_refused():
    with pytest.raises(MedrepError, match="mismatched anchor counts: 10 source anchors but 9"):
        Translator("ortho").fit(np.zeros((10, 4)), np.zeros((9, 4)))


def test_too_few_anchors_for_linear_names_the_count_and_the_fix():
    with pytest.raises(MedrepError, match=r"linear estimator needs at least 32 anchors for a 32-d source space, got 20.*ridge > 0"):
        Translator("linear").fit(np.random.randn(20, 32), np.random.randn(20, 8))
    with pytest.raises(MedrepError, match="affine estimator needs at least 33"):
        Translator("affine").fit(np.random.randn(32, 32), np.random.randn(32, 8))
    Translator("linear", ridge=1.0).fit(np.random.randn(20, 32), np.random.randn(20, 8))  # ridge makes it well posed
    Translator("ortho").fit(np.random.randn(20, 32), np.random.randn(20, 8))


def test_bad_options_name_the_option():
    with pytest.raises(MedrepError, match="^estimator: unknown estimator .cca."):
        Translator("cca")
    with pytest.raises(MedrepError, match="^ridge: "):
        Translator("ortho", ridge=1.0)
    with pytest.raises(MedrepError, match="^affine_solver: "):
        Affine(solver="newton")
    with pytest.raises(MedrepError, match="fitted on 4-d"):
        Translator("ortho").fit(np.random.randn(10, 4), np.random.randn(10, 4)).transform(np.zeros((2, 5)))

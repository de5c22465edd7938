"""APGD against an independent reference written from the paper's Algorithm 1, Square without gradients, early
exit that changes no item's result, and gradient masking caught by the ensemble."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from medrep.data.base import TensorDataset
from medrep.models.base import ModuleEncoder, Preprocessing
from medrep.robustness import APGD, AttackConfig, SquareAttack, apgd_checkpoints, build_attack, run_attack
from medrep.robustness.attacks import square_p

torch_grad = torch.autograd.grad


class _ToyLoss:
    """½‖tanh(W·x) − t‖² per item, float64, restrictable to some items (as medrep's own losses are)."""

    def __init__(self, w: torch.Tensor, t: torch.Tensor):
        self.w, self.t = w, t

    def __call__(self, x):
        return 0.5 * (torch.tanh(x.flatten(1) @ self.w) - self.t).pow(2).sum(1)

    def subset(self, index):
        return _ToyLoss(self.w, self.t[index])


def _toy(seed=0, b=5, side=6, d=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, side, side, generator=g, dtype=torch.float64)
    w = torch.randn(side * side, d, generator=g, dtype=torch.float64)
    t = torch.rand(b, d, generator=g, dtype=torch.float64) * 2 - 1
    return x, _ToyLoss(w, t)


def test_checkpoints_as_published():
    # Croce & Hein: p0 = 0, p1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06); w_j = ⌈p_j·N⌉
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(20) == [0, 5, 9, 12, 14, 16, 18, 19]


def _reference_apgd(loss, x0, eps, n_iter, alpha=0.75, rho=0.75):
    """Algorithm 1 of Croce & Hein (2020) for one item, maximising f = −loss, written out as printed."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    checkpoints = sorted({math.ceil(round(v * n_iter, 9)) for v in p if 0 < math.ceil(round(v * n_iter, 9)) < n_iter})

    def f_and_grad(x):
        x = x.clone().requires_grad_(True)
        f = -loss(x)
        (g,) = torch_grad(f.sum(), x)
        return f.item(), g

    proj = lambda v: torch.minimum(torch.maximum(v, x0 - eps), x0 + eps).clamp(0, 1)  # noqa: E731
    eta = 2 * eps
    f0, g0 = f_and_grad(x0)
    x1 = proj(x0 + eta * g0.sign())
    f1, g1 = f_and_grad(x1)
    xs, fs, gs = [x0, x1], [f0, f1], [g0, g1]
    f_max, x_max, g_max = (f0, x0, g0) if f0 >= f1 else (f1, x1, g1)
    etas, restarts = [eta], []
    last_w, eta_last, f_max_last = 0, eta, f_max
    for k in range(1, n_iter):
        etas.append(eta)
        z = proj(xs[k] + eta * gs[k].sign())
        x_next = proj(xs[k] + alpha * (z - xs[k]) + (1 - alpha) * (xs[k] - xs[k - 1]))
        f_next, g_next = f_and_grad(x_next)
        fs.append(f_next)
        if f_next > f_max:
            f_max, x_max, g_max = f_next, x_next, g_next
        if k in checkpoints:
            increased = sum(fs[i + 1] > fs[i] for i in range(last_w, k))
            cond1 = increased < rho * (k - last_w)
            cond2 = eta_last == eta and f_max_last == f_max
            eta_last, f_max_last, last_w = eta, f_max, k
            if cond1 or cond2:
                eta /= 2
                x_next, f_next, g_next = x_max, f_max, g_max
                fs[-1] = f_next
                restarts.append(k)
        xs.append(x_next)
        gs.append(g_next)
    return x_max, etas, restarts


def test_apgd_follows_algorithm_1():
    x, loss = _toy()
    eps, n_iter = 0.1, 20
    out = APGD(n_iter, "linf").run(loss, x, eps)
    halved_somewhere = False
    for i in range(x.shape[0]):
        ref_x, ref_eta, ref_restarts = _reference_apgd(lambda v: loss.subset(torch.tensor([i]))(v), x[i:i + 1], eps, n_iter)
        assert out.step_size_history[:, i].tolist() == pytest.approx(ref_eta, abs=0)
        assert out.restarts[:, i].nonzero().flatten().tolist() == ref_restarts
        assert torch.allclose(out.x_adv[i:i + 1], ref_x, atol=1e-12)
        halved_somewhere |= len(set(ref_eta)) > 2
    assert halved_somewhere  # the schedule was exercised: the step size halved at least twice for some item
    assert out.passes.gradient_calls == n_iter and out.passes.gradient == n_iter * x.shape[0]


def test_square_schedule_and_no_gradients(monkeypatch):
    assert square_p(0.05, 0, 10000) == 0.05 and square_p(0.05, 11, 10000) == 0.025
    assert square_p(0.05, 5001, 10000) == 0.05 / 2 ** 7 and square_p(0.05, 9999, 10000) == 0.05 / 2 ** 9
    assert square_p(0.05, 30, 300) == 0.05 / 2 ** 4  # the same schedule, scaled to a 300-query budget (1000 of 10,000)
    calls = []
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or torch_grad(*a, **k))
    x, loss = _toy(b=4, side=16)
    eps = 8 / 255
    out = SquareAttack(200, "linf").run(loss, x, eps, torch.Generator().manual_seed(0))
    assert calls == [] and out.passes.gradient == 0 and out.passes.gradient_calls == 0
    assert out.passes.forward == 200 * 4  # one query per item and iteration, the stripes' included
    assert (out.x_adv - x).abs().max() <= eps + 1e-12 and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert (loss(out.x_adv) < loss(x)).all()  # and it did attack
    # the gradient attacks do go through torch.autograd.grad (the counter works)
    APGD(3, "linf").run(loss, x, eps)
    assert len(calls) == 3


class _Below:
    """Criterion: the item's loss is at most its threshold (monotone along a path whose loss only falls)."""

    def __init__(self, loss, tau, calls):
        self.loss, self.tau, self.calls = loss, tau, calls

    def __call__(self, x):
        self.calls.append(x.shape[0])
        return self.loss(x) <= self.tau

    def subset(self, index):
        return _Below(self.loss.subset(index), self.tau[index], self.calls)


class _Separable:
    """‖x − c‖² with c outside the ball: each PGD sign step moves every pixel towards c, so the loss only falls."""

    def __init__(self, c):
        self.c = c

    def __call__(self, x):
        return (x - self.c).pow(2).flatten(1).sum(1)

    def subset(self, index):
        return _Separable(self.c[index])


@pytest.mark.parametrize("name", ["pgd", "apgd", "square"])
def test_early_exit_keeps_every_result_and_saves_passes(name):
    g = torch.Generator().manual_seed(1)
    b, eps = 8, 8 / 255
    x = 0.3 + 0.4 * torch.rand(b, 1, 8, 8, generator=g, dtype=torch.float64)
    loss = _Separable(x + 0.5 * torch.sign(torch.randn(x.shape, generator=g, dtype=torch.float64)))
    start = loss(x)
    # thresholds: some items reach theirs early, some late, some never
    reachable = start - loss(x + eps * torch.sign(loss.c - x))  # the most the ball allows (its far corner)
    tau = start - torch.linspace(0.02, 1.3, b, dtype=torch.float64) * reachable
    kw = dict(norm="linf", steps=12, queries=150)
    full = build_attack(name, **kw).run(loss, x, eps, torch.Generator().manual_seed(3))
    calls: list[int] = []
    early = build_attack(name, early_stop=_Below(loss, tau, calls), **kw).run(loss, x, eps, torch.Generator().manual_seed(3))
    met_full = loss(full.x_adv) <= tau
    assert torch.equal(early.succeeded, met_full)
    assert 0 < int(met_full.sum()) < b  # both kinds of item are present
    # the items that never met it ran the same path as without early exit
    assert torch.equal(early.x_adv[~met_full], full.x_adv[~met_full])
    used = lambda o: o.passes.gradient + o.passes.forward  # noqa: E731
    assert used(early) - sum(calls) < used(full)  # fewer network passes, the criterion's own aside
    assert (early.steps_taken[met_full] <= full.steps_taken[met_full]).all()
    assert (early.steps_taken[met_full] < full.steps_taken[met_full]).any()


class _Quantised(nn.Module):
    """8-bit quantisation in front of a small CNN: round() has a zero gradient, the network behind it does not."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, 3)

    def forward_features(self, x):
        return self.body(torch.round(x * 255) / 255)


def _quantised_encoder():
    m = _Quantised().eval()
    return ModuleEncoder(m, Preprocessing((24, 24), (0.5,), (0.25,), 1), name="quantised-cnn",
                         embed_fn=lambda mod, x: mod.forward_features(x), head=m.head, default_pool="mean",
                         class_names=["a", "b", "c"], owns_module=True)


def test_masked_gradients_are_flagged():
    enc = _quantised_encoder()
    x = torch.rand(12, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels = enc.logits(x).argmax(1).tolist()  # the model is right on every clean image
    ds = TensorDataset(x, labels, ["a", "b", "c"], name="quantised")
    cfg = AttackConfig(objective="ce", eps=(16 / 255,), attack=("apgd", "square"), steps=10, queries=150,
                       early_stop=True, noise_sigma=0.01, noise_draws=2, n_boot=50, batch_size=12)
    s = run_attack(enc, ds, config=cfg).summaries[0]
    att = s["attacks"]
    acc = {a: v["attacked_accuracy"]["value"] for a, v in att["per_attack"].items()}
    assert acc["apgd"] == 1.0  # no gradient: APGD does not move
    assert acc["square"] <= 0.75 and att["square_only_breaks"] >= 3
    assert att["gradient_masking_suspected"] is True
    assert att["wins"]["square"] == att["square_only_breaks"] and att["per_attack"]["square"]["passes"]["gradient"] == 0
    assert s["metrics"]["attacked_accuracy"]["value"] == acc["square"]  # the worst case per item


def _their_rectangles(x, y):  # the Square attack's code (square_attack_l2's helper), transcribed in numpy
    delta = np.zeros([x, y])
    x_c, y_c = x // 2 + 1, y // 2 + 1
    counter2 = [x_c - 1, y_c - 1]
    for counter in range(0, max(x_c, y_c)):
        delta[max(counter2[0], 0):min(counter2[0] + (2 * counter + 1), x),
              max(0, counter2[1]):min(counter2[1] + (2 * counter + 1), y)] += 1.0 / (counter + 1) ** 2
        counter2[0] -= 1
        counter2[1] -= 1
    return delta / np.sqrt(np.sum(delta ** 2, keepdims=True))


def _their_meta(s):
    delta = np.zeros([s, s])
    delta[:s // 2] = _their_rectangles(s // 2, s)
    delta[s // 2:] = _their_rectangles(s - s // 2, s) * (-1)
    return delta / np.sqrt(np.sum(delta ** 2, keepdims=True))


def test_square_l2_bumps_and_one_query_match_the_papers_code():
    from medrep.robustness.attacks import meta_pseudo_gaussian, pseudo_gaussian_rectangle, square_l2_candidate

    for rows, cols in ((1, 3), (2, 5), (3, 3), (4, 7)):
        np.testing.assert_allclose(pseudo_gaussian_rectangle(rows, cols).numpy(), _their_rectangles(rows, cols), atol=1e-15)
    for side in (3, 5, 8):
        np.testing.assert_allclose(meta_pseudo_gaussian(side).numpy(), _their_meta(side), atol=1e-15)
    g = torch.Generator().manual_seed(0)
    b, c, h, w, s, eps = 3, 2, 12, 10, 5, 0.5
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64) * 0.5 + 0.25
    best = x + 0.05 * torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    got = square_l2_candidate(x, best, eps, s, torch.Generator().manual_seed(7), torch.arange(b))
    # the same draws, in the same order, then the paper's arithmetic per item with its slices
    r = torch.Generator().manual_seed(7)
    t1, l1, t2, l2 = (torch.randint(0, n - s, (b,), generator=r).numpy() for n in (h, w, h, w))
    flip = (torch.rand(b, generator=r) > 0.5).numpy()
    signs = (torch.randint(0, 2, (b, c, 1, 1), generator=r) * 2 - 1).numpy()
    for i in range(b):
        xc, d = x[i:i + 1].numpy(), (best[i:i + 1] - x[i:i + 1]).numpy()
        mask1, mask2 = np.zeros(d.shape), np.zeros(d.shape)
        mask1[:, :, t1[i]:t1[i] + s, l1[i]:l1[i] + s] = 1.0
        mask2[:, :, t2[i]:t2[i] + s, l2[i]:l2[i] + s] = 1.0
        norm_window = np.sqrt(np.sum((d * mask1) ** 2, axis=(2, 3), keepdims=True))
        norm_image = np.sqrt(np.sum(d ** 2, axis=(1, 2, 3), keepdims=True))
        norms_windows = np.sqrt(np.sum((d * np.maximum(mask1, mask2)) ** 2, axis=(2, 3), keepdims=True))
        meta = _their_meta(s).T if flip[i] else _their_meta(s)
        new = np.ones([1, c, s, s]) * meta.reshape([1, 1, s, s]) * signs[i:i + 1]
        new += d[:, :, t1[i]:t1[i] + s, l1[i]:l1[i] + s] / (1e-10 + norm_window)
        new = new / np.sqrt(np.sum(new ** 2, axis=(2, 3), keepdims=True)) * (
            np.maximum(eps ** 2 - norm_image ** 2, 0) / c + norms_windows ** 2) ** 0.5
        d[:, :, t2[i]:t2[i] + s, l2[i]:l2[i] + s] = 0.0
        d[:, :, t1[i]:t1[i] + s, l1[i]:l1[i] + s] = new
        want = np.clip(xc + d / np.sqrt(np.sum(d ** 2, axis=(1, 2, 3), keepdims=True)) * eps, 0, 1)
        np.testing.assert_allclose(got[i:i + 1].numpy(), want, atol=1e-12)


def test_square_l2_stays_in_the_ball_without_gradients(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or torch_grad(*a, **k))
    x, loss = _toy(b=4, side=16)
    eps = 0.5
    out = build_attack("square", "l2", queries=150).run(loss, x, eps, torch.Generator().manual_seed(0))
    assert calls == [] and out.passes.gradient == 0 and out.passes.forward == 150 * 4
    assert (_norms := (out.x_adv - x).flatten(1).norm(dim=1)).max() <= eps + 1e-9, _norms
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert (loss(out.x_adv) < loss(x)).all()

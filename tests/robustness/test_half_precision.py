"""float16 models: the objective, the L2 step and the written results stay finite (strict JSON)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from medrep.data.base import TensorDataset
from medrep.io import write_json_atomic
from medrep.models.base import ModuleEncoder, Preprocessing
from medrep.robustness import Collide, L2PGD, LinfPGD, Push, Representation, representation_loss, run_attack, write_attack_outputs


def _linear_encoder(dtype: torch.dtype, scale: float = 300.0) -> ModuleEncoder:
    """f(x) = Wx + b with large weights: feature norms ~1000, like a big ViT's tokens, so ½‖Δf‖² ~ 1e5 > 65504."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 256))
    with torch.no_grad():
        m[1].weight.mul_(scale)
    return ModuleEncoder(m.to(dtype), Preprocessing((32, 32), (0.0,), (1.0,), 1), name=f"linear-{dtype}", owns_module=True)


def _strict_json(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path.name}"))


def test_objectives_sum_in_float32():
    g = torch.Generator().manual_seed(0)
    z, ref = (300 * torch.randn(3, 256, generator=g)).half(), (300 * torch.randn(3, 256, generator=g)).half()
    expect = 0.5 * (z.float() - ref.float()).pow(2).sum(1)  # the same float16 numbers, summed in float32
    assert expect.min() > 65504  # beyond float16: summing in the model's dtype gives inf
    for obj, sign in ((Collide(), 1), (Push(), -1)):
        got = obj.loss(z, ref)
        assert got.dtype == torch.float32 and torch.allclose(got, sign * expect)


def test_half_precision_attack_matches_float32(small_phantoms):
    x = torch.stack([small_phantoms.split("test")[i].image for i in range(4)])
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True).clamp(0, 1)
    results = {}
    for dtype in (torch.float32, torch.float16):
        enc = _linear_encoder(dtype)
        xs = x.to(dtype)
        with torch.no_grad():
            target = enc.embed(xs.flip(0))
        fn = representation_loss(enc, Representation(), Collide(), target)
        results[dtype] = LinfPGD(steps=4, step_size=2 / 255).run(fn, xs, 8 / 255).loss_history
    half, full = results[torch.float16], results[torch.float32]
    assert 2 * full[0].min() > 65504  # ‖Δf‖² lies beyond float16
    # finite, and the same descent as in float32 (up to float16 rounding of the features)
    assert torch.isfinite(half).all() and torch.allclose(half, full, rtol=1e-2)
    assert (half[-1] < 0.9 * half[0]).all()


def test_l2_step_of_a_float16_gradient():
    g = torch.full((2, 1, 64, 64), 2000.0, dtype=torch.float16)  # ‖g‖ = 128000: inf in float16
    delta = torch.zeros_like(g)
    step = L2PGD(steps=1).step(delta, g, 0.5)
    assert step.dtype == torch.float16
    assert torch.allclose(step.float().flatten(1).norm(dim=1), torch.tensor([0.5, 0.5]), rtol=1e-3)
    assert torch.allclose(step.float(), torch.full_like(g, -0.5 / 64, dtype=torch.float32), rtol=1e-3)
    big = torch.full((1, 1, 64, 64), 20.0, dtype=torch.float16)  # ‖δ‖ = 1280, back onto the ball of radius 0.5
    assert L2PGD(steps=1).project(big, 0.5).float().flatten(1).norm(dim=1).item() == pytest.approx(0.5, rel=1e-3)


def test_float16_run_writes_finite_results(small_phantoms, tmp_path):
    test = small_phantoms.split("test").limit(6, seed=0)
    train = small_phantoms.split("train").limit(30, seed=0)
    kw = dict(objective="collide", eps=[8 / 255], steps=3, classifiers="probe", batch_size=6, n_boot=20,
              noise_draws=1, noise_sigma=0.01, gallery_size=0)
    full = run_attack(_linear_encoder(torch.float32), test, train, **kw)
    half = run_attack(_linear_encoder(torch.float16), test, train, **kw)
    f, h = full.per_eps[0].column("final_loss"), half.per_eps[0].column("final_loss")
    assert 2 * full.per_eps[0].loss_history[:, 0].min() > 65504  # ‖Δf‖² before the attack: beyond float16
    assert np.isfinite(half.per_eps[0].loss_history).all() and h == pytest.approx(f, rel=1e-2)
    assert half.summaries[0]["loss_per_step"] == pytest.approx(full.summaries[0]["loss_per_step"], rel=1e-2)
    write_attack_outputs(half, tmp_path, figures=False)
    d = _strict_json(tmp_path / "results.json")
    assert d["results"][0]["loss_per_step"] == pytest.approx(half.summaries[0]["loss_per_step"])


def test_json_writer_writes_non_finite_values_as_null(tmp_path):
    from medrep.results import Metric

    obj = {"nan": float("nan"), "list": [float("inf"), 1.5, -float("inf")], "tuple": (np.float64("nan"), 2),
           "f32": np.float32("nan"), "f64": np.float64(-np.inf), "array": np.array([[1.0, np.nan]]), "metric": Metric(0.25, None, None, 3),
           "nested": {"deep": [{"x": float("nan")}]}, "fine": [0.1, np.float64(0.30000000000000004), np.float32(0.5), 7, True, None, "NaN"]}
    d = _strict_json(write_json_atomic(tmp_path / "r.json", obj))
    assert d == {"nan": None, "list": [None, 1.5, None], "tuple": [None, 2], "f32": None, "f64": None, "array": [[1.0, None]],
                 "metric": {"value": 0.25, "low": None, "high": None, "n": 3}, "nested": {"deep": [{"x": None}]},
                 "fine": [0.1, 0.30000000000000004, 0.5, 7, True, None, "NaN"]}
    # finite content is written exactly as before
    finite = {"b": [0.1, 1e-300, 2], "a": {"c": "x"}}
    assert write_json_atomic(tmp_path / "f.json", finite).read_text() == json.dumps(finite, indent=2, sort_keys=True) + "\n"


def test_attack_results_json_is_strict_with_a_non_finite_loss(small_phantoms, tmp_path):
    test = small_phantoms.split("test").limit(4, seed=0)
    r = run_attack(_linear_encoder(torch.float32), test, objective="push", eps=[4 / 255], steps=2, classifiers="knn",
                   train_dataset=small_phantoms.split("train").limit(20, seed=0), n_boot=20, noise_draws=1, noise_sigma=0.01)
    r.summaries[0]["loss_per_step"][1:] = [float("inf"), float("nan")]  # e.g. a model whose features overflow
    write_attack_outputs(r, tmp_path, figures=False)
    assert _strict_json(tmp_path / "results.json")["results"][0]["loss_per_step"][1:] == [None, None]

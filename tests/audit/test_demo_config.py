"""The embedded demo audit: the two phantom-trained demo models, the ImageNet EfficientNet-Lite0 judged through the
probe and kNN (its head does not fit the phantoms), and the robust positive control with its verdict."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from medrep.audit.config import default_config, validate_config
from medrep.audit.runner import _counterpart, control_verdict

EFFICIENTNET = "efficientnet-lite0?img_size=64"


@pytest.mark.parametrize("fast", [False, True])
def test_demo_audits_three_encoders_and_the_robust_control(fast):
    config = default_config(fast=fast)
    assert validate_config(config) == config
    assert config["models"] == ["demo-vit", "demo-cnn", EFFICIENTNET]
    robustness = config["analyses"]["robustness"]
    assert robustness["controls"] == ["demo-cnn-robust"]
    # every encoder is attacked and explained; --fast keeps the ImageNet encoder to features and alignment
    expected = ["demo-vit", "demo-cnn"] if fast else None
    assert robustness["models"] == expected and config["analyses"]["explain"]["models"] == expected
    # the control's criterion is set at 4/255: the demo (and --fast) must attack at that budget
    assert any(abs(e - 4 / 255) < 1e-12 for e in robustness["eps"])
    assert robustness["norm"] == "linf"


def test_efficientnet_is_judged_by_probe_and_knn_and_explained_without_attention(small_phantoms):
    from medrep.explain.methods import unsupported_reason
    from medrep.explain.run import default_target
    from medrep.models import load_encoder
    from medrep.robustness.classifiers import head_note, resolve_classifiers

    enc = load_encoder(EFFICIENTNET)
    classes = small_phantoms.classes
    assert enc.has_head and enc.num_classes == 1000 and enc.preprocessing.size == (64, 64)
    assert not enc.head_fit(classes).fits
    assert resolve_classifiers(None, enc, classes) == ["probe", "knn"]
    assert "the linear probe and kNN judge instead" in head_note(enc, classes)
    assert default_target(enc, classes) == "embedding"
    # the attention methods are left out before any work (a CNN has no attention); the gradient methods run
    methods = default_config()["analyses"]["explain"]["methods"]
    skipped = {m for m in methods if unsupported_reason(enc, m)}
    assert {"attention", "rollout", "chefer", "chefer-lrp"} <= skipped
    assert {"gradcam", "ig"} <= set(methods) - skipped


def _metric(v, n=48):
    return {"value": v, "low": v, "high": v, "n": n}


def _attacked(clean, at4, eps=(2 / 255, 4 / 255, 8 / 255), norm="linf"):
    summaries = [{"eps": e, "metrics": {"clean_accuracy": _metric(clean),
                                        "attacked_accuracy": _metric(at4 if abs(e - 4 / 255) < 1e-12 else 0.5)}}
                 for e in eps]
    return SimpleNamespace(summaries=summaries, config={"norm": norm, "attack": ["apgd"], "steps": 10})


def test_control_counterpart_is_the_model_it_was_trained_from():
    from medrep.models import load_encoder

    assert _counterpart(load_encoder("demo-cnn-robust")) == "demo-cnn"
    assert _counterpart(SimpleNamespace(source={"spec": "x"})) is None


@pytest.mark.parametrize("robust_clean, robust_at4, fragile_at4, verdict, gap", [
    (0.9583, 0.8958, 0.1250, "passes", 77.08),   # the robust model holds, clean within 10 points
    (1.0, 0.4375, 0.1458, "weak", 29.17),         # 29.2 points: short of the required 30
    (0.8750, 0.8958, 0.1250, "weak", 77.08),      # robust under attack, but 12.5 points worse on clean images
    (0.9167, 0.4375, 0.1250, "passes", 31.25),    # exactly on both sides of the bars: 31.25 ≥ 30 and 8.33 ≤ 10
])
def test_control_verdict(robust_clean, robust_at4, fragile_at4, verdict, gap):
    attacked = {("demo-cnn-robust", "collide"): _attacked(robust_clean, robust_at4),
                ("demo-cnn", "collide"): _attacked(1.0, fragile_at4)}
    v = control_verdict("demo-cnn-robust", "demo-cnn", "collide", attacked, ["demo-vit", "demo-cnn"])
    assert v["verdict"] == verdict and v["gap"] * 100 == pytest.approx(gap, abs=0.01)
    assert v["clean_gap"] == pytest.approx(1.0 - robust_clean)
    assert "ε = 4/255" in v["sentence"] and f"{gap:+.1f} points" in v["sentence"]
    assert ("control is weak" in v["sentence"]) == (verdict == "weak")


def test_control_not_judged_says_why():
    robust = _attacked(0.96, 0.9)
    v = control_verdict("demo-cnn-robust", "demo-cnn", "collide", {("demo-cnn-robust", "collide"): robust}, ["demo-vit"])
    assert v["verdict"] == "not judged" and "demo-cnn is not among the attacked models" in v["sentence"]
    no_budget = {("demo-cnn-robust", "collide"): _attacked(0.96, 0.9, eps=(2 / 255, 8 / 255)),
                 ("demo-cnn", "collide"): _attacked(1.0, 0.1, eps=(2 / 255, 8 / 255))}
    v = control_verdict("demo-cnn-robust", "demo-cnn", "collide", no_budget, ["demo-cnn"])
    assert v["verdict"] == "not judged" and "not among this run's budgets" in v["sentence"]

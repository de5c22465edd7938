"""The features and robustness sections of one audit use one linear probe: on the same model, fitted on the
same split and measured on the same clean test images, they report the same accuracy."""
from __future__ import annotations

import pytest

from medrep.audit import run_audit

HEADLESS_VIT = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=0"


@pytest.mark.slow
def test_features_and_robustness_agree_on_the_clean_probe_accuracy(tmp_path):
    off = {"enabled": False}
    config = {"data": "demo?n_train=60&n_val=0&n_test=24&size=32", "models": [HEADLESS_VIT], "text": None, "n_boot": 10,
              "analyses": {"explain": off, "overlay": off, "alignment": off,
                           "features": {"shots": [1], "projections": [], "n_permutations": 0, "k": 5},
                           "robustness": {"objectives": ["push"], "eps": [1 / 255], "steps": 1, "limit": None,
                                          "noise_draws": 1, "noise_sigma": [0.01]}}}
    results = run_audit(config, tmp_path / "audit", cache_dir=str(tmp_path / "cache"), device="cpu")
    attack = results["robustness"][HEADLESS_VIT]["push"]
    assert attack["primary_classifier"] == "probe"  # no head: the probe is the model's classifier
    robust = attack["results"][0]["classifiers"]["probe"]["clean_accuracy"]
    (model,) = results["features"]["models"].values()
    features = model["linear_probe_accuracy"]
    assert robust["n"] == features["n"] == 24
    assert robust["value"] == features["value"]

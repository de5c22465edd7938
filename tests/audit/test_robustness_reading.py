"""The audit's robustness figures mean what they say: the scorecard shows the lowest attacked accuracy and names its ε,
a detector AUC below 0.5 is explained, decimal ε values are written as given, gradient masking is called out."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from medrep.audit.config import validate_config
from medrep.audit.runner import _lowest_accuracy, _robustness_readings, _robustness_rows
from medrep.robustness.outputs import eps_label, format_eps


def _metric(v):
    return {"value": v, "low": v, "high": v, "n": 10}


def _summary(eps, acc, aucs, masking=False):
    return {"eps": eps, "eps_255": round(eps * 255, 4),
            "metrics": {"clean_accuracy": _metric(1.0), "attacked_accuracy": _metric(acc), "psnr_mean": _metric(40.0),
                        "ssim_mean": _metric(0.97), "match_success_rate": _metric(0.5), "relative_change": _metric(0.3),
                        "cosine_to_target_before": _metric(0.1), "cosine_to_target_after": _metric(0.8)},
            "detector": {"by_sigma": [{"sigma": s, "roc_auc": _metric(a)} for s, a in aucs]},
            "attacks": {"names": ["apgd", "square"], "per_attack": {"apgd": {"attacked_accuracy": _metric(acc + 0.2)},
                                                                    "square": {"attacked_accuracy": _metric(acc)}},
                        "gradient_masking_suspected": masking, "square_only_breaks": 2 if masking else 0}}


def _result(summaries):
    return SimpleNamespace(summaries=summaries, config={"norm": "linf", "target": "image", "attack": ["apgd", "square"]})


def test_scorecard_cell_is_the_lowest_accuracy_and_names_its_eps():
    # not monotone in ε: the lowest accuracy is at the middle ε, not the largest
    r = _result([_summary(0.0157, 0.40, [(0.01, 0.6)]), _summary(2 / 255, 0.10, [(0.01, 0.6)]),
                 _summary(8 / 255, 0.25, [(0.01, 0.6)])])
    low = _lowest_accuracy(r, "collide")
    assert low["value"] == 0.10 and low["eps_text"] == "ε = 2/255"
    assert "0.100" in _robustness_readings("m", "collide", r)[0] and "ε = 2/255" in _robustness_readings("m", "collide", r)[0]


def test_decimal_eps_renders_as_written():
    assert eps_label(0.0157) == "0.0157" and format_eps(0.0157, "linf") == "ε = 0.0157"
    assert eps_label(4 / 255) == "4/255" and eps_label(1 / 255) == "1/255" and format_eps(0.5, "l2") == "L2 ε = 0.5"
    rows = _robustness_rows(_result([_summary(0.0157, 0.4, [(0.01, 0.6)])]), "collide")
    assert rows[0]["ε"] == "0.0157" and rows[0]["apgd alone"]["value"] == pytest.approx(0.6) and rows[0]["gradient masking"] == "no"


def test_detector_auc_below_half_is_explained_and_masking_called_out():
    r = _result([_summary(4 / 255, 0.2, [(0.01, 0.31), (0.03, 0.55)], masking=True)])
    text = " ".join(_robustness_readings("demo-cnn", "collide", r))
    assert "below 0.5 (ε = 4/255 with σ = 0.01)" in text and "more stable under noise" in text
    assert "σ = 0.03" not in text  # only the σ whose AUC is below 0.5
    assert "gradient masking suspected" in text and "2 item(s)" in text
    fine = " ".join(_robustness_readings("demo-cnn", "collide", _result([_summary(4 / 255, 0.2, [(0.01, 0.7)])])))
    assert "below 0.5" not in fine and "gradient masking" not in fine


def test_demo_audit_attacks_with_apgd():
    from medrep.audit.config import default_config

    r = default_config()["analyses"]["robustness"]
    assert r["attack"] == "apgd" and r["early_stop"] is True
    cfg = validate_config({"analyses": {"robustness": {"attack": "ensemble", "queries": 100}}})
    assert cfg["analyses"]["robustness"]["attack"] == "ensemble"
    from medrep.errors import MedrepError

    with pytest.raises(MedrepError, match=r"^analyses\.robustness\.attack: unknown attack 'fgsm'"):
        validate_config({"analyses": {"robustness": {"attack": "fgsm"}}})

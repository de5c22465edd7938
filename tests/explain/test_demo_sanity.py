"""The README's trust figures on the demo models (48 lesion phantoms of the test split, seed 0; sanity checks on
the first 8 of them): cascading randomisation, the random-logit test and the verdicts."""
from __future__ import annotations

import pytest

from medrep.explain.run import run_explain

pytestmark = pytest.mark.slow

TOLERANCE = 0.03  # Spearman over 8 images: float noise across CPUs moves it by far less


def _run(encoder, phantoms, methods):
    return run_explain(encoder, phantoms.split("test"), methods=methods, metrics=["pointing", "deletion"], limit=48,
                       seed=0, n_boot=200, sanity=("cascading", "logit"), sanity_images=8)


def _curve(result, method):
    return result.sanity["methods"][method]["cascading"]


def _monotone_within_intervals(steps):
    """No step's mean rises above an earlier step's upper 95% bound."""
    means = [s["spearman_abs"]["value"] for s in steps]
    highs = [s["spearman_abs"]["high"] for s in steps]
    return all(means[t] <= highs[s] + 1e-12 for t in range(len(steps)) for s in range(t))


@pytest.fixture(scope="module")
def vit(demo_vit, phantoms):
    return _run(demo_vit, phantoms, ["chefer", "gradcam"])


def test_demo_vit_randomisation_figures_match_the_readme(vit):
    # README: Spearman |map| after full randomisation: chefer −0.09, gradcam −0.05; after the head alone: chefer 0.73
    assert vit.sanity["units"] == ["output"] + [f"block {i}" for i in range(5, -1, -1)] + ["embedding"]
    for method, first, last in (("chefer", 0.73, -0.09), ("gradcam", 0.44, -0.05)):
        curve = _curve(vit, method)
        assert curve[0]["spearman_abs"]["value"] == pytest.approx(first, abs=TOLERANCE), method
        assert curve[-1]["spearman_abs"]["value"] == pytest.approx(last, abs=TOLERANCE), method
        assert vit.sanity["methods"][method]["passed"] is True
    assert _monotone_within_intervals(_curve(vit, "chefer"))
    # Grad-CAM's map anti-correlates once the head is random, then wanders around 0: not monotone
    assert not _monotone_within_intervals(_curve(vit, "gradcam"))
    # random logit: chefer's map barely depends on the class (0.63), Grad-CAM's flips (−0.17)
    assert vit.sanity["methods"]["chefer"]["logit"]["spearman_abs"]["value"] == pytest.approx(0.63, abs=TOLERANCE)
    assert vit.sanity["methods"]["gradcam"]["logit"]["spearman_abs"]["value"] == pytest.approx(-0.17, abs=TOLERANCE)


def test_demo_vit_verdicts_match_the_readme(vit):
    v = vit.verdicts
    assert {k: v["chefer"][k]["answer"] for k in ("localises", "depends_on_model", "faithful")} == \
        {"localises": "yes", "depends_on_model": "yes", "faithful": "yes"}
    assert {k: v["gradcam"][k]["answer"] for k in ("localises", "depends_on_model", "faithful")} == \
        {"localises": "yes", "depends_on_model": "yes", "faithful": "no"}
    assert v["random"]["localises"]["answer"] == "no" and v["random"]["baseline"] is True
    assert v["center"] == {"baseline": True, "sentence": v["center"]["sentence"]}
    assert "do not trust it" in v["gradcam"]["sentence"]


def test_demo_vit_deletion_figures_behind_the_faithfulness_verdicts(vit):
    # README: deletion AUC chefer 0.11, gradcam 0.48 (interval up to 0.59), random order 0.56
    for method, value in (("chefer", 0.11), ("gradcam", 0.48), ("random", 0.56)):
        assert vit.metrics[method]["deletion_auc"].value == pytest.approx(value, abs=0.02), method
    assert vit.metrics["gradcam"]["deletion_auc"].high > vit.metrics["random"]["deletion_auc"].value


@pytest.mark.parametrize("model", ["demo-vit", "demo-cnn"])
def test_random_fails_localisation_and_center_is_the_baseline(model, demo_vit, demo_cnn, phantoms):
    encoder = {"demo-vit": demo_vit, "demo-cnn": demo_cnn}[model]
    result = run_explain(encoder, phantoms.split("test"), methods=["gradcam"], metrics=["pointing"], limit=48, seed=0,
                         n_boot=200)
    assert result.verdicts["random"]["localises"]["answer"] == "no"
    assert result.verdicts["center"]["baseline"] is True and "localises" not in result.verdicts["center"]
    assert result.verdicts["gradcam"]["localises"]["answer"] == "yes"
    assert result.verdicts["gradcam"]["depends_on_model"]["answer"] == "not run"


def test_demo_cnn_gradcam_trust_figures_match_the_readme(demo_cnn, phantoms):
    # README: demo-cnn Grad-CAM — localises (pointing 0.75), depends on the model (Spearman |map| −0.06 once the
    # head is random, 0.06 with everything random, interval up to 0.25), faithful (deletion AUC 0.14, random
    # order 0.52), random logit −0.39
    cnn = _run(demo_cnn, phantoms, ["gradcam"])
    assert cnn.sanity["units"] == ["output"] + [f"block {i}" for i in range(3, -1, -1)]
    curve = _curve(cnn, "gradcam")
    assert curve[0]["spearman_abs"]["value"] == pytest.approx(-0.06, abs=TOLERANCE)
    assert curve[-1]["spearman_abs"]["value"] == pytest.approx(0.06, abs=TOLERANCE)
    assert curve[-1]["spearman_abs"]["high"] == pytest.approx(0.25, abs=TOLERANCE)
    assert cnn.sanity["methods"]["gradcam"]["logit"]["spearman_abs"]["value"] == pytest.approx(-0.39, abs=TOLERANCE)
    assert cnn.metrics["gradcam"]["pointing"].value == pytest.approx(0.75, abs=0.01)
    assert cnn.metrics["gradcam"]["deletion_auc"].value == pytest.approx(0.14, abs=0.02)
    assert cnn.metrics["random"]["deletion_auc"].value == pytest.approx(0.52, abs=0.02)
    assert {k: cnn.verdicts["gradcam"][k]["answer"] for k in ("localises", "depends_on_model", "faithful")} == \
        {"localises": "yes", "depends_on_model": "yes", "faithful": "yes"}

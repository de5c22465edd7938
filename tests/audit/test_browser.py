"""The tiny audit's report in real headless Chromium at a laptop's width (1280 px): no console errors, every
section, every image decoded; no table wider than its box, gallery labels legible, captions in words, the
run manifest folded away."""
from __future__ import annotations

import re

import pytest

from medrep.report.browser import check_in_browser, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no chromium binary on PATH (chromium / chromium-browser / google-chrome); "
                                       "install Debian's chromium package to run the browser checks")


@pytest.fixture(scope="module")
def rendered(tiny_audit, tmp_path_factory):
    """(page source, what Chromium saw at 1280 px, the full-page screenshot); one browser run for the module."""
    import os
    from pathlib import Path

    out, _, _, _ = tiny_audit
    artifacts = Path(os.environ.get("MEDREP_TEST_ARTIFACTS", "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "audit-report-1280.png"  # a test artefact: look at it
    shot.unlink(missing_ok=True)
    result = check_in_browser(out / "report.html", screenshot=shot, width=1280)
    return (out / "report.html").read_text(encoding="utf-8"), result, shot


def test_audit_report_renders_cleanly_in_chromium(rendered):
    page, result, shot = rendered
    assert result["errors"] == [] and result["console"] == [] and result["alerts"] == [], result
    assert result["sections"] == re.findall(r"<section id='([^']+)'>", page)
    assert result["sections"] == ["scorecard", "robustness", "explain", "features", "alignment", "manifest"]
    assert len(result["images"]) == page.count("<img ") > 0
    assert all(w > 0 and h > 0 for _, w, h in result["images"]), [i for i in result["images"] if not (i[1] and i[2])]
    assert result["title"] == "tiny audit"
    assert shot.exists() and shot.stat().st_size > 10_000


def test_audit_report_fits_a_1280_px_window(rendered):
    _, result, shot = rendered
    layout = result["layout"]
    assert layout["inner_width"] == 1280
    assert layout["page_width"] <= 1280  # nothing pushes the page sideways
    overflowing = [(t["title"], t["scroll_width"], t["box_width"]) for t in layout["tables"]
                   if t["box_scroll_width"] > t["box_width"] or t["scroll_width"] > t["box_width"]]
    assert overflowing == []
    assert max(t["columns"] for t in layout["tables"]) >= 8  # the robustness tables: the wide ones were checked
    assert layout["smallest_cell_px"] >= 11 and layout["smallest_text_px"] >= 11  # intervals and notes included
    # gallery row labels as a reader sees them: their size in the PNG scaled by the image's shown width
    galleries = [label for label in layout["labels"] if "original / perturbed" in label["alt"] or "method's map" in label["alt"]]
    assert len(galleries) >= 3, layout["labels"]  # the attack galleries of both models and an explanation gallery
    assert [(g["alt"], round(g["shown_px"], 1)) for g in galleries if g["shown_px"] < 11] == []
    assert all(c["font_px"] >= 11 for c in layout["captions"])
    assert layout["manifest_folded"] is True and layout["manifest_visible"] is False
    assert shot.exists()


def test_figure_captions_are_words_not_keys(rendered):
    page, result, _ = rendered
    captions = [c["text"] for c in result["layout"]["captions"]]
    assert any(c.startswith("t-SNE of ") for c in captions)
    assert any(c.startswith("CKA similarity between the models") for c in captions)
    keys = re.compile(r"^(tsne|umap|cka|centroid[_ ]cosine|overlay[_ ]|forest)\b|\b(tsne|umap|centroid_cosine|forest):")
    assert [c for c in captions if keys.search(c)] == []


FOUR_MODELS = ["demo-vit", "demo-cnn", "demo-cnn-robust", "efficientnet-lite0"]


@pytest.fixture(scope="module")
def four_model_report(tmp_path_factory):
    """A small audit of four models (as the demo has) by site and sex: attacks, features, "Who does it fail for?"."""
    import torch
    from threadpoolctl import threadpool_limits

    from medrep.audit import run_audit

    off = {"enabled": False}
    config = {"title": "four models by subgroup", "data": "demo?attributes=site,sex&n_train=60&n_val=0&n_test=60&size=32",
              "models": FOUR_MODELS, "text": None, "n_boot": 50, "by": ["site", "sex"], "min_group_size": 10,
              "analyses": {"robustness": {"objectives": ["collide"], "eps": [8 / 255], "attack_steps": 1, "limit": 8,
                                          "noise_draws": 1, "noise_sigma": [0.01]},
                           "explain": off, "overlay": off, "alignment": off,
                           "features": {"k": 5, "shots": [1], "projections": ["tsne"], "n_permutations": 10},
                           "subgroups": {"n_permutations": 50, "probe_permutations": 3}}}
    out = tmp_path_factory.mktemp("four") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tiny audit: small BLAS calls on a busy machine are faster on one thread
    try:
        with threadpool_limits(1):
            run_audit(config, out, cache_dir=str(out.parent / "cache"), device="cpu")
    finally:
        torch.set_num_threads(threads)
    return out / "report.html"


@pytest.mark.slow
def test_four_model_subgroup_report_reads_at_1280_px(four_model_report, artifacts):
    page = four_model_report.read_text(encoding="utf-8")
    shot = artifacts / "audit-four-models-1280.png"
    result = check_in_browser(four_model_report, screenshot=shot, width=1280)
    layout = result["layout"]
    assert result["errors"] == [] and result["sections"] == ["scorecard", "robustness", "features", "subgroups", "manifest"]
    assert layout["page_width"] <= 1280
    assert [t["title"] for t in layout["tables"] if max(t["scroll_width"], t["box_scroll_width"]) > t["box_width"]] == []
    assert [t["columns"] for t in layout["tables"] if t["title"].startswith("Per model")] == [12]  # not split, still fits
    assert layout["labels"] and min(label["shown_px"] for label in layout["labels"]) >= 11
    assert layout["manifest_folded"] is True
    # "Who does it fail for?": a forest plot per model, shown before the tables, the separability table, the shortcut
    # flags, a reading per model and attribute; the scorecard's largest gap for every model
    section = page[page.index("<section id='subgroups'>"):page.index("<section id='manifest'>")]
    forests = [c["text"] for c in layout["captions"] if "each subgroup's figure with its 95% interval" in c["text"]]
    assert [f.split(":")[0] for f in forests] == FOUR_MODELS
    assert section.index("<img") < section.index("Gaps between subgroups") < section.index("Separability and shortcut check")
    assert ">likely shortcut</span></th>" in section and ">attribute AUROC</span></th>" in section
    assert all(f"{m}, by {a}: " in section for m in FOUR_MODELS for a in ("site", "sex"))
    assert "too few to call it" in section  # 3 permutations cannot give p < 0.05, and the reading says so
    scorecard = page[page.index("<section id='scorecard'>"):page.index("<section id='robustness'>")]
    assert scorecard.count("largest gap between subgroups") == 4
    assert scorecard.count("accuracy of a linear probe, not the model&#x27;s head") == 1  # efficientnet-lite0 only
    # a figure that could be misread says so beside it: efficientnet-lite0's ImageNet head does not fit the phantoms
    probe = [c["text"] for c in layout["captions"] if c["text"].startswith("efficientnet-lite0, collide: accuracy under attack")]
    assert len(probe) == 1 and "linear probe" in probe[0] and "not of the model's own head" in probe[0]
    assert shot.exists()

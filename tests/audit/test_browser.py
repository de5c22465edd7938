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
    assert layout["smallest_cell_px"] >= 11
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

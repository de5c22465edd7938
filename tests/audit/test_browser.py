"""The tiny audit's report in real headless Chromium: no console errors, every section, every image decoded."""
from __future__ import annotations

import re

import pytest

from medrep.report.browser import check_in_browser, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no chromium binary on PATH (chromium / chromium-browser / google-chrome); "
                                       "install Debian's chromium package to run the browser checks")


def test_audit_report_renders_cleanly_in_chromium(tiny_audit, artifacts):
    out, _, _, _ = tiny_audit
    page = (out / "report.html").read_text(encoding="utf-8")
    shot = artifacts / "audit-report.png"
    shot.unlink(missing_ok=True)
    result = check_in_browser(out / "report.html", screenshot=shot)
    assert result["errors"] == [] and result["console"] == [] and result["alerts"] == [], result
    assert result["sections"] == re.findall(r"<section id='([^']+)'>", page)
    assert result["sections"] == ["scorecard", "robustness", "explain", "features", "alignment", "manifest"]
    assert len(result["images"]) == page.count("<img ") > 0
    assert all(w > 0 and h > 0 for _, w, h in result["images"]), [i for i in result["images"] if not (i[1] and i[2])]
    assert result["title"] == "tiny audit"
    assert shot.exists() and shot.stat().st_size > 10_000  # a test artefact: look at it

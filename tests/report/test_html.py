"""The report renderer: escaping, embedded figures, and a real browser's view of it."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from medrep.report import Figure, Section, Table, render_report, write_report  # noqa: E402

from medrep.report.browser import check_in_browser, chromium_path  # noqa: E402

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture()
def figure(tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "fig.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def test_strings_from_data_are_escaped(figure):
    page = render_report(EVIL, "sub", [Section("s1", EVIL, reading=EVIL, figures=[Figure(figure, EVIL)],
                                               tables=[Table(EVIL, [{EVIL: EVIL, "n": 3}])])], {"label": EVIL})
    assert EVIL not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("data:image/png;base64,") == 1


def test_metric_dicts_render_with_intervals():
    page = render_report("t", "s", [Section("a", "A", tables=[Table("T", [{"m": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 9}}])])])
    assert "0.500 <span class='ci'>[0.400, 0.600]</span>" in page


@pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (make test installs it)")
def test_report_loads_cleanly_in_headless_chromium(tmp_path, figure):
    report = write_report(tmp_path / "report.html", "medrep test", EVIL,
                          [Section("one", "One", "reading", [Figure(figure, "a figure")], [Table("t", [{"a": 1}])]),
                           Section("two", "Two", error="it failed")])
    result = check_in_browser(report, screenshot=tmp_path / "shot.png")
    assert result["errors"] == [] and result["console"] == []
    assert result["sections"] == ["one", "two"]
    assert result["images"] and all(w > 0 and h > 0 for _, w, h in result["images"])
    assert (tmp_path / "shot.png").stat().st_size > 1000


def test_flat_interval_columns_read_as_one_metric_cell():
    from medrep.report.html import Table, _table

    html_text = _table(Table("t", [{"model": "a", "cka": 0.9577, "cka_low": 0.95, "cka_high": 0.96, "cka_n": 600, "p_low": 1}]))
    assert "<th>cka</th>" in html_text and "cka_low" not in html_text and "cka_n" not in html_text
    assert "0.958 <span class='ci'>[0.950, 0.960]</span>" in html_text
    assert "<th>p_low</th>" in html_text  # a lone *_low column without its value column stays

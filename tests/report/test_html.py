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
    assert "<span class='h'>cka</span></th>" in html_text and "cka_low" not in html_text and "cka_n" not in html_text
    assert "0.958 <span class='ci'>[0.950, 0.960]</span>" in html_text
    assert "<span class='h'>p low</span></th>" in html_text  # a lone *_low column without its value column stays (shown as words)


def _labelled_png(path: Path, width_in: float, fontsize: float, dpi: int = 110) -> Path:
    """A gallery-like PNG whose row labels are ``fontsize`` points, with the label size recorded as the writers do."""
    from medrep.plotting import label_px_metadata

    fig, ax = plt.subplots(figsize=(width_in, 2), dpi=dpi)
    ax.imshow([[0, 1], [1, 0]])
    ax.set_yticks([0, 1], ["lesion → normal", "normal → lesion"], fontsize=fontsize)
    fig.savefig(path, metadata=label_px_metadata(ax.get_yticklabels(), dpi))
    plt.close(fig)
    return path


def test_label_size_is_recorded_in_the_png_and_carried_into_the_page(tmp_path):
    from PIL import Image

    from medrep.plotting import LABEL_PX_KEY

    png = _labelled_png(tmp_path / "g.png", 4, 8)
    with Image.open(png) as im:
        assert float(im.text[LABEL_PX_KEY]) == pytest.approx(8 * 110 / 72, abs=0.01)  # points × dpi / 72
    page = render_report("t", "s", [Section("a", "A", figures=[Figure(png, "gallery", note="the probe, not the head")])])
    assert "data-label-px='12.22'" in page
    assert "<span class='caveat' role='note'>the probe, not the head</span>" in page


def test_wide_tables_are_split_and_patient_intervals_marked():
    from medrep.report.html import CLUSTER_MARK, MAX_COLUMNS, _table

    row = {"model": "m", **{f"metric_{i}": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 9} for i in range(16)}}
    row["metric_3"] = {"value": 0.5, "low": 0.3, "high": 0.7, "n": 9, "interval": "cluster bootstrap over patients",
                       "n_patients": 4}
    text = _table(Table("wide", [row]))
    heads = [part.split("</thead>")[0].count("<th>") for part in text.split("<table>")[1:]]
    assert heads == [9, 9] and max(heads) <= MAX_COLUMNS  # 16 metrics in two even parts, each led by "model"
    assert text.count(">model</span></th>") == 2 and "(part 2 of 2)" in text
    assert text.count(CLUSTER_MARK) == 2  # the one clustered cell and the legend that explains it
    assert "cluster bootstrap over patients (4 patients)" in text


@pytest.fixture()
def artifacts_dir() -> Path:
    path = Path(os.environ.get("MEDREP_TEST_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (make test installs it)")
def test_wide_content_fits_a_1280_px_window(tmp_path, artifacts_dir):
    spec = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"
    metric = {"value": 0.123, "low": 0.0456, "high": 0.789, "n": 300}
    rows = [{"model": spec, **{f"noise-check AUC (σ = 0.0{i})": metric for i in range(1, 10)}} for _ in range(3)]
    # 1760 px wide images, scaled down to the page: 14 pt labels stay legible, 8 pt ones do not
    big = _labelled_png(tmp_path / "big.png", 16, 14)
    small = _labelled_png(tmp_path / "small.png", 16, 8)
    report = write_report(tmp_path / "report.html", "wide", spec,
                          [Section("one", "One", "reading", [Figure(big, "big labels"), Figure(small, "small labels")],
                                   [Table(spec, rows)])],
                          {"config": {"models": [spec] * 40}})
    result = check_in_browser(report, screenshot=artifacts_dir / "report-wide-1280.png", width=1280)
    layout = result["layout"]
    assert layout["inner_width"] == 1280 and layout["page_width"] <= 1280
    assert [t["box_scroll_width"] <= t["box_width"] and t["columns"] == 10 for t in layout["tables"]] == [True]
    assert layout["manifest_folded"] is True and layout["manifest_visible"] is False
    assert layout["manifest_height"] < 120  # the summary line, not 120 lines of settings
    assert layout["details"] == [{"section": "manifest", "open": False, "summary": layout["details"][0]["summary"]}]
    shown = {label["alt"]: label for label in layout["labels"]}
    for label in shown.values():
        assert label["shown_width"] < label["natural_width"] <= 1800  # scaled down to fit the page
        assert label["shown_px"] == pytest.approx(label["label_px"] * label["shown_width"] / label["natural_width"])
    assert shown["big labels"]["shown_px"] >= 11 > shown["small labels"]["shown_px"]
    assert all(c["font_px"] >= 11 for c in layout["captions"]) and layout["smallest_text_px"] >= 11

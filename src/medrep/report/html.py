"""Self-contained HTML: figures embedded as data URIs, inline CSS, no scripts, no network.

Every string that comes from data or configs (labels, file names, spec strings) passes through
``html.escape``; the template itself holds no analysis code — it only lays out Sections.
"""
from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medrep.io import write_bytes_atomic


@dataclass
class Figure:
    path: str | Path
    caption: str = ""
    #: what the figure could be taken to mean and does not (a probe standing in for the head, suspected gradient
    #: masking, intervals of another kind): shown under the caption, beside the figure
    note: str = ""


@dataclass
class Table:
    title: str
    rows: list[dict[str, Any]]
    note: str = ""
    csv: str | None = None  # the table's CSV file, relative to the report (set when it is written)
    headers: dict[str, str] = field(default_factory=dict)  # column key → the words shown (the CSV keeps the key)
    legend: dict[str, str] = field(default_factory=dict)  # column key → what it means, listed under the table


@dataclass
class Section:
    id: str
    title: str
    reading: str = ""  # a short plain-language reading of the figures
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    error: str | None = None  # an analysis that failed: its message is shown, the rest of the report stands
    figures_first: bool = False  # figures before tables (where a figure per model is the answer, e.g. forest plots)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:1.4rem 2rem}header h1{margin:0 0 .3rem;font-size:1.6rem}
header p{margin:0;opacity:.85;overflow-wrap:anywhere}main{padding:1rem 2rem 3rem;max-width:1200px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:1rem 1.5rem;margin:1.2rem 0}
h2{margin-top:.2rem;color:#1d3557}h3{margin-bottom:.4rem;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}.scroll{overflow-x:auto;max-width:100%}
th,td{border-bottom:1px solid #e3e6eb;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef1f5;font-weight:600;min-width:4.5em;overflow-wrap:normal;hyphens:auto}
td.num{text-align:right;font-variant-numeric:tabular-nums;overflow-wrap:normal}
td.num .ci{display:block}th .h{display:inline-block;max-width:8em}
figure{margin:.8rem 1.2rem .8rem 0;display:inline-block;vertical-align:top;max-width:100%}figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{font-size:.9rem;color:#444;max-width:60rem}.reading{background:#f0f6ff;border-left:4px solid #457b9d;padding:.5rem .9rem}
figcaption .caveat{display:block}.caveat{background:#fff8e6;border-left:4px solid #d69e2e;padding:.3rem .7rem;margin:.3rem 0;color:#1d2330}
.error{background:#fff0f0;border-left:4px solid #c0392b;padding:.5rem .9rem}
nav a{margin-right:1rem;color:#fff}pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem;background:#f4f4f4;padding:.6rem}
summary{cursor:pointer;font-weight:600;color:#1d3557}.ci{color:#666;font-size:.85em}
"""


#: marks an interval that is not the plain one the table's note describes (a cluster bootstrap over patients)
CLUSTER_MARK = "†"
#: more columns than this crowd a 1280 px window even wrapped: the table is shown in parts, each repeating its first column
MAX_COLUMNS = 12


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_value(value: Any) -> str:
    """Metric dicts (value, low, high, n) read as 'v [low, high]'; floats with 3 significant decimals."""
    if isinstance(value, dict) and "value" in value:
        v = value.get("value")
        low, high = value.get("low"), value.get("high")
        text = format_value(v)
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            mark = CLUSTER_MARK if value.get("interval") else ""
            return f"{text} <span class='ci'>[{format_value(low)}, {format_value(high)}]{mark}</span>"
        return text
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.4g}"
    if value is None:
        return "–"
    return _esc(value)


def _fold_intervals(row: dict[str, Any]) -> dict[str, Any]:
    """Flat rows (``x``, ``x_low``, ``x_high``[, ``x_n``]) read like metric cells: one 'v [low, high]' column."""
    out: dict[str, Any] = {}
    for c, v in row.items():
        if c.endswith(("_low", "_high", "_n")) and c.rsplit("_", 1)[0] in row and f"{c.rsplit('_', 1)[0]}_high" in row:
            continue
        if f"{c}_low" in row and f"{c}_high" in row and not isinstance(v, dict):
            v = {"value": v, "low": row[f"{c}_low"], "high": row[f"{c}_high"]}
        out[c] = v
    return out


def _header(column: str, headers: dict[str, str] | None = None) -> str:
    """A column key as words (``linear_probe_accuracy`` → "linear probe accuracy"); the CSV keeps the key."""
    return _esc((headers or {}).get(column) or column.replace("_", " "))


def _legend(t: Table, cols: list[str]) -> str:
    items = [f"<b>{_header(c, t.headers)}</b>: {_esc(t.legend[c])}" for c in cols if t.legend.get(c)]
    return f"<p class='ci legend'>{'; '.join(items)}.</p>" if items else ""


def _interval_legend(rows: list[dict[str, Any]]) -> str:
    """Says which intervals are cluster bootstraps over patients, when some are (the others are not)."""
    kinds = {(v.get("interval"), v.get("n_patients")) for row in rows for v in row.values()
             if isinstance(v, dict) and v.get("interval")}
    if not kinds:
        return ""
    patients = sorted({n for _, n in kinds if n})
    count = f" ({', '.join(map(str, patients))} patients)" if patients else ""
    return (f"{CLUSTER_MARK} 95% interval from a {sorted(k for k, _ in kinds)[0]}{count}: the images of one patient are "
            "resampled together, so it is wider than an interval over images would be; unmarked intervals are over images.")


def _column_parts(cols: list[str]) -> list[list[str]]:
    """Columns in parts of at most MAX_COLUMNS, each part led by the first column (what names the row)."""
    if len(cols) <= MAX_COLUMNS:
        return [cols]
    first, rest = cols[0], cols[1:]
    step = MAX_COLUMNS - 1
    n_parts = -(-len(rest) // step)
    size = -(-len(rest) // n_parts)  # parts of even width rather than a full one and a stub
    return [[first, *rest[i:i + size]] for i in range(0, len(rest), size)]


def _table(t: Table) -> str:
    if not t.rows:
        return ""
    rows = [_fold_intervals(r) for r in t.rows]
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    parts = _column_parts(cols)
    html_parts = []
    for i, part in enumerate(parts):
        head = "".join(f"<th><span class='h'>{_header(c, t.headers)}</span></th>" for c in part)
        body = []
        for row in rows:
            cells = []
            for c in part:
                v = row.get(c)
                cls = " class='num'" if isinstance(v, (int, float, dict)) and not isinstance(v, bool) else ""
                cells.append(f"<td{cls}>{format_value(v)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        which = f" <span class='ci'>(part {i + 1} of {len(parts)})</span>" if len(parts) > 1 else ""
        html_parts.append(f"<h3>{_esc(t.title)}{which}</h3><div class='scroll'><table><thead><tr>{head}</tr></thead>"
                          f"<tbody>{''.join(body)}</tbody></table></div>")
    notes = [n for n in (t.note, _interval_legend(rows)) if n]
    note = "".join(f"<p class='ci'>{_esc(n)}</p>" for n in notes) + _legend(t, cols)
    if t.csv:
        note += f"<p class='ci'>as CSV: {_esc(t.csv)}</p>"
    return "".join(html_parts) + note


def _figure(f: Figure) -> str:
    path = Path(f.path)
    if not path.exists():
        return ""
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(path.suffix.lower(), "image/png")
    data = base64.b64encode(path.read_bytes()).decode()
    label_px = _label_px(path)
    attr = f" data-label-px='{label_px:.2f}'" if label_px else ""
    note = f"<span class='caveat' role='note'>{_esc(f.note)}</span>" if f.note else ""
    return (f"<figure><img alt='{_esc(f.caption or path.stem)}'{attr} src='data:{mime};base64,{data}'>"
            f"<figcaption>{_esc(f.caption)}{note}</figcaption></figure>")


def _label_px(path: Path) -> float | None:
    """The smallest label's height in the PNG's own pixels, as its writer recorded it (see medrep.plotting);
    the browser check scales it by the displayed width to the size a reader sees."""
    if path.suffix.lower() != ".png":
        return None
    from PIL import Image

    from medrep.plotting import LABEL_PX_KEY

    try:
        with Image.open(path) as im:
            value = (getattr(im, "text", None) or {}).get(LABEL_PX_KEY)
        return float(value) if value else None
    except (OSError, ValueError):
        return None


def render_report(title: str, subtitle: str, sections: Sequence[Section], manifest: dict[str, Any] | None = None) -> str:
    nav = "".join(f"<a href='#{_esc(s.id)}'>{_esc(s.title)}</a>" for s in sections)
    parts = []
    for s in sections:
        inner = [f"<h2>{_esc(s.title)}</h2>"]
        if s.error:
            inner.append(f"<p class='error'>This analysis did not complete: {_esc(s.error)}</p>")
        if s.reading:
            inner.append("<div class='reading'>" + "".join(f"<p>{_esc(p)}</p>" for p in s.reading.split("\n\n") if p.strip()) + "</div>")
        blocks = [[_table(t) for t in s.tables], [_figure(f) for f in s.figures]]
        for block in (blocks[::-1] if s.figures_first else blocks):
            inner += block
        parts.append(f"<section id='{_esc(s.id)}'>{''.join(inner)}</section>")
    if manifest is not None:  # folded away: it is for reproducing the run, not for reading the results
        parts.append("<section id='manifest'><details><summary>Run manifest (settings, versions, timings: "
                     "for reproducing this run)</summary><pre>"
                     + _esc(json.dumps(manifest, indent=2, sort_keys=True, default=str)) + "</pre></details></section>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title><style>{_CSS}</style></head>"
            f"<body><header><h1>{_esc(title)}</h1><p>{_esc(subtitle)}</p><nav>{nav}</nav></header><main>{''.join(parts)}</main></body></html>")


def write_report(path: str | Path, title: str, subtitle: str, sections: Sequence[Section], manifest: dict[str, Any] | None = None) -> Path:
    return write_bytes_atomic(path, render_report(title, subtitle, sections, manifest).encode("utf-8"))

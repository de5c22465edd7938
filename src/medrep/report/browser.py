"""Open an HTML file in real headless Chromium: console errors, sections, image natural sizes, screenshot.

The report forbids scripts through its Content-Security-Policy; the check runs on a copy whose policy
admits one nonce'd script (everything else in the policy stays as shipped), so CSP violations by the
report itself still surface as console errors.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]
NONCE = "medrepcheck"
SCREENSHOT_MAX_HEIGHT = 32000  # px: a whole audit report at 1280 px wide (4 models) is about 20 000 px
_PROBE = """<script nonce="%s">
window.__errors = []; window.__alerts = [];
window.alert = window.confirm = window.prompt = function (m) { window.__alerts.push(String(m)); };
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e.type)); }, true);
document.addEventListener('securitypolicyviolation', function (e) { window.__errors.push('CSP: ' + e.violatedDirective); });
var _ce = console.error; console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); _ce.apply(console, arguments); };
function medrepLayout() {
  // What a reader sees at this window width: tables wider than their box, labels scaled with their image.
  var px = function (el) { return parseFloat(getComputedStyle(el).fontSize); };
  var tables = Array.prototype.map.call(document.querySelectorAll('table'), function (t) {
    var box = t.parentElement, h = box.previousElementSibling;
    return {title: h ? h.textContent : '', scroll_width: t.scrollWidth, width: t.getBoundingClientRect().width,
            box_width: box.clientWidth, box_scroll_width: box.scrollWidth, columns: t.rows[0] ? t.rows[0].cells.length : 0};
  });
  var labels = Array.prototype.map.call(document.querySelectorAll('img[data-label-px]'), function (i) {
    return {alt: i.alt, label_px: parseFloat(i.dataset.labelPx), shown_px: parseFloat(i.dataset.labelPx) * i.clientWidth / i.naturalWidth,
            natural_width: i.naturalWidth, shown_width: i.clientWidth};
  });
  var captions = Array.prototype.map.call(document.querySelectorAll('figcaption'), function (c) {
    return {text: c.textContent, font_px: px(c)};
  });
  var cells = Array.prototype.map.call(document.querySelectorAll('td, th'), px);
  var texts = Array.prototype.filter.call(document.querySelectorAll('body *'), function (el) {
    return el.id !== 'medrep-check' && el.checkVisibility && el.checkVisibility() && Array.prototype.some.call(
      el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
  }).map(px);
  var details = Array.prototype.map.call(document.querySelectorAll('details'), function (d) {
    var s = d.closest('section');
    return {section: s ? s.id : null, open: d.open, summary: d.querySelector('summary') ? d.querySelector('summary').textContent : ''};
  });
  var manifest = document.querySelector('#manifest pre');
  return {inner_width: window.innerWidth, page_width: document.documentElement.scrollWidth,
          page_height: document.documentElement.scrollHeight, tables: tables, labels: labels, captions: captions,
          smallest_cell_px: cells.length ? Math.min.apply(null, cells) : null,
          smallest_text_px: texts.length ? Math.min.apply(null, texts) : null, details: details,
          manifest_folded: manifest ? !!manifest.closest('details:not([open])') : null,
          manifest_visible: manifest && manifest.checkVisibility ? manifest.checkVisibility() : null,
          manifest_height: manifest ? document.getElementById('manifest').getBoundingClientRect().height : null};
}
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) { return [i.alt, i.naturalWidth, i.naturalHeight]; });
  var secs = Array.prototype.map.call(document.querySelectorAll('section'), function (s) { return s.id; });
  var pre = document.createElement('pre'); pre.id = 'medrep-check';
  pre.textContent = JSON.stringify({errors: window.__errors, alerts: window.__alerts, images: imgs, sections: secs,
                                    title: document.title, layout: medrepLayout()});
  document.body.appendChild(pre);
});
</script>""" % NONCE


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def check_in_browser(report: Path, screenshot: Path | None = None, timeout: int = 120, width: int = 1280) -> dict:
    """Load ``report`` in a ``width`` px wide window; returns errors, sections, images and ``layout`` (tables'
    widths against their boxes, image labels' shown size, figure captions' font sizes, the manifest's
    folding).  ``screenshot``: a PNG of the whole page at that width (at most SCREENSHOT_MAX_HEIGHT px high)."""
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no chromium on PATH (make test installs Debian's chromium package)")
    text = report.read_text(encoding="utf-8")
    text = text.replace("default-src 'none';", f"default-src 'none'; script-src 'nonce-{NONCE}';", 1)
    text = text.replace("<head>", "<head>" + _PROBE, 1)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(text, encoding="utf-8")
        profile = Path(tmp) / "profile"
        proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                               f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=timeout)
        m = re.search(r'<pre id="medrep-check">(.*?)</pre>', proc.stdout, re.S)
        if not m:
            raise RuntimeError(f"chromium did not run the probe (rc {proc.returncode}): {proc.stderr[-2000:]}")
        result = json.loads(html.unescape(m.group(1)))
        result["console"] = [l for l in proc.stderr.splitlines() if "CONSOLE" in l and "probe.html" in l]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            height = min(SCREENSHOT_MAX_HEIGHT, max(800, int(result["layout"]["page_height"])))
            subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-shot", f"--window-size={width},{height}",
                            f"--screenshot={screenshot}", report.resolve().as_uri()],
                           capture_output=True, text=True, timeout=timeout)
    return result

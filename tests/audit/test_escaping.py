"""A class label that is HTML markup is shown as text: escaped in report.html, inert in a real browser."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from medrep.report.browser import check_in_browser, chromium_path

EVIL = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def _class_tree(root):
    """Phantoms as root/<split>/<class>/*.png with masks in root_masks/; 'malignant' renamed to EVIL."""
    from medrep.data.phantoms import PhantomConfig, load_phantoms

    data = load_phantoms(PhantomConfig(n_train=24, n_val=0, n_test=12, size=32, seed=5))
    names = {"normal": "normal", "benign": "benign", "malignant": EVIL}
    for split in ("train", "test"):
        part = data.split(split)
        for i in range(len(part)):
            item = part[i]
            rel = f"{split}/{names[part.classes[item.label]]}/{i:03d}.png"
            for base, array in ((root, item.image[0].numpy()), (root.parent / f"{root.name}_masks", item.mask)):
                if array is None:
                    continue
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((np.asarray(array, dtype=np.float32) * 255).round().astype(np.uint8)).save(base / rel)
    return root


def test_label_markup_is_escaped_in_the_report(tmp_path, one_thread):
    from medrep.audit import run_audit

    data = _class_tree(tmp_path / "images")
    config = {
        "title": f"audit of {EVIL}", "data": f"folder:{data}", "models": ["demo-cnn"], "text": None, "n_boot": 20,
        "analyses": {
            "robustness": {"enabled": False},
            "explain": {"methods": ["gradcam"], "metrics": ["pointing"], "limit": 4},
            "features": {"k": 3, "shots": [], "projections": [], "n_permutations": 10},
            "overlay": {"limit": 12},
            "alignment": {"enabled": False},
        },
    }
    out = tmp_path / "out"
    results = run_audit(yaml.safe_load(yaml.safe_dump(config)), out, cache_dir=str(tmp_path / "cache"), device="cpu")
    assert [s["error"] for s in results["sections"]] == [None, None] and "error" not in results["overlay"]
    assert EVIL in json.loads((out / "manifest.json").read_text())["data"]["classes"]

    page = (out / "report.html").read_text(encoding="utf-8")
    assert EVIL not in page and "<img src=x" not in page and "onerror=alert" not in page.replace(ESCAPED, "")
    assert page.count(ESCAPED) >= 4  # title, header, overlay table (word and column name), manifest
    assert f"<td>{ESCAPED}</td>" in page  # the overlay test writes the label on the images: it is a table row

    if chromium_path() is None:
        pytest.skip("no chromium binary on PATH (chromium / chromium-browser / google-chrome): browser half not run")
    result = check_in_browser(out / "report.html")
    assert result["alerts"] == [] and result["errors"] == [] and result["console"] == [], result
    assert result["title"] == f"audit of {EVIL}"  # shown as text
    assert len(result["images"]) == page.count("<img ") and all(w > 0 and h > 0 for _, w, h in result["images"])


def test_csv_cells_cannot_become_spreadsheet_formulas():
    from medrep.audit.runner import _csv_cell

    assert _csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert _csv_cell("@SUM(A1)") == "'@SUM(A1)" and _csv_cell("+1+2") == "'+1+2"
    assert _csv_cell("-0.5") == "-0.5" and _csv_cell(-0.5) == -0.5 and _csv_cell("→ demo-cnn") == "→ demo-cnn"
    assert _csv_cell(None) == "" and _csv_cell(float("nan")) == "" and _csv_cell({"a": 1}) == '{"a": 1}'

"""No CSV medrep writes can carry a live spreadsheet formula: every one goes through io.write_csv_atomic,
which neutralises cells that start like a formula (a class label such as ``=HYPERLINK("http://x")``)."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrep.io import csv_safe, write_csv_atomic

SRC = Path(__file__).resolve().parents[2] / "src" / "medrep"
HOSTILE = ['=HYPERLINK("http://x","click")', "@SUM(A1:A9)"]


def _live_formulas(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        cells = [c for row in csv.reader(f) for c in row]
    live = []
    for c in cells:
        if c.startswith(("=", "+", "-", "@", "\t", "\r")):
            try:
                float(c)
            except ValueError:
                live.append(c)
    return live


def test_the_writer_neutralises_formula_cells_in_header_and_rows(tmp_path):
    path = write_csv_atomic(tmp_path / "t.csv", ["=cmd|' /C calc'!A0", "value"],
                            [["+1+2", -0.5], ["-0.5", "@SUM(A1)"], ["\t=1", None], ["→ demo-cnn", 3]])
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [["'=cmd|' /C calc'!A0", "value"], ["'+1+2", "-0.5"], ["-0.5", "'@SUM(A1)"], ["'\t=1", ""],
                    ["→ demo-cnn", "3"]]
    assert csv_safe(-3.0) == -3.0 and csv_safe("-inf") == "-inf" and csv_safe("'=x") == "'=x"


def test_no_module_writes_csv_around_the_one_writer():
    """Any csv.writer / DictWriter outside io.py would bypass the neutralisation."""
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.name != "io.py"
                 and re.search(r"csv\.(writer|DictWriter)\(", p.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.fixture(scope="module")
def hostile_labels(tmp_path_factory):
    """A CSV manifest (train / test) whose two class labels are spreadsheet formulas; every image has a mask."""
    root = tmp_path_factory.mktemp("formulas")
    (root / "img").mkdir()
    rng = np.random.default_rng(5)
    rows = [["path", "label", "split", "mask"]]
    for i in range(24):
        image = rng.integers(0, 60, (32, 32), dtype=np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 4 + (i % 2) * 12 : 16 + (i % 2) * 12] = 255
        image[mask > 0] += 150
        Image.fromarray(image).save(root / "img" / f"{i}.png")
        Image.fromarray(mask).save(root / "img" / f"{i}-mask.png")
        rows.append([f"img/{i}.png", HOSTILE[i % 2], "train" if i < 16 else "test", f"img/{i}-mask.png"])
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return root / "labels.csv"


def _run(cli, argv):
    assert cli.in_process(argv) == 0


def test_labels_that_are_formulas_stay_text_in_every_csv(cli, hostile_labels, tmp_path):
    common = ["--data", str(hostile_labels), "--no-cache", "--quiet", "--batch-size", "8"]
    _run(cli, ["features", "--model", cli.TINY, "--projection", "none", "--shots", "1", "--draws", "2", "--n-boot", "20",
               "--n-permutations", "10", "--k", "3", "--mutual-k", "3", "--out", str(tmp_path / "features"), *common])
    _run(cli, ["overlay", "--model", cli.TINY, "--k", "3", "--n-boot", "20", "--out", str(tmp_path / "overlay"), *common])
    _run(cli, ["explain", "--model", cli.TINY, "--split", "test", "--methods", "gradcam", "--metrics", "pointing",
               "--out", str(tmp_path / "explain"), *common])
    written = sorted(tmp_path.rglob("*.csv"))
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"features/centroid_cosine.csv", "overlay/overlay.csv", "explain/per_image_scores.csv"} <= names, names
    for path in written:
        assert _live_formulas(path) == [], path
    with open(tmp_path / "features" / "centroid_cosine.csv", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert "'" + HOSTILE[0] in header  # the label is kept, as text

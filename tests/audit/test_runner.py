"""`medrep audit` end to end on a tiny config: every output an audit writes, and progress per stage."""
from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from medrep.results import RESULTS_SCHEMA_VERSION

STAGES = ("robustness", "explain", "features", "alignment")
QUESTIONS = ("robustness", "explanations", "features", "stitching", "caption-alignment")


def _section(page: str, sid: str) -> str:
    m = re.search(rf"<section id='{sid}'>(.*?)</section>", page, re.S)
    assert m, f"no section {sid!r}"
    return m.group(1)


def test_every_analysis_completes_and_results_json_is_versioned(tiny_audit):
    out, results, _, seconds = tiny_audit
    print(f"tiny audit: {seconds:.1f} s")
    on_disk = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert on_disk["schema_version"] == RESULTS_SCHEMA_VERSION and on_disk["kind"] == "audit"
    assert [s["id"] for s in on_disk["sections"]] == list(STAGES)
    assert all(s["error"] is None for s in on_disk["sections"]), on_disk["sections"]
    for key in (*STAGES, "overlay"):
        assert key in on_disk and "error" not in on_disk[key], on_disk.get(key, {}).get("error")
    assert "timings" not in on_disk  # timings live in manifest.json: results.json is byte-reproducible
    for model, card in on_disk["scorecard"].items():
        for q in QUESTIONS:  # each question's headline figure comes with its interval
            m = card[q]
            assert m["low"] <= m["value"] <= m["high"] and m["n"] > 0, (model, q, m)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "audit" and manifest["config"]["models"] == on_disk["config"]["models"]
    assert set(manifest["timings"]) == set(STAGES)


def test_report_is_one_self_contained_file(tiny_audit):
    out, results, _, _ = tiny_audit
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "http://" not in page.split("<pre>")[0]
    srcs = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert re.findall(r"<section id='([^']+)'>", page) == ["scorecard", *STAGES, "manifest"]
    for sid in STAGES:  # a section per analysis, with pictures, tables and a plain-language reading
        body = _section(page, sid)
        assert "<img " in body and "<table>" in body and "class='reading'" in body, sid
        assert "class='error'" not in body
    assert len(re.findall(r"<img ", _section(page, "features"))) >= 4  # projections, CKA, overlay chart, examples
    score = _section(page, "scorecard")
    for model in results["config"]["models"]:
        assert f"<h3>{model.replace('&', '&amp;')}</h3>" in score  # one scorecard table per model
    assert score.count("<span class='ci'>[") == len(results["config"]["models"]) * len(QUESTIONS)
    assert "class='reading'" in score
    manifest = _section(page, "manifest")
    assert "medrep_version" in manifest and "libraries" in manifest


def test_one_csv_per_report_table(tiny_audit):
    out, results, _, _ = tiny_audit
    page = (out / "report.html").read_text(encoding="utf-8")
    files = sorted((out / "tables").glob("*.csv"))
    assert len(files) == page.count("<table>") == len(results["tables"])
    assert sorted(f"tables/{f.name}" for f in files) == sorted(t["csv"] for t in results["tables"])
    assert not list((out / "tables").glob(".*.tmp"))  # atomic writes leave no temporaries
    for entry in results["tables"]:
        rows = list(csv.reader((out / entry["csv"]).open(encoding="utf-8", newline="")))
        assert rows[0] == entry["columns"] and len(rows) - 1 == entry["rows"] > 0
        assert f"as CSV: {entry['csv']}" in page
    sections = {t["section"] for t in results["tables"]}
    assert sections == {"scorecard", *STAGES}
    # metric cells are split into value / low / high / n columns
    robust = next(t for t in results["tables"] if t["section"] == "robustness")
    assert {"attacked accuracy", "attacked accuracy_low", "attacked accuracy_high", "attacked accuracy_n"} <= set(robust["columns"])


def test_scorecard_csv_has_value_and_interval_per_model_and_question(tiny_audit):
    out, results, _, _ = tiny_audit
    rows = list(csv.DictReader((out / "scorecard.csv").open(encoding="utf-8", newline="")))
    assert len(rows) == len(results["config"]["models"]) * len(QUESTIONS)
    for row in rows:
        assert float(row["low"]) <= float(row["value"]) <= float(row["high"]), row
        assert row["context"]


def test_progress_is_reported_per_stage(tiny_audit):
    _, _, stderr, _ = tiny_audit
    for i, title in enumerate(("3 · Are the features", "1 · Robustness", "2 · Do the explanations", "4 · Can it be aligned"), 1):
        assert re.search(rf"\[{i}/4\] {re.escape(title)}.*…", stderr), stderr
        assert re.search(rf"\[{i}/4\] {re.escape(title)}[^\n]*: done \(", stderr), stderr
    assert "report: " in stderr


def _features_only(tmp_path, make_config):
    config = make_config(models=["demo-cnn"], text=None)
    a = config["analyses"]
    for key in ("robustness", "explain", "alignment", "overlay"):
        a[key] = {"enabled": False}
    a["features"] = {"k": 5, "shots": [], "projections": [], "n_permutations": 10}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_quiet_silences_progress(tmp_path, make_config, capfd, one_thread, progress_on):
    from medrep.cli import main
    from medrep.progress import set_quiet

    config = _features_only(tmp_path, make_config)
    try:
        assert main(["audit", str(config), "--out", str(tmp_path / "loud"), "--cache-dir", str(tmp_path / "c"), "--device", "cpu"]) == 0
        loud = capfd.readouterr()
        assert main(["audit", str(config), "--out", str(tmp_path / "quiet"), "--cache-dir", str(tmp_path / "c"),
                     "--device", "cpu", "--quiet"]) == 0
        quiet = capfd.readouterr()
    finally:
        set_quiet(False)
    assert "[1/1] 3 · Are the features discriminative?" in loud.err and "done" in loud.err
    assert quiet.err == ""
    # --quiet silences progress, not the answer: the scorecard and the report's path stay on stdout
    assert quiet.out.endswith(f"wrote {tmp_path / 'quiet' / 'report.html'}\n")
    assert "linear-probe accuracy" in quiet.out and quiet.out == loud.out.replace("/loud/", "/quiet/")
    assert (tmp_path / "quiet" / "report.html").exists()


def test_models_are_seeded_and_named_apart(tmp_path):
    """Two random-weight ViTs of one architecture: reproducible weights, distinct names, distinct output folders."""
    import torch

    from medrep.audit import validate_config
    from medrep.audit.runner import Audit
    from medrep.io import slug as _safe
    from medrep.features.cache import EmbeddingCache

    vit = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&num_classes=3&depth="
    config = validate_config({"data": "demo?n_train=6&n_val=0&n_test=6&size=32", "models": [vit + "1", vit + "2"], "seed": 3})
    runs = []
    for outer_seed in (1, 2):
        torch.manual_seed(outer_seed)
        audit = Audit(config, tmp_path, EmbeddingCache(None, enabled=False), "cpu")
        audit.load()
        runs.append({s: (e.name, e.fingerprint) for s, e in audit._encoders.items()})
        assert torch.initial_seed() == outer_seed  # the caller's generator is left alone
    assert runs[0] == runs[1]
    assert [name for name, _ in runs[0].values()] == config["models"]
    long = [vit + "1" + "&x" * 40, vit + "1" + "&y" * 40]
    assert len({_safe(s) for s in [*config["models"], *long]}) == 4 and all(len(_safe(s)) <= 60 for s in long)
    assert _safe("demo-cnn") == "demo-cnn"


def test_a_failing_analysis_becomes_an_error_section(tmp_path, make_config, monkeypatch, one_thread):
    from medrep.audit import run_audit
    from medrep.audit.runner import Audit

    def broken(self, out):
        raise RuntimeError("simulated bug <b>here</b>")

    monkeypatch.setattr(Audit, "robustness", broken)
    config = yaml.safe_load(_features_only(tmp_path, make_config).read_text())
    config["analyses"]["robustness"] = {"enabled": True}
    results = run_audit(config, tmp_path / "out", cache_dir=str(tmp_path / "c"), device="cpu")
    assert results["robustness"]["error"] == "RuntimeError: simulated bug <b>here</b>"
    assert "Traceback" in results["robustness"]["traceback"]
    assert [(s["id"], s["error"] is None) for s in results["sections"]] == [("robustness", False), ("features", True)]
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    body = _section(page, "robustness")
    assert "<h2>1 · Robustness of the representation</h2>" in body and "class='error'" in body
    assert "simulated bug &lt;b&gt;here&lt;/b&gt;" in body
    assert "not available: the analysis failed (see its section)" in _section(page, "scorecard")
    assert "not run (disabled in the config)" in _section(page, "scorecard")


def test_data_without_captions_skips_caption_alignment_with_its_reason(tmp_path, make_config, one_thread):
    """Class folders carry no captions: stitching still runs, caption alignment is reported as not run (not an
    error section), in the section and in each model's scorecard row."""
    import numpy as np
    from PIL import Image

    from medrep.audit import run_audit

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        for k, name in enumerate(("benign", "malignant", "normal")):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = (rng.random((32, 32)) * 80 + 60 * k).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    config = make_config(data=str(tmp_path / "data"))
    a = config["analyses"]
    for key in ("robustness", "explain", "features", "overlay"):
        a[key] = {"enabled": False}
    a["alignment"] = {"anchors": [10]}
    results = run_audit(config, tmp_path / "out", cache_dir=str(tmp_path / "c"), device="cpu")
    assert "error" not in results["alignment"]
    assert sorted(results["alignment"]) == sorted(f"{s} → {t}" for s, t in
                                                  [(config["models"][0], "demo-cnn"), ("demo-cnn", config["models"][0])])
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Caption alignment not run: the training data has no captions to use as anchors" in _section(page, "alignment")
    assert _section(page, "scorecard").count("not run: the training data has no captions to use as anchors") == 2

    config["models"] = ["demo-cnn"]  # nothing left to align: a section that says why, not an error
    results = run_audit(config, tmp_path / "one", cache_dir=str(tmp_path / "c"), device="cpu")
    assert results["alignment"] == {}
    page = (tmp_path / "one" / "report.html").read_text(encoding="utf-8")
    assert "class='error'" not in _section(page, "alignment")
    assert "Caption alignment not run" in _section(page, "alignment")

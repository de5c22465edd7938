"""--cache-dir is the cache root of the whole command: text embeddings and phantoms land under it too,
not under $MEDREP_CACHE (or ~/.cache/medrep), and the process's setting is restored afterwards."""
from __future__ import annotations

import json
import os
from pathlib import Path

from medrep.cli import main

# a phantom configuration no other test uses, so its file can only come from these runs
DATA = "demo?n_train=60&n_val=0&n_test=30&size=32&seed=17"


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_align_writes_text_and_phantom_caches_under_cache_dir(tmp_path):
    session_root = os.environ["MEDREP_CACHE"]
    session_text = set(_files(Path(session_root) / "text"))
    session_phantoms = set(_files(Path(session_root) / "phantoms"))
    cache = tmp_path / "cd"
    rc = main(["align", "--source", "demo-cnn", "--text", "minilm", "--data", DATA, "--anchors", "30", "--n-boot", "20",
               "--cache-dir", str(cache), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    assert os.environ["MEDREP_CACHE"] == session_root  # restored once the command is done
    text, phantoms = _files(cache / "text"), _files(cache / "phantoms")
    # captions of the train split and the prompt ensembles: arrays with their checksum records
    assert any(p.endswith(".npy") for p in text) and any(p.endswith(".json") for p in text)
    assert len(phantoms) == 1 and phantoms[0].endswith(".npz")
    # the embedding cache keeps its layout under the same root
    assert json.loads((tmp_path / "out" / "results.json").read_text())["cache_keys"]
    assert any(p.endswith("complete.json") for p in _files(cache))
    # nothing new under the process-wide root
    assert set(_files(Path(session_root) / "text")) == session_text
    assert set(_files(Path(session_root) / "phantoms")) == session_phantoms


def test_features_and_audit_follow_cache_dir(tmp_path, monkeypatch):
    import medrep.audit

    session_root = os.environ["MEDREP_CACHE"]
    session_phantoms = set(_files(Path(session_root) / "phantoms"))
    cache = tmp_path / "fc"
    rc = main(["features", "--model", "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=1",
               "--data", DATA.replace("seed=17", "seed=18"), "--shots", "1", "--draws", "2", "--n-boot", "10",
               "--n-permutations", "10", "--k", "3", "--projection", "none", "--cache-dir", str(cache),
               "--out", str(tmp_path / "f"), "--quiet"])
    assert rc == 0 and len(_files(cache / "phantoms")) == 1
    assert set(_files(Path(session_root) / "phantoms")) == session_phantoms
    # the audit hands the root to every stage: the runner sees it while it runs
    seen = {}
    monkeypatch.setattr(medrep.audit, "load_config", lambda path: {})
    monkeypatch.setattr(medrep.audit, "run_audit", lambda *a, **k: seen.update(root=os.environ["MEDREP_CACHE"],
                                                                               cache_dir=k["cache_dir"]))
    assert main(["audit", "x.yaml", "--cache-dir", str(tmp_path / "ac"), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert seen == {"root": str(tmp_path / "ac"), "cache_dir": str(tmp_path / "ac")}
    assert os.environ["MEDREP_CACHE"] == session_root

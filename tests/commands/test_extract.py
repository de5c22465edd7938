"""`medrep extract` on the command line: embeddings, manifest and the cache."""
from __future__ import annotations

import json

import torch

from medrep.cli import main

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2"


def test_extract_writes_parquet_and_manifest_then_hits_the_cache(tmp_path, capsys):
    args = ["extract", "--model", TINY, "--data", "demo?n_train=20&n_val=0&n_test=30", "--split", "test", "--quiet"]
    torch.manual_seed(0)  # the model is randomly initialised: same seed, same weights, same cache key
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["output"]["rows"] == 30 and manifest["output"]["dim"] == 192
    assert manifest["libraries"]["torch"].startswith("2.13")
    assert len(manifest["cache_keys"]) == 1 and manifest["output"]["from_cache"] is False
    torch.manual_seed(0)
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["output"]["from_cache"] is True
    assert "(from cache)" in capsys.readouterr().out

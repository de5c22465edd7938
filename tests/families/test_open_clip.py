"""open_clip: the native ViT (config JSON + weights, ``?config=``) and BiomedCLIP's structure (a timm ViT trunk
and a Hugging Face text tower, loaded from its folder by ``local-dir:``), each with zero-shot through its own
text tower."""
from __future__ import annotations

import pytest

from family_builders import open_clip_biomedclip, open_clip_vit
from family_helpers import check_structure, explained_methods, run_every_analysis
from medrep.models import load_encoder

ALL = ["attention", "rollout", "chefer", "chefer-lrp", "gradcam", "ig", "random", "center"]


@pytest.fixture(scope="module")
def native(models_root):
    return open_clip_vit(models_root)


@pytest.fixture(scope="module")
def biomedclip(models_root):
    return open_clip_biomedclip(models_root)


def test_native_structure(native, capsys, tmp_path):
    check_structure(native, blocks=2, lrp=False, capsys=capsys, tmp_path=tmp_path)


def test_biomedclip_structure(biomedclip, capsys, tmp_path):
    enc = load_encoder(biomedclip)
    assert enc.preprocessing.size == (64, 64)  # the trunk's own size (open_clip does not pass image_size to timm)
    assert enc.text_encoder is not None
    check_structure(biomedclip, blocks=2, lrp=True, capsys=capsys, tmp_path=tmp_path)


@pytest.mark.slow
def test_native_every_analysis(native, capsys, tmp_path):
    results = run_every_analysis(native, tmp_path, capsys, text=native)
    methods, skipped = explained_methods(results)
    assert methods == [m for m in ALL if m != "chefer-lrp"] and list(skipped) == ["chefer-lrp"]
    assert "zero-shot" in results


@pytest.mark.slow
def test_biomedclip_every_analysis(biomedclip, capsys, tmp_path):
    results = run_every_analysis(biomedclip, tmp_path, capsys, text=biomedclip)
    methods, skipped = explained_methods(results)
    assert methods == ALL and not skipped
    assert "zero-shot" in results


def test_quiet_silences_third_party_load_chatter(native, tmp_path):
    """open_clip logs "No pretrained weights loaded … initialized randomly" on the root logger; --quiet keeps
    only medrep's own line."""
    import os
    import subprocess
    import sys

    config = native.split("?config=")[1]
    args = [sys.executable, "-m", "medrep.cli", "extract", "--model", f"open_clip:tiny-ViT-B-16?config={config}",
            "--data", "demo?n_train=4&n_val=0&n_test=4&size=32", "--split", "test", "--no-cache"]
    env = {**os.environ, "MEDREP_QUIET": "0"}
    loud = subprocess.run(args + ["--out", str(tmp_path / "loud")], capture_output=True, text=True, env=env, timeout=300)
    quiet = subprocess.run(args + ["--out", str(tmp_path / "quiet"), "--quiet"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert loud.returncode == quiet.returncode == 0
    assert "initialized randomly" in loud.stderr
    assert quiet.stderr.strip() == "" and quiet.stdout.startswith("wrote 4 embeddings")

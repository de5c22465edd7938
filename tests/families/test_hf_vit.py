"""Hugging Face ViT (google/vit-base-patch16-224's structure: a classification head on ImageNet-style labels)."""
from __future__ import annotations

import pytest

from family_builders import hf_vit
from family_helpers import check_structure, explained_methods, run_every_analysis

ALL_BUT_LRP = ["attention", "rollout", "chefer", "gradcam", "ig", "random", "center"]


@pytest.fixture(scope="module")
def spec(models_root):
    return hf_vit(models_root)


def test_structure(spec, capsys, tmp_path):
    check_structure(spec, blocks=2, lrp=False, capsys=capsys, tmp_path=tmp_path)


def test_every_analysis_runs(spec, capsys, tmp_path):
    results = run_every_analysis(spec, tmp_path, capsys)
    methods, skipped = explained_methods(results)
    assert methods == ALL_BUT_LRP and list(skipped) == ["chefer-lrp"]

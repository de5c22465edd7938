"""Hugging Face CLIP and SigLIP: dual-tower models (zero-shot through their own text tower) and SigLIP's vision
tower alone, whose attention-pooling head is not a transformer block."""
from __future__ import annotations

import pytest

from family_builders import hf_clip, hf_siglip
from family_helpers import check_structure, explained_methods, run_every_analysis
from medrep.explain.attention import find_attention_sites
from medrep.models import load_encoder

ALL_BUT_LRP = ["attention", "rollout", "chefer", "gradcam", "ig", "random", "center"]


@pytest.fixture(scope="module")
def clip(models_root):
    return hf_clip(models_root)


@pytest.fixture(scope="module")
def siglip(models_root):
    return hf_siglip(models_root)


@pytest.fixture(scope="module")
def siglip_tower(models_root):
    return hf_siglip(models_root, tower_only=True)


def test_siglip_pooling_head_is_not_a_block(siglip_tower, capsys, tmp_path):
    sites = find_attention_sites(load_encoder(siglip_tower))
    assert [s.name.removeprefix("vision_model.") for s in sites] == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn"]
    check_structure(siglip_tower, blocks=2, lrp=False, capsys=capsys, tmp_path=tmp_path)


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_dual_tower_structure(which, request, capsys, tmp_path):
    check_structure(request.getfixturevalue(which), blocks=2, lrp=False, capsys=capsys, tmp_path=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_every_analysis_and_own_text_tower_zero_shot(which, request, capsys, tmp_path):
    spec = request.getfixturevalue(which)
    results = run_every_analysis(spec, tmp_path, capsys, text=spec)
    methods, skipped = explained_methods(results)
    assert methods == ALL_BUT_LRP and list(skipped) == ["chefer-lrp"]
    assert "zero-shot" in results


def test_siglip_tower_every_analysis(siglip_tower, capsys, tmp_path):
    results = run_every_analysis(siglip_tower, tmp_path, capsys)
    assert explained_methods(results)[0] == ALL_BUT_LRP

"""timm ViT with 4 register tokens and MAP (attention-latent) pooling, loaded from a weights file."""
from __future__ import annotations

import pytest
import torch

from family_builders import timm_vit_registers_map
from family_helpers import check_structure, explained_methods, run_every_analysis
from medrep.explain.lrp import lrp_state
from medrep.explain.methods import explain
from medrep.explain.targets import Target
from medrep.models import load_encoder

ALL = ["attention", "rollout", "chefer", "chefer-lrp", "gradcam", "ig", "random", "center"]


@pytest.fixture(scope="module")
def spec(models_root):
    return timm_vit_registers_map(models_root)


def test_structure(spec, capsys, tmp_path):
    enc = load_encoder(spec)
    assert (enc.token_grid.num_prefix_tokens, enc.token_grid.num_register_tokens) == (5, 4)
    assert enc.default_pool == "mean"  # the MAP head reads the patch tokens, not a CLS
    check_structure(spec, blocks=2, lrp=True, capsys=capsys, tmp_path=tmp_path)


def test_chefer_lrp_explains_a_map_pooled_head(spec):
    """Behind attention pooling the relevance starts as gradient×input at the final norm's tokens: it reaches
    every block's attention, CLS and register rows included, and the maps are finite."""
    enc = load_encoder(spec)
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = Target("class", classes=torch.tensor([1, 2]))
    state = lrp_state(enc, pixels, target)
    assert state.output_relevance.shape == (2, 5 + 16, 192) and state.output_relevance.abs().sum() > 0
    assert all(r is not None and r.abs().sum() > 0 for r in state.attention_relevance)
    maps = explain(enc, pixels, "chefer-lrp", target)
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()


def test_every_analysis_runs(spec, capsys, tmp_path):
    results = run_every_analysis(spec, tmp_path, capsys)
    methods, skipped = explained_methods(results)
    assert methods == ALL and not skipped

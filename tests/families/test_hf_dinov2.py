"""Hugging Face DINOv2: RAD-DINO's configuration (patch 14, layerscale, its crop processor) and DINOv2 with
4 registers."""
from __future__ import annotations

import pytest

from family_builders import hf_dinov2_registers, hf_rad_dino
from family_helpers import check_structure, explained_methods, run_every_analysis
from medrep.models import load_encoder

ALL_BUT_LRP = ["attention", "rollout", "chefer", "gradcam", "ig", "random", "center"]


@pytest.fixture(scope="module")
def rad_dino(models_root):
    return hf_rad_dino(models_root)


@pytest.fixture(scope="module")
def registers(models_root):
    return hf_dinov2_registers(models_root)


def test_rad_dino_reads_its_processor_and_layout(rad_dino, capsys, tmp_path):
    enc = load_encoder(rad_dino)
    assert enc.preprocessing.size == (56, 56) and enc.preprocessing.interpolation == "bicubic"
    assert enc.preprocessing.mean == (0.5307,) * 3
    grid = enc.token_grid
    assert (grid.height, grid.width, grid.patch_size, grid.num_prefix_tokens) == (4, 4, (14, 14), 1)
    check_structure(rad_dino, blocks=2, lrp=False, capsys=capsys, tmp_path=tmp_path)


def test_registers_are_prefix_tokens(registers, capsys, tmp_path):
    grid = load_encoder(registers).token_grid
    assert (grid.num_prefix_tokens, grid.num_register_tokens, grid.has_cls) == (5, 4, True)
    check_structure(registers, blocks=2, lrp=False, capsys=capsys, tmp_path=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["rad_dino", "registers"])
def test_every_analysis_runs(which, request, capsys, tmp_path):
    results = run_every_analysis(request.getfixturevalue(which), tmp_path, capsys)
    methods, skipped = explained_methods(results)
    assert methods == ALL_BUT_LRP and list(skipped) == ["chefer-lrp"]

"""The README's alignment figures on the shipped demo models (phantoms, 500 random train anchors, ortho,
the whole 600-image test split): stitching both ways and zero-shot of the ViT through MiniLM."""
from __future__ import annotations

import pytest

from medrep.align.run import run_alignment


def test_stitching_both_ways_keeps_the_targets_accuracy(demo_vit, demo_cnn, phantoms):
    vit_to_cnn = run_alignment(demo_vit, phantoms, target_encoder=demo_cnn, anchors=[500], n_boot=200).metrics
    cnn_to_vit = run_alignment(demo_cnn, phantoms, target_encoder=demo_vit, anchors=[500], n_boot=200).metrics
    # README: 0.996 (target's own 1.000) and 1.000 (0.998); stitching must reach ≥ 90% of the target's own
    for m in (vit_to_cnn, cnn_to_vit):
        assert m["stitched_accuracy"].value >= 0.98
        assert m["stitched_accuracy"].value >= 0.9 * m["target_accuracy"].value
        # anchors paired at random lose most of what the stitch carries; the control is the mean of several
        # permutations (0.59 for vit→cnn at 500 anchors: above chance, see the README's note on the control)
        assert m["shuffled_accuracy"].value <= m["stitched_accuracy"].value - 0.3
    # the naive stitch (identity, zero-padded) is worse than chance one way and at chance the other
    assert vit_to_cnn["naive_accuracy"].value <= 0.1
    assert cnn_to_vit["naive_accuracy"].value <= 0.45


@pytest.mark.parametrize("name", ["demo_vit", "demo_cnn"])
def test_zero_shot_through_minilm(name, request, phantoms):
    encoder = request.getfixturevalue(name)
    m = run_alignment(encoder, phantoms, text_encoder="minilm", anchors=[500], n_boot=200).metrics
    # README: 0.998 / 1.000 (chance 0.333; the captions name the class)
    assert m["zero_shot_accuracy"].value >= 0.95
    assert m["zero_shot_naive_accuracy"].value <= 0.5
    assert abs(m["chance_accuracy"].value - 1 / 3) < 1e-9

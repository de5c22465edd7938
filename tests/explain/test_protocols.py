"""Threshold-free and protocol scores against their references: AUPRC vs scikit-learn, Otsu vs scikit-image,
CheXlocalize's hit / IoU and Chung et al.'s conventions on hand-computed cases with ties, ROAD's imputation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medrep.explain import chexlocalize, chung2025
from medrep.explain.scores import auprc


def test_auprc_matches_scikit_learn_with_ties_and_constant_maps():
    from sklearn.metrics import average_precision_score

    torch.manual_seed(0)
    maps = torch.rand(4, 16, 16)
    maps[1] = torch.round(maps[1] * 4)  # five levels: many ties
    maps[2] = 0.5  # constant: the mask's share of the image
    masks = torch.rand(4, 16, 16) < 0.2
    masks[3] = maps[3] > 0.7  # a perfect map
    got = auprc(maps, masks).numpy()
    want = [average_precision_score(masks[i].flatten().numpy(), maps[i].flatten().numpy()) for i in range(4)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[2] == pytest.approx(masks[2].float().mean().item()) and got[3] == pytest.approx(1.0)


def test_otsu_threshold_matches_scikit_image():
    from skimage.filters import threshold_otsu

    torch.manual_seed(1)
    maps = torch.rand(5, 30, 20) ** 3
    maps[3] = torch.round(maps[3] * 3)  # four levels only
    maps[4, :15] += 2.0  # two clear modes
    levels = chexlocalize.to_levels(maps)
    got = chexlocalize.otsu_thresholds(levels.flatten(1)).numpy()
    want = [threshold_otsu(levels[i].numpy().astype(np.uint8)) for i in range(5)]
    np.testing.assert_array_equal(got, want)
    seg = chexlocalize.segment(maps)
    for i in range(5):
        np.testing.assert_array_equal(seg[i].numpy(), levels[i].numpy().astype(np.uint8) > want[i])


def test_hit_and_iou_by_hand_with_ties():
    # two tied maxima: (0, 3) outside the mask, (2, 1) inside
    m = torch.tensor([[0.0, 0.1, 0.2, 1.0],
                      [0.0, 0.1, 0.2, 0.3],
                      [0.0, 1.0, 0.2, 0.3],
                      [0.0, 0.0, 0.0, 0.0]])[None]
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 2:, :2] = True
    # CheXlocalize: np.argmax's first maximum (row-major) is (0, 3): a miss
    assert float(chexlocalize.hits(m, mask)[0]) == 0.0
    # Chung et al.: any maximal pixel inside counts: a hit
    assert float(chung2025.pointing_any_maximum(m, mask)[0]) == 1.0
    # Chung top-k: k = ⌊16 · 10 / 100⌋ = 1, the threshold is the 2nd largest value (1.0, tied): both maxima kept;
    # the box around both spans rows 0-2, columns 1-3 (9 pixels); mask 4 pixels; overlap (2, 1) only → 1 / 12
    keep = chung2025.topk_with_ties(m, 10)
    assert keep.sum() == 2 and keep[0, 0, 3] and keep[0, 2, 1]
    assert float(chung2025.chung_scores(m, mask, (10,))["iou_box@10"][0]) == pytest.approx(1 / 12)
    # IoU of a predicted segmentation: 3 of the mask's 4 pixels plus 1 outside → 3 / 5; empty → 0 or NaN (TP only)
    pred = mask.clone()
    pred[0, 3, 0] = False
    pred[0, 0, 0] = True
    assert float(chexlocalize.ious(pred, mask, False)[0]) == pytest.approx(3 / 5)
    empty = torch.zeros_like(mask)
    assert float(chexlocalize.ious(empty, mask, False)[0]) == 0.0
    assert np.isnan(float(chexlocalize.ious(empty, mask, True)[0]))


def test_chung_topk_matches_their_binarisation():
    torch.manual_seed(2)
    maps = torch.round(torch.rand(3, 14, 14) * 10) / 10  # ties at every level
    for percent in (5, 10, 20, 40):
        got = chung2025.topk_with_ties(maps, percent)
        for i in range(3):
            flat = sorted(maps[i].reshape(-1).tolist())  # their code: sorted, reversed, index k, keep >=
            threshold = flat[::-1][int(14 * 14 * (percent / 100))]
            np.testing.assert_array_equal(got[i].numpy(), (maps[i] >= threshold).numpy())


def test_chung_attention_maps_are_replicated_blocks():
    raw = torch.arange(4.0).view(1, 2, 2)
    up = chung2025.protocol_maps(raw, "attention", (4, 4))
    np.testing.assert_allclose(up[0].numpy(), np.kron(raw[0].numpy(), np.ones((2, 2))) / 3)


def test_original_size_scoring_upsamples_each_map_to_its_own_mask():
    raw = torch.zeros(2, 2, 2)
    raw[:, 1, 1] = 1.0  # bottom-right cell
    masks = [torch.zeros(8, 8, dtype=torch.bool), torch.zeros(6, 10, dtype=torch.bool)]
    masks[0][4:, 4:] = True
    masks[1][3:, 5:] = True
    out = chexlocalize.score_original_size(raw, masks, None, None)
    assert out["hit"].tolist() == [1.0, 1.0]
    assert (out["iou_otsu"] > 0.5).all() and out["predicted"].all()
    # a probability below the cut-off empties the segmentation
    cut = chexlocalize.score_original_size(raw, masks, torch.tensor([0.9, 0.1]), 0.5)
    assert cut["predicted"].tolist() == [True, False] and cut["iou_otsu"][1] == 0.0


def test_tuned_threshold_is_the_best_on_the_tuning_images():
    grid = list(chexlocalize.TUNING_GRID)
    iou = np.zeros((3, len(grid)))
    iou[0, grid.index(0.3)] = 0.9
    iou[1, grid.index(0.3)] = 0.5
    iou[1, grid.index(0.6)] = 0.8
    iou[2, grid.index(0.7)] = 0.4
    tuned = chexlocalize.tune_thresholds(iou, np.array([0, 0, 1]), ["a", "b"])
    assert tuned == {"a": 0.3, "b": 0.7}  # class a: 0.3 gives a mean 0.7, 0.6 only 0.4


def test_percentage_decrease_from_the_human_benchmark():
    human = np.array([1.0, 1.0, 0.0, 1.0])
    model = np.array([1.0, 0.0, 0.0, 0.0])
    got = chexlocalize.percentage_decrease(model, human, n_boot=200)
    assert got["value"] == pytest.approx((0.75 - 0.25) / 0.75 * 100)
    assert got["low"] <= got["value"] <= got["high"]


def test_road_imputation_solves_the_neighbour_equations():
    from medrep.explain.road import NEIGHBOURS, impute

    rng = np.random.default_rng(0)
    image = rng.random((3, 12, 12))
    removed = rng.random((12, 12)) < 0.6
    removed[0, 0] = True  # a corner pixel has three neighbours
    out = impute(image, removed, noise=0.0)
    np.testing.assert_array_equal(out[:, ~removed], image[:, ~removed])
    for y, x in np.argwhere(removed):
        num = sum(w * out[:, y + dy, x + dx] for dy, dx, w in NEIGHBOURS if 0 <= y + dy < 12 and 0 <= x + dx < 12)
        den = sum(w for dy, dx, w in NEIGHBOURS if 0 <= y + dy < 12 and 0 <= x + dx < 12)
        np.testing.assert_allclose(out[:, y, x], num / den, atol=1e-10)
    noisy = impute(image, removed, noise=0.01, rng=np.random.default_rng(1))
    assert 0.005 < float(np.std(noisy[:, removed] - out[:, removed])) < 0.015


def test_the_readme_lists_the_chung2025_differences_from_the_one_place():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for convention, ours, theirs in chung2025.DIFFERENCES:
        assert f"| {convention} | {ours} | {theirs} |" in readme, convention

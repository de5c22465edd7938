"""The fused CheXlocalize scorer (numba) against torch's F.interpolate, scikit-image's Otsu and np.argmax, map by
map, and against medrep's own torch path: the same hit, IoU and tuning-grid figures, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medrep.explain import chexlocalize

pytest.importorskip("numba")
from medrep.explain import chexlocalize_kernel  # noqa: E402


def _maps_and_masks():
    gen = torch.Generator().manual_seed(3)
    raw = torch.rand(10, 8, 8, generator=gen)
    raw[1] = 0.25  # constant: all levels 0, the first pixel is the maximum
    raw[2] = torch.round(raw[2] * 2)  # three values: wide plateaus of tied maxima
    raw[3] = 0.0
    raw[3, 0, 0] = raw[3, 0, 7] = 1.0  # two corner peaks, each a clamped block of exact 1.0: the first wins
    raw[5, 0, 0] = 3.0  # the maximum in a clamped corner: a whole block of ties
    raw[7] = -raw[7]  # negative values
    sizes = [(320, 320), (391, 287), (97, 75), (160, 160), (40, 33), (65, 64)]  # the last two: torch's path
    masks = [torch.rand(*sizes[i % 6], generator=gen) < 0.3 for i in range(10)]
    masks[6][:] = False  # an empty mask
    masks[3][:] = False
    masks[3][:20, 140:] = True  # around the second (top-right) peak only
    return raw, masks


def test_kernel_upsampling_is_torch_bilinear_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    for h, w, height, width in ((8, 8, 320, 320), (7, 7, 390, 320), (14, 14, 130, 517), (16, 12, 80, 70)):
        raw = torch.randn(h, w, generator=gen)
        want = F.interpolate(raw[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        got = chexlocalize_kernel.upsample_map(raw.numpy(), *chexlocalize_kernel.axis_weights(h, height),
                                               *chexlocalize_kernel.axis_weights(w, width))
        np.testing.assert_array_equal(got, want.numpy())
    assert chexlocalize_kernel.available()


def test_fused_scores_match_the_reference_logic_map_by_map():
    from skimage.filters import threshold_otsu

    raw, masks = _maps_and_masks()
    got = chexlocalize.score_original_size(raw, masks, None, None, tuning_grid=False)
    for i, mask in enumerate(masks):
        up = F.interpolate(raw[i][None, None], size=tuple(mask.shape), mode="bilinear", align_corners=False)[0, 0]
        r, c = np.unravel_index(np.argmax(up.numpy()), up.shape)  # the reference code's tie-break
        assert got["hit"][i] == float(mask[r, c])
        levels = chexlocalize.to_levels(up[None])[0].numpy()
        seg = levels > threshold_otsu(levels) if levels.max() > levels.min() else np.zeros_like(levels, dtype=bool)
        union = np.logical_or(seg, mask.numpy()).sum()
        want = np.logical_and(seg, mask.numpy()).sum() / union if union else 0.0
        assert got["iou_otsu"][i] == pytest.approx(want, abs=1e-15), i
        assert got["predicted"][i] == seg.any()
    assert got["hit"][3] == 0.0  # two tied peaks: the first in row-major order (top-left) is outside the mask


def test_fused_and_torch_paths_agree_with_cutoff_and_tuning_grid(monkeypatch):
    raw, masks = _maps_and_masks()
    probabilities = torch.linspace(0, 1, 10)
    fused = chexlocalize.score_original_size(raw, masks, probabilities, 0.35)
    monkeypatch.setattr(chexlocalize, "_fused_kernel", lambda: None)
    plain = chexlocalize.score_original_size(raw, masks, probabilities, 0.35)
    assert set(fused) == set(plain)
    for key in plain:
        np.testing.assert_array_equal(fused[key], plain[key], err_msg=key)
    assert not fused["predicted"][:4].any() and fused["predicted_grid"][6:].any()


@pytest.mark.parametrize("shape, sizes", [((10, 10), [(233, 171), (97, 389)]), ((13, 9), [(1001, 757), (75, 4096)])])
def test_fused_path_matches_torch_on_awkward_sizes_with_plateaus(monkeypatch, shape, sizes):
    # odd, non-square originals with upscale factors that are not integers; ReLU'd maps hold wide plateaus of exact
    # zeros (the minimum tied over many rows: the row bounds must not stop early) and of tied maxima
    gen = torch.Generator().manual_seed(11)
    raw = torch.relu(torch.randn(6, *shape, generator=gen))
    raw[1] = torch.relu(raw[1] - 0.8).round()  # mostly zero, a few equal peaks
    raw[2] = -raw[2]  # all ≤ 0: the maximum is a plateau of zeros
    masks = [torch.rand(*sizes[i % 2], generator=gen) < 0.4 for i in range(6)]
    masks[3] = torch.zeros(*sizes[1], dtype=torch.bool)
    masks[3][: sizes[1][0] // 3] = True  # whole rows inside, whole rows outside
    fused = chexlocalize.score_original_size(raw, masks, None, None)
    monkeypatch.setattr(chexlocalize, "_fused_kernel", lambda: None)
    plain = chexlocalize.score_original_size(raw, masks, None, None)
    for key in plain:
        np.testing.assert_array_equal(fused[key], plain[key], err_msg=key)
    assert chexlocalize_kernel.threads() >= 1


def test_maps_with_a_nan_or_an_infinity_never_reach_the_fused_kernel(monkeypatch):
    # the finiteness check is a min / max (NaN propagates), not an elementwise isfinite
    raw, masks = _maps_and_masks()
    called = []
    real = chexlocalize_kernel.fused_counts
    monkeypatch.setattr(chexlocalize_kernel, "fused_counts", lambda *a: called.append(1) or real(*a))
    chexlocalize.score_original_size(raw, masks, None, None, tuning_grid=False)
    assert called
    for bad in (float("nan"), float("inf"), -float("inf")):
        called.clear()
        odd = raw.clone()
        odd[4, 3, 5] = bad
        chexlocalize.score_original_size(odd, masks, None, None, tuning_grid=False)
        assert not called, bad
    assert chexlocalize._all_finite(raw) and not chexlocalize._all_finite(raw.clone().fill_(float("nan")))


@pytest.mark.parametrize("grid", [(0.05, 0.25, 0.5, 0.75, 0.95), (0.3, 0.3 + 1e-9, 0.5, -0.1, 1.0)])
def test_grid_counts_equal_a_pixel_by_pixel_count_of_the_upsampled_map(grid):
    # the first grid is counted through one split per level; the second puts two thresholds in one level (the
    # kernel then compares every pixel with every threshold), one below every value and one above all
    gen = torch.Generator().manual_seed(5)
    raw = torch.relu(torch.randn(4, 10, 10, generator=gen))
    raw[3] = torch.rand(10, 10, generator=gen) - 2.0  # negative values
    masks = [(torch.rand(233, 171, generator=gen) < 0.3).numpy().view(np.uint8) for _ in range(4)]
    sorted_grid = np.sort(np.asarray(grid, dtype=np.float64))
    hist, first, grid_hist = chexlocalize_kernel.fused_counts(raw.numpy(), masks, sorted_grid)
    up0 = F.interpolate(raw[:1, None], size=masks[0].shape, mode="bilinear", align_corners=False)
    lo, hi = np.float32(up0.min().item()), np.float32(up0.max().item())
    one_split_per_level = chexlocalize_kernel._level_splits(lo, hi, sorted_grid)[2]
    assert one_split_per_level == (grid[0] == 0.05)
    for i, mask in enumerate(masks):
        up = F.interpolate(raw[i][None, None], size=mask.shape, mode="bilinear", align_corners=False)[0, 0].double()
        norm = ((up - up.min()) / (up.max() - up.min())).numpy()
        exceeded = (norm[..., None] > sorted_grid).sum(-1)
        want = np.bincount((exceeded + (len(grid) + 1) * mask).ravel(), minlength=2 * (len(grid) + 1))
        np.testing.assert_array_equal(grid_hist[i].ravel(), want)
        levels = chexlocalize.to_levels(up.float()[None])[0].numpy()
        keys = levels.astype(np.int64) + 256 * mask.astype(np.int64)
        np.testing.assert_array_equal(hist[i].ravel(), np.bincount(keys.ravel(), minlength=512))

"""Localisation and faithfulness scores against hand-made cases and straightforward per-image references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medrep.errors import MedrepError
from medrep.explain.faithfulness import curve_auc, gaussian_blur, perturbation_curves
from medrep.explain.methods import normalize_maps
from medrep.explain.scores import dead_maps, enclosing_box, iou_topk, pointing_game, relevance_mass, topk_pixels
from medrep.explain.targets import Target
from medrep.models.base import ModuleEncoder, Preprocessing


def _mask(h, w, rows, cols):
    m = torch.zeros(h, w, dtype=torch.bool)
    m[rows, cols] = True
    return m


def test_pointing_game_by_hand():
    maps = torch.zeros(3, 4, 4)
    maps[0, 1, 1] = 1.0                     # peak inside
    maps[1, 3, 3] = 1.0                     # peak outside
    maps[2, 3, 3] = maps[2, 1, 2] = 1.0     # tie: one maximum pixel inside is a hit
    masks = _mask(4, 4, slice(0, 2), slice(0, 3)).expand(3, 4, 4)
    assert pointing_game(maps, masks).tolist() == [1.0, 0.0, 1.0]


def test_a_constant_map_points_nowhere():
    mask = _mask(64, 64, slice(10, 14), slice(10, 14))[None]  # 16 of 4096 pixels
    flat = normalize_maps(torch.full((1, 64, 64), 3.0))        # all zeros after min-max
    for m in (flat, torch.full((1, 64, 64), 3.0)):
        assert dead_maps(m).tolist() == [True]
        assert pointing_game(m, mask).tolist() == [0.0]         # a flat map has no peak: not every pixel is one
        assert int(topk_pixels(m, 5).sum()) == 0                # nothing ranks above anything else
        assert float(iou_topk(m, mask, 40, "pixel")) == 0.0 and float(iou_topk(m, mask, 40, "box")) == 0.0
    assert float(relevance_mass(flat, mask)) == 0.0             # no energy at all
    assert float(relevance_mass(torch.full((1, 64, 64), 3.0), mask)) == pytest.approx(16 / 4096)  # uniform: area
    # a map with a single peak inside the mask is not dead and still hits
    one = torch.zeros(1, 64, 64)
    one[0, 11, 12] = 0.5
    assert dead_maps(one).tolist() == [False] and pointing_game(one, mask).tolist() == [1.0]


def test_iou_modes_by_hand():
    # 10×10 map; top 4% = 4 pixels: two separate blobs at (1,1),(1,2) and (4,6),(5,6)
    m = torch.zeros(1, 10, 10)
    m[0, 1, 1], m[0, 1, 2], m[0, 4, 6], m[0, 5, 6] = 0.9, 0.8, 1.0, 0.7
    mask = _mask(10, 10, slice(1, 6), slice(1, 7))[None]  # 5×6 = 30 pixels
    # box mode: one rectangle enclosing both components = rows 1..5 × cols 1..6 = the mask exactly
    assert float(iou_topk(m, mask, 4, "box")) == pytest.approx(1.0)
    # pixel mode: 4 kept pixels, all inside the 30-pixel mask
    assert float(iou_topk(m, mask, 4, "pixel")) == pytest.approx(4 / 30)
    other = _mask(10, 10, slice(0, 2), slice(0, 2))[None]  # 4 pixels; overlap with kept: (1,1)
    assert float(iou_topk(m, other, 4, "pixel")) == pytest.approx(1 / 7)
    # box 30 px, other 4 px, overlap (1,1) → 1 / 33
    assert float(iou_topk(m, other, 4, "box")) == pytest.approx(1 / 33)
    with pytest.raises(MedrepError, match="^iou_mode: "):
        iou_topk(m, mask, 4, "ellipse")


def test_box_iou_equals_connected_component_reference():
    """The paper's recipe done literally (scipy.ndimage.label → one rectangle around every component)."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.nn.functional.avg_pool2d(torch.rand(12, 1, 40, 36, generator=gen), 5, 1, 2)[:, 0]
    masks = torch.rand(12, 40, 36, generator=gen) > 0.7
    for k in (5, 10, 20, 40):
        got = iou_topk(maps, masks, k, "box").numpy()
        for i in range(12):
            a = maps[i].numpy()
            thr = np.sort(a.ravel())[::-1][int(np.ceil(a.size * k / 100)) - 1]
            labels, n = ndimage.label(a >= thr)
            box = np.zeros_like(a, dtype=bool)
            slices = [s for s in ndimage.find_objects(labels) if s is not None]
            r0, r1 = min(s[0].start for s in slices), max(s[0].stop for s in slices)
            c0, c1 = min(s[1].start for s in slices), max(s[1].stop for s in slices)
            box[r0:r1, c0:c1] = True
            m = masks[i].numpy()
            assert got[i] == pytest.approx((box & m).sum() / (box | m).sum(), abs=1e-6)


def test_topk_breaks_ties_by_position_and_keeps_exactly_k():
    # a ReLU'd map: 3 positive pixels, 13 tied zeros.  top-40% of 16 = ceil(6.4) = 7 pixels: the 3 positive
    # ones, then the first 4 zeros in row-major order (row 0) — not the whole image
    m = torch.tensor([[[0.0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 0, 0], [0, 0, 0, 0]]])
    expected = torch.tensor([[[1, 1, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]], dtype=torch.bool)
    assert torch.equal(topk_pixels(m, 40), expected)
    mask = _mask(4, 4, slice(1, 3), slice(1, 3))[None]  # 4 pixels, 3 of them positive on the map
    # pixel: kept ∩ mask = 3, union = 7 + 4 − 3 = 8 (ties at zero are not kept: not the whole image)
    assert float(iou_topk(m, mask, 40, "pixel")) == pytest.approx(3 / 8)
    # box: rows 0–2 × cols 0–3 = 12 pixels, holding the whole mask
    assert float(iou_topk(m, mask, 40, "box")) == pytest.approx(4 / 12)
    # ties at the top too: 25% = 4 of the five 1s, the first four in row-major order
    t = torch.tensor([[[0.0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]])
    kept = topk_pixels(t, 25)[0].nonzero().tolist()
    assert kept == [[0, 1], [0, 3], [1, 0], [2, 2]]


def test_topk_and_box_edge_cases():
    m = torch.arange(16.0).view(1, 4, 4)
    assert int(topk_pixels(m, 25).sum()) == 4
    assert enclosing_box(torch.zeros(1, 3, 3, dtype=torch.bool)).sum() == 0
    with pytest.raises(MedrepError, match="^topk: "):
        topk_pixels(m, 0)


def test_relevance_mass_by_hand():
    m = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])
    mask = torch.tensor([[[True, False], [False, True]]])
    assert float(relevance_mass(m, mask)) == pytest.approx(5 / 8)
    with pytest.raises(MedrepError, match="masks"):
        relevance_mass(m, mask[:, :1])


class _Brightness(torch.nn.Module):
    """Toy classifier: logits are fixed linear read-outs of the pixels, so curves are easy to recompute."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(3, 1 * 8 * 8, generator=gen))

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def _toy_encoder():
    mod = _Brightness()
    return ModuleEncoder(mod, Preprocessing((8, 8), (0.0,), (1.0,), 1), name="toy", head=torch.nn.Identity())


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_perturbation_curves_equal_a_per_image_loop(mode, baseline):
    enc = _toy_encoder()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 8, 8, generator=gen)
    maps = torch.rand(5, 8, 8, generator=gen)
    target = Target("class", classes=torch.tensor([0, 1, 2, 0, 1]))
    steps = 4
    got = perturbation_curves(enc, x, maps, target, mode, steps=steps, baseline=baseline, batch_size=3)
    base = torch.zeros_like(x) if baseline == "zero" else gaussian_blur(x, 1.0)
    for i in range(5):
        order = np.argsort(-maps[i].numpy().ravel(), kind="stable")
        for s in range(steps + 1):
            n = int(round(s * 64 / steps))
            img = (x[i].clone() if mode == "deletion" else base[i].clone()).view(-1)
            src = base[i].view(-1) if mode == "deletion" else x[i].view(-1)
            img[order[:n]] = src[order[:n]]
            p = enc.logits(img.view(1, 1, 8, 8)).softmax(-1)[0, target.classes[i]]
            assert float(got[i, s]) == pytest.approx(float(p), abs=1e-5)
    auc = curve_auc(got)
    np.testing.assert_allclose(auc.numpy(), np.trapezoid(got.numpy(), dx=1 / steps, axis=1), atol=1e-6)


def test_deletion_prefers_a_faithful_map():
    """Deleting the most positively weighted pixels first must drop the score faster than a random order."""
    enc = _toy_encoder()
    x = torch.full((1, 1, 8, 8), 0.5)
    target = Target("class", classes=torch.tensor([0]))
    faithful = (enc.module.w[0].detach() * 0.5).view(1, 8, 8)
    rnd = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    kw = dict(steps=8, baseline="zero")
    d_good = curve_auc(perturbation_curves(enc, x, faithful, target, "deletion", **kw))
    d_rand = curve_auc(perturbation_curves(enc, x, rnd, target, "deletion", **kw))
    i_good = curve_auc(perturbation_curves(enc, x, faithful, target, "insertion", **kw))
    i_rand = curve_auc(perturbation_curves(enc, x, rnd, target, "insertion", **kw))
    assert float(d_good) < float(d_rand) and float(i_good) > float(i_rand)

"""Token maps are placed where each token looks: a padded conv stem centres token i at P·i, not at the
patch centre P·i + (P − 1)/2, and the upsampling must follow (demo-vit: 3.5 px up-left)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medrep.explain.methods import upsample
from medrep.models import load_encoder
from medrep.models.base import stem_center_offset


def test_plain_patch_embedding_has_no_offset_and_the_demo_stem_has_half_a_patch():
    assert stem_center_offset(nn.Conv2d(3, 8, 16, stride=16), (16, 16)) == (0.0, 0.0)
    stem = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.GELU(), nn.Conv2d(4, 4, 3, 2, 1),
                         nn.GELU(), nn.Conv2d(4, 8, 3, 2, 1))
    assert stem_center_offset(stem, (8, 8)) == (-3.5, -3.5)
    assert load_encoder("demo-vit").token_grid.center_offset == (-3.5, -3.5)
    # anisotropic: rows stride 4 with no padding (centred), columns k3/s2/p1 (2j) then k2/s2 (2·(2i + 0.5) = 4i + 1)
    odd = nn.Sequential(nn.Conv2d(1, 4, (4, 3), (4, 2), (0, 1)), nn.Conv2d(4, 4, (1, 2), (1, 2)))
    assert stem_center_offset(odd, (4, 4)) == (0.0, 1.0 - 1.5)
    assert stem_center_offset(nn.Conv2d(1, 4, 3, padding="same"), (1, 1)) == (0.0, 0.0)  # not modelled


def test_where_the_receptive_field_really_is_centred():
    """Measure it: the gradient of token (2, 5) w.r.t. the input is centred at (8·2, 8·5) in the demo stem."""
    enc = load_encoder("demo-vit")
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    tokens = enc.module.patch_embed.proj(x)  # (1, D, 8, 8)
    (g,) = torch.autograd.grad(tokens[0, :, 2, 5].abs().sum(), x)
    w = g[0, 0].abs()
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    centre = ((w * ys).sum() / w.sum(), (w * xs).sum() / w.sum())
    expected = (8 * 2 + enc.token_grid.center_offset[0] + 3.5, 8 * 5 + enc.token_grid.center_offset[1] + 3.5)
    assert centre[0].item() == pytest.approx(expected[0], abs=1.0)
    assert centre[1].item() == pytest.approx(expected[1], abs=1.0)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_upsampling_without_offset_is_plain_interpolate_and_an_offset_moves_the_peak(mode):
    maps = torch.rand(2, 8, 8)
    kw = {"align_corners": False} if mode != "nearest" else {}
    ref = F.interpolate(maps[:, None], size=(64, 64), mode=mode, **kw)[:, 0]
    torch.testing.assert_close(upsample(maps, (64, 64), mode), ref)
    torch.testing.assert_close(upsample(maps, (64, 64), mode, (1e-9, 0.0)), ref, atol=1e-5, rtol=0)
    hot = torch.zeros(1, 8, 8)
    hot[0, 2, 5] = 1.0
    plain = upsample(hot, (64, 64), mode)[0]
    moved = upsample(hot, (64, 64), mode, (-3.5 / 8, -3.5 / 8))[0]
    # token (2, 5) lands on its patch centre (19.5, 43.5) plainly, on (16, 40) once moved by −3.5 px
    peak = lambda m: [float(v.float().mean()) for v in torch.nonzero(m == m.max(), as_tuple=True)]  # noqa: E731
    assert peak(plain) == pytest.approx([19.5, 43.5], abs=0.51)
    assert peak(moved) == pytest.approx([16.0, 40.0], abs=0.51)

"""Rendering a word onto an image: the default font, position, colour, opacity and fitting, and options refused by
name."""
import numpy as np
import pytest
import torch

from medrep.errors import MedrepError
from medrep.overlay import TextOverlay, default_font


def test_default_font_ships_with_matplotlib():
    assert default_font().endswith("DejaVuSans.ttf")


def test_overlay_parameters():
    img = torch.full((1, 64, 64), 0.2)
    opaque = TextOverlay("R", size=0.4, position="top-right", colour=1.0, opacity=1.0).apply(img)
    mask = TextOverlay("R", size=0.4, position="top-right").mask(64, 64)
    assert mask.max() == pytest.approx(1.0)
    # all ink in the top-right quadrant, and where coverage is full the pixel is the colour
    assert mask[32:].sum() == 0 and mask[:, :32].sum() == 0
    assert torch.allclose(opaque[0][torch.from_numpy(mask == 1.0)], torch.tensor(1.0))
    half = TextOverlay("R", size=0.4, position="top-right", colour=1.0, opacity=0.5).apply(img)
    assert torch.allclose(half - img, 0.5 * (opaque - img), atol=1e-6)
    assert torch.equal(TextOverlay("R", opacity=0.0).apply(img), img)
    # RGB colour on a grey image uses its luminance; on RGB images each channel its own value
    red = TextOverlay("R", size=0.4, colour=(1.0, 0.0, 0.0))
    full = torch.from_numpy(red.mask(64, 64) == 1.0)
    assert red.apply(img)[0][full].mean().item() == pytest.approx(0.299, abs=1e-6)
    rgb = red.apply(torch.full((3, 64, 64), 0.2))
    assert rgb[0][full].mean().item() == pytest.approx(1.0) and rgb[1][full].mean().item() == pytest.approx(0.0)
    # a long word is shrunk to fit inside the margins
    wide = TextOverlay("malignant", size=0.5).mask(64, 64)
    cols = np.flatnonzero(wide.sum(0) > 0)
    assert cols.min() >= 1 and cols.max() <= 62
    unfit = TextOverlay("malignant", size=0.5, fit=False).mask(64, 64)
    assert unfit.sum() > 2 * wide.sum() and unfit[:, [0, -1]].sum() > 0  # bigger, and runs off the edges


@pytest.mark.parametrize("kwargs, where", [({"opacity": 1.5}, "opacity"), ({"position": "middle"}, "position"),
                                           ({"colour": (1, 0)}, "colour"), ({"font": "/no/such.ttf"}, "/no/such.ttf"),
                                           ({"size": 0}, "font_size")])
def test_bad_overlay_options_name_the_option(kwargs, where):
    with pytest.raises(MedrepError) as err:
        TextOverlay("x", **kwargs)
    assert err.value.where == where

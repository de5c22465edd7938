"""Writing a word onto images: :class:`TextOverlay` (font, size, place, colour, opacity) and
:class:`OverlayDataset` (a dataset whose images carry one overlay, with its own cache key)."""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrep.data.base import ImageDataset, Item
from medrep.errors import MedrepError, Param
from medrep.io import digest_file, digest_json
from medrep.overlay.registry import POSITIONS


def default_font() -> str:
    """DejaVu Sans, which ships inside matplotlib: always present, never downloaded."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not path.exists():  # pragma: no cover - a broken matplotlib install
        raise MedrepError("DejaVuSans.ttf not found in matplotlib's data; pass a .ttf file", where=Param("font"))
    return str(path)


@functools.lru_cache(maxsize=64)
def _alpha_mask(text: str, font: str, size_px: int, anchor: str, xy: tuple[float, float], h: int, w: int,
                max_width: float | None) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    try:
        pil_font = ImageFont.truetype(font, size=size_px)
        # shrink until the whole word fits: a cut-off word is a different stimulus
        while max_width is not None and size_px > 4 and pil_font.getlength(text) > max_width:
            size_px -= 1
            pil_font = ImageFont.truetype(font, size=size_px)
    except OSError as err:
        raise MedrepError(f"cannot load this font ({err})", where=font) from err
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text(xy, text, fill=255, font=pil_font, anchor=anchor)
    return np.asarray(img, dtype=np.float32) / 255.0


@dataclass(frozen=True)
class TextOverlay:
    """One way of writing ``text`` onto images.

    ``size``: font size as a share of the image height when ≤ 1, else in pixels.  ``position``: one
    of POSITIONS or an (x, y) pair of fractions of width/height where the text is centred.
    ``colour``: a grey level or an RGB triple in [0, 1].  ``opacity`` in [0, 1] blends the text over
    the image (1 = opaque).  ``margin``: gap to the border for the corner positions, as a share.
    ``fit``: shrink the font when the text would be wider than the image minus the margins.
    """

    text: str
    font: str | None = None
    size: float = 0.25
    position: str | tuple[float, float] = "center"
    colour: float | tuple[float, float, float] = 1.0
    opacity: float = 1.0
    margin: float = 0.03
    fit: bool = True

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise MedrepError("the overlay text is empty", where=Param("words"))
        if self.size <= 0:
            raise MedrepError("must be positive", where=Param("font_size"))
        if not 0 <= self.opacity <= 1:
            raise MedrepError("must lie in [0, 1]", where=Param("opacity"))
        rgb = self.rgb
        if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
            raise MedrepError("must be a grey level or three RGB values in [0, 1]", where=Param("colour"))
        if isinstance(self.position, str):
            if self.position not in POSITIONS:
                raise MedrepError(f"unknown position {self.position!r} (choose from {', '.join(POSITIONS)} or X,Y)",
                                  where=Param("position"))
        elif len(self.position) != 2 or not all(0 <= v <= 1 for v in self.position):
            raise MedrepError("X,Y position must be two fractions in [0, 1]", where=Param("position"))
        if self.font is not None and not Path(self.font).is_file():
            raise MedrepError("font file not found", where=str(self.font))

    @property
    def rgb(self) -> tuple[float, ...]:
        return (float(self.colour),) * 3 if isinstance(self.colour, (int, float)) else tuple(float(c) for c in self.colour)

    @property
    def font_path(self) -> str:
        return self.font or default_font()

    def mask(self, height: int, width: int) -> np.ndarray:
        """Anti-aliased coverage of the text (H×W in [0, 1]); cached per image size."""
        size_px = max(4, int(round(self.size * height))) if self.size <= 1 else int(self.size)
        if isinstance(self.position, str):
            mx, my = self.margin * width, self.margin * height
            x = {"l": mx, "m": width / 2, "r": width - mx}[POSITIONS[self.position][0]]
            y = {"t": my, "m": height / 2, "d": height - my}[POSITIONS[self.position][1]]
            anchor = POSITIONS[self.position]
        else:
            x, y, anchor = self.position[0] * width, self.position[1] * height, "mm"
        max_width = (1 - 2 * self.margin) * width if self.fit else None
        return _alpha_mask(self.text, self.font_path, size_px, anchor, (float(x), float(y)), height, width, max_width)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Blend the text into raw [0, 1] images (C×H×W or B×C×H×W); 1-channel images get the colour's luminance."""
        single = images.ndim == 3
        x = images[None] if single else images
        c, h, w = x.shape[-3:]
        alpha = torch.from_numpy(self.mask(h, w)).to(x.device, x.dtype) * self.opacity
        rgb = self.rgb
        colour = [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]] if c == 1 else list(rgb)
        col = torch.tensor(colour, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        out = x * (1 - alpha) + col * alpha
        return out[0] if single else out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["font"] = Path(self.font_path).name
        d["font_digest"] = digest_file(self.font_path)
        return d


class OverlayDataset(ImageDataset):
    """A dataset whose images carry a text overlay; same ids and labels, its own cache key."""

    def __init__(self, base: ImageDataset, overlay: TextOverlay):
        self.base, self.overlay = base, overlay
        self.classes = base.classes
        self.name = f"{base.name}+text:{overlay.text}"

    def __len__(self) -> int:
        return len(self.base)

    def _load(self, index: int) -> Item:
        item = self.base._load(index)
        item.image = self.overlay.apply(item.image).clamp_(0, 1)
        return item

    def item_id(self, index: int) -> str:
        return self.base.item_id(index)

    @property
    def labels(self) -> np.ndarray:
        return self.base.labels

    def content_digest(self) -> str:
        return digest_json({"base": self.base.content_digest(), "overlay": self.overlay.to_dict()})

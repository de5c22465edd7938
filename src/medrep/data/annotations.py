"""Lesion annotations as masks: mask files (several per image are merged), boxes, polygons and COCO run-length
encodings.  Each source renders a bool H×W mask at the decoded image's size, in the original image's pixel
coordinates; the model's geometry then resizes it with the image (:func:`medrep.data.base.resize_item`).

Problems (a box outside the image, a malformed RLE, a mask of another size) are one-line errors naming the
file and row the annotation came from (``where``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from medrep.errors import BadInputError

#: a box may overshoot the image by this many pixels (annotation tools round to the enclosing pixel)
BOX_TOLERANCE = 1.0


class MaskSource:
    """Where one image's mask comes from; ``render((H, W))`` → bool array, ``digest_key()`` for cache keys."""

    files: tuple[Path, ...] = ()

    def render(self, shape: tuple[int, int]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def nonempty(self) -> bool:
        """Whether the mask has any pixel, without decoding the image (where the source allows it)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def digest_key(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class EmptyMask(MaskSource):
    """No lesion annotated (a negative image, or a positive one its source left without an outline)."""

    def render(self, shape):
        return np.zeros(shape, dtype=bool)

    def nonempty(self) -> bool:
        return False

    def digest_key(self) -> list:
        return ["empty"]


@dataclass(frozen=True)
class MaskFiles(MaskSource):
    """One or more mask images of the image's size, merged by union (BUSI's ``_mask.png`` + ``_mask_1.png``)."""

    files: tuple[Path, ...]

    def render(self, shape):
        from medrep.data.images import read_mask

        out = np.zeros(shape, dtype=bool)
        for f in self.files:
            out |= read_mask(f, shape=shape).numpy()
        return out

    def nonempty(self) -> bool:
        from medrep.data.images import read_mask

        return any(bool(read_mask(f).any()) for f in self.files)

    def digest_key(self) -> list:
        from medrep.io import digest_file

        return ["files", *[digest_file(f) for f in self.files]]


@dataclass(frozen=True)
class Boxes(MaskSource):
    """Axis-aligned boxes ``(x_min, y_min, x_max, y_max)`` in original-image pixels; ``where`` per box."""

    boxes: tuple[tuple[float, float, float, float], ...]
    where: tuple[str, ...]

    def render(self, shape):
        h, w = shape
        out = np.zeros(shape, dtype=bool)
        for (x0, y0, x1, y1), where in zip(self.boxes, self.where):
            if x0 < -BOX_TOLERANCE or y0 < -BOX_TOLERANCE or x1 > w + BOX_TOLERANCE or y1 > h + BOX_TOLERANCE:
                raise BadInputError(f"box x {x0:g}–{x1:g}, y {y0:g}–{y1:g} lies outside the {w}×{h} image", where=where)
            # pixel (r, c) covers [c, c+1) × [r, r+1): it is in the box when it overlaps it
            c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
            c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
            out[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)] = True
        return out

    def nonempty(self) -> bool:
        return bool(self.boxes)

    def digest_key(self) -> list:
        return ["boxes", [list(b) for b in self.boxes]]


def box_from(values: Sequence[str], form: str, where: str) -> tuple[float, float, float, float]:
    """A box from its four cells: ``form`` is ``xywh`` (x, y, width, height) or ``xyxy`` (corners)."""
    try:
        a, b, c, d = (float(v) for v in values)
    except ValueError:
        raise BadInputError(f"box {','.join(values)} is not four numbers", where=where) from None
    if not all(np.isfinite([a, b, c, d])):
        raise BadInputError(f"box {','.join(values)} is not finite", where=where)
    x0, y0, x1, y1 = (a, b, a + c, b + d) if form == "xywh" else (a, b, c, d)
    if x1 <= x0 or y1 <= y0:
        raise BadInputError(f"box {','.join(values)} ({form}) has no area", where=where)
    return x0, y0, x1, y1


@dataclass(frozen=True)
class Polygons(MaskSource):
    """Filled polygons, each a sequence of (x, y) vertices in original-image pixels."""

    polygons: tuple[tuple[tuple[float, float], ...], ...]
    where: str

    def render(self, shape):
        from PIL import Image, ImageDraw

        h, w = shape
        img = Image.new("1", (w, h), 0)
        draw = ImageDraw.Draw(img)
        for poly in self.polygons:
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            if min(xs) < -BOX_TOLERANCE or min(ys) < -BOX_TOLERANCE or max(xs) > w + BOX_TOLERANCE or max(ys) > h + BOX_TOLERANCE:
                raise BadInputError(f"polygon reaches outside the {w}×{h} image", where=self.where)
            draw.polygon([(float(x), float(y)) for x, y in poly], fill=1, outline=1)
        return np.array(img, dtype=bool)

    def nonempty(self) -> bool:
        return bool(self.polygons)

    def digest_key(self) -> list:
        return ["polygons", [[list(p) for p in poly] for poly in self.polygons]]


def rle_counts_from_string(text: str, where: str) -> list[int]:
    """COCO's compressed RLE string (pycocotools' ``rleFrString``): 6-bit chunks of 5 value bits plus a
    continuation bit, offset by 48, sign-extended; from the fourth run on each count is stored as the
    difference to the count two runs earlier."""
    counts: list[int] = []
    p = 0
    n = len(text)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise BadInputError("malformed RLE: the counts string ends inside a number", where=where)
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise BadInputError(f"malformed RLE: character {text[p]!r} at {p} is not an RLE digit", where=where)
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(size: Sequence[int], counts, where: str) -> np.ndarray:
    """A COCO RLE (``{"size": [h, w], "counts": str | [int]}``) → bool H×W.  Runs alternate 0s and 1s,
    starting with 0s, over the pixels in column-major order."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise BadInputError(f"malformed RLE: size {size!r} is not [height, width]", where=where) from None
    if isinstance(counts, str):
        runs = rle_counts_from_string(counts, where)
    elif isinstance(counts, list) and all(isinstance(c, int) for c in counts):
        runs = counts
    else:
        raise BadInputError("malformed RLE: counts is neither a string nor a list of integers", where=where)
    if any(r < 0 for r in runs):
        raise BadInputError("malformed RLE: a run length is negative", where=where)
    if sum(runs) != h * w:
        raise BadInputError(f"malformed RLE: runs cover {sum(runs)} pixels, size {h}×{w} has {h * w}", where=where)
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T.copy()


@dataclass(frozen=True)
class RunLengthMask(MaskSource):
    """A COCO RLE (CheXlocalize's ``gt_segmentations_*.json``); its size must equal the image's."""

    size: tuple[int, int]
    counts: object
    where: str

    def render(self, shape):
        if tuple(shape) != tuple(self.size):
            raise BadInputError(f"RLE mask is {self.size[0]}×{self.size[1]} (h×w) but the image is {shape[0]}×{shape[1]}",
                                where=self.where)
        return decode_rle(self.size, self.counts, self.where)

    def nonempty(self) -> bool:
        return bool(decode_rle(self.size, self.counts, self.where).any())

    def digest_key(self) -> list:
        return ["rle", list(self.size), self.counts]


@dataclass(frozen=True)
class UnionMask(MaskSource):
    """Several sources for one image (e.g. boxes from several radiologists), merged."""

    parts: tuple[MaskSource, ...]

    @property
    def files(self) -> tuple[Path, ...]:  # type: ignore[override]
        return tuple(f for p in self.parts for f in p.files)

    def render(self, shape):
        out = np.zeros(shape, dtype=bool)
        for p in self.parts:
            out |= p.render(shape)
        return out

    def nonempty(self) -> bool:
        return any(p.nonempty() for p in self.parts)

    def digest_key(self) -> list:
        return ["union", *[p.digest_key() for p in self.parts]]


def merge_masks(sources: Sequence[MaskSource]) -> MaskSource:
    sources = [s for s in sources if not isinstance(s, EmptyMask)]
    if not sources:
        return EmptyMask()
    if len(sources) == 1:
        return sources[0]
    if all(isinstance(s, Boxes) for s in sources):
        return Boxes(tuple(b for s in sources for b in s.boxes), tuple(w for s in sources for w in s.where))
    if all(isinstance(s, MaskFiles) for s in sources):
        return MaskFiles(tuple(f for s in sources for f in s.files))
    return UnionMask(tuple(sources))

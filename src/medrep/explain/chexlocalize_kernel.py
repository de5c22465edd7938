"""One fused pass per map for the CheXlocalize scores at the original image size (numba, when installed).

The protocol upsamples each map to its original image (millions of pixels for a chest X-ray) and then only
needs *counts*: the 8-bit level histogram (Otsu), the same histogram inside the mask (IoU of the Otsu
segmentation for any threshold), the first maximal pixel (hit), and how many pixels exceed each tuning
threshold in and out of the mask.  So the upsampled map is never stored: each pixel's value is recomputed
from the two nearest rows of a width-upsampled copy and counted where it falls, in eight copies of the histogram.  The extremes come from exact per-row
bounds (the interpolation step applied to the source rows' extremes bounds every pixel of a row, as each of its
roundings is monotone), so only the rows that can hold them are evaluated.  Maps are scored on :func:`threads`
threads at once (the compiled code releases the GIL).

Bit-exactness.  The value of each pixel is the one ``F.interpolate(..., mode="bilinear",
align_corners=False)`` gives on the CPU: torch's kernel computes the source coordinate as
``fma(scale, dst + 0.5, -0.5)`` and each output as ``fma(a, w0, b · w1)``, first along the width, then along
the height; the kernel calls the same float32 fused multiply-add (``llvm.fma``: the hardware instruction where
the CPU has one, an exact library call elsewhere).  Torch uses
another summation order for planes of at most :data:`SMALL_PLANE` pixels, so those stay on the torch path,
and :func:`available` checks the emulation against ``F.interpolate`` once per process before it is used.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: output planes of at most this many pixels are interpolated by torch in another order: not emulated
SMALL_PLANE = 4096

try:  # an optional dependency (medrep[fast]); without it the torch path scores the same figures
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None


def _fma32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add through float64 (the product of two float32 is exact in float64)."""
    return (a.double() * b.double() + c.double()).float()


@functools.lru_cache(maxsize=256)
def axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Torch's bilinear (align_corners=False) source indices i0, i1 and float32 weights w0, w1 of one axis."""
    scale = torch.tensor(float(n_in), dtype=torch.float32) / n_out
    dst = torch.arange(n_out, dtype=torch.float32) + 0.5
    src = _fma32(scale.expand_as(dst), dst, torch.full_like(dst, -0.5)).clamp_min(0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    w1 = (src - i0.float()).clamp(0, 1)
    return i0.numpy(), i1.numpy(), (1 - w1).numpy(), w1.numpy()


if numba is not None:
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
        """float32 a · b + c with one rounding, as torch's CPU kernel computes it."""
        def codegen(context, builder, signature, args):
            return builder.fma(*args)
        return _types.float32(_types.float32, _types.float32, _types.float32), codegen

    # No reassociation, reciprocal or contraction flags: every rounding stays the one torch performs; only
    # NaN / infinity / signed-zero assumptions, so the min / max reductions vectorise (maps are checked finite).
    _FAST = {"nnan", "ninf", "nsz"}

    @numba.njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
    def _ordered(bits):  # pragma: no cover - compiled
        """A float32's bits as an int32 in the floats' order (integer min / max vectorise; float ones do not here)."""
        return bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _width_pass(raw, i0, i1, w0, w1, out):  # pragma: no cover - compiled
        """The map upsampled along the width into ``out`` (h, W), and each of its rows' maximum and minimum."""
        h, width = raw.shape[0], i0.shape[0]
        top, bottom = np.empty(h, dtype=np.int32), np.empty(h, dtype=np.int32)
        for a in range(h):
            r, o = raw[a], out[a]
            for x in range(width):  # unsigned indices: no negative-index wraparound in the loop
                o[x] = _fma(r[np.uint64(i0[x])], w0[x], np.float32(r[np.uint64(i1[x])] * w1[x]))
            bits = o.view(np.int32)
            hi, lo = np.int32(-2 ** 31), np.int32(2 ** 31 - 1)
            for x in range(width):
                k = np.int32(_ordered(bits[x]))
                hi, lo = max(hi, k), min(lo, k)
            top[a], bottom[a] = _ordered(hi), _ordered(lo)  # the map is its own inverse
        return out, top.view(np.float32), bottom.view(np.float32)

    @numba.njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
    def _lerp(a, b, w0, w1):  # pragma: no cover - compiled
        """torch's fma(a, w0, b · w1) in float32: non-decreasing in a and in b (weights ≥ 0, every rounding monotone),
        so applied to bounds of a and b it bounds the result exactly."""
        return _fma(a, w0, np.float32(b * w1))

    @numba.njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
    def _level(v, lo, top):  # pragma: no cover - compiled
        """The 8-bit level of value v as the reference code makes it (non-decreasing in v)."""
        return np.int32(np.float32(np.float32(np.float32(v - lo) / top) * np.float32(255.0)))

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _row(hor, a0, a1, v0, v1, buf):  # pragma: no cover - compiled
        r0, r1 = hor[a0], hor[a1]
        for x in range(buf.shape[0]):
            buf[x] = _fma(r0[x], v0, np.float32(r1[x] * v1))

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def upsample_map(raw, yi0, yi1, yw0, yw1, xi0, xi1, xw0, xw1):  # pragma: no cover - compiled
        """The whole upsampled map (for the self-check and the tests; scoring never stores it)."""
        hor = _width_pass(raw, xi0, xi1, xw0, xw1, np.empty((raw.shape[0], xi0.shape[0]), dtype=np.float32))[0]
        out = np.empty((yi0.shape[0], xi0.shape[0]), dtype=np.float32)
        for y in range(yi0.shape[0]):
            _row(hor, yi0[y], yi1[y], yw0[y], yw1[y], out[y])
        return out

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _row_bounds(top, bottom, yi0, yi1, yw0, yw1):  # pragma: no cover - compiled
        """Per output row, the interpolation step applied to the two source rows' maxima (minima, ``top`` /
        ``bottom``): no pixel of the row exceeds (falls below) it, exactly, as the step is monotone in both inputs."""
        n = yi0.shape[0]
        upper, lower = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
        for y in range(n):
            upper[y] = _lerp(top[yi0[y]], top[yi1[y]], yw0[y], yw1[y])
            lower[y] = _lerp(bottom[yi0[y]], bottom[yi1[y]], yw0[y], yw1[y])
        return upper, lower

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _extremes(hor, top, bottom, yi0, yi1, yw0, yw1, buf):  # pragma: no cover - compiled
        """The map's minimum, maximum and first maximal pixel (row-major, as np.argmax), evaluating only the
        rows whose bounds can still reach the extremes found so far (most promising rows first)."""
        width = buf.shape[0]
        upper, lower = _row_bounds(top, bottom, yi0, yi1, yw0, yw1)
        hi, first = np.float32(-np.inf), -1
        for y in np.argsort(-upper, kind="mergesort"):
            if upper[y] < hi:
                break  # no row left can reach the maximum, nor tie it
            _row(hor, yi0[y], yi1[y], yw0[y], yw1[y], buf)
            row_hi = buf.max()
            if row_hi > hi or (row_hi == hi and y * width < first):
                hi = row_hi
                for x in range(width):
                    if buf[x] == row_hi:
                        first = y * width + x
                        break
        lo = np.float32(np.inf)
        for y in np.argsort(lower, kind="mergesort"):
            if lower[y] >= lo:
                break  # no row left can go below the minimum (only its value matters, not where it is)
            _row(hor, yi0[y], yi1[y], yw0[y], yw1[y], buf)
            lo = min(lo, buf.min())
        return lo, hi, first

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _keys(hor, y, yi0, yi1, yw0, yw1, m, lo, top, keys):  # pragma: no cover - compiled
        """Row y's histogram keys, level + 256 · (inside the mask), in one vectorised pass (uint32 ``keys``: as
        indices they need no negative-index wraparound, which costs the counting loop a quarter of its time)."""
        r0, r1, v0, v1 = hor[yi0[y]], hor[yi1[y]], yw0[y], yw1[y]
        if top > 0:
            for x in range(keys.shape[0]):
                keys[x] = _level(_fma(r0[x], v0, np.float32(r1[x] * v1)), lo, top) + np.int32(256) * np.int32(m[x])
        else:
            for x in range(keys.shape[0]):
                keys[x] = np.int32(256) * np.int32(m[x])

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _count_keys(keys, hist, stride):  # pragma: no cover - compiled
        """hist[c · stride + key] += 1 for every key, c = x mod 8: eight copies of the histogram, so that
        neighbouring pixels of one level do not wait on each other's increment.  No branch on the keys: skipping
        runs of equal keys (one increment for eight) was measured slower on Grad-CAM maps, whose level changes
        every few pixels — the mispredicted branch cost more than the increments it saved."""
        n, x = keys.shape[0], 0
        while x + 8 <= n:
            for j in range(8):
                hist[np.uint32(stride * j) + keys[x + j]] += 1
            x += 8
        for j in range(x, n):
            hist[keys[j]] += 1

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _count(hor, yi0, yi1, yw0, yw1, mask, lo, hi, hist, keys):  # pragma: no cover - compiled
        """hist[c · 512 + m · 256 + level] of every pixel, m = 1 inside the mask (see :func:`_count_keys`)."""
        top = np.float32(hi - lo)
        for y in range(yi0.shape[0]):
            _keys(hor, y, yi0, yi1, yw0, yw1, mask[y], lo, top, keys)
            _count_keys(keys, hist, 512)

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _count_grid(hor, yi0, yi1, yw0, yw1, mask, lo, hi, grid, grid_hist, buf):  # pragma: no cover
        """grid_hist[m · (T + 1) + k], k = how many of the sorted ``grid`` thresholds the normalised value
        (v − lo) / (hi − lo), in float64, exceeds: pixel by pixel, for maps where two thresholds share a level
        (elsewhere :func:`_count_split` counts the grid in the levels' pass)."""
        span = np.float64(hi) - np.float64(lo)
        n_grid = grid.shape[0]
        for y in range(yi0.shape[0]):
            _row(hor, yi0[y], yi1[y], yw0[y], yw1[y], buf)
            for x in range(buf.shape[0]):
                k = 0
                if span > 0:
                    norm = (np.float64(buf[x]) - np.float64(lo)) / span
                    while k < n_grid and norm > grid[k]:
                        k += 1
                grid_hist[k + (n_grid + 1) * mask[y, x]] += 1


    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _bits(v):  # pragma: no cover - compiled
        """A float32's bits as an int32."""
        cell = np.empty(1, dtype=np.float32)
        cell[0] = v
        return cell.view(np.int32)[0]

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _from_ordered(k):  # pragma: no cover - compiled
        """The float32 whose :func:`_ordered` int is k."""
        cell = np.empty(1, dtype=np.int32)
        cell[0] = _ordered(np.int32(k))
        return cell.view(np.float32)[0]

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _level_splits(lo, hi, grid):  # pragma: no cover - compiled
        """The tuning grid in terms of 8-bit levels.  A pixel of value v exceeds grid threshold g when
        (v − lo) / (hi − lo) > g in float64, which is non-decreasing in v, as the level is: so each threshold is
        one value V (the smallest float32 that exceeds it, found by bisection over the floats in [lo, hi]), and
        a pixel of level L exceeds ``base[L]`` thresholds (those whose V has a lower level) plus one if
        v ≥ ``split[L]`` (the V of level L; +inf where none).  ``ok`` is False when two thresholds share a level
        (the caller then compares every pixel with every threshold)."""
        base = np.zeros(256, dtype=np.int32)
        split = np.full(256, np.inf, dtype=np.float32)
        owner = np.full(256, -1, dtype=np.int32)
        span = np.float64(hi) - np.float64(lo)
        top = np.float32(hi - lo)
        if not (span > 0 and top > 0):
            return base, split, True  # no pixel exceeds any threshold, every pixel is level 0
        first, last = np.int64(_ordered(_bits(lo))), np.int64(_ordered(_bits(hi)))
        for j in range(grid.shape[0]):
            if not ((np.float64(hi) - np.float64(lo)) / span > grid[j]):
                continue  # not even the maximum exceeds it
            a, b = first, last
            while a < b:  # the smallest value exceeding grid[j]: the predicate is monotone in the floats' order
                mid = (a + b) >> 1
                if (np.float64(_from_ordered(mid)) - np.float64(lo)) / span > grid[j]:
                    b = mid
                else:
                    a = mid + 1
            value = _from_ordered(a)
            level = _level(value, lo, top)
            if owner[level] >= 0:
                return base, split, False
            owner[level], split[level] = j, value
        below = 0
        for level in range(256):
            base[level] = below
            below += owner[level] >= 0
        return base, split, True

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _count_split(hor, yi0, yi1, yw0, yw1, mask, lo, hi, split, hist, keys, buf):  # pragma: no cover
        """hist[c · 1024 + m · 512 + 2 · level + (v ≥ split[level])]: :func:`_count` with each level cut in two
        at its tuning threshold, so one pass counts both the levels and the grid (see :func:`_level_splits`)."""
        top = np.float32(hi - lo)
        for y in range(yi0.shape[0]):
            r0, r1, v0, v1, m = hor[yi0[y]], hor[yi1[y]], yw0[y], yw1[y], mask[y]
            if top > 0:
                for x in range(keys.shape[0]):  # vectorised: values and levels
                    v = _fma(r0[x], v0, np.float32(r1[x] * v1))
                    buf[x] = v
                    keys[x] = 2 * _level(v, lo, top) + np.int32(512) * np.int32(m[x])
                for x in range(keys.shape[0]):  # the lookup by level keeps this loop scalar: apart, without the division
                    k = keys[x]
                    keys[x] = k + np.uint32(buf[x] >= split[(k >> np.uint32(1)) & np.uint32(255)])
            else:
                for x in range(keys.shape[0]):
                    keys[x] = np.int32(512) * np.int32(m[x])
            _count_keys(keys, hist, 1024)

    @numba.njit(cache=True, nogil=True, fastmath=_FAST)
    def _count_map(raw, mask, rows, cols, grid, hist, grid_hist, work):  # pragma: no cover
        """One map: adds its level histograms to ``hist`` (2, 256) and its grid counts to ``grid_hist``
        (2, T + 1); returns the first maximal pixel's flat index. ``rows`` / ``cols``: the axis weights
        (first index, second index, first weight, second weight) of ``axis_weights``; ``work``: an (h, W)
        float32 scratch array, reused from map to map (a fresh one each time costs its page faults)."""
        yi0, yi1, yw0, yw1 = rows
        xi0, xi1, xw0, xw1 = cols
        width = mask.shape[1]
        buf = np.empty(width, dtype=np.float32)
        hor, top, bottom = _width_pass(raw, xi0, xi1, xw0, xw1, work)
        lo, hi, first = _extremes(hor, top, bottom, yi0, yi1, yw0, yw1, buf)
        keys = np.empty(width, dtype=np.uint32)
        if grid.shape[0]:
            base, split, ok = _level_splits(lo, hi, grid)
            if ok:
                copies = np.zeros(8 * 1024, dtype=np.int32)  # 32 KiB
                _count_split(hor, yi0, yi1, yw0, yw1, mask, lo, hi, split, copies, keys, buf)
                for c in range(8):
                    for m in range(2):
                        for k in range(512):
                            n = copies[c * 1024 + m * 512 + k]
                            hist[m, k >> 1] += n
                            grid_hist[m, base[k >> 1] + (k & 1)] += n
                return first
            _count_grid(hor, yi0, yi1, yw0, yw1, mask, lo, hi, grid, grid_hist.reshape(-1), buf)
        copies = np.zeros(8 * 512, dtype=np.int32)  # 16 KiB: stays in L1 beside the rows
        _count(hor, yi0, yi1, yw0, yw1, mask, lo, hi, copies, keys)
        for c in range(8):
            for k in range(256):
                hist[0, k] += copies[c * 512 + k]
                hist[1, k] += copies[c * 512 + 256 + k]
        return first


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """numba is installed and the emulated interpolation equals torch's here (checked once per process)."""
    if numba is None:
        return False
    gen = torch.Generator().manual_seed(0)
    for h, w, height, width in ((8, 8, 70, 90), (7, 9, 131, 64), (14, 14, 97, 75)):
        raw = torch.rand(h, w, generator=gen)
        want = F.interpolate(raw[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        got = upsample_map(raw.numpy(), *axis_weights(h, height), *axis_weights(w, width))
        if not np.array_equal(got, want.numpy()):
            return False
    return True


def fused_counts(raw: np.ndarray, masks: Sequence[np.ndarray], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of (B, h, w) float32 maps upsampled to their (H, W) uint8 ``masks`` (one original size):
    level histograms (B, 2, 256) outside / inside the mask, the first maximal pixel's flat index (B,), and
    (B, 2, T + 1) pixel counts by how many of the sorted ``grid`` thresholds they exceed."""
    b, (height, width) = len(masks), masks[0].shape
    yw, xw = axis_weights(raw.shape[1], height), axis_weights(raw.shape[2], width)
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    grid = np.ascontiguousarray(grid, dtype=np.float64)
    hist = np.zeros((b, 2, 256), dtype=np.int64)
    grid_hist = np.zeros((b, 2, grid.shape[0] + 1), dtype=np.int64)
    first = np.zeros(b, dtype=np.int64)
    rows, cols = tuple(yw), tuple(xw)

    def score(start: int, stop: int) -> None:
        work = np.empty((raw.shape[1], width), dtype=np.float32)
        for i in range(start, stop):
            first[i] = _count_map(raw[i], np.ascontiguousarray(masks[i]), rows, cols, grid, hist[i], grid_hist[i], work)

    workers = min(b, threads())
    if workers > 1:  # the compiled kernel releases the GIL: one contiguous share of the maps per thread
        from concurrent.futures import ThreadPoolExecutor

        cuts = np.linspace(0, b, workers + 1).astype(int)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(score, cuts[:-1], cuts[1:]))
    else:
        score(0, b)
    return hist, first, grid_hist


def threads() -> int:
    """Maps scored at once: numba's thread count (``NUMBA_NUM_THREADS``, default every core)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS)) if numba is not None else 1  # no threading layer started

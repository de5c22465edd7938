"""Lesion phantoms: seeded, medical-like images with pixel-exact lesion masks and captions.

No labelled medical dataset can be downloaded where medrep is built and tested, so the embedded
default data is procedural.  Classes: ``normal`` (no lesion), ``benign`` (smooth, roundish,
homogeneous) and ``malignant`` (irregular, spiculated, heterogeneous).  A lesion changes exactly the
pixels of its mask and nothing else, so explanation scores have exact ground truth.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from medrep.data.base import SplitDataset, TensorDataset
from medrep.errors import MedrepError
from medrep.io import atomic_write, digest_json

CLASSES = ["normal", "benign", "malignant"]
MODALITIES = ("radiograph", "ultrasound", "endoscopy")
GENERATOR_VERSION = 1  # bump when the images change, so on-disk caches are not reused
TAG_STYLE = 2  # the confounder tag's rendering (part of the cache key of tagged phantoms only)
TAG_PLATE_LEVEL = 0.06
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
#: Item attributes the phantoms can carry.  ``site``: one of two simulated scanners; scanner B is noisier, has
#: less contrast and an intensity ramp across the field, and sees more malignant cases (a realistic shortcut).
#: ``sex``: assigned at random, with no effect on the image (a negative control).
ATTRIBUTES = ("site", "sex")
SITE_B_SHARE = (0.2, 0.5, 0.8)  # P(scanner B | normal, benign, malignant)
SITE_B_NOISE = 0.05  # std of scanner B's additive noise (scanner A adds none)
SITE_B_CONTRAST = 0.6  # scanner B's intensities around the tissue mean, scaled by this
SITE_B_RAMP = 0.3  # scanner B's field inhomogeneity: a multiplicative ramp of ± this across the image


@dataclass(frozen=True)
class PhantomConfig:
    n_train: int = 3000
    n_val: int = 600
    n_test: int = 600
    size: int = 64
    seed: int = 0
    contrast: tuple[float, float] = (0.15, 0.25)
    radius: tuple[float, float] = (0.06, 0.15)  # lesion radius as a share of the image side
    modality: str = "radiograph"
    # Bias experiments: a text tag in the top-right corner present on `confounder_rate` of malignant
    # images and on 1 - confounder_rate of the others (0.5 = no correlation, None = no tag at all).
    confounder_rate: float | None = None
    confounder_text: str = "R"
    class_balance: tuple[float, float, float] = field(default=(1 / 3, 1 / 3, 1 / 3))
    # Item attributes to simulate (names from ATTRIBUTES); () leaves the images exactly as they were.
    attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [a for a in self.attributes if a not in ATTRIBUTES]
        if unknown:
            raise MedrepError(f"unknown phantom attribute {unknown[0]!r} (choose from {', '.join(ATTRIBUTES)})",
                              where="phantoms")
        if self.modality not in MODALITIES:
            raise MedrepError(f"unknown modality {self.modality!r} (choose from {', '.join(MODALITIES)})", where="phantoms")
        if self.size < 16:
            raise MedrepError("phantom size must be at least 16 pixels", where="phantoms")
        if self.confounder_rate is not None and not 0 <= self.confounder_rate <= 1:
            raise MedrepError("confounder_rate must lie in [0, 1]", where="phantoms")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


def _smooth_noise(rng: np.random.Generator, n: int, size: int, sigmas=(1.5, 4.0, 10.0), weights=(0.35, 0.4, 0.6)) -> np.ndarray:
    out = np.zeros((n, size, size), dtype=np.float32)
    for s, w in zip(sigmas, weights):
        field_ = ndimage.gaussian_filter(rng.standard_normal((n, size, size)).astype(np.float32), sigma=(0, s, s), mode="wrap")
        field_ /= field_.std(axis=(1, 2), keepdims=True) + 1e-8
        out += w * field_
    return out / np.sqrt(sum(w * w for w in weights))


def _background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Tissue texture (std ≈ 0.09) over organ-like low-frequency structure (two soft ellipses)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = 0.42 + 0.09 * _smooth_noise(rng, n, size)
    for _ in range(2):
        cy, cx = rng.uniform(0.25, 0.75, (2, n, 1, 1)).astype(np.float32)
        ay, ax = rng.uniform(0.25, 0.45, (2, n, 1, 1)).astype(np.float32)
        level = rng.uniform(-0.08, 0.08, (n, 1, 1)).astype(np.float32)
        d = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
        img += level / (1 + np.exp(np.minimum((d - 1) * 8, 50)))  # soft-edged organ
    return img


def _lesion(rng: np.random.Generator, cls: int, size: int, cfg: PhantomConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """One lesion: (intensity map, boolean mask, description).  Intensity is > 0 exactly on the mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(*cfg.radius) * size
    margin = r * 1.6 + 2
    cy, cx = rng.uniform(margin, size - margin, 2) if size - margin > margin else (size / 2, size / 2)
    dy, dx = yy - cy, xx - cx
    rho = np.hypot(dy, dx)
    phi = np.arctan2(dy, dx)
    contrast = rng.uniform(*cfg.contrast)
    if cls == 1:  # benign: smooth ellipse, homogeneous dome
        theta = rng.uniform(0, np.pi)
        a, b = r * rng.uniform(0.85, 1.15), r * rng.uniform(0.7, 1.0)
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        q = (u / a) ** 2 + (v / b) ** 2
        mask = q <= 1.0
        intensity = contrast * (0.75 + 0.25 * (1 - np.clip(q, 0, 1)))
        shape = "smooth oval"
    else:  # malignant: lobulated irregular border, spicules, heterogeneous
        k = np.arange(2, 7)[:, None, None]
        amp = rng.uniform(0.08, 0.2, (5, 1, 1))
        ph = rng.uniform(0, 2 * np.pi, (5, 1, 1))
        boundary = r * (1 + (amp * np.cos(k * phi[None] + ph)).sum(0))
        mask = rho <= boundary
        for ang in rng.uniform(0, 2 * np.pi, rng.integers(5, 10)):
            length = r * rng.uniform(1.3, 1.9)
            t = np.clip(dx * np.cos(ang) + dy * np.sin(ang), 0, length)
            dist = np.hypot(dx - t * np.cos(ang), dy - t * np.sin(ang))
            mask |= dist <= 0.75
        texture = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.0)
        texture /= texture.std() + 1e-8
        intensity = contrast * np.clip(0.8 + 0.35 * texture, 0.35, 1.4)
        shape = "irregular spiculated"
    intensity = np.where(mask, intensity, 0.0).astype(np.float32)
    area = float(mask.mean())
    size_word = "small" if area < 0.02 else "medium" if area < 0.045 else "large"
    vert = "upper" if cy < size / 3 else "lower" if cy > 2 * size / 3 else "central"
    horiz = "left" if cx < size / 3 else "right" if cx > 2 * size / 3 else "middle"
    where = "centre" if (vert, horiz) == ("central", "middle") else f"{vert} {horiz}"
    return intensity, mask, {"shape": shape, "size": size_word, "location": where}


_MODALITY_NAME = {"radiograph": "radiograph", "ultrasound": "ultrasound image", "endoscopy": "endoscopy image"}


def _caption(cls: int, desc: dict | None, modality: str) -> str:
    name = _MODALITY_NAME[modality]
    if cls == 0:
        return f"a {name} of normal tissue with no lesion"
    kind = "benign" if cls == 1 else "malignant"
    return f"a {name} showing a {desc['size']} {desc['shape']} {kind} lesion in the {desc['location']}"


def _tag_patch(text: str, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    side = max(7, size // 6)
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(6, side - 2))
    draw.text((side / 2, side / 2), text, fill=255, font=font, anchor="mm")
    patch = np.asarray(img, dtype=np.float32)
    return patch / max(float(patch.max()), 1.0)  # tiny antialiased glyphs still reach full brightness


def generate_split(cfg: PhantomConfig, split: str, return_background: bool = False) -> dict[str, np.ndarray | list]:
    """Generate one split.  Each split has its own seed stream, so resizing one leaves the others unchanged."""
    n = cfg.split_sizes()[split]
    size = cfg.size
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SPLIT_INDEX[split], GENERATOR_VERSION]))
    labels = rng.choice(3, size=n, p=np.asarray(cfg.class_balance) / np.sum(cfg.class_balance))
    background = _background(rng, n, size)
    lesion = np.zeros_like(background)
    masks = np.zeros((n, size, size), dtype=bool)
    captions = []
    for i in range(n):
        desc = None
        if labels[i] > 0:
            lesion[i], masks[i], desc = _lesion(rng, int(labels[i]), size, cfg)
        captions.append(_caption(int(labels[i]), desc, cfg.modality))
    if cfg.modality == "ultrasound":
        # Lesions are hypoechoic; speckle multiplies background and lesion alike, so the mask stays exact.
        speckle = rng.rayleigh(0.8, background.shape).astype(np.float32)
        speckle = ndimage.gaussian_filter(speckle, sigma=(0, 0.7, 0.7))
        background = background * speckle
        lesion = -lesion * speckle * 1.5
    clean = np.clip(background + lesion, 0.0, 1.0)
    attributes = {}
    if cfg.attributes:
        clean, attributes = _simulate_attributes(cfg, split, labels, clean)
    if cfg.confounder_rate is not None:
        has_tag = np.where(labels == 2, rng.random(n) < cfg.confounder_rate, rng.random(n) >= cfg.confounder_rate)
        patch = _tag_patch(cfg.confounder_text, size)
        s = patch.shape[0]
        # A burned-in marker: a bright glyph on a dark plate, like a radiograph's side marker.  The plate
        # keeps it visible on bright tissue too (a glyph alone vanished there at small sizes).
        clean[has_tag, 1 : 1 + s, size - 1 - s : size - 1] = np.maximum(TAG_PLATE_LEVEL, 0.95 * patch)
        # The tag must never overlap the lesion, or the mask would no longer be exact.
        masks[has_tag, 1 : 1 + s, size - 1 - s : size - 1] &= False
    else:
        has_tag = np.zeros(n, dtype=bool)
    if cfg.modality == "endoscopy":
        tissue = np.array([0.95, 0.55, 0.5], dtype=np.float32)[None, :, None, None]
        redness = np.array([0.0, -0.35, -0.35], dtype=np.float32)[None, :, None, None]
        images = np.clip(clean[:, None] * tissue * 1.4 + (lesion[:, None] > 0) * lesion[:, None] * redness, 0, 1)
    else:
        images = clean[:, None]
    out = {
        "images": np.round(images * 255).astype(np.uint8),
        "masks": masks,
        "labels": labels.astype(np.int64),
        "captions": captions,
        "has_tag": has_tag,
        "ids": [f"phantom-{split}-{i:05d}" for i in range(n)],
        **{f"attr_{name}": values for name, values in attributes.items()},
    }
    if return_background:
        bg = np.clip(background, 0, 1)
        out["background"] = np.round((bg[:, None] if cfg.modality != "endoscopy" else np.clip(bg[:, None] * tissue * 1.4, 0, 1)) * 255).astype(np.uint8)
    return out


def _simulate_attributes(cfg: PhantomConfig, split: str, labels: np.ndarray,
                         clean: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw the requested attributes and apply scanner B's acquisition to its images.

    The draws come from their own seed stream, so labels, lesions and masks are those of the same
    phantoms without attributes; scanner B changes every pixel alike (noise, contrast, a smooth ramp), so a
    lesion still changes exactly its mask's pixels relative to the same image without it."""
    n, size = clean.shape[0], clean.shape[-1]
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SPLIT_INDEX[split], GENERATOR_VERSION, 7]))
    site_b = rng.random(n) < np.asarray(SITE_B_SHARE)[labels]
    sex = np.where(rng.random(n) < 0.5, "female", "male")
    out: dict[str, np.ndarray] = {}
    if "site" in cfg.attributes:
        out["site"] = np.where(site_b, "B", "A")
        idx = np.flatnonzero(site_b)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
        angle = rng.uniform(0, 2 * np.pi, len(idx)).astype(np.float32)[:, None, None]
        ramp = 1 + 2 * SITE_B_RAMP * (np.cos(angle) * xx + np.sin(angle) * yy)
        noise = rng.normal(0, SITE_B_NOISE, (len(idx), size, size)).astype(np.float32)
        b = clean[idx]
        clean = clean.copy()
        clean[idx] = np.clip((0.42 + SITE_B_CONTRAST * (b - 0.42)) * ramp + noise, 0.0, 1.0)
    if "sex" in cfg.attributes:
        out["sex"] = sex
    return clean, out


def cache_root() -> Path:
    return Path(os.environ.get("MEDREP_CACHE", Path.home() / ".cache" / "medrep"))


def load_phantoms(cfg: PhantomConfig | None = None, cache: bool = True) -> SplitDataset:
    """The phantom dataset with train / val / test splits, generated once and cached on disk."""
    cfg = cfg or PhantomConfig()
    config = asdict(cfg)
    if not cfg.attributes:  # phantoms without attributes keep the cache key (and content digest) they always had
        del config["attributes"]
    key = digest_json({"config": config, "version": GENERATOR_VERSION,
                       **({"tag_style": TAG_STYLE} if cfg.confounder_rate is not None else {})})
    path = cache_root() / "phantoms" / f"{key}.npz"
    data = None
    if cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception:  # a damaged cache file is regenerated, never used
            data = None
    if data is None:
        data = {}
        for split in _SPLIT_INDEX:
            if cfg.split_sizes()[split] == 0:
                continue
            g = generate_split(cfg, split)
            for k, v in g.items():
                data[f"{split}/{k}"] = np.asarray(v)
        if cache:
            def _w(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, **data)
            atomic_write(path, _w)
    parts = {}
    for split in _SPLIT_INDEX:
        if f"{split}/images" not in data:
            continue
        parts[split] = TensorDataset(
            images=data[f"{split}/images"],
            labels=data[f"{split}/labels"],
            classes=CLASSES,
            ids=[str(s) for s in data[f"{split}/ids"]],
            masks=data[f"{split}/masks"],
            captions=[str(s) for s in data[f"{split}/captions"]],
            name=f"phantoms:{split}",
            digest=digest_json({"phantoms": key, "split": split}),
            attributes={name: [str(v) for v in data[f"{split}/attr_{name}"]] for name in cfg.attributes} or None,
        )
    return SplitDataset(parts, name="phantoms")

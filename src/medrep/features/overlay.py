"""Text-overlay test: write words onto the images and measure how far each model's representation
moves, whether the clean-trained probe and kNN change their minds, and — for models with a text
tower or an aligned text encoder — whether zero-shot scores shift toward the written class name.

On phantoms made with the confounder option the same numbers show whether a model (or a probe fitted
on its embeddings) learned the shortcut: writing the tag flips predictions toward its class.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from medrep.data.base import ImageDataset, Item
from medrep.errors import MedrepError
from medrep.features.extract import extract_embeddings
from medrep.features.neighbours import l2_normalise
from medrep.features.probes import KNNClassifier, LinearProbe, adapt_k, describe_adapted
from medrep.io import digest_file, digest_json
from medrep.progress import progress_bar
from medrep.results import Metric, Result, bootstrap_metric

POSITIONS = ("center", "top-left", "top-right", "bottom-left", "bottom-right", "top", "bottom")
# PIL anchors: horizontal (l, m, r) + vertical (t = top, m = middle, d = descender)
_ANCHORS = {"center": "mm", "top-left": "lt", "top-right": "rt", "bottom-left": "ld", "bottom-right": "rd",
            "top": "mt", "bottom": "md"}

ZeroShotFn = Callable[[np.ndarray], np.ndarray]


def default_font() -> str:
    """DejaVu Sans, which ships inside matplotlib: always present, never downloaded."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not path.exists():  # pragma: no cover - a broken matplotlib install
        raise MedrepError("DejaVuSans.ttf not found in matplotlib's data; pass a .ttf file", where="--font")
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
            raise MedrepError("the overlay text is empty", where="--words")
        if self.size <= 0:
            raise MedrepError("must be positive", where="--font-size")
        if not 0 <= self.opacity <= 1:
            raise MedrepError("must lie in [0, 1]", where="--opacity")
        rgb = self.rgb
        if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
            raise MedrepError("must be a grey level or three RGB values in [0, 1]", where="--colour")
        if isinstance(self.position, str):
            if self.position not in POSITIONS:
                raise MedrepError(f"unknown position {self.position!r} (choose from {', '.join(POSITIONS)} or X,Y)",
                                  where="--position")
        elif len(self.position) != 2 or not all(0 <= v <= 1 for v in self.position):
            raise MedrepError("X,Y position must be two fractions in [0, 1]", where="--position")
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
            x = {"l": mx, "m": width / 2, "r": width - mx}[_ANCHORS[self.position][0]]
            y = {"t": my, "m": height / 2, "d": height - my}[_ANCHORS[self.position][1]]
            anchor = _ANCHORS[self.position]
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


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def text_tower_zero_shot(encode_text: Callable[[list[str]], Any], class_names: Sequence[str],
                         template: str = "a medical image showing {label}", scale: float = 100.0) -> ZeroShotFn:
    """CLIP-style zero-shot: cosine to each class prompt's text embedding, times CLIP's logit scale."""
    from medrep.vocabulary import format_prompt

    with torch.inference_mode():
        t = encode_text([format_prompt(template, c) for c in class_names])
    text = l2_normalise(t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t))

    def scores(embeddings: np.ndarray) -> np.ndarray:
        if embeddings.shape[1] != text.shape[1]:
            raise MedrepError(f"image embeddings have width {embeddings.shape[1]} but the text embeddings {text.shape[1]}; "
                              "they are not in one space (align them first: medrep.align)", where="zero-shot")
        return scale * l2_normalise(embeddings) @ text.T

    return scores


def _encoder_text_fn(encoder) -> Callable[[list[str]], Any] | None:
    tower = getattr(encoder, "text_encoder", None)
    if tower is not None:
        return tower.encode_text if hasattr(tower, "encode_text") else tower
    fn = getattr(encoder, "encode_text", None)
    return fn if callable(fn) else None


def resolve_zero_shot(encoder, classes: Sequence[str], zero_shot: ZeroShotFn | Mapping[str, ZeroShotFn] | None,
                      text_encoder=None, template: str = "a medical image showing {label}",
                      text_aligned: bool = False) -> tuple[ZeroShotFn | None, str]:
    """The zero-shot scorer for one encoder and where it came from (a note for the report).

    A separate ``text_encoder`` is used only with ``text_aligned=True``, the caller's statement that
    it was trained into this image space (e.g. the text tower of the same CLIP): equal widths alone
    say nothing, two unrelated 384-d spaces give meaningless cosines.
    """
    if isinstance(zero_shot, Mapping):
        if encoder.name in zero_shot:
            return zero_shot[encoder.name], "given scorer"
    elif zero_shot is not None:
        return zero_shot, "given scorer"
    own = _encoder_text_fn(encoder)
    if own is not None:
        return text_tower_zero_shot(own, classes, template), "the model's own text tower"
    if text_encoder is not None:
        if not text_aligned:
            return None, ("none: the model has no text tower and the given text encoder is not declared to share its "
                          "image space (pass --text-aligned / text_aligned=True if it does, or an aligned scorer from "
                          "medrep.align)")
        dim = getattr(text_encoder, "embed_dim", None) or getattr(text_encoder, "dim", None)
        width = getattr(encoder, "embed_dim", None)
        if dim is not None and width is not None and dim != width:
            return None, (f"none: the text encoder is declared aligned but its width ({dim}) differs from the image "
                          f"embeddings' ({width})")
        fn = text_encoder.encode_text if hasattr(text_encoder, "encode_text") else text_encoder
        return text_tower_zero_shot(fn, classes, template), "the given text encoder (declared aligned)"
    return None, "none: the model has no text tower and no aligned scorer was given"


@dataclass
class OverlayResult(Result):
    kind: str = "overlay"
    classes: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → {"zero_shot": note, "clean": {...}, "words": {...}}
    overlays: list[TextOverlay] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for name, m in self.models.items():
            for word, w in m["words"].items():
                row: dict[str, Any] = {"model": name, "word": word, "target_class": w.get("target_class")}
                for key, met in w["metrics"].items():
                    row[key] = met.value
                    row[f"{key}_low"] = met.low
                    row[f"{key}_high"] = met.high
                row.update({f"probe_flips_to_{c}": n for c, n in w["probe_flips_to"].items()})
                rows.append(row)
        return rows

    def readings(self, dominant_share: float = 0.8, negligible_rate: float = 0.05) -> list[str]:
        """One plain-language line per model: does written text sway it, and does it follow the word's meaning
        or only its presence?"""
        lines = []
        for name, m in self.models.items():
            words = m["words"]
            rates = {w: v["metrics"]["probe_flip_rate"].value for w, v in words.items() if "probe_flip_rate" in v["metrics"]}
            if not rates:
                continue
            lo, hi = min(rates.values()), max(rates.values())
            span = f"{lo:.0%}" if abs(hi - lo) < 0.005 else f"{lo:.0%}–{hi:.0%}"
            if hi < negligible_rate:
                lines.append(f"{name}: written words barely move its answers (probe flip rate at most {hi:.0%}).")
                continue
            to_class: dict[str, int] = {}
            for v in words.values():
                for c, k in v["probe_flips_to"].items():
                    to_class[c] = to_class.get(c, 0) + int(k)
            total = sum(to_class.values())
            top = max(to_class, key=to_class.get) if total else None
            follows = [w for w, v in words.items() if v.get("target_class") is not None
                       and v["metrics"].get("probe_to_target_rate") is not None
                       and v["metrics"]["probe_to_target_rate"].value >= dominant_share]
            if top is not None and to_class[top] >= dominant_share * total and len(words) > 1 and len(follows) < len(words):
                lines.append(f"{name}: writing a word flips {span} of the probe's answers, {to_class[top] / total:.0%} of "
                             f"them to '{top}' whatever the word says — the presence of text, not its meaning, sways "
                             "the model.")
            elif follows and len(follows) == len(words):
                lines.append(f"{name}: writing a class name flips {span} of the probe's answers toward the written class — "
                             "the model reads the text (a typographic attack works on it).")
            else:
                lines.append(f"{name}: writing a word flips {span} of the probe's answers, with no single destination.")
        return lines

    def to_dict(self) -> dict[str, Any]:
        self.metrics = {f"{name}/{word}/{k}": v for name, m in self.models.items() for word, w in m["words"].items()
                        for k, v in w["metrics"].items()}
        self.tables = {"overlay": self.table()}
        out = super().to_dict()
        out["classes"] = self.classes
        out["models"] = {name: {"zero_shot": m["zero_shot"], "clean": {k: v.to_dict() for k, v in m["clean"].items()},
                                "words": {word: {**{k: v.to_dict() for k, v in w["metrics"].items()},
                                                 "target_class": w["target_class"],
                                                 "probe_flips_to": w["probe_flips_to"], "knn_flips_to": w["knn_flips_to"],
                                                 "cache_key": w["cache_key"]}
                                          for word, w in m["words"].items()}}
                         for name, m in self.models.items()}
        out["overlays"] = [o.to_dict() for o in self.overlays]
        out["settings"] = self.settings
        return out


def _toward(pred_clean: np.ndarray, pred_over: np.ndarray, target: int, n_boot: int, seed: int) -> Metric:
    """Among items not already predicted as ``target``, the share the overlay moved to ``target``."""
    eligible = pred_clean != target
    return bootstrap_metric((pred_over[eligible] == target).astype(float), n_boot=n_boot, seed=seed)


def run_overlay(encoders: Sequence[Any], dataset, words: Sequence[str] | None = None, text_encoder=None,
                zero_shot: ZeroShotFn | Mapping[str, ZeroShotFn] | None = None, text_aligned: bool = False,
                targets: Mapping[str, str] | None = None, font: str | None = None, size: float = 0.25,
                position: str | tuple[float, float] = "center", colour: float | tuple[float, float, float] = 1.0,
                opacity: float = 1.0, fit: bool = True, margin: float = 0.03, prompt_template: str = "a medical image showing {label}", train_split: str = "train",
                test_split: str = "test", limit: int | None = None, k: int = 20, n_boot: int = 1000,
                batch_size: int = 64, cache=None, seed: int = 0) -> OverlayResult:
    """Overlay each of ``words`` (default: the class names) on the test images and compare with the clean ones.

    Probes and kNN are fitted on clean train embeddings.  A word's target class is the class of the
    same name (case-insensitive) or the one ``targets`` maps it to (e.g. {"R": "malignant"} for the
    confounder tag).  ``zero_shot`` is a scorer ``embeddings (N, D) → scores (N, K)`` over the classes
    (treated as logits), or a dict of them by model name; models with a text tower use their own.
    ``text_encoder`` scores the others only with ``text_aligned=True`` (see :func:`resolve_zero_shot`).
    """
    from medrep.features.analysis import check_split_labels, check_unique_encoders, train_test_splits

    if not encoders:
        raise MedrepError("no model given", where="--model")
    check_unique_encoders(encoders)
    classes = list(dataset.classes)
    words = list(words) if words else list(classes)
    if len(set(words)) != len(words):
        raise MedrepError("a word is listed twice", where="--words")
    lower = {c.lower(): i for i, c in enumerate(classes)}
    target_of: dict[str, int | None] = {}
    for w in words:
        t = (targets or {}).get(w, w)
        if targets and w in targets and t.lower() not in lower:
            raise MedrepError(f"target class {t!r} for {w!r} is not a class (classes: {', '.join(classes)})", where="--word-class")
        target_of[w] = lower.get(t.lower())
    overlays = [TextOverlay(w, font=font, size=size, position=position, colour=colour, opacity=opacity, fit=fit, margin=margin) for w in words]
    train, test = train_test_splits(dataset, train_split, test_split, limit, seed)
    y_train, y_test = np.asarray(train.labels), np.asarray(test.labels)
    check_split_labels(y_train, y_test, classes, getattr(dataset, "name", "--data"))
    k, k_adapted = adapt_k(k, y_train)  # scaled down to small data, reported rather than failing
    result = OverlayResult(classes=classes, overlays=overlays, settings={
        "train_split": train_split, "test_split": test_split, "limit": limit, "k": k, "n_boot": n_boot, "seed": seed,
        "adapted": {"k": k_adapted} if k_adapted else {},
        "prompt_template": prompt_template, "text_aligned": text_aligned, "targets": {w: (classes[t] if t is not None else None) for w, t in target_of.items()},
        "cosine_shift": "1 − cos(clean, overlaid) per image, averaged"})
    for enc in encoders:
        tr = extract_embeddings(enc, train, batch_size=batch_size, cache=cache, description=f"{enc.name}: train").check_finite()
        te = extract_embeddings(enc, test, batch_size=batch_size, cache=cache, description=f"{enc.name}: test").check_finite()
        probe = LinearProbe(seed=seed).fit(tr.vectors, tr.labels)
        knn = KNNClassifier(k).fit(tr.vectors, tr.labels)
        p_clean, k_clean = probe.predict(te.vectors), knn.predict(te.vectors)
        zs, zs_note = resolve_zero_shot(enc, classes, zero_shot, text_encoder, prompt_template, text_aligned)
        z_clean = softmax(np.asarray(zs(te.vectors), dtype=np.float64)) if zs else None
        if z_clean is not None and z_clean.shape != (len(te), len(classes)):
            raise MedrepError(f"zero-shot scorer returned shape {z_clean.shape}, expected ({len(te)}, {len(classes)})",
                              where="zero-shot")
        clean = {"linear_probe_accuracy": bootstrap_metric(p_clean == te.labels, n_boot=n_boot, seed=seed),
                 "knn_accuracy": bootstrap_metric(k_clean == te.labels, n_boot=n_boot, seed=seed)}
        if z_clean is not None:
            clean["zero_shot_accuracy"] = bootstrap_metric(z_clean.argmax(1) == te.labels, n_boot=n_boot, seed=seed)
        entry: dict[str, Any] = {"zero_shot": zs_note, "clean": clean, "words": {}}
        clean_unit = l2_normalise(te.vectors)  # the same for every word
        with progress_bar(f"{enc.name}: overlays", len(overlays)) as bar:
            for ov in overlays:
                od = extract_embeddings(enc, OverlayDataset(test, ov), batch_size=batch_size, cache=cache,
                                        description=f"{enc.name}: '{ov.text}'").check_finite()
                if od.ids != te.ids:
                    raise MedrepError("overlaid and clean embeddings cover different items", where=ov.text)
                cos = (clean_unit * l2_normalise(od.vectors)).sum(1)
                p_over, k_over = probe.predict(od.vectors), knn.predict(od.vectors)
                flipped_p, flipped_k = p_over != p_clean, k_over != k_clean
                target = target_of[ov.text]
                m: dict[str, Metric] = {
                    "cosine_shift": bootstrap_metric(1.0 - cos, n_boot=n_boot, seed=seed),
                    "probe_flip_rate": bootstrap_metric(flipped_p, n_boot=n_boot, seed=seed),
                    "knn_flip_rate": bootstrap_metric(flipped_k, n_boot=n_boot, seed=seed),
                    "linear_probe_accuracy": bootstrap_metric(p_over == te.labels, n_boot=n_boot, seed=seed),
                }
                if target is not None:
                    m["probe_to_target_rate"] = _toward(p_clean, p_over, target, n_boot, seed)
                    m["knn_to_target_rate"] = _toward(k_clean, k_over, target, n_boot, seed)
                if z_clean is not None:
                    z_over = softmax(np.asarray(zs(od.vectors), dtype=np.float64))
                    m["zero_shot_flip_rate"] = bootstrap_metric(z_over.argmax(1) != z_clean.argmax(1), n_boot=n_boot, seed=seed)
                    if target is not None:
                        # how much probability the written word pulls onto its own class
                        m["zero_shot_shift"] = bootstrap_metric(z_over[:, target] - z_clean[:, target], n_boot=n_boot, seed=seed)
                        m["zero_shot_to_target_rate"] = _toward(z_clean.argmax(1), z_over.argmax(1), target, n_boot, seed)
                entry["words"][ov.text] = {
                    "metrics": m, "target_class": classes[target] if target is not None else None,
                    "probe_flips_to": {c: int((p_over[flipped_p] == i).sum()) for i, c in enumerate(classes)},
                    "knn_flips_to": {c: int((k_over[flipped_k] == i).sum()) for i, c in enumerate(classes)},
                    "cache_key": od.key}
                bar.advance(1)
        result.models[enc.name] = entry
    return result


def write_overlay_outputs(result: OverlayResult, out_dir: str | Path, dataset=None, n_examples: int = 4) -> dict[str, Path]:
    """results.json, overlay.csv, a flip-rate chart and (given the dataset) example images."""
    from medrep.features.analysis import write_csv
    from medrep.features.figures import _plt
    from medrep.io import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result.to_dict())
    write_csv(out / "overlay.csv", result.table())
    figures: dict[str, Path] = {}
    plt = _plt()
    words = [o.text for o in result.overlays]
    names = list(result.models)
    fig, axes = plt.subplots(1, 2, figsize=(3 + 1.2 * len(words) * max(1, len(names)) / 2, 3.6), dpi=120, squeeze=False)
    width = 0.8 / max(1, len(names))
    for ax, key, label in ((axes[0, 0], "probe_flip_rate", "probe flip rate"), (axes[0, 1], "cosine_shift", "cosine shift")):
        for j, name in enumerate(names):
            vals = [result.models[name]["words"][w]["metrics"][key] for w in words]
            pos = np.arange(len(words)) + (j - (len(names) - 1) / 2) * width
            err = np.array([[v.value - (v.low if v.low is not None else v.value) for v in vals],
                            [(v.high if v.high is not None else v.value) - v.value for v in vals]])
            ax.bar(pos, [v.value for v in vals], width, yerr=err, capsize=2, label=name)
        ax.set_xticks(range(len(words)), labels=words, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    # the models' legend under the panels: inside an axis it hides bars as soon as a flip rate is high
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, min(len(names), 4)), fontsize=8, frameon=False)
    rows = -(-len(names) // 4)
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    figures["overlay_flip_rates"] = out / "overlay_flip_rates.png"
    fig.savefig(figures["overlay_flip_rates"])
    plt.close(fig)
    if dataset is not None:
        test = dataset.split(result.settings["test_split"]) if getattr(dataset, "splits", None) else dataset
        n = min(n_examples, len(test))
        fig, axes = plt.subplots(n, 1 + len(result.overlays), figsize=(1.4 * (1 + len(result.overlays)), 1.4 * n),
                                 dpi=120, squeeze=False)
        for r in range(n):
            item = test[r]
            for cidx, img in enumerate([item.image] + [o.apply(item.image) for o in result.overlays]):
                ax = axes[r, cidx]
                arr = img.clamp(0, 1).permute(1, 2, 0).numpy()
                ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)
                ax.set_axis_off()
                if r == 0:
                    ax.set_title("clean" if cidx == 0 else f"'{result.overlays[cidx - 1].text}'", fontsize=8)
        fig.tight_layout()
        figures["overlay_examples"] = out / "overlay_examples.png"
        fig.savefig(figures["overlay_examples"])
        plt.close(fig)
    return figures


def format_overlay_table(result: OverlayResult) -> str:
    lines = []
    for name, m in result.models.items():
        clean = ", ".join(f"{k} {v}" for k, v in m["clean"].items())
        lines.append(f"{name} (clean: {clean}; zero-shot: {m['zero_shot']})")
        for word, w in m["words"].items():
            ms = w["metrics"]
            parts = [f"cos shift {ms['cosine_shift']}", f"probe flips {ms['probe_flip_rate']}",
                     f"kNN flips {ms['knn_flip_rate']}"]
            if "probe_to_target_rate" in ms:
                parts.append(f"probe→{w['target_class']} {ms['probe_to_target_rate']}")
            if "zero_shot_shift" in ms:
                parts.append(f"zero-shot Δp({w['target_class']}) {ms['zero_shot_shift']}")
            lines.append(f"  '{word}': " + "; ".join(parts))
    return "\n".join(lines + describe_adapted(result.settings.get("adapted", {})) + result.readings())

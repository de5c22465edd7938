"""open_clip models as Encoders: image tower for ``embed``, text tower as ``text_encoder``.

Spec grammar::

    open_clip:ARCH                       random weights (architecture from open_clip's built-in configs)
    open_clip:ARCH@TAG                   open_clip pretrained tag (downloads / cache; e.g. ViT-B-32@laion2b_s34b_b79k)
    open_clip:ARCH@/path/weights.safetensors|.pt|.pth
                                         local weights, read by medrep's safe loader (never unpickles code)
    open_clip:hf-hub:ORG/NAME            open_clip's own Hugging Face hub path (e.g. BiomedCLIP)
    open_clip:local-dir:/path            a folder with open_clip_config.json + weights
    options: ?config=FILE_OR_DIR         register a custom model-config JSON (its file stem is the ARCH name)
             &image_size=N               open_clip's force_image_size

The default embedding is ``encode_image`` (projected, not normalised): what open_clip uses for zero-shot.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.geometry import INTERPOLATIONS
from medrep.models.base import CLIP_MEAN, CLIP_STD, Encoder, Preprocessing, TokenGrid
from medrep.models.registry import register_image_scheme, register_text_scheme
from medrep.models.text import BatchedTextEncoder, TextEncoder
from medrep.specs import Spec, take_int_option

_OPTIONS = ("config", "image_size")


class OpenClipEncoder(Encoder):
    kind = "open_clip"

    def __init__(self, module: nn.Module, preprocessing: Preprocessing, name: str, source: dict[str, Any] | None = None):
        grid, self._default_layer = _layout(module.visual, preprocessing)
        # the token the image embedding is read from: CLS unless the tower averages (or attention-pools) its tokens
        reads_cls = getattr(module.visual, "pool_type", "tok") == "tok" and getattr(module.visual, "attn_pool", None) is None
        default_pool = "cls" if grid is not None and grid.has_cls and reads_cls else "mean"
        super().__init__(module, preprocessing, name, grid, default_pool, None, source)
        self.text_encoder: TextEncoder | None = None
        self.default_is_plain_pool = False  # encode_image projects (and may attention-pool) the tokens

    @property
    def default_layer(self) -> str:
        return self._default_layer

    def _forward_default(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(x)

    def _run_for_capture(self, x: torch.Tensor) -> None:
        self.module.encode_image(x)  # image tower only: the text tower needs no input here


def _layout(visual: nn.Module, preprocessing: Preprocessing) -> tuple[TokenGrid | None, str]:
    """Token grid and default token layer of an open_clip image tower (native ViT, timm trunk or ResNet)."""
    name = type(visual).__name__
    if name == "VisionTransformer":
        if not getattr(visual.transformer, "batch_first", True):
            raise MedrepError("open_clip ViT with sequence-first blocks is not supported", where=Param("model"))
        gh, gw = (int(g) for g in visual.grid_size)
        ph, pw = (int(p) for p in visual.patch_size)
        has_cls = getattr(visual, "class_embedding", None) is not None
        # ln_post normalises every token unless the model applies it after pooling.
        tokens = "visual.transformer" if getattr(visual, "final_ln_after_pool", False) or visual.attn_pool is not None \
            else "visual.ln_post"
        return TokenGrid(gh, gw, (ph, pw), num_prefix_tokens=int(has_cls), has_cls=has_cls), tokens
    if name == "TimmModel":
        from medrep.models.timm_adapter import TimmEncoder

        trunk = TimmEncoder(visual.trunk, preprocessing, "trunk")  # reuse timm's grid and default layer
        return trunk.token_grid, f"visual.trunk.{trunk.default_layer}"
    if name == "ModifiedResNet":
        return None, "visual.layer4"
    return None, "visual"


def preprocessing_from_open_clip(visual: nn.Module) -> Preprocessing:
    cfg = dict(getattr(visual, "preprocess_cfg", None) or {})
    size = cfg.get("size") or getattr(visual, "image_size", 224)
    size = (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))
    mean = tuple(float(m) for m in (cfg.get("mean") or getattr(visual, "image_mean", None) or CLIP_MEAN))
    std = tuple(float(s) for s in (cfg.get("std") or getattr(visual, "image_std", None) or CLIP_STD))
    interp = cfg.get("interpolation", "bicubic")
    return Preprocessing(size=size, mean=mean, std=std, channels=len(mean),
                         interpolation=interp if interp in INTERPOLATIONS else "bicubic")


class OpenClipTextEncoder(BatchedTextEncoder):
    """``encode_text`` of an open_clip model with its own tokenizer (projected, not normalised)."""

    def __init__(self, model: nn.Module, tokenizer: Any, name: str, batch_size: int = 64):
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, f"{name}#text", batch_size

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


def _register_config(path: str) -> None:
    import open_clip

    p = Path(path).expanduser()
    if not p.exists():
        raise MedrepError("open_clip model config not found", where=path)
    if p.is_file() and p.suffix != ".json":
        raise MedrepError("an open_clip model config must be a .json file (or a folder of them)", where=path)
    open_clip.add_model_config(p)


def _is_path(weights: str) -> bool:
    return "/" in weights or "\\" in weights or Path(weights).suffix.lower() in (".safetensors", ".pt", ".pth", ".bin")


def load_open_clip(arch: str, weights: str | None = None, options: dict[str, str] | None = None) -> OpenClipEncoder:
    import open_clip

    options = dict(options or {})
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise MedrepError(f"unknown open_clip option(s): {', '.join(unknown)} (known: {', '.join(_OPTIONS)})",
                          where=f"open_clip:{arch}")
    if "config" in options:
        _register_config(options["config"])
    kwargs: dict[str, Any] = {}
    if "image_size" in options:
        kwargs["force_image_size"] = take_int_option(dict(options), "image_size", "an integer (pixels)")
    hub = arch.startswith(("hf-hub:", "local-dir:"))
    if not hub and arch.replace("/", "-") not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if arch.split("-")[0].lower() in m.lower()][:5]
        raise MedrepError(f"open_clip has no architecture {arch!r}" + (f" (e.g. {', '.join(close)})" if close else "")
                          + "; pass ?config=FILE.json for a custom one", where=Param("model"))
    local = weights is not None and _is_path(weights)
    try:
        # Local files bypass open_clip's loader so medrep's safe reader (safetensors / weights_only) decides.
        with _quiet_random_init_warning(local):
            model = open_clip.create_model(arch, pretrained=None if (hub or local) else weights, **kwargs)
    except (RuntimeError, ValueError, OSError) as err:
        raise MedrepError(f"could not build open_clip model ({err})", where=f"open_clip:{arch}" + (f"@{weights}" if weights else "")) from err
    if local:
        _load_local_weights(model, weights)
    name = f"open_clip:{arch}"
    enc = OpenClipEncoder(model, preprocessing_from_open_clip(model.visual), name,
                          source={"spec": name, "weights": weights, **options})
    try:
        enc.text_encoder = OpenClipTextEncoder(model, open_clip.get_tokenizer(arch), name)
    except (OSError, RuntimeError, ValueError) as err:
        # An HF tokenizer that cannot be fetched must not cost the user the image tower.
        logging.getLogger(__name__).warning("%s: no tokenizer (%s); text tower unavailable", name, err)
    return enc


@contextmanager
def _quiet_random_init_warning(active: bool) -> Iterator[None]:
    """open_clip warns "initialized randomly" when medrep is about to load the weights itself."""
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "No pretrained weights loaded" not in record.getMessage()

    root, flt = logging.getLogger(), _Drop()
    if active:
        root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _load_local_weights(model: nn.Module, weights: str) -> None:
    from medrep.models.checkpoints import load_state_dict

    state = load_state_dict(weights)
    if "visual.proj" not in state and any(k.startswith("model.visual.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items()}
    missing, unexpected = [], []
    try:
        result = model.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as err:  # shape mismatches
        raise MedrepError(f"weights do not fit the architecture ({str(err).splitlines()[-1].strip()})", where=weights) from err
    if missing or unexpected:
        detail = "; ".join(f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys)
        raise MedrepError(f"weights do not fit the architecture ({detail})", where=weights)


@register_image_scheme("open_clip")
def _open_clip(spec: Spec, trust_remote_code: bool) -> OpenClipEncoder:
    return load_open_clip(spec.name, spec.weights, spec.options)


@register_text_scheme("open_clip")
def _open_clip_text(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    enc = load_open_clip(spec.name, spec.weights, spec.options)
    if enc.text_encoder is None:
        raise MedrepError("its tokenizer could not be loaded, so the text tower is unusable", where=spec.raw)
    return enc.text_encoder

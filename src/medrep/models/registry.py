"""One registry from spec strings to Encoders (image) and TextEncoders (text).

``demo-vit``, ``demo-cnn``, ``timm:NAME[@FILE]``, ``hf:ID_OR_DIR``, ``open_clip:ARCH[@WEIGHTS]``, a local
checkpoint path, or an Encoder / ``torch.nn.Module`` object from Python.  Options follow ``?``:
``timm:vit_tiny_patch16_224?pretrained=false&img_size=64``.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from medrep.errors import Param, SpecError
from medrep.models.base import Encoder, ModuleEncoder, Preprocessing
from medrep.registry import Registry
from medrep.specs import Spec, parse_spec, take_float_option

ImageLoader = Callable[[Spec, bool], Encoder]
# Adapter modules are imported lazily so `import medrep` stays cheap; each registers itself.  A module whose
# optional extra is not installed is left out, and its schemes are simply absent.
_ADAPTERS = ("medrep.models.builtin", "medrep.models.hf_adapter", "medrep.models.open_clip_adapter", "medrep.models.text",
             "medrep.models.file_adapter")
#: scheme (``timm``, ``hf``, ``open_clip``, ``file``) → ``loader(spec, trust_remote_code) -> Encoder``
IMAGE_SCHEMES = Registry("image model scheme", param="model", builtins=_ADAPTERS, optional_builtins=True)
#: text scheme or name (``minilm``, ``hf-text``) → ``loader(spec, trust_remote_code) -> TextEncoder``
TEXT_SCHEMES = Registry("text encoder", param="text", builtins=_ADAPTERS, optional_builtins=True)
#: built-in model names (``demo-vit``, ``demo-cnn``) → loader
NAMED_MODELS = Registry("named model", param="model", builtins=_ADAPTERS, optional_builtins=True)
_IMAGE, _TEXT, _NAMED = IMAGE_SCHEMES, TEXT_SCHEMES, NAMED_MODELS


def register_image_scheme(scheme: str, **meta: Any) -> Callable[[ImageLoader], ImageLoader]:
    return IMAGE_SCHEMES.register(scheme, **meta)


def register_text_scheme(scheme: str, **meta: Any):
    return TEXT_SCHEMES.register(scheme, **meta)


def register_named(name: str, **meta: Any) -> Callable[[ImageLoader], ImageLoader]:
    return NAMED_MODELS.register(name, **meta)


def _schemes() -> tuple[str, ...]:
    return tuple(sorted(set(IMAGE_SCHEMES) | set(TEXT_SCHEMES)))


def load_encoder(spec: str | Encoder | nn.Module, trust_remote_code: bool = False, **module_kwargs: Any) -> Encoder:
    """Spec string or Python object → Encoder.  A bare ``nn.Module`` needs ``preprocessing=Preprocessing(...)``.

    An encoder loaded from a spec string remembers it (``encoder.load_spec``), so distributed workers can
    re-create it themselves instead of receiving its weights.
    """
    encoder = _load_encoder(spec, trust_remote_code, **module_kwargs)
    if isinstance(spec, str):
        encoder.load_spec = {"spec": spec, "trust_remote_code": bool(trust_remote_code)}
    return encoder


def _load_encoder(spec: str | Encoder | nn.Module, trust_remote_code: bool = False, **module_kwargs: Any) -> Encoder:
    if isinstance(spec, Encoder):
        return spec
    if isinstance(spec, nn.Module):
        prep = module_kwargs.pop("preprocessing", None)
        if prep is None:
            raise SpecError("a torch.nn.Module needs preprocessing=Preprocessing(size, mean, std, channels)", where="load_encoder")
        return ModuleEncoder(spec, prep, **module_kwargs)
    parsed, fit = _take_fit_options(parse_spec(spec, _schemes()))
    return _with_fit(_load_parsed(spec, parsed, trust_remote_code), fit)


#: Spec options every image scheme understands: how images reach the input size (see medrep.geometry).
FIT_OPTIONS = ("resize", "crop_pct")


def _take_fit_options(parsed: Spec) -> tuple[Spec, dict[str, Any]]:
    import dataclasses

    options = dict(parsed.options)
    fit: dict[str, Any] = {}
    if "resize" in options:
        fit["resize"] = options.pop("resize").strip().lower()
    crop_pct = take_float_option(options, "crop_pct", "a number in (0, 1]")
    if crop_pct is not None:
        fit["crop_pct"] = crop_pct
    return dataclasses.replace(parsed, options=options), fit


def _with_fit(encoder: Encoder, fit: dict[str, Any]) -> Encoder:
    """``?resize=crop`` takes the model's own evaluation crop_pct unless ``?crop_pct=`` says otherwise."""
    if not fit:
        return encoder
    import dataclasses
    import math

    from medrep.geometry import RESIZE_MODES

    resize = fit.get("resize", encoder.preprocessing.resize)
    if resize not in RESIZE_MODES:
        raise SpecError(f"unknown resize mode {resize!r} (choose from {', '.join(RESIZE_MODES)})", where="?resize")
    crop_pct = fit.get("crop_pct", encoder.eval_crop_pct if resize == "crop" else encoder.preprocessing.crop_pct)
    if math.isnan(crop_pct) or not 0 < crop_pct <= 1:
        raise SpecError(f"crop_pct must lie in (0, 1], got {crop_pct:g}", where="?crop_pct")
    encoder.preprocessing = dataclasses.replace(encoder.preprocessing, resize=resize, crop_pct=float(crop_pct))
    return encoder


def _load_parsed(spec: str, parsed: Spec, trust_remote_code: bool) -> Encoder:
    if parsed.scheme is None:
        if parsed.name in _NAMED:
            return _NAMED[parsed.name](parsed, trust_remote_code)
        if parsed.name in _TEXT:
            raise SpecError(f"{parsed.name!r} is a text encoder; use it with --text (e.g. for zero-shot alignment)", where=Param("model"))
        from pathlib import Path

        if Path(parsed.name).exists() and "file" in _IMAGE:
            return _IMAGE["file"](parsed, trust_remote_code)
        from medrep.vocabulary import did_you_mean

        raise SpecError(
            f"unknown model spec {spec!r}{did_you_mean(parsed.name, [*_NAMED, *_TEXT])}: use {', '.join(sorted(_NAMED))}, a scheme ({', '.join(s + ':' for s in sorted(_IMAGE) if s != 'file')}) "
            "or a path to a checkpoint", where=Param("model"))
    if parsed.scheme not in _IMAGE:
        raise SpecError(f"{parsed.scheme}: models are text encoders, not image encoders", where=spec)
    return _IMAGE[parsed.scheme](parsed, trust_remote_code)


def load_text_encoder(spec: str | Any, trust_remote_code: bool = False):
    if not isinstance(spec, str):
        if hasattr(spec, "encode_text"):
            return spec
        raise SpecError(f"{type(spec).__name__} is not a text encoder (it has no encode_text)", where=Param("text"))
    parsed = parse_spec(spec, _schemes())
    key = parsed.scheme or parsed.name
    if key not in _TEXT:
        from medrep.vocabulary import did_you_mean

        raise SpecError(f"{spec!r} is not a text encoder spec{did_you_mean(key, _TEXT)} (use {', '.join(sorted(_TEXT))})",
                        where=Param("text"))
    return _TEXT[key](parsed, trust_remote_code)


def available_specs() -> dict[str, list[str]]:
    return {"named": sorted(_NAMED), "image_schemes": sorted(_IMAGE), "text": sorted(_TEXT)}


def _load_builtin_adapters() -> None:
    IMAGE_SCHEMES.names()  # importing the adapter modules registers their schemes (all three registries)

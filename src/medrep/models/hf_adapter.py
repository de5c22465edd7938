"""Hugging Face vision models as Encoders: ``hf:ID_OR_DIR[?revision=REV]``.

Supported families (picked from the checkpoint's ``config.json``), and what ``embed()`` returns by default:

========================================  =====================================================  ==========================
model                                     default embedding (``layer=None``)                     token layer (``default_layer``)
========================================  =====================================================  ==========================
ViTModel / ViTForImageClassification      CLS of ``last_hidden_state`` (after the final norm)    ``[vit.]layernorm``
Dinov2Model (+ with registers, + head)    CLS of ``last_hidden_state`` (after the final norm)    ``[dinov2.]layernorm``
CLIPModel                                 ``get_image_features`` (projected, used for zero-shot) ``vision_model.encoder``
CLIPVisionModel[WithProjection]           pooled CLS after ``post_layernorm`` [projected]        ``vision_model.encoder``
SiglipModel / SiglipVisionModel           attention-pooled head output (no CLS token)            ``vision_model.post_layernorm``
anything else (AutoModel)                 ``pooler_output`` if any, else token 0                 the model's final norm
========================================  =====================================================  ==========================

Models load with ``attn_implementation="eager"`` so attention maps can be captured (SDPA returns none).
Preprocessing comes from ``preprocessor_config.json`` when the checkpoint has one (``size`` / ``crop_size``,
``image_mean``, ``image_std``, ``resample``), otherwise from the config's ``image_size`` and the family's
usual statistics.  medrep resizes straight to the final size (no shortest-edge resize + centre crop), which
is identical for square images.  Dual-tower checkpoints (CLIP, SigLIP) also expose ``text_encoder``: the
model's own text tower, so zero-shot can use it; ``load_text_encoder("hf:DIR")`` returns the same thing.
``trust_remote_code`` is passed to transformers only when the user sets it.
"""
from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.models.checkpoints import refused_pickle
from medrep.models.base import (CLIP_MEAN, CLIP_STD, HALF, IMAGENET_MEAN, IMAGENET_STD, Encoder, Preprocessing,
                                TokenGrid)
from medrep.models.registry import register_image_scheme, register_text_scheme
from medrep.models.text import BatchedTextEncoder, TextEncoder, no_transformers_bars
from medrep.specs import Spec

# Statistics each family's image processor uses when a checkpoint ships no preprocessor_config.json.
_FAMILY_STATS = {"vit": (HALF, HALF), "dinov2": (IMAGENET_MEAN, IMAGENET_STD),
                 "dinov2_with_registers": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD),
                 "clip_vision_model": (CLIP_MEAN, CLIP_STD), "siglip": (HALF, HALF), "siglip_vision_model": (HALF, HALF)}
# PIL resampling codes in preprocessor_config.json → torch interpolation modes.
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "area", 5: "bilinear"}
# Classes loaded as themselves; any other architecture goes through AutoModel.
_KNOWN_CLASSES = ("ViTModel", "Dinov2Model", "Dinov2WithRegistersModel", "CLIPModel", "CLIPVisionModel",
                  "CLIPVisionModelWithProjection", "SiglipModel", "SiglipVisionModel")
_OPTIONS = ("revision",)


# Exact model types only: look-alikes (vit_mae masks patches, deit adds a distillation token, siglip2 has
# variable resolution) go the generic way, which measures the token layout instead of assuming it.
_FAMILIES = {"vit": "vit", "vit_msn": "vit", "dinov2": "dinov2", "dinov2_with_registers": "dinov2", "clip": "clip",
             "clip_vision_model": "clip", "siglip": "siglip", "siglip_vision_model": "siglip"}


def _family(model_type: str) -> str:
    return _FAMILIES.get(model_type, "other")


def _vision_config(config: Any) -> Any:
    return getattr(config, "vision_config", None) or config


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


class HFEncoder(Encoder):
    """A ``transformers`` vision model (or the image tower of a dual-tower model)."""

    kind = "hf"

    def __init__(self, module: nn.Module, preprocessing: Preprocessing, name: str, source: dict[str, Any] | None = None):
        config = module.config
        self.family = _family(config.model_type)
        self.dual = getattr(config, "text_config", None) is not None and hasattr(module, "get_image_features")
        self._head = hasattr(module, "classifier") and getattr(config, "num_labels", 0) > 0
        grid = _token_grid(_backbone_of(module, self._head), self.family, preprocessing.size)
        labels = [config.id2label[i] for i in sorted(config.id2label)] if self._head else None
        # BEiT / Data2Vec-vision classifiers average their patch tokens (use_mean_pooling): they do not read the CLS
        mean_pooled = bool(getattr(_vision_config(config), "use_mean_pooling", False)) and self._head
        default_pool = "mean" if grid is None or not grid.has_cls or mean_pooled else "cls"  # no grid: a CNN
        super().__init__(module, preprocessing, name, grid, default_pool, labels, source)
        self._default_layer = _default_layer(module, self.family)
        self.text_encoder: TextEncoder | None = None
        self.random_pooler = False  # load_hf sets it when the checkpoint has no pooler weights
        # vit / dinov2 embed with the CLS of their final layernorm; projections and pooler heads are not plain
        self.default_is_plain_pool = self.family in ("vit", "dinov2") and not self.dual

    @property
    def has_head(self) -> bool:
        return self._head

    @property
    def default_layer(self) -> str:
        return self._default_layer

    @property
    def backbone(self) -> nn.Module:
        """The part of the model that returns ``last_hidden_state`` / ``pooler_output`` for pixels."""
        return _backbone_of(self.module, self._head)

    def _forward_default(self, x: torch.Tensor) -> torch.Tensor:
        if self.dual:
            out = self.module.get_image_features(pixel_values=x)
            return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers ≥5 returns an output object
        out = self.backbone(pixel_values=x)
        if getattr(out, "image_embeds", None) is not None:  # CLIPVisionModelWithProjection
            return out.image_embeds
        hidden = getattr(out, "last_hidden_state", None)
        if self.family in ("vit", "dinov2") and hidden is not None:
            return hidden[:, 0]  # ViT's pooler is an extra tanh layer the classifier never uses
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None and not self.random_pooler:
            return pooled.flatten(2).mean(-1) if pooled.ndim == 4 else pooled  # CNN poolers keep a 1×1 map
        if hidden is None:
            raise MedrepError(f"model {self.name}: its output ({type(out).__name__}) has neither pooler_output nor "
                              "last_hidden_state; give --layer to embed a named submodule", where=Param("model"))
        return hidden.flatten(2).mean(-1) if hidden.ndim == 4 else hidden[:, 0]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(pixel_values=x).logits

    def _run_for_capture(self, x: torch.Tensor) -> None:
        # Dual-tower models: run the image side only (calling the whole model would need text input).
        if self.dual:
            self._forward_default(x)
        else:
            self.module(pixel_values=x)


def _backbone_of(module: nn.Module, has_head: bool) -> nn.Module:
    """A classification model's backbone (``base_model``: .vit, .dinov2, .convnext, .beit, …), else the model."""
    if has_head or type(module).__name__.endswith("ForImageClassification"):
        base = getattr(module, "base_model", None)
        if isinstance(base, nn.Module) and base is not module:
            return base
    return module


def _token_grid(module: nn.Module, family: str, input_size: tuple[int, int]) -> TokenGrid | None:
    """The patch grid at the size the model is actually fed (the processor's crop, not the config's
    image_size: DINOv2 checkpoints say 518 and are run at 224 with interpolated position embeddings)."""
    vc = _vision_config(module.config)
    if getattr(vc, "image_size", None) is None or getattr(vc, "patch_size", None) is None:
        return None
    (ih, iw), (ph, pw) = _pair(input_size), _pair(vc.patch_size)
    registers = int(getattr(vc, "num_register_tokens", 0) or 0)
    has_cls = family != "siglip"
    if family == "other":
        # Unknown layout: count the prefix tokens by running a blank image once.
        with torch.inference_mode():
            out = module(pixel_values=torch.zeros(1, int(getattr(vc, "num_channels", 3)), ih, iw))
        hidden = getattr(out, "last_hidden_state", None)
        if hidden is None or hidden.ndim != 3:
            return None
        prefix = int(hidden.shape[1]) - (ih // ph) * (iw // pw)
        if prefix < 0:
            return None
        # Prefix tokens beyond the CLS (registers, DeiT's distillation token) are reported as registers.
        return TokenGrid(ih // ph, iw // pw, (ph, pw), num_prefix_tokens=prefix, num_register_tokens=max(prefix - 1, 0),
                         has_cls=prefix > 0)
    return TokenGrid(ih // ph, iw // pw, (ph, pw), num_prefix_tokens=int(has_cls) + registers,
                     num_register_tokens=registers, has_cls=has_cls)


# Token-level output each family's embeddings come from, with and without a wrapping attribute.  SigLIP
# normalises every token (post_layernorm); CLIP only the pooled CLS, so its tokens are the encoder's.
_TOKEN_LAYERS = {
    "vit": ("layernorm", "vit.layernorm"),
    "dinov2": ("layernorm", "dinov2.layernorm"),
    "clip": ("vision_model.encoder", "encoder"),
    "siglip": ("vision_model.post_layernorm", "post_layernorm"),
}


def _default_layer(module: nn.Module, family: str) -> str:
    names = {n for n, _ in module.named_modules()}
    for candidate in _TOKEN_LAYERS.get(family, ()):
        if candidate in names:
            return candidate
    # Generic model: the last shallow LayerNorm, else the whole model's output (its last_hidden_state).
    norms = [n for n, m in module.named_modules() if n.count(".") <= 1 and isinstance(m, nn.LayerNorm)]
    return norms[-1] if norms else ""


def preprocessing_from_hf(config: Any, processor: dict[str, Any] | None) -> Preprocessing:
    vc = _vision_config(config)
    channels = int(getattr(vc, "num_channels", 3) or 3)
    mean, std = _FAMILY_STATS.get(config.model_type, (IMAGENET_MEAN, IMAGENET_STD))
    size = _pair(getattr(vc, "image_size", 224) or 224)
    interpolation = "bicubic" if _family(config.model_type) in ("clip", "dinov2") else "bilinear"
    if processor:
        if processor.get("do_normalize", True):
            mean = tuple(processor.get("image_mean", mean))
            std = tuple(processor.get("image_std", std))
        else:
            mean, std = (0.0,) * channels, (1.0,) * channels
        interpolation = _RESAMPLE.get(processor.get("resample"), interpolation)
        size = _processor_size(processor) or size
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != channels:  # grey checkpoints sometimes ship 3-entry statistics
        mean, std = (mean * channels)[:channels], (std * channels)[:channels]
    return Preprocessing(size=size, mean=mean, std=std, channels=channels, interpolation=interpolation)


def _processor_size(processor: dict[str, Any]) -> tuple[int, int] | None:
    """Final input size: the centre crop when the processor crops, else its resize target."""
    for key in ("crop_size", "size"):
        if key == "crop_size" and not processor.get("do_center_crop", False):
            continue
        s = processor.get(key)
        if isinstance(s, int):
            return (s, s)
        if isinstance(s, dict):
            if "height" in s and "width" in s:
                return (int(s["height"]), int(s["width"]))
            if "shortest_edge" in s:
                return (int(s["shortest_edge"]),) * 2
    return None


def processor_crop_pct(processor: dict[str, Any] | None) -> float:
    """crop_size / shortest_edge of an image processor that resizes then centre-crops (else 1.0)."""
    if not processor or not processor.get("do_center_crop", False):
        return 1.0
    crop, size = processor.get("crop_size"), processor.get("size")
    crop = crop.get("height") if isinstance(crop, dict) else crop
    size = size.get("shortest_edge", size.get("height")) if isinstance(size, dict) else size
    if isinstance(crop, (int, float)) and isinstance(size, (int, float)) and 0 < crop <= size:
        return float(crop) / float(size)
    return 1.0


def _read_processor_config(path: str, revision: str | None) -> dict[str, Any] | None:
    local = Path(path)
    if local.is_dir():
        f = local / "preprocessor_config.json"
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise MedrepError(f"invalid JSON ({err})", where=str(f)) from err
    try:
        from transformers.utils import cached_file

        f = cached_file(path, "preprocessor_config.json", revision=revision,
                        _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    except OSError:
        return None
    return json.loads(Path(f).read_text()) if f else None


def _check_location(path: str) -> None:
    p = Path(path).expanduser()
    if p.is_file():
        raise MedrepError("hf: takes a model folder (save_pretrained); for a weights file use PATH?arch=timm:NAME",
                          where=path)
    looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1
    if looks_local and not p.is_dir():
        raise MedrepError("no such Hugging Face model directory", where=path)


def load_hf_config(path: str, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    from transformers import AutoConfig

    _check_location(path)
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        if "custom code" in str(err):
            raise MedrepError("the checkpoint ships its own Python code; medrep runs it only with --trust-remote-code",
                              where=path) from err
        raise MedrepError(f"cannot read a Hugging Face config ({err}); offline, only local directories and "
                          "already-cached models load", where=path) from err


def load_hf(path: str, trust_remote_code: bool = False, options: dict[str, str] | None = None) -> HFEncoder:
    """Load ``path`` (hub id or local ``save_pretrained`` directory) as an :class:`HFEncoder`."""
    import transformers

    options = dict(options or {})
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise MedrepError(f"unknown hf option(s): {', '.join(unknown)} (known: {', '.join(_OPTIONS)})", where=f"hf:{path}")
    revision = options.get("revision")
    config = load_hf_config(path, trust_remote_code, revision)
    vc = _vision_config(config)
    if (getattr(vc, "image_size", None) is None and getattr(vc, "num_channels", None) is None
            and getattr(config, "vision_config", None) is None):
        raise MedrepError(f"{config.model_type!r} is not a vision model (its config has no image_size or num_channels); "
                          "for a text model use --text hf-text:…", where=path)
    cls = transformers.AutoModel
    for arch in getattr(config, "architectures", None) or []:
        if arch in _KNOWN_CLASSES or arch.endswith("ForImageClassification"):
            cls = getattr(transformers, arch, None) or cls
            break
    try:
        with no_transformers_bars():
            module, info = cls.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision,
                                               attn_implementation="eager", output_loading_info=True)
    except (OSError, ValueError) as err:
        raise MedrepError(f"cannot load the model weights ({err})", where=path) from err
    except pickle.UnpicklingError as err:
        raise refused_pickle(path, err) from err
    missing = sorted(k for k in info.get("missing_keys", []) if not k.endswith("position_ids"))
    random_pooler = any(".pooler." in f".{k}" for k in missing)
    others = [k for k in missing if ".pooler." not in f".{k}"]
    if others:  # freshly initialised weights would make every embedding meaningless (and differ per load)
        warnings.warn(f"hf:{path}: {len(others)} weight(s) missing from the checkpoint were initialised at random "
                      f"(e.g. {', '.join(others[:3])})", stacklevel=2)
    if config.model_type == "vit_mae":
        _keep_every_patch(module)
    if random_pooler:  # drop it: unused, and its random weights would give every load a new fingerprint
        for m in module.modules():
            if isinstance(getattr(m, "pooler", None), nn.Module):
                m.pooler = None
    processor = _read_processor_config(path, revision)
    prep = preprocessing_from_hf(config, processor)
    enc = HFEncoder(module, prep, name=f"hf:{path}", source={"spec": f"hf:{path}", "class": type(module).__name__,
                                                            "revision": revision})
    enc.eval_crop_pct = processor_crop_pct(processor)
    enc.random_pooler = random_pooler  # e.g. DeiT-distilled loaded as DeiTModel: use the CLS token instead
    if enc.dual:
        enc.text_encoder = HFTowerTextEncoder(module, _load_tokenizer(path, trust_remote_code, revision), enc.name)
    return enc


def _keep_every_patch(module: nn.Module) -> None:
    """ViT-MAE drops a random 75% of the patches (and shuffles the rest) at every call; for an encoder
    audit every patch stays, in order, so the embedding is a deterministic function of the image."""
    for m in module.modules():
        if hasattr(m, "random_masking") and hasattr(m, "patch_embeddings"):
            def keep(sequence: torch.Tensor, noise: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                b, n, _ = sequence.shape
                ids = torch.arange(n, device=sequence.device).expand(b, n)
                return sequence, torch.zeros(b, n, device=sequence.device, dtype=sequence.dtype), ids

            m.random_masking = keep


def _load_tokenizer(path: str, trust_remote_code: bool, revision: str | None) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        raise MedrepError(f"dual-tower model has no usable tokenizer ({err})", where=path) from err


class HFTowerTextEncoder(BatchedTextEncoder):
    """The text tower of a CLIP / SigLIP checkpoint: ``get_text_features`` (projected, not normalised)."""

    def __init__(self, model: nn.Module, tokenizer: Any, name: str, batch_size: int = 64):
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, f"{name}#text", batch_size
        tc = model.config.text_config
        self.max_length = int(getattr(tc, "max_position_embeddings", 77))
        # SigLIP was trained on max_length-padded text; its pooled token is the last position.
        self.padding = "max_length" if _family(model.config.model_type) == "siglip" else True

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(texts, padding=self.padding, truncation=True, max_length=self.max_length, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        if self.padding == "max_length":
            tok.pop("attention_mask", None)  # SigLIP's text tower attends to padding, as in training
        feats = self.model.get_text_features(**tok)
        return feats if isinstance(feats, torch.Tensor) else feats.pooler_output


@register_image_scheme("hf")
def _hf(spec: Spec, trust_remote_code: bool) -> HFEncoder:
    return load_hf(spec.name, trust_remote_code, spec.options)


@register_text_scheme("hf")
def _hf_text_tower(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    config = load_hf_config(spec.name, trust_remote_code, spec.options.get("revision"))
    if getattr(config, "text_config", None) is None or getattr(config, "vision_config", None) is None:
        raise MedrepError(f"{config.model_type!r} has no text tower; use hf-text:{spec.name} for a text-only model "
                          "or st:… for a sentence-transformers model", where=spec.raw)
    enc = load_hf(spec.name, trust_remote_code, spec.options)
    assert enc.text_encoder is not None
    return enc.text_encoder


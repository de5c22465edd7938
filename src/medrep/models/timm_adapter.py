"""timm models (ViTs and CNNs) as Encoders: ``timm:NAME[@WEIGHTS][?option=value&...]``."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.models.base import Encoder, Preprocessing, TokenGrid, stem_center_offset
from medrep.specs import take_int_option


def _token_grid(module: nn.Module) -> TokenGrid | None:
    pe = getattr(module, "patch_embed", None)
    if pe is None or not hasattr(pe, "grid_size") or not hasattr(module, "blocks"):
        return None
    gh, gw = (int(g) for g in pe.grid_size)
    ps = pe.patch_size if isinstance(pe.patch_size, (tuple, list)) else (pe.patch_size, pe.patch_size)
    return TokenGrid(
        height=gh, width=gw, patch_size=(int(ps[0]), int(ps[1])),
        num_prefix_tokens=int(getattr(module, "num_prefix_tokens", 1)),
        num_register_tokens=int(getattr(module, "num_reg_tokens", 0)),
        has_cls=getattr(module, "cls_token", None) is not None,
        center_offset=stem_center_offset(getattr(pe, "proj", nn.Identity()), ps),
    )


class TimmEncoder(Encoder):
    """Default representation: timm's pre-logits features (a ViT's CLS after the final norm, a CNN's pooled map)."""

    kind = "timm"

    def __init__(self, module: nn.Module, preprocessing: Preprocessing, name: str, class_names: Sequence[str] | None = None,
                 source: dict[str, Any] | None = None):
        grid = _token_grid(module)
        global_pool = getattr(module, "global_pool", "token")
        pool = "cls" if grid is not None and global_pool == "token" and grid.has_cls else "mean"
        super().__init__(module, preprocessing, name, grid, pool, class_names, source)
        # timm's pre-logits are a plain CLS / mean of the default layer unless it pools otherwise (MAP attention,
        # avgmax, …) or normalises after pooling (fc_norm, a ConvNeXt head norm)
        norms = [getattr(module, "fc_norm", None), getattr(getattr(module, "head", None), "norm", None)]
        after_norm = any(isinstance(m, nn.Module) and not isinstance(m, nn.Identity) for m in norms)
        kind = global_pool if isinstance(global_pool, str) else getattr(global_pool, "pool_type", None)  # CNNs: a module
        plain_pool = kind in ("token", "avg") if grid is not None else kind == "avg"
        self.default_is_plain_pool = plain_pool and not after_norm

    @property
    def has_head(self) -> bool:
        return int(getattr(self.module, "num_classes", 0) or 0) > 0

    @property
    def num_classes(self) -> int | None:
        return int(self.module.num_classes) if self.has_head else None

    @property
    def default_layer(self) -> str:
        if self.token_grid is not None:
            return "norm" if not isinstance(getattr(self.module, "norm", None), nn.Identity) else f"blocks.{len(self.module.blocks) - 1}"
        info = getattr(self.module, "feature_info", None)
        if info:
            last = info[-1]
            return last["module"] if isinstance(last, dict) else info.module_name(-1)
        return super().default_layer

    def _forward_default(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.module.forward_features(x)
        return self.module.forward_head(feats, pre_logits=True)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def timm_crop_pct(module: nn.Module) -> float:
    """timm's evaluation crop_pct for ``module`` (1.0 when its pretrained config does not say)."""
    cfg = getattr(module, "pretrained_cfg", None) or {}
    pct = cfg.get("crop_pct") if isinstance(cfg, dict) else None
    return float(pct) if isinstance(pct, (int, float)) and 0 < pct <= 1 else 1.0


def preprocessing_from_timm(module: nn.Module, overrides: dict[str, Any] | None = None) -> Preprocessing:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=module)
    overrides = overrides or {}
    c, h, w = cfg["input_size"]
    size = overrides.get("img_size")
    if size:
        h = w = int(size)
    interp = cfg.get("interpolation", "bilinear")
    return Preprocessing(
        size=(int(h), int(w)), mean=tuple(float(m) for m in cfg["mean"])[:c], std=tuple(float(s) for s in cfg["std"])[:c],
        channels=int(c), interpolation=interp if interp in ("bilinear", "bicubic", "nearest") else "bilinear",
    )


def load_timm(name: str, weights: str | None = None, options: dict[str, Any] | None = None) -> TimmEncoder:
    """Build ``name`` with timm.  Local weights through ``pretrained_cfg_overlay=dict(file=...)``; hub weights
    when ``pretrained`` (the default when no file is given and the name is not ``pretrained=false``)."""
    import timm

    options = dict(options or {})
    kwargs: dict[str, Any] = {}
    for key in ("num_classes", "img_size", "in_chans", "patch_size", "embed_dim", "depth", "num_heads", "reg_tokens"):
        value = take_int_option(options, key)
        if value is not None:
            kwargs[key] = value
    if "global_pool" in options:
        kwargs["global_pool"] = options.pop("global_pool")
    pretrained = str(options.pop("pretrained", "true")).lower() not in ("0", "false", "no")
    if weights is not None:
        from medrep.models.checkpoints import load_state_dict

        # medrep's safe loader reads the file (safetensors or weights_only), so errors name the file.
        overlay: dict[str, Any] = {"state_dict": load_state_dict(weights)}
        if "num_classes" in kwargs:
            overlay["num_classes"] = kwargs["num_classes"]  # or timm silently re-initialises the head
        kwargs["pretrained_cfg_overlay"] = overlay
    if options:
        raise MedrepError(f"unknown timm option(s): {', '.join(sorted(options))}", where=f"timm:{name}")
    if not timm.is_model(name.split(".")[0]) and not name.startswith("hf-hub:"):
        from medrep.vocabulary import did_you_mean

        raise MedrepError(f"timm has no model {name!r}" + did_you_mean(name.split(".")[0], timm.list_models()), where=Param("model"))
    try:
        module = timm.create_model(name, pretrained=pretrained or weights is not None, **kwargs)
    except (OSError, RuntimeError, ValueError, TypeError) as err:  # TypeError: an option this model does not take
        raise MedrepError(f"could not build timm model {name!r}: {err}", where=Param("model")) from err
    prep = preprocessing_from_timm(module, {"img_size": kwargs.get("img_size")})
    enc = TimmEncoder(module, prep, name=f"timm:{name}", source={"spec": f"timm:{name}", "weights": weights, "pretrained": pretrained})
    enc.eval_crop_pct = timm_crop_pct(module)
    enc.head_size_declared = "num_classes" in kwargs  # ?num_classes=K: the user sized the head for their data
    return enc

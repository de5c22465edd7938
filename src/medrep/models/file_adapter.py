"""A local checkpoint given as a bare path (or ``file:PATH``): the registry routes existing paths here.

    PATH/                                       a Hugging Face ``save_pretrained`` folder (config.json) → ``hf:``
                                                or an open_clip folder (open_clip_config.json) → ``open_clip:local-dir:``
    PATH.safetensors?arch=timm:NAME[&opt=v…]   weights for a timm architecture (options as for ``timm:``)
    PATH.pt?arch=open_clip:ARCH[&config=…]     weights for an open_clip architecture

A weights file alone does not say which network it belongs to, so ``arch`` is required for files.
``.pt/.pth`` files are read with ``torch.load(weights_only=True)`` only; safetensors is preferred.
"""
from __future__ import annotations

from pathlib import Path

from medrep.errors import MedrepError
from medrep.models.base import Encoder
from medrep.models.checkpoints import check_weights_file
from medrep.models.registry import register_image_scheme
from medrep.specs import Spec, parse_spec

ARCH_SCHEMES = ("timm", "open_clip")


@register_image_scheme("file")
def _file(spec: Spec, trust_remote_code: bool) -> Encoder:
    return load_file(spec.name, dict(spec.options), trust_remote_code)


def load_file(path: str, options: dict[str, str], trust_remote_code: bool = False) -> Encoder:
    p = Path(path).expanduser()
    options = dict(options)
    arch = options.pop("arch", None)
    if p.is_dir():
        if arch is not None:
            raise MedrepError("?arch= is for weights files; a folder carries its own config", where=path)
        if (p / "open_clip_config.json").is_file():
            from medrep.models.open_clip_adapter import load_open_clip

            return load_open_clip(f"local-dir:{p}", None, options)
        if (p / "config.json").is_file():
            from medrep.models.hf_adapter import load_hf

            return load_hf(str(p), trust_remote_code, options)
        raise MedrepError("folder has neither config.json (Hugging Face) nor open_clip_config.json", where=path)
    check_weights_file(p)
    if not arch:
        raise MedrepError("a weights file needs its architecture: add ?arch=timm:NAME or ?arch=open_clip:ARCH",
                          where=path)
    target = parse_spec(arch, ARCH_SCHEMES)
    if target.scheme is None:
        raise MedrepError(f"arch must be timm:NAME or open_clip:ARCH, got {arch!r}", where="arch")
    if target.weights:
        raise MedrepError("arch names an architecture only; the weights are the file itself", where="arch")
    options = {**target.options, **options}
    if target.scheme == "timm":
        from medrep.models.timm_adapter import load_timm

        return load_timm(target.name, str(p), {"pretrained": "false", **options})
    from medrep.models.open_clip_adapter import load_open_clip

    return load_open_clip(target.name, str(p), options)

"""Registry entries for the demo models, timm and local checkpoint files."""
from __future__ import annotations

from medrep.models.registry import register_image_scheme, register_named
from medrep.specs import Spec


@register_named("demo-vit")
def _demo_vit(spec: Spec, trust_remote_code: bool):
    from medrep.models.demo import demo_encoder

    return demo_encoder("demo-vit")


@register_named("demo-cnn")
def _demo_cnn(spec: Spec, trust_remote_code: bool):
    from medrep.models.demo import demo_encoder

    return demo_encoder("demo-cnn")


@register_image_scheme("timm")
def _timm(spec: Spec, trust_remote_code: bool):
    from medrep.models.timm_adapter import load_timm

    return load_timm(spec.name, spec.weights, spec.options)

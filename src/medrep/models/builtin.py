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


@register_named("demo-cnn-robust")
def _demo_cnn_robust(spec: Spec, trust_remote_code: bool):
    """demo-cnn adversarially trained (PGD, ε = 8/255): the attacks' robust positive control."""
    from medrep.models.demo import demo_encoder

    return demo_encoder("demo-cnn-robust")


@register_image_scheme("timm")
def _timm(spec: Spec, trust_remote_code: bool):
    from medrep.models.timm_adapter import load_timm

    return load_timm(spec.name, spec.weights, spec.options)

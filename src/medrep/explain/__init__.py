"""Explanation maps for ViTs and CNNs, scored against lesion masks.

Modules: ``attention`` (capture context managers), ``targets`` (class logit / embedding similarity),
``registry`` (the methods' registry and :func:`register_method`), ``methods`` (attention, rollout, chefer,
gradcam, ig, baselines), ``lrp`` (Chefer CVPR-2021 transformer attribution), ``scores`` (pointing game,
top-k IoU, relevance mass, AUPRC), ``faithfulness`` (deletion / insertion), ``road`` (ROAD with noisy linear
imputation), ``similarity`` and ``sanity`` (model-parameter randomisation and random-logit tests),
``chexlocalize`` and ``chung2025`` (named scoring protocols), ``verdict`` (one verdict per method), ``config``
(:class:`ExplainConfig`), ``run`` (dataset-level runs), ``result`` (:class:`ExplainResult`), ``outputs``
(results.json, CSV, gallery, sanity figure).
"""
from __future__ import annotations

from medrep.explain.attention import capture_attention, find_attention_sites, fused_attention_off
from medrep.explain.config import DEFAULT_METHODS, METRICS, ExplainConfig
from medrep.explain.methods import explain
from medrep.explain.outputs import write_explain_outputs
from medrep.explain.registry import METHODS, register_method
from medrep.explain.result import ExplainResult
from medrep.explain.run import run_explain
from medrep.explain.targets import Target, class_target, embedding_target

__all__ = [
    "METHODS", "METRICS", "DEFAULT_METHODS", "ExplainConfig", "ExplainResult", "Target", "capture_attention",
    "class_target", "embedding_target", "explain", "find_attention_sites", "fused_attention_off", "register_method",
    "run_explain", "write_explain_outputs",
]

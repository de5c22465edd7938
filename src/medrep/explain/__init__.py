"""Explanation maps for ViTs and CNNs, scored against lesion masks.

Modules: ``attention`` (capture context managers), ``targets`` (class logit / embedding similarity),
``methods`` (attention, rollout, chefer, gradcam, ig, baselines), ``lrp`` (Chefer CVPR-2021 transformer
attribution), ``scores`` (pointing game, top-k IoU, relevance mass), ``faithfulness`` (deletion /
insertion), ``run`` (dataset-level runs, results.json, CSV, gallery).
"""
from __future__ import annotations

from medrep.explain.attention import capture_attention, find_attention_sites, fused_attention_off
from medrep.explain.methods import METHODS, explain, register_method
from medrep.explain.run import DEFAULT_METHODS, METRICS, ExplainResult, run_explain, write_explain_outputs
from medrep.explain.targets import Target, class_target, embedding_target

__all__ = [
    "METHODS", "METRICS", "DEFAULT_METHODS", "ExplainResult", "Target", "capture_attention", "class_target",
    "embedding_target", "explain", "find_attention_sites", "fused_attention_off", "register_method",
    "run_explain", "write_explain_outputs",
]

"""Anchor-based alignment of representation spaces (latent space translation, Maiorca et al. 2023;
Di Folco et al. 2025): estimators of T, stitching between image encoders, zero-shot through a text encoder.
"""
from medrep.align.anchors import SELECTIONS, parse_anchor_counts, select_anchors
from medrep.align.estimators import (Affine, LeastSquares, LeastSquaresOrtho, Orthogonal, Procrustes, RelativeProjection,
                                     StandardScaling, Translator, ZeroPadding, make_aligner)
from medrep.align.outputs import plot_accuracy_vs_anchors, write_align_outputs
from medrep.align.registry import ESTIMATORS, register_estimator
from medrep.align.result import AlignResult
from medrep.align.run import run_alignment

__all__ = [
    "AlignResult", "run_alignment", "write_align_outputs", "plot_accuracy_vs_anchors",
    "Translator", "Procrustes", "Orthogonal", "LeastSquares", "LeastSquaresOrtho", "Affine", "make_aligner",
    "StandardScaling", "ZeroPadding", "RelativeProjection", "ESTIMATORS", "register_estimator",
    "select_anchors", "parse_anchor_counts", "SELECTIONS",
]

"""Representation robustness: attacks in representation space (collide / push and their cosine variants, the
logit losses CE / DLR), PGD / APGD / Square and their worst case per item, criteria, metrics, detector.

    from medrep.robustness import AttackConfig, run_attack, write_attack_outputs
    result = run_attack(encoder, test, train, AttackConfig(objective="collide", eps=(2/255, 4/255), attack="apgd"),
                        out_dir=out)
    write_attack_outputs(result, out)

Layout: ``registry`` (objectives and norms by name), ``config`` (AttackConfig, protocols), ``attacks`` (the
templates), ``objectives``, ``criteria``, ``classifiers``, ``run`` (run_attack), ``result`` (what comes back),
``metrics``, ``outputs`` (files).
"""
from medrep.robustness.attacks import (APGD, Attack, AttackOutput, GradientAttack, L2PGD, LinfPGD, SquareAttack,
                                       apgd_checkpoints, build_attack, make_attack)
from medrep.robustness.classifiers import EmbeddingClassifier, HeadClassifier
from medrep.robustness.config import PROTOCOLS, AttackConfig
from medrep.robustness.criteria import CosineAtLeast, Criterion, Misclassified, TargetMatched
from medrep.robustness.metrics import detector_auc, detector_auc_bootstrap, image_quality, noise_inconsistency
from medrep.robustness.objectives import Collide, Objective, Push, Representation, make_objective, representation_loss
from medrep.robustness.outputs import write_attack_outputs
from medrep.robustness.registry import NORMS, OBJECTIVES, register_norm, register_objective
from medrep.robustness.result import AttackResult, EpsResult
from medrep.robustness.run import AttackInterrupted, draw_pairs, run_attack

__all__ = [
    "APGD", "Attack", "AttackConfig", "AttackInterrupted", "AttackOutput", "AttackResult", "Collide", "CosineAtLeast",
    "Criterion", "EmbeddingClassifier", "EpsResult", "GradientAttack", "HeadClassifier", "L2PGD", "LinfPGD",
    "Misclassified", "NORMS", "OBJECTIVES", "Objective", "PROTOCOLS", "Push", "Representation", "SquareAttack",
    "TargetMatched", "apgd_checkpoints", "build_attack", "detector_auc", "detector_auc_bootstrap", "draw_pairs",
    "image_quality", "make_attack", "make_objective", "noise_inconsistency", "register_norm", "register_objective",
    "representation_loss", "run_attack", "write_attack_outputs",
]

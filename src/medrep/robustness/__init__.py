"""Representation robustness: representation-space attacks (collide / push), criteria, metrics, detector.

    from medrep.robustness import run_attack, write_attack_outputs
    result = run_attack(encoder, test, train, objective="collide", eps=[2/255, 4/255], steps=50, out_dir=out)
    write_attack_outputs(result, out)
"""
from medrep.robustness.attacks import AttackOutput, GradientAttack, L2PGD, LinfPGD, make_attack
from medrep.robustness.classifiers import EmbeddingClassifier, HeadClassifier
from medrep.robustness.criteria import CosineAtLeast, Criterion, Misclassified, TargetMatched
from medrep.robustness.metrics import detector_auc, detector_auc_bootstrap, image_quality, noise_inconsistency
from medrep.robustness.objectives import Collide, Objective, Push, Representation, make_objective, representation_loss
from medrep.robustness.outputs import write_attack_outputs
from medrep.robustness.runner import AttackInterrupted, AttackResult, EpsResult, draw_pairs, run_attack

__all__ = [
    "AttackInterrupted", "AttackOutput", "AttackResult", "Collide", "CosineAtLeast", "Criterion", "EmbeddingClassifier",
    "EpsResult", "GradientAttack", "HeadClassifier", "L2PGD", "LinfPGD", "Misclassified", "Objective", "Push",
    "Representation", "TargetMatched", "detector_auc", "detector_auc_bootstrap", "draw_pairs", "image_quality", "make_attack", "make_objective",
    "noise_inconsistency", "representation_loss", "run_attack", "write_attack_outputs",
]

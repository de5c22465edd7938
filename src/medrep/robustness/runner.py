"""The former home of ``run_attack``, kept so existing imports work: the code lives in ``config`` (what to run),
``run`` (running it) and ``result`` (what comes back)."""
from medrep.robustness.config import DEFAULT_NOISE_SIGMAS, TARGET_MODES, AttackConfig
from medrep.robustness.result import AttackResult, EpsResult, summarise
from medrep.robustness.run import (BASE_COLUMNS, AttackInterrupted, AttackJob, check_detector, check_eps_budget, draw_pairs,
                                   run_attack)

__all__ = ["AttackConfig", "AttackInterrupted", "AttackJob", "AttackResult", "BASE_COLUMNS", "DEFAULT_NOISE_SIGMAS",
           "EpsResult", "TARGET_MODES", "check_detector", "check_eps_budget", "draw_pairs", "run_attack", "summarise"]

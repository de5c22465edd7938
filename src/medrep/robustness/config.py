"""One frozen description of an attack run (``AttackConfig``) and the named evaluation protocols.

Everything that decides the numbers lives here; what only decides *how* they are computed (cache, backend,
output folder, resumption) is passed to :func:`medrep.robustness.run.run_attack` as keyword arguments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from medrep.configs import setting
from medrep.errors import MedrepError, Param
from medrep.robustness.attacks import DEFAULT_RELATIVE_STEP, parse_attacks

#: Noise levels of the label-consistency detector: the useful σ depends on the model (the paper gives none).
DEFAULT_NOISE_SIGMAS = (0.005, 0.01, 0.03)
TARGET_MODES = ("image", "centroid")
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}  # the last two: autocast

#: A fixed protocol makes numbers comparable across models and papers (AutoAttack's idea): its settings replace
#: the corresponding options, and its name and settings go into results.json and the report.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "standard": {
        "eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "norm": "linf", "attack": ("apgd", "square"), "steps": 100,
        "queries": 5000, "early_stop": True, "seed": 0, "limit": 1000,
    },
}


@dataclass(frozen=True)
class AttackConfig:
    """What to attack and how; ``steps`` are PGD / APGD iterations, ``queries`` the Square attack's budget.

    ``step_size`` (PGD only) defaults to ``relative_step·ε/steps`` (2.5·ε/steps, Madry et al.).  ``random_start``
    defaults to the objective's preference (off for collide, on for push).  ``attack``: one name or several
    (``pgd``, ``apgd``, ``square``; ``ensemble`` = apgd + square); several give the worst case per item.
    ``early_stop``: an item meeting the objective's success criterion leaves the batch.  ``limit``: at most this
    many items (seeded), set by a protocol.
    """

    objective: Any = setting("collide", "what the attack does to the representation (an objective of the registry)",
                             key="objectives")
    eps: tuple[float, ...] = setting((4 / 255,), "perturbation budgets in raw [0, 1] pixel units")
    norm: str = setting("linf", "norm of the budget")
    attack: tuple[str, ...] = setting(("pgd",), "pgd, apgd, square, or several (worst case per item)")
    steps: int = setting(50, "PGD / APGD iterations", flag="attack-steps", key="attack_steps")
    queries: int = setting(5000, "query budget of the Square attack per image")
    step_size: float | None = setting(None, "PGD step (default: relative_step·ε/steps)")
    # a library knob: the front ends set the step itself (--step-size)
    relative_step: float = setting(DEFAULT_RELATIVE_STEP, "PGD step as a multiple of ε/steps", cli=False, audit=False)
    random_start: bool | None = setting(None, "start from a random point in the ε-ball (default: the objective's choice)")
    target: str = setting("image", "what a collide attack pulls toward: image or centroid", flag="attack-target", key="attack_target")
    layer: str | None = setting(None, "module whose representation is attacked (default: the model's representation)")
    pool: str | None = setting(None, "pooling of that module: cls or mean (default: the model's own)")
    # a Python function: only a library caller can give one
    representation_fn: Callable | None = setting(None, "pixels → representation, instead of layer and pool", cli=False,
                                                 audit=False)
    classifiers: Any = setting("auto", "classifiers judged under attack: head, probe, knn (auto: the head if it fits)")
    batch_size: int = setting(32, "images attacked together")
    seed: int = setting(0, "seed of the pairs, the random starts and the bootstrap")
    noise_sigma: Any = setting(DEFAULT_NOISE_SIGMAS, "σ values of the noise-consistency detector")
    noise_draws: int = setting(8, "noisy copies per image for the detector")
    early_stop: bool = setting(False, "an item leaves the attack once it meets the objective's success criterion")
    gallery_size: int = setting(6, "images in the gallery figure")
    n_boot: int = setting(1000, "bootstrap resamples for the 95% intervals")
    dtype: str = setting("float32", "compute dtype: float32, bfloat16 or float16 (autocast)")
    # a protocol fixes ε, the attacks, the steps and the item count: a command-line run of its own
    protocol: str | None = setting(None, "a named evaluation protocol (standard)", audit=False)
    limit: int | None = setting(None, "attack at most N items (seeded choice)")

    def __post_init__(self) -> None:
        eps = self.eps
        object.__setattr__(self, "eps", (float(eps),) if isinstance(eps, (int, float)) else tuple(float(e) for e in eps))
        object.__setattr__(self, "attack", parse_attacks(self.attack))
        object.__setattr__(self, "norm", str(self.norm).lower())
        if self.dtype not in DTYPES:
            raise MedrepError(f"unknown compute dtype {self.dtype!r} for the attack (choose from {', '.join(DTYPES)})",
                              where=Param("dtype"))
        if int(self.queries) < 1:
            raise MedrepError(f"must be at least 1 (got {self.queries})", where=Param("queries"))

    def replace(self, **changes: Any) -> "AttackConfig":
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown attack setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


def with_protocol(config: AttackConfig, name: str | None) -> AttackConfig:
    """``config`` with the protocol's settings in place of its own (``None``: unchanged)."""
    if name is None:
        return config
    if name not in PROTOCOLS:
        raise MedrepError(f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})", where=Param("protocol"))
    return config.replace(protocol=name, **PROTOCOLS[name])


def protocol_description(name: str | None) -> dict[str, Any] | None:
    """The protocol as results.json records it: its name and every setting it fixes (ε also in 1/255)."""
    if name is None:
        return None
    settings = dict(PROTOCOLS[name])
    settings["eps"] = list(settings["eps"])
    settings["eps_255"] = [round(e * 255, 4) for e in settings["eps"]]
    settings["attack"] = list(settings["attack"])
    return {"name": name, "settings": settings,
            "text": f"{name}: L∞ ε ∈ {{{', '.join(f'{e:g}' for e in settings['eps_255'])}}}/255, APGD {settings['steps']} steps "
                    f"+ Square {settings['queries']:,} queries, worst case per item, early exit, "
                    f"the whole test split or {settings['limit']:,} items, seed {settings['seed']}"}

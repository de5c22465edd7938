"""One frozen description of an attack run (``AttackConfig``) and the named evaluation protocols.

Everything that decides the numbers lives here; what only decides *how* they are computed (cache, backend,
output folder, resumption) is passed to :func:`medrep.robustness.run.run_attack` as keyword arguments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from medrep.errors import MedrepError
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

    objective: Any = "collide"
    eps: tuple[float, ...] = (4 / 255,)
    norm: str = "linf"
    attack: tuple[str, ...] = ("pgd",)
    steps: int = 50
    queries: int = 5000
    step_size: float | None = None
    relative_step: float = DEFAULT_RELATIVE_STEP
    random_start: bool | None = None
    target: str = "image"
    layer: str | None = None
    pool: str | None = None
    representation_fn: Callable | None = None
    classifiers: Any = "auto"
    batch_size: int = 32
    seed: int = 0
    noise_sigma: Any = DEFAULT_NOISE_SIGMAS
    noise_draws: int = 8
    early_stop: bool = False
    gallery_size: int = 6
    n_boot: int = 1000
    dtype: str = "float32"
    protocol: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        eps = self.eps
        object.__setattr__(self, "eps", (float(eps),) if isinstance(eps, (int, float)) else tuple(float(e) for e in eps))
        object.__setattr__(self, "attack", parse_attacks(self.attack))
        object.__setattr__(self, "norm", str(self.norm).lower())
        if self.dtype not in DTYPES:
            raise MedrepError(f"unknown compute dtype {self.dtype!r} for the attack (choose from {', '.join(DTYPES)})",
                              where="--dtype")
        if int(self.queries) < 1:
            raise MedrepError(f"must be at least 1 (got {self.queries})", where="--queries")

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
        raise MedrepError(f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})", where="--protocol")
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

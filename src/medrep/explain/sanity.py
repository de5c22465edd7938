"""Sanity checks of explanation methods (Adebayo et al., NeurIPS 2018; Sixt et al. 2020).

* **cascading** model-parameter randomisation: the model's units are re-initialised from the top down (the
  output head first, then each block from the last, finally the patch / stem embedding), one more at each
  step, and every map is recomputed;
* **independent** randomisation: one unit at a time, the rest as trained;
* **logit**: the map of a randomly drawn other class.

Everything runs on a deep copy of the encoder, so the caller's module is never touched.  A unit's new weights
depend on the seed and the unit only (drawn on the CPU), so every batch — wherever it runs — sees the same
randomised model.  What does not depend on the randomised weights is computed once per batch: the inputs, the
fixed target class, the original maps and the random-baseline level.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from medrep.data.base import ImageDataset, collate
from medrep.errors import MedrepError, Param
from medrep.explain.methods import explain_with_raw
from medrep.explain.similarity import SIMILARITIES, map_similarities, reference_statistics
from medrep.explain.targets import Target, resolve_classes
from medrep.models.base import Encoder, evaluation
from medrep.intervals import bootstrap_metric
from medrep.results import Metric

SANITY_TESTS = ("cascading", "independent", "logit")
DEFAULT_THRESHOLD = 0.5  # Spearman (absolute values) after full randomisation; below it (interval too) = passed
PASS_SIMILARITY = "spearman_abs"


@dataclass(frozen=True)
class RandomisationUnit:
    """One step of the randomisation: a name for the figure and the parameter / buffer names it re-draws."""

    name: str
    parameters: tuple[str, ...]


def _block_stack(module: nn.Module) -> tuple[str, nn.Module] | None:
    """The model's repeated blocks: the ModuleList / Sequential with at least two parameterised children that
    holds the most parameters (timm ``blocks``, HF ``encoder.layer``, open_clip ``resblocks``, a CNN's stages)."""
    best, best_size = None, 0
    for name, child in module.named_modules():
        if not isinstance(child, (nn.ModuleList, nn.Sequential)):
            continue
        sizes = [sum(p.numel() for p in c.parameters()) for c in child.children()]
        if sum(1 for s in sizes if s) < 2:
            continue
        if sum(sizes) > best_size:
            best, best_size = (name, child), sum(sizes)
    return best


def randomisation_units(encoder: Encoder) -> list[RandomisationUnit]:
    """Top-down units: everything after the block stack (final norm, head) as ``output``, then each block from
    the last to the first, then everything before the stack (patch / stem embedding, position embedding,
    class token) as ``embedding``.  Parameters in registration order stand for forward order."""
    module = encoder.module
    stack = _block_stack(module)
    names = [n for n, _ in module.named_parameters()]
    if stack is None or not names:
        raise MedrepError(f"model {encoder.name} has no stack of blocks to randomise", where=Param("sanity"))
    prefix = f"{stack[0]}." if stack[0] else ""
    blocks = []
    for child_name, child in stack[1].named_children():
        params = tuple(f"{prefix}{child_name}.{n}" for n, _ in child.named_parameters())
        if params:
            blocks.append(RandomisationUnit(f"block {child_name}", params))
    inside = {p for b in blocks for p in b.parameters}
    first = next(i for i, n in enumerate(names) if n in inside)
    last = max(i for i, n in enumerate(names) if n in inside)
    before = tuple(n for n in names[:first] if n not in inside)
    after = tuple(n for n in names[last + 1:] if n not in inside)
    units = ([RandomisationUnit("output", after)] if after else []) + blocks[::-1]
    return units + ([RandomisationUnit("embedding", before)] if before else [])


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def randomise_unit(module: nn.Module, unit: RandomisationUnit, seed: int) -> None:
    """Re-draw the unit's parameters in place, as at construction: ≥2-D weights U(−b, b) with b = 1/√fan_in
    (PyTorch's Linear / Conv default), normalisation layers the identity (scale 1, shift 0, running statistics
    reset), other parameters (biases, class and position embeddings, layer scales) N(0, 0.02²).  Drawn on the
    CPU from ``seed``, so the result does not depend on the device."""
    gen = torch.Generator().manual_seed(int(seed))
    owners = dict(module.named_modules())
    for name in unit.parameters:
        owner_name, _, leaf = name.rpartition(".")
        owner = owners[owner_name]
        param = getattr(owner, leaf)
        if _is_norm(owner) and param.ndim == 1:
            new = torch.ones(param.shape) if leaf == "weight" else torch.zeros(param.shape)
            for buf, fill in (("running_mean", 0.0), ("running_var", 1.0)):
                if isinstance(getattr(owner, buf, None), torch.Tensor):
                    getattr(owner, buf).fill_(fill)
        elif param.ndim >= 2:
            bound = 1.0 / float(np.sqrt(max(1, param[0].numel())))
            new = (torch.rand(param.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        else:
            new = torch.randn(param.shape, generator=gen, dtype=torch.float64) * 0.02
        with torch.no_grad():
            param.copy_(new.to(param.dtype))


def model_copy(encoder: Encoder) -> Encoder:
    """A deep copy whose randomisation cannot reach the caller's weights (nor its cached digest)."""
    clone = copy.deepcopy(encoder)
    if hasattr(clone, "_weights_digest"):
        clone._weights_digest = None
    return clone


def other_classes(labels: torch.Tensor, n_classes: int, seed: int) -> torch.Tensor:
    """(B,) a class drawn uniformly among the other ``n_classes − 1`` for each label (CPU generator)."""
    if n_classes < 2:
        raise MedrepError("the random-logit test needs at least two classes", where=Param("sanity"))
    gen = torch.Generator().manual_seed(int(seed))
    shift = torch.randint(1, n_classes, (labels.shape[0],), generator=gen)
    return (labels.cpu() + shift) % n_classes


@dataclass
class SanityJob:
    """One unit = one batch of the sanity images: every test, method and randomisation step.  What the
    backends run (Ray: batches sharded over workers)."""

    indices: list[int]
    methods: list[str]
    tests: list[str]
    target: str
    references: torch.Tensor | None
    method_options: dict[str, dict[str, Any]]
    upsampling: str
    batch_size: int
    seed: int
    topk: float
    n_steps: int

    def unit_size(self, bi: int) -> int:
        per_test = {"cascading": self.n_steps, "independent": self.n_steps, "logit": 1}
        return len(self.methods) * sum(per_test[t] for t in self.tests) + len(self.methods)

    def _maps(self, encoder: Encoder, pixels: torch.Tensor, target: Target) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {m: explain_with_raw(encoder, pixels, m, target, upsampling=self.upsampling, **self.method_options.get(m, {}))
                for m in self.methods}

    def _compare(self, base: dict, new: dict) -> dict[str, dict[str, np.ndarray]]:
        """Similarities of the trained model's maps (``base``: maps, and their statistics under ``"reference"``,
        computed once per batch) to ``new``."""
        out = {}
        for m in self.methods:
            if m not in base["reference"]:
                base["reference"][m] = reference_statistics(base[m][0], base[m][1], self.topk)
            sims = map_similarities(base[m][0], new[m][0], base[m][1], new[m][1], reference=base["reference"][m])
            out[m] = {k: v.cpu().numpy() for k, v in sims.items()}
        return out

    def run(self, encoder: Encoder, dataset: ImageDataset, bi: int, progress: Any = None) -> dict[str, Any]:
        start = bi * self.batch_size
        batch = collate([dataset[i] for i in self.indices[start:start + self.batch_size]],
                        **encoder.preprocessing.fit_kwargs())
        with evaluation(encoder):
            pixels = batch["image"].to(encoder.device, encoder.dtype)
            target = self._target(encoder, pixels, batch["label"])
            base = {**self._maps(encoder, pixels, target), "reference": {}}
            _advance(progress, len(self.methods))
            out: dict[str, Any] = {"ids": list(batch["id"]), "baseline": _random_level(pixels, self.seed, bi, self.topk)}
            if "logit" in self.tests and target.kind == "class":
                n_classes = int(encoder.logits(pixels[:1]).shape[-1])
                other = Target("class", classes=other_classes(target.classes, n_classes, self.seed * 7919 + bi).to(encoder.device))
                out["logit"] = self._compare(base, self._maps(encoder, pixels, other))
                _advance(progress, len(self.methods))
        if "cascading" in self.tests or "independent" in self.tests:
            out.update(self._randomised(encoder, pixels, target, base, progress))
        return out

    def _target(self, encoder: Encoder, pixels: torch.Tensor, labels: torch.Tensor) -> Target:
        if self.target == "embedding":
            refs = self.references.to(encoder.device)
            return Target("embedding", references=refs[labels.to(encoder.device)])
        if self.target == "class":
            return Target("class", classes=labels.to(encoder.device))
        # the trained model's predicted class, fixed: the randomised models explain the same class
        return resolve_classes(encoder, pixels, Target("class"))

    def _randomised(self, encoder: Encoder, pixels: torch.Tensor, target: Target, base: dict, progress: Any) -> dict[str, Any]:
        clone = model_copy(encoder)
        units = randomisation_units(clone)
        out: dict[str, Any] = {}
        with evaluation(clone):
            if "independent" in self.tests:
                trained = {k: v.detach().clone() for k, v in clone.module.state_dict().items()}
                steps = []
                for s, unit in enumerate(units):
                    randomise_unit(clone.module, unit, self.seed * 1_000_003 + s)
                    steps.append(self._compare(base, self._maps(clone, pixels, target)))
                    clone.module.load_state_dict(trained)
                    _advance(progress, len(self.methods))
                out["independent"] = _stack_steps(steps, self.methods)
            if "cascading" in self.tests:
                steps = []
                for s, unit in enumerate(units):  # the same draw per unit as the independent test
                    randomise_unit(clone.module, unit, self.seed * 1_000_003 + s)
                    steps.append(self._compare(base, self._maps(clone, pixels, target)))
                    _advance(progress, len(self.methods))
                out["cascading"] = _stack_steps(steps, self.methods)
        return out


def _advance(progress: Any, n: int) -> None:
    if progress is not None:
        progress.advance(n)


def _stack_steps(steps: list[dict], methods: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """[step][method][similarity] (b,) → [method][similarity] (steps, b)."""
    return {m: {k: np.stack([s[m][k] for s in steps]) for k in SIMILARITIES} for m in methods}


def _random_level(pixels: torch.Tensor, seed: int, bi: int, topk: float) -> dict[str, np.ndarray]:
    """Similarity of two independent uniform-noise maps: the level a map that depends on nothing reaches."""
    from medrep.explain.methods import normalize_maps

    b, _, h, w = pixels.shape
    a = torch.rand(b, h, w, generator=torch.Generator().manual_seed(seed * 104_729 + 2 * bi))
    c = torch.rand(b, h, w, generator=torch.Generator().manual_seed(seed * 104_729 + 2 * bi + 1))
    sims = map_similarities(a, c, normalize_maps(a), normalize_maps(c), topk)
    return {k: v.numpy() for k, v in sims.items()}


def summarise_sanity(outs: list[dict[str, Any]], methods: Sequence[str], tests: Sequence[str], unit_names: Sequence[str],
                     threshold: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Per method: each test's per-step mean and 95% interval of every similarity, and ``passed`` (cascading:
    Spearman of absolute values after full randomisation below ``threshold``, its interval's upper end too)."""
    def boot(v: np.ndarray) -> dict[str, Any]:
        return bootstrap_metric(v, n_boot=n_boot, seed=seed).to_dict()

    baseline = {k: boot(np.concatenate([o["baseline"][k] for o in outs])) for k in SIMILARITIES}
    result: dict[str, Any] = {}
    for m in methods:
        entry: dict[str, Any] = {"threshold": threshold, "similarity": PASS_SIMILARITY}
        for test in ("cascading", "independent"):
            if test in tests:
                values = {k: np.concatenate([o[test][m][k] for o in outs], axis=1) for k in SIMILARITIES}
                entry[test] = [{"step": s + 1, "unit": unit_names[s], "blocks_randomised": s + 1 if test == "cascading" else 1,
                                **{k: boot(values[k][s]) for k in SIMILARITIES}} for s in range(len(unit_names))]
        if "logit" in tests:
            entry["logit"] = ({k: boot(np.concatenate([o["logit"][m][k] for o in outs])) for k in SIMILARITIES}
                              if all("logit" in o for o in outs) else None)
        entry["passed"] = sanity_passed(entry.get("cascading"), threshold)
        if entry.get("logit"):
            entry["logit_passed"] = _below(Metric(**entry["logit"][PASS_SIMILARITY]), threshold)
        result[m] = entry
    return {"methods": result, "baseline": baseline, "units": list(unit_names), "tests": list(tests),
            "threshold": threshold, "similarity": PASS_SIMILARITY}


def _below(m: Metric, threshold: float) -> bool:
    return bool(m.value < threshold and m.high is not None and m.high < threshold)


def sanity_passed(cascading: list[dict[str, Any]] | None, threshold: float) -> bool | None:
    """True / False from the last cascading step (everything randomised); None when the test was not run."""
    if not cascading:
        return None
    return _below(Metric(**cascading[-1][PASS_SIMILARITY]), threshold)


def plot_sanity(sanity: dict[str, Any], model: str, path: Any, test: str = "cascading") -> Any:
    """Similarity (Spearman of |map|) against the number of randomised units, one curve per method with its 95%
    interval, the random-map level and the pass threshold."""
    from medrep.plotting import pyplot

    plt = pyplot()

    from medrep.io import atomic_write

    units = sanity["units"]
    xs = np.arange(len(units) + 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.55 * len(xs) + 2), 3.4))
    for m, entry in sanity["methods"].items():
        steps = entry.get(test) or []
        if not steps:
            continue
        vals = [1.0] + [s[PASS_SIMILARITY]["value"] for s in steps]
        lows = [1.0] + [s[PASS_SIMILARITY]["low"] if s[PASS_SIMILARITY]["low"] is not None else np.nan for s in steps]
        highs = [1.0] + [s[PASS_SIMILARITY]["high"] if s[PASS_SIMILARITY]["high"] is not None else np.nan for s in steps]
        line, = ax.plot(xs, vals, marker="o", ms=3, label=m)
        ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15)
    ax.axhline(sanity["baseline"][PASS_SIMILARITY]["value"], color="gray", ls=":", label="two random maps")
    ax.axhline(sanity["threshold"], color="black", ls="--", lw=0.8, label=f"pass below {sanity['threshold']:g}")
    ax.set_xticks(xs)
    ax.set_xticklabels(["trained"] + [u.replace("block ", "b") for u in units], rotation=45, fontsize=7)
    ax.set_xlabel("randomised from the top down (cumulative)" if test == "cascading" else "randomised unit (alone)")
    ax.set_ylabel("Spearman |map| vs trained")
    floor = min([-0.2] + [s[PASS_SIMILARITY]["low"] for e in sanity["methods"].values() for s in (e.get(test) or [])
                          if s[PASS_SIMILARITY]["low"] is not None])
    ax.set_ylim(max(-1.05, floor - 0.05), 1.05)
    ax.set_title(f"{model}: model-parameter randomisation ({test})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path

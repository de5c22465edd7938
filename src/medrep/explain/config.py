"""The one frozen configuration of an explanation run (:class:`ExplainConfig`) and its checks.

Every check names the parameter at fault (the front ends say where it was written), and runs before any work.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Any, Mapping

import torch

from medrep.configs import setting
from medrep.errors import MedrepError, Param
from medrep.explain.attention import find_attention_sites, fuse_heads, select_sites
from medrep.explain.faithfulness import BASELINES as PERTURBATION_BASELINES
from medrep.explain.methods import UPSAMPLING, gradcam_module, ig_coefficients, rollout_matrices
from medrep.explain.registry import (attention_methods, baseline_methods, default_methods, get_method,
                                     unsupported_reason)
from medrep.explain.sanity import DEFAULT_THRESHOLD, SANITY_TESTS
from medrep.explain.scores import TOPK_PERCENTS
from medrep.models.base import Encoder

METRICS = ("pointing", "iou", "mass", "auprc", "deletion", "insertion", "road")
#: what runs when --metrics is not given (ROAD solves a sparse system per image and percentage: opt in)
DEFAULT_METRICS = ("pointing", "iou", "mass", "auprc", "deletion", "insertion")
DEFAULT_METHODS = default_methods()  # the built-ins; the registry's ``default`` metadata is the source
TARGETS = ("class", "predicted", "embedding")
PROTOCOLS = ("chexlocalize", "chung2025")
THRESHOLDS = ("otsu", "tuned")
MIOU_ON = ("all", "true-positives")
ROAD_PERCENTS = (10, 20, 30, 50, 70, 90)


@dataclass(frozen=True)
class ExplainConfig:
    """What an explanation run computes.  Runtime arguments (cache, backend, out_dir, resume) are not here:
    they do not change the figures."""

    methods: tuple[str, ...] | None = setting(None, "explanation methods (default: the registry's default methods)")
    metrics: tuple[str, ...] = setting(DEFAULT_METRICS, "scores of each map")
    target: str = setting("class", "the score an explanation explains: class, predicted or embedding",
                          flag="explain-target", key="explain_target")
    limit: int | None = setting(None, "explain at most N lesion images (seeded choice)")
    seed: int = setting(0, "seed of the item choice, the random baseline and the bootstrap")
    batch_size: int = setting(16, "images explained together")
    upsampling: str = setting("bilinear", "how a coarse map is brought to the image size", flag="upsample", key="upsample")
    topk: tuple[float, ...] = setting(TOPK_PERCENTS, "top-k% pixel shares of the IoU scores")
    steps: int = setting(16, "deletion / insertion curve steps", flag="deletion-steps", key="deletion_steps")
    perturbation_baseline: str = setting("blur", "what removed pixels become (deletion / insertion)",
                                         flag="deletion-baseline", key="deletion_baseline")
    method_options: Mapping[str, Mapping[str, Any]] = setting(
        None, "options per method ({method: {option: value}}; on the command line each option's own flag, e.g. "
              "--ig-steps)", cli=False, default_factory=dict)
    add_baselines: bool = setting(True, "add the random and centre baseline maps", flag="no-baselines", negate=True)
    gallery_size: int = setting(6, "images in the gallery figure")
    n_boot: int = setting(1000, "bootstrap resamples for the 95% intervals")
    # the CheXlocalize protocol needs multi-label data with a tuning split: a command-line run of its own
    protocol: str | None = setting(None, "a named evaluation protocol: chexlocalize or chung2025", audit=False)
    threshold: str = setting("otsu", "chexlocalize: otsu or a per-class threshold tuned on tune_split", audit=False)
    tune_split: str | None = setting(None, "chexlocalize: the split thresholds are tuned on", audit=False)
    probability_cutoff: float | None = setting(None, "chexlocalize: below it an image gets an empty segmentation",
                                               audit=False)
    miou_on: str = setting("all", "chexlocalize: mIoU over all images or true positives", audit=False)
    road_percents: tuple[float, ...] = setting(ROAD_PERCENTS, "ROAD removal percentages")
    sanity: tuple[str, ...] = setting((), "sanity checks: cascading, independent, logit")
    sanity_images: int = setting(16, "images the sanity checks run on")
    sanity_threshold: float = setting(DEFAULT_THRESHOLD, "a method passes randomisation below this Spearman |map|")
    sanity_topk: float = setting(10, "top-k% of the sanity checks' top-k overlap")
    # leave out (and report) the methods this model's structure does not support, instead of refusing the run:
    # each front end decides (the command line when --methods is not given, the audit always)
    skip_unsupported: bool = setting(False, "leave out unsupported methods instead of refusing", cli=False, audit=False)

    def __post_init__(self) -> None:
        if self.methods is None:  # the registry's defaults
            object.__setattr__(self, "methods", default_methods())
        for name in ("methods", "metrics", "topk", "road_percents", "sanity"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "method_options", {m: dict(o) for m, o in dict(self.method_options).items()})

    @classmethod
    def from_settings(cls, **settings: Any) -> "ExplainConfig":
        """A config from keyword settings (the older ``run_explain(..., methods=..., steps=...)`` form)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise MedrepError(f"unknown explain setting(s) {', '.join(unknown)}", where="run_explain")
        return cls(**settings)

    @property
    def all_methods(self) -> list[str]:
        """The methods in order, the random and centre baselines added unless ``add_baselines`` is off."""
        methods = list(dict.fromkeys(self.methods))
        if self.add_baselines:
            methods += [b for b in baseline_methods() if b not in methods]
        return methods

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


def check_config(config: ExplainConfig, encoder: Encoder) -> None:
    """Refuse a bad configuration before any work, naming the parameter."""
    for m in config.methods:
        get_method(m)
    _check_choice(config.metrics, METRICS, "metrics", "metric")
    _check_choice([config.target], TARGETS, "explain_target", "target")
    _check_choice([config.upsampling], UPSAMPLING, "upsample", "upsampling")
    _check_choice([config.perturbation_baseline], PERTURBATION_BASELINES, "deletion_baseline", "baseline")
    _check_choice(config.sanity, SANITY_TESTS, "sanity", "sanity test")
    _check_choice([config.threshold], THRESHOLDS, "threshold", "threshold")
    _check_choice([config.miou_on], MIOU_ON, "miou_on", "image set")
    if config.protocol is not None:
        _check_choice([config.protocol], PROTOCOLS, "protocol", "protocol")
    if config.batch_size < 1:
        raise MedrepError("must be at least 1", where=Param("batch_size"))
    if config.target in ("class", "predicted") and not encoder.has_head:
        raise MedrepError(f"model {encoder.name} has no classification head; use --explain-target embedding",
                          where=Param("explain_target"))
    if any(m in attention_methods() for m in config.methods):
        find_attention_sites(encoder)  # fail before any work when the model has no attention to read
    check_method_options(encoder, config.methods, config.method_options)
    if any(m in ("deletion", "insertion") for m in config.metrics) and config.steps < 1:
        raise MedrepError("needs at least one step", where=Param("deletion_steps"))
    for k in config.topk:
        if not 0 < k <= 100:
            raise MedrepError(f"top-k percentage must be in (0, 100], got {k:g}", where=Param("topk"))
    for k in config.road_percents:
        if not 0 < k < 100:
            raise MedrepError(f"ROAD removal percentage must be in (0, 100), got {k:g}", where=Param("road_percents"))
    if config.sanity and config.sanity_images < 1:
        raise MedrepError("must be at least 1", where=Param("sanity_images"))
    if not 0 < config.sanity_topk <= 100:
        raise MedrepError(f"top-k percentage must be in (0, 100], got {config.sanity_topk:g}", where=Param("sanity_topk"))
    if config.probability_cutoff is not None and not 0 <= config.probability_cutoff <= 1:
        raise MedrepError(f"a probability cut-off is in [0, 1], got {config.probability_cutoff:g}", where=Param("probability_cutoff"))
    if config.threshold == "tuned" and not config.tune_split:
        raise MedrepError("a tuned threshold needs the split it is tuned on: add --tune-split (e.g. val)", where=Param("threshold"))
    if (config.threshold == "tuned" or config.probability_cutoff is not None) and config.protocol != "chexlocalize":
        raise MedrepError("--threshold tuned and --probability-cutoff belong to --protocol chexlocalize", where=Param("protocol"))
    if config.limit is not None and config.limit <= 0:
        raise MedrepError("must be a positive number", where=Param("limit"))


def supported_methods(encoder: Encoder, methods: Any, skip_unsupported: bool = False
                      ) -> tuple[list[str], dict[str, str]]:
    """(methods that can explain ``encoder``, {left-out method: why}).  Decided from the model's structure
    before any work: an unsupported method is refused (a MedrepError naming it and what it supports) unless
    ``skip_unsupported``, which leaves it out instead."""
    for m in methods:
        get_method(m)  # an unknown name is the registry's error, before any structural question
    reasons = {m: r for m in methods if (r := unsupported_reason(encoder, m)) is not None}
    if reasons and not skip_unsupported:
        raise MedrepError("; ".join(reasons.values()), where=Param("methods"))
    return [m for m in methods if m not in reasons], reasons


def _check_choice(values: Any, choices: tuple[str, ...], param: str, what: str) -> None:
    bad = [v for v in values if v not in choices]
    if bad:
        raise MedrepError(f"unknown {what}(s) {', '.join(map(str, bad))} (choose from {', '.join(choices)})",
                          where=Param(param))


def check_method_options(encoder: Encoder, methods: Any, method_options: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse bad method options before any work, naming the option (an error from inside the first batch
    would come after the earlier methods ran)."""
    for method, opts in method_options.items():
        if method not in methods:
            continue
        accepted = set(inspect.signature(get_method(method)).parameters) - {"encoder", "pixels", "target"}
        unknown = sorted(set(opts) - accepted)
        if unknown:
            raise MedrepError(f"method {method!r} has no option {', '.join(unknown)} (it takes {', '.join(sorted(accepted))})",
                              where=Param("methods"))
        # each check names its own parameter (block, head_fusion, discard_ratio, gradcam_layer, ig_steps)
        if "block" in opts:
            select_sites(find_attention_sites(encoder), [int(opts["block"])], encoder.name)
        if "head_fusion" in opts:
            fuse_heads(torch.zeros(1, 1, 1, 1), opts["head_fusion"])
        if "discard_ratio" in opts:
            rollout_matrices([torch.ones(1, 1, 1, 1)], "mean", float(opts["discard_ratio"]))
        if method == "gradcam":
            gradcam_module(encoder, opts.get("layer"))
        if method == "ig" and "steps" in opts:
            ig_coefficients(int(opts["steps"]), opts.get("rule", "gausslegendre"))

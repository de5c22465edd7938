"""`medrep explain`: explanation maps of several methods scored against lesion masks."""
from __future__ import annotations

import argparse
from typing import Any
import sys

from medrep.commands.common import (add_backend_arguments, add_data_arguments, add_deprecated_alias, add_head_classes_argument,
                                   arguments_of,
                                   load_model, make_backend, make_cache, note_skipped, out_dir)
from medrep.commands.common import add_subgroup_arguments, subgroup_config

NAME = "explain"
HELP = "explanation maps (attention, rollout, Chefer, Grad-CAM, IG, baselines) scored against lesion masks"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep explain --model demo-vit --methods attention,gradcam --limit 8 --out out/explain",
)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _method_options() -> dict[str, tuple[Any, list[tuple[str, str]]]]:
    """flag → (its Option, [(method, option name), …]): one flag may serve several methods (--head-fusion)."""
    from medrep.explain.registry import METHODS
    from medrep.registry import option_flag

    flags: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
    for entry in METHODS.entries():
        for option in entry.options:
            flags.setdefault(option_flag(entry, option), (option, []))[1].append((entry.name, option.name))
    return flags


def add_method_option_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per method option the registry declares."""
    g = p.add_argument_group("method options")
    for flag, (option, users) in _method_options().items():
        methods = ", ".join(m for m, _ in users)
        g.add_argument(f"--{flag}", type=_option_type(option), default=option.default, choices=option.choices,
                       help=f"{option.help or option.name} [{methods}]".replace("%", "%%"))


def _option_type(option: Any):
    if option.type is bool:
        return lambda text: option.convert(text, where=None)
    return option.type


def method_options_from(args: argparse.Namespace, methods: list[str]) -> dict[str, dict[str, Any]]:
    """{method: {option: value}} for the named methods, from the flags the registry generated."""
    options: dict[str, dict[str, Any]] = {}
    for flag, (_, users) in _method_options().items():
        for method, name in users:
            if method in methods:
                options.setdefault(method, {})[name] = getattr(args, flag.replace("-", "_"))
    if "ig" in options:  # IG's interpolated inputs run in chunks that follow the batch size
        options["ig"]["internal_batch_size"] = max(args.batch_size * 4, 16)
    return options


def add_arguments(p: argparse.ArgumentParser) -> None:
    from medrep.explain.config import DEFAULT_METRICS, METRICS, MIOU_ON, PROTOCOLS, ROAD_PERCENTS, TARGETS, THRESHOLDS
    from medrep.explain.registry import METHODS, baseline_methods, default_methods
    from medrep.explain.sanity import DEFAULT_THRESHOLD, SANITY_TESTS

    DEFAULT_METHODS = default_methods()

    p.add_argument("--model", required=True, help="model spec: demo-vit, demo-cnn, timm:NAME, hf:ID_OR_DIR, open_clip:ARCH[@WEIGHTS], a checkpoint path")
    add_data_arguments(p)
    p.set_defaults(batch_size=16)
    p.add_argument("--methods", type=_csv, default=None,
                   help=f"comma-separated methods, from {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)}, less "
                        f"those the model does not support); {' and '.join(baseline_methods())} are always added")
    p.add_argument("--metrics", type=_csv, default=list(DEFAULT_METRICS),
                   help=f"comma-separated scores from {','.join(METRICS)} (default: {','.join(DEFAULT_METRICS)})")
    p.add_argument("--explain-target", default="auto", choices=("auto", *TARGETS),
                   help="class: the item's label logit; predicted: the top class; embedding: cosine to the class centroid; "
                        "auto: class when the model has a head, else embedding")
    add_deprecated_alias(p, "--target", "--explain-target", "explain_target", choices=("auto", *TARGETS))
    p.add_argument("--prompt", default=None, metavar="TEMPLATE",
                   help="with --explain-target embedding on a CLIP-style model: compare with the text embedding of TEMPLATE "
                        "formatted with each class name (e.g. 'a scan showing a {label} lesion') instead of the class centroid "
                        "(default: the class centroid)")
    p.add_argument("--upsample", default="bilinear", choices=["nearest", "bilinear", "bicubic"], help="map upsampling mode")
    p.add_argument("--topk", type=lambda s: [float(v) for v in _csv(s)], default=[5, 10, 20, 40], help="top-k%% for IoU (default 5,10,20,40)")
    p.add_argument("--deletion-steps", type=int, default=16, help="deletion/insertion steps")
    add_deprecated_alias(p, "--steps", "--deletion-steps", "deletion_steps", type=int)
    p.add_argument("--deletion-baseline", default="blur", choices=["blur", "zero", "mean"],
                   help="what removed pixels become (deletion/insertion)")
    add_deprecated_alias(p, "--baseline", "--deletion-baseline", "deletion_baseline", choices=["blur", "zero", "mean"])
    add_method_option_arguments(p)
    p.add_argument("--road-percents", type=lambda s: [float(v) for v in _csv(s)], default=list(ROAD_PERCENTS),
                   help=f"ROAD: percentages of pixels removed (default {','.join(f'{v:g}' for v in ROAD_PERCENTS)}); add road to --metrics")
    p.add_argument("--protocol", default=None, choices=PROTOCOLS,
                   help="a named scoring protocol beside medrep's scores: chexlocalize (Saporta et al. 2022: original image "
                        "size, Otsu or tuned threshold, hit rate, mIoU) or chung2025 (Chung et al. 2025's own code's conventions); default: none")
    p.add_argument("--threshold", default="otsu", choices=THRESHOLDS,
                   help="chexlocalize: binarise maps with Otsu's threshold or a per-class threshold tuned on --tune-split (default: otsu)")
    p.add_argument("--tune-split", default=None, metavar="SPLIT",
                   help="chexlocalize with --threshold tuned: the split the per-class thresholds are tuned on, e.g. val (default: none)")
    p.add_argument("--probability-cutoff", type=float, default=None, metavar="P",
                   help="chexlocalize: an image whose target-class probability is below P gets an empty segmentation (default: no cut-off)")
    p.add_argument("--miou-on", default="all", choices=MIOU_ON,
                   help="chexlocalize: mIoU over all images or over true positives only (non-empty predicted segmentation; default: all)")
    p.add_argument("--sanity", type=_csv, default=[], metavar="TESTS",
                   help=f"comma-separated sanity checks from {','.join(SANITY_TESTS)}: model-parameter randomisation "
                        "(cascading from the top down, or one unit at a time) on a copy of the model, and the random-logit test (default: none)")
    p.add_argument("--sanity-images", type=int, default=16, metavar="N", help="images the sanity checks run on (default 16)")
    p.add_argument("--sanity-threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"a method passes randomisation when Spearman |map| after full randomisation, and its interval's "
                        f"upper end, are below this (default {DEFAULT_THRESHOLD:g})")
    p.add_argument("--sanity-topk", type=float, default=10,
                   help="top-k%% of the pixels whose overlap the sanity checks compare (default 10)")
    p.add_argument("--no-baselines", action="store_true", help="do not add the random and center baselines")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--gallery-size", type=int, default=6, help="images in the gallery figure")
    p.add_argument("--trust-remote-code", action="store_true", help="allow Hugging Face models that ship their own code")
    add_head_classes_argument(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT/partial (same arguments)")
    p.add_argument("--out", required=True, help="output directory")
    add_backend_arguments(p)
    add_subgroup_arguments(p)


def run(args: argparse.Namespace) -> int:
    from medrep.data.base import SkipLog
    from medrep.partial import discard_partials
    from medrep.explain.config import ExplainConfig
    from medrep.explain.outputs import write_explain_outputs
    from medrep.explain.run import run_explain
    from medrep.manifest import build_manifest, write_manifest

    subgroups = subgroup_config(args)
    backend = make_backend(args)
    out = out_dir(args.out)
    skipped = SkipLog()
    data, items_seen = _data_without_limit(args, skipped)
    encoder = load_model(args.model, args)
    references = None
    if args.explain_target == "auto":
        from medrep.explain.run import default_target

        args.explain_target = default_target(encoder, data.classes)  # written back: the manifest records what was explained
        why = ("the model has a head)" if args.explain_target == "class" else
               "the model has no head)" if not encoder.has_head else f"{encoder.head_fit(data.classes).reason})")
        # an automatic choice is announced like the automatic split, under --quiet too (quiet silences progress)
        print(f"explaining the {args.explain_target} score (--explain-target auto: {why}", file=sys.stderr)
    if args.prompt is not None:
        from medrep.errors import MedrepError
        from medrep.explain.run import text_references

        if args.explain_target != "embedding":
            raise MedrepError("a prompt is a target embedding: add --explain-target embedding", where="--prompt")
        references = text_references(encoder, data.classes, args.prompt)
    from medrep.explain.registry import default_methods

    methods = list(args.methods or default_methods())  # the default list leaves out what this model cannot do
    config = ExplainConfig(
        methods=tuple(methods), metrics=tuple(args.metrics), target=args.explain_target, limit=args.limit,
        seed=args.seed, batch_size=args.batch_size, upsampling=args.upsample, topk=tuple(args.topk),
        steps=args.deletion_steps, perturbation_baseline=args.deletion_baseline, add_baselines=not args.no_baselines,
        method_options=method_options_from(args, methods), protocol=args.protocol,
        threshold=args.threshold, tune_split=args.tune_split, probability_cutoff=args.probability_cutoff,
        miou_on=args.miou_on, road_percents=tuple(args.road_percents), sanity=tuple(args.sanity),
        sanity_images=args.sanity_images, sanity_threshold=args.sanity_threshold, sanity_topk=args.sanity_topk,
        n_boot=args.n_boot, gallery_size=args.gallery_size, skip_unsupported=args.methods is None)
    tune = _tune_split(args, config)
    result = run_explain(encoder, data, config, references=references, tune_dataset=tune, cache=make_cache(args),
                         backend=backend, out_dir=out, resume=args.resume)
    if subgroups is not None:
        from medrep.subgroups.items import explain_subgroups

        result.subgroups = explain_subgroups(result, data, subgroups)
    paths = write_explain_outputs(result, out)
    discard_partials(out)
    write_manifest(out, build_manifest(
        "explain", arguments_of(args), seeds={"limit": args.seed, "bootstrap": args.seed}, skipped=skipped.skipped,
        encoder=encoder.describe(),
        data=data.describe(), output={k: str(v.name) for k, v in paths.items()},
        timing={"seconds_per_image": result.seconds_per_image}))
    for method, reason in result.settings.get("skipped_methods", {}).items():
        print(f"left out {method}: {reason}")
    print(result.format_table(ascii_only=not _can_print("↑↓")))
    chexlocalize_lines = result.format_chexlocalize()
    if chexlocalize_lines:
        print(chexlocalize_lines)
    if result.mask_area is not None:
        print(f"mask area: mean {result.mask_area['mean']:.3f} of the image (n={result.mask_area['n']})")
    dead = {m: k for m, k in result.dead_maps.items() if k}
    if dead:
        print("dead (constant) maps, scored 0 on pointing and IoU: "
              + ", ".join(f"{m} {k}/{len(result.ids)}" for m, k in dead.items()))
    if subgroups is not None:
        from medrep.subgroups.outputs import format_subgroup_table, write_group_table

        write_group_table(result.subgroups, out)
        print(format_subgroup_table(result.subgroups))
    verdict_lines = result.format_verdicts()
    if verdict_lines:
        print("verdicts (localises / depends on the model / faithful):")
        print(verdict_lines)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    note_skipped(skipped, items_seen)
    return 0


def _can_print(text: str) -> bool:
    """Whether stdout's encoding has these characters (a cp1252 pipe on Windows has no arrows)."""
    import sys

    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "ascii")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _tune_split(args: argparse.Namespace, config):
    """The split a tuned CheXlocalize threshold is chosen on (None unless --threshold tuned)."""
    if config.threshold != "tuned" or not args.tune_split:
        return None
    from medrep.data import load_dataset
    from medrep.errors import MedrepError

    if args.tune_split == args.split:
        raise MedrepError(f"tuning on the split that is scored ({args.split}) would leak; name another split", where="--tune-split")
    ds = load_dataset(args.data, skip_bad=args.skip_bad)
    if not ds.splits:
        raise MedrepError(f"dataset {args.data} has no splits to tune on", where="--tune-split")
    return ds.split(args.tune_split)


def _data_without_limit(args: argparse.Namespace, skipped):
    """The split whole: --limit picks among images with a non-empty mask (inside run_explain), not among all;
    and the number of items the source held."""
    from medrep.commands.common import load_all_data
    from medrep.data.findings import require_single_label

    ds, items_seen = load_all_data(args, skipped)
    require_single_label(ds)
    split = args.split if ds.splits else None
    return ds.split(split), items_seen

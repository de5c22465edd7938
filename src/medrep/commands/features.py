"""`medrep features`: probes, separability, projections and cross-model similarity (CKA, mutual
kNN with permutation nulls) for one or more models on the same data, from cached embeddings."""
from __future__ import annotations

import argparse

from medrep.commands.common import (add_data_arguments, add_deprecated_alias, add_subgroup_arguments, arguments_of, make_cache,
                                   out_dir, subgroup_config)
from medrep.commands.overlay import (add_overlay_arguments, check_model_specs, describe_split_flag, load_models,
                                     load_split_data, overlay_config, resolve_test_split)
from medrep.errors import MedrepError

NAME = "features"
HELP = "feature-distribution analysis: kNN / linear / few-shot probes, separability, t-SNE / UMAP, CKA across models"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep features --model demo-vit --model demo-cnn --data 'demo?n_train=150&n_val=0&n_test=60' --n-boot 100 --n-permutations 20 --projection none --out out/features",
)


class _OverlaySwitch(argparse.Action):
    """``--overlay`` switches the text-overlay test on; ``--overlay WORDS`` is the old spelling of ``--overlay --words WORDS``."""

    switch = True  # the help shows it without a value

    def __call__(self, parser, namespace, values, option_string=None):
        from medrep.vocabulary import deprecated

        if values:
            deprecated("--overlay WORDS", "--overlay --words WORDS")
            namespace.words = values
        namespace.overlay = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, help="model spec (repeat to compare models)")
    add_data_arguments(p, split_default=None)
    p.add_argument("--train-split", default="train", help="split the probes are fitted on")
    p.add_argument("--test-split", default=None, help="split everything is measured on (default: test)")
    describe_split_flag(p, "split everything is measured on")
    p.add_argument("--layer", action="append", default=None,
                   help="module to embed at (repeat to compare layers; default: the model's representation)")
    p.add_argument("--pool", default=None, choices=["cls", "mean"], help="pooling (default: the model's own)")
    p.add_argument("--k", type=int, default=20, help="neighbours for the kNN classifier")
    p.add_argument("--mutual-k", type=int, default=10, help="neighbours for mutual-kNN alignment")
    p.add_argument("--shots", default="1,5,10", help="few-shot sizes per class, comma-separated")
    p.add_argument("--draws", type=int, default=10, help="repeated draws per few-shot size")
    p.add_argument("--n-boot", type=int, default=200, help="resamples for the 95%% intervals")
    p.add_argument("--n-permutations", type=int, default=200, help="permutations for the CKA / mutual-kNN null")
    add_deprecated_alias(p, "--permutations", "--n-permutations", "n_permutations", type=int)
    p.add_argument("--cka", default="biased", choices=["biased", "unbiased"], help="linear CKA estimator")
    p.add_argument("--max-projection", type=int, default=2000,
                   help="most test embeddings drawn in one 2-D picture (a seeded subsample above it)")
    from medrep.features.registry import PROJECTIONS

    p.add_argument("--projection", action="append", choices=[*PROJECTIONS, "none"], default=None,
                   help=f"2-D pictures to draw, repeatable (default: {' and '.join(PROJECTIONS.names(default=True))})")
    add_subgroup_arguments(p, embeddings=True)
    g = add_overlay_arguments(p)
    g.add_argument("--overlay", nargs="?", const="", default=None, action=_OverlaySwitch,
                   help="also run the text-overlay test (words: --words, default the class names)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow Hugging Face models that ship their own code")
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from medrep.features.outputs import format_model_table, write_features_outputs
    from medrep.features.run import run_features
    from medrep.manifest import build_manifest, write_manifest

    try:
        shots = [int(s) for s in args.shots.split(",") if s.strip()]
    except ValueError as err:
        raise MedrepError(f"expected whole numbers separated by commas, got {args.shots!r}", where="--shots") from err
    if any(s < 1 for s in shots):
        raise MedrepError("shot counts must be at least 1", where="--shots")
    from medrep.features.registry import PROJECTIONS

    projections = [p for p in (args.projection or PROJECTIONS.names(default=True)) if p != "none"]
    check_model_specs(args)
    resolve_test_split(args)
    subgroups = subgroup_config(args, n_boot=args.n_boot, n_permutations=args.n_permutations)
    run_overlay_test = args.overlay is not None or args.words is not None  # --words alone asks for it too
    # the overlay test keeps its own bootstrap size (features' --n-boot sizes the features' intervals)
    overlay = overlay_config(args, n_boot=1000) if run_overlay_test else None
    out = out_dir(args.out)
    data = load_split_data(args)
    if run_overlay_test:
        from medrep.data.findings import require_single_label

        require_single_label(data, where="--overlay")
    encoders = load_models(args)
    cache = make_cache(args)
    from medrep.configs import from_mapping
    from medrep.features.config import FeaturesConfig

    config = from_mapping(FeaturesConfig, vars(args), by="dest", shots=tuple(shots), projections=tuple(projections))
    result = run_features(encoders, data, config, cache=cache, subgroups=subgroups)
    figures = write_features_outputs(result, out)
    print(format_model_table(result))
    from medrep.features.probes import describe_adapted

    for line in describe_adapted(result.settings.get("adapted", {})):
        print(line)
    if subgroups is not None:
        from medrep.subgroups.outputs import format_subgroup_table

        print(format_subgroup_table(result.subgroups))
    cache_keys = {f"{n}/{s}": k for n, m in result.models.items() for s, k in m["cache_keys"].items()}
    if run_overlay_test:
        from medrep.overlay import format_overlay_table, run_overlay, write_overlay_outputs

        text_encoder = None
        if args.text:
            from medrep.models import load_text_encoder

            text_encoder = load_text_encoder(args.text)
        ov = run_overlay(encoders, data, overlay, text_encoder=text_encoder, cache=cache)
        figures.update(write_overlay_outputs(ov, out / "overlay", data))
        print(format_overlay_table(ov))
    write_manifest(out, build_manifest("features", arguments_of(args), seeds={"seed": args.seed}, cache_keys=cache_keys,
                                       auto_split=args._auto_split,
                                       output={"results": "results.json",
                                               "figures": {k: str(v.relative_to(out)) for k, v in figures.items()}}))
    # the files write_features_outputs wrote: pairs.csv only when there is a pair of models (or layers)
    files = ["results.json", "models.csv", *(["pairs.csv"] if result.pairs else []), "centroid_cosine.csv",
             *(["subgroups.csv", "separability.csv"] if subgroups is not None else [])]
    if run_overlay_test:
        files += ["overlay/results.json", "overlay/overlay.csv"]
    print(f"wrote {', '.join(files)}, manifest.json and {len(figures)} figure(s) to {out}")
    return 0

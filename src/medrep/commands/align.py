"""`medrep align`: fit T on anchors; stitch to another image encoder or zero-shot through a text encoder."""
from __future__ import annotations

import argparse
from typing import Any

from medrep.commands.common import (add_data_arguments, add_deprecated_alias, arguments_of, load_all_data, load_model,
                                   make_cache, note_skipped, out_dir)

NAME = "align"
HELP = "anchor-based alignment: stitch two image encoders, or give an image encoder zero-shot ability through a text encoder"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep align --source demo-vit --target-model demo-cnn --data 'demo?n_train=150&n_val=0&n_test=60' --anchors 50 --n-boot 100 --out out/stitch",
    "medrep align --source demo-vit --text minilm --data 'demo?n_train=150&n_val=0&n_test=60' --anchors 50 --n-boot 100 --out out/caption-alignment",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="image encoder spec whose embeddings are mapped (demo-vit, timm:…, hf:…)")
    p.add_argument("--target-model", default=None,
                   help="image encoder spec to stitch into (its classifier judges the mapped embeddings; default: none)")
    add_deprecated_alias(p, "--target", "--target-model", "target_model")
    p.add_argument("--text", default=None, help="text encoder spec for caption alignment: minilm, hf-text:DIR_OR_ID (default: none)")
    add_data_arguments(p, split_default=None)
    for action in p._actions:
        if action.dest == "split":
            action.help = ("one split to divide 70/30 into anchors and test items (default: the --train-split and "
                           "--test-split of the data)")
    p.add_argument("--anchors", default="500", help="anchor count or comma-separated sweep, e.g. 10,50,100,500,1000")
    from medrep.align.registry import ESTIMATORS

    p.add_argument("--estimator", default="ortho", choices=list(ESTIMATORS),
                   help="; ".join(f"{e.name}: {e.help}" for e in ESTIMATORS.entries()).replace("%", "%%"))
    p.add_argument("--anchor-selection", default="random", choices=["random", "balanced", "kmeans"],
                   help="anchors from the train split: random, equal per class, or nearest to k-means centres in source space")
    p.add_argument("--ridge", type=float, default=0.0, help="ridge penalty for linear / lortho / affine (allows fewer anchors than dims)")
    p.add_argument("--no-scale", action="store_true", help="skip standard scaling with each space's anchor statistics")
    p.add_argument("--relative", action="store_true", help="also stitch through relative representations (cosine to anchors)")
    p.add_argument("--prompt-file", default=None,
                   help='JSON file {class: prompt or [prompts]} naming the classes for the text side (default: --prompt)')
    add_deprecated_alias(p, "--prompts", "--prompt-file", "prompt_file")
    p.add_argument("--prompt", action="append", default=None,
                   help="prompt template with {label} (class name) and optionally {image} (the captions' modality); repeat "
                        "for an ensemble (default: the phantom prompts for normal/benign/malignant, else four generic templates)")
    add_deprecated_alias(p, "--template", "--prompt", "prompt", append=True)
    p.add_argument("--no-center-text", action="store_true", help="do not centre text vectors on the anchor captions' mean")
    p.add_argument("--train-split", default="train", help="split the anchors and the target classifier come from")
    p.add_argument("--test-split", default="test", help="split the results are measured on")
    add_deprecated_alias(p, "--eval-split", "--test-split", "test_split")
    p.add_argument("--layer", default=None, help="source/target module to embed at (default: each model's representation)")
    p.add_argument("--pool", default=None, choices=["cls", "mean"], help="pooling (default: each model's own)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--trust-remote-code", action="store_true", help="allow Hugging Face models that ship their own code")
    p.add_argument("--out", required=True, help="output directory")
    add_estimator_option_arguments(p)


def _estimator_options() -> dict[str, tuple[Any, list[tuple[str, str]]]]:
    """flag → (its Option, [(estimator, option name), …]), as the estimator registry declares them."""
    from medrep.align.registry import ESTIMATORS
    from medrep.registry import option_flag

    flags: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
    for entry in ESTIMATORS.entries():
        for option in entry.options:
            flags.setdefault(option_flag(entry, option), (option, []))[1].append((entry.name, option.name))
    return flags


def add_estimator_option_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per estimator option; an option whose flag the command already has (--seed) reads that flag."""
    taken = {s for a in p._actions for s in a.option_strings}
    g = p.add_argument_group("estimator options")
    for flag, (option, users) in _estimator_options().items():
        if f"--{flag}" in taken:
            continue
        g.add_argument(f"--{flag}", type=str if option.type is bool else option.type, default=option.default,
                       choices=option.choices,
                       help=f"{option.help or option.name} [{', '.join(e for e, _ in users)}]".replace("%", "%%"))


def estimator_options_from(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen estimator's options from their flags."""
    return {name: getattr(args, flag.replace("-", "_")) for flag, (_, users) in _estimator_options().items()
            for estimator, name in users if estimator == args.estimator}


def run(args: argparse.Namespace) -> int:
    from medrep.align import run_alignment, write_align_outputs
    from medrep.data.base import SkipLog
    from medrep.data.findings import require_single_label
    from medrep.errors import MedrepError
    from medrep.manifest import build_manifest, write_manifest
    from medrep.models import load_text_encoder

    if not args.target_model and not args.text:
        raise MedrepError("give --target-model SPEC (stitching) or --text SPEC (caption alignment)", where="--target-model/--text")
    out = out_dir(args.out)
    # load the text side first: a wrong --text should fail before minutes of image embedding
    text = load_text_encoder(args.text, trust_remote_code=args.trust_remote_code) if args.text else None
    source = load_model(args.source, args)
    target = load_model(args.target_model, args) if args.target_model else None
    skipped = SkipLog()
    data, items_seen = load_all_data(args, skipped)
    require_single_label(data)
    if args.split not in (None, "all"):
        data = data.split(args.split)  # a single named split is then divided 70/30 by run_alignment
    from medrep.align.config import AlignConfig
    from medrep.configs import from_mapping

    config = from_mapping(AlignConfig, vars(args), by="dest", estimator_options=estimator_options_from(args))
    result = run_alignment(source, data, config, target_encoder=target, text_encoder=text, cache=make_cache(args),
                           text_cache=not args.no_cache)
    figures = write_align_outputs(result, out)
    write_manifest(out, build_manifest("align", arguments_of(args), seeds={"anchors": args.seed, "bootstrap": args.seed},
                                       cache_keys=result.cache_keys, skipped=skipped.skipped, source=source.describe(),
                                       target=target.describe() if target else None, text=getattr(text, "name", None),
                                       output={"results": "results.json", "tables": ["sweep.csv"],
                                               "figures": {k: v.name for k, v in figures.items()}}))
    print(result.summary())
    print(f"wrote results.json, sweep.csv and {', '.join(v.name for v in figures.values())} to {out}")
    note_skipped(skipped, items_seen)
    return 0

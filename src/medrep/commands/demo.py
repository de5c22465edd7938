"""`medrep demo`: the main job on the embedded default (phantoms, demo-vit, demo-cnn, efficientnet-lite0, minilm).

The full audit (`medrep audit`) with the built-in default configuration: phantoms (generated once and
cached), both demo models and the ImageNet EfficientNet-Lite0 (judged through the probe and kNN: its head
does not fit the phantoms), demo-cnn-robust as the attacks' positive control, the shared embedding cache,
the analyses, report.html; the scorecard is printed at the end.
"""
from __future__ import annotations

import argparse

NAME = "demo"
HELP = ("run the audit on the embedded default: lesion phantoms, demo-vit, demo-cnn, the ImageNet efficientnet-lite0 "
        "and minilm, with demo-cnn-robust as the attacks' positive control")
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep demo --fast --out out/demo",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue an interrupted audit in the same --out")
    p.add_argument("--out", default="demo-out", help="output directory (default: demo-out)")
    p.add_argument("--seed", type=int, default=0, help="random seed of every analysis")
    p.add_argument("--fast", action="store_true", help="smaller settings (fewer attack pairs and explanation images; efficientnet-lite0 in features and "
                        "alignment only)")


def run(args: argparse.Namespace) -> int:
    from medrep.audit import default_config, run_audit
    from medrep.commands.audit import print_scorecard
    from medrep.commands.common import out_dir

    out = out_dir(args.out)
    run_audit(default_config(seed=args.seed, fast=args.fast), out, cache_dir=args.cache_dir, use_cache=not args.no_cache,
              device=args.device, resume=args.resume, arguments={"seed": args.seed, "fast": args.fast})
    print_scorecard(out)
    return 0

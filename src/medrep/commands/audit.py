"""`medrep audit CONFIG.yaml`: all four analyses over one dataset and several models, one HTML report."""
from __future__ import annotations

import argparse

NAME = "audit"
HELP = "run the analyses named in a YAML config and write report.html, results.json and CSV tables"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML file: data, models, text encoder, analyses and their parameters")
    p.add_argument("--resume", action="store_true", help="continue an interrupted audit in the same --out")
    p.add_argument("--out", default="audit-out", help="output directory (default: audit-out)")
    from medrep.commands.common import add_backend_arguments

    add_backend_arguments(p)


def run(args: argparse.Namespace) -> int:
    from medrep.audit import load_config, run_audit
    from medrep.backends import use_backend
    from medrep.commands.common import arguments_of, make_backend, out_dir

    config = load_config(args.config)  # validated before any work starts
    backend = make_backend(args)
    out = out_dir(args.out)
    with use_backend(backend):  # every extraction, attack and explanation of the audit runs there
        run_audit(config, out, cache_dir=args.cache_dir, use_cache=not args.no_cache, device=args.device, resume=args.resume,
                  arguments=arguments_of(args))
    print(f"wrote {out / 'report.html'}")
    return 0

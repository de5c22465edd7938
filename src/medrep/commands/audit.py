"""`medrep audit CONFIG.yaml`: all four analyses over one dataset and several models, one HTML report."""
from __future__ import annotations

import argparse

NAME = "audit"
HELP = "run the analyses named in a YAML config and write report.html, results.json and CSV tables"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "echo \"{data: 'demo?n_train=150&n_val=0&n_test=60', models: [demo-cnn], analyses: {robustness: {objectives: [collide], limit: 8, attack_steps: 2}, explain: {methods: [gradcam], limit: 4}, features: {projections: [tsne], n_permutations: 20}, overlay: {limit: 20}, alignment: {anchors: [50]}}}\" | medrep audit - --out out/audit",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML file (- for standard input): data, models, text encoder, analyses and their parameters")
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
    print_scorecard(out)
    return 0


def print_scorecard(out) -> None:
    """The scorecard (one headline figure per model and question) on stdout, then where the report is."""
    import csv

    path = out / "scorecard.csv"
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        width = max((len(r["model"]) for r in rows), default=5)
        for r in rows:
            interval = f" [{float(r['low']):.3f}, {float(r['high']):.3f}]" if r.get("low") and r.get("high") else ""
            value = f"{float(r['value']):.3f}{interval}" if r.get("value") else "–"
            print(f"{r['model']:<{width}}  {r['question']:<13} {r['headline']:<36} {value:<24} {r.get('context', '')}")
    print(f"wrote {out / 'report.html'}")

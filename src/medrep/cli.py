"""`medrep` command line: a thin layer — parse → build Dataset and Encoders → run analyses → write.

Each command lives in ``medrep.commands.<name>`` and exposes ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``.  User errors (:class:`MedrepError`) end with one line and exit code 2;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Sequence

COMMANDS = ("demo", "extract", "attack", "explain", "features", "overlay", "align", "audit", "datasets")


def _commands():
    found = []
    for name in COMMANDS:
        try:
            found.append(importlib.import_module(f"medrep.commands.{name}"))
        except ModuleNotFoundError as err:
            if err.name != f"medrep.commands.{name}":
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    from medrep import __version__

    parser = argparse.ArgumentParser(
        prog="medrep", description="Audit the representations of medical-imaging models: robustness, explanations, "
        "feature distributions and alignment.")
    parser.add_argument("--version", action="version", version=f"medrep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        add_global_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def add_global_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("general")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    g.add_argument("--cache-dir", default=None, help="embedding cache directory (default: $MEDREP_CACHE or ~/.cache/medrep)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    g.add_argument("--device", default="auto", help="torch device: auto (GPU when available), cpu, cuda, cuda:1, mps …")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def main(argv: Sequence[str] | None = None) -> int:
    from medrep.errors import MedrepError
    from medrep.progress import set_quiet

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    set_quiet(args.quiet)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    # Seed torch's global generator: a model built with random weights (``timm:NAME?pretrained=false``)
    # is then the same model in every run, so its cache keys, --resume and results.json are reproducible.
    torch.manual_seed(int(getattr(args, "seed", 0) or 0))
    if not args.debug:
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
    try:
        from medrep.commands.common import cache_root

        with cache_root(getattr(args, "cache_dir", None)):  # text and phantom caches follow --cache-dir too
            return int(args._run(args) or 0)
    except MedrepError as err:
        if args.debug:
            raise
        print(f"medrep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medrep {args.command}: interrupted; finished work is kept (rerun with --resume where offered)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))
    sys.exit(main())

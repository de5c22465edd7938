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


def load_plugins() -> None:
    """Import the modules named in $MEDREP_PLUGINS (comma-separated): each registers its methods, objectives,
    estimators, data sources or models, which the commands then list and accept like the built-in ones."""
    from medrep.errors import MedrepError

    for name in filter(None, (n.strip() for n in os.environ.get("MEDREP_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):
                raise MedrepError(f"plug-in module {name!r} not found (is it on PYTHONPATH?)", where="MEDREP_PLUGINS") from None
            raise


def build_parser() -> argparse.ArgumentParser:
    from medrep import __version__

    load_plugins()
    parser = argparse.ArgumentParser(
        prog="medrep", description="Audit the representations of medical-imaging models: robustness, explanations, "
        "feature distributions and alignment.")
    parser.add_argument("--version", action="version", version=f"medrep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP, formatter_class=HelpFormatter,
                           epilog=examples_epilog(getattr(mod, "EXAMPLES", ())))
        mod.add_arguments(p)
        add_global_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless the help already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or not action.option_strings or action.required or any(default is v for v in (None, False, argparse.SUPPRESS))
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._VersionAction))):
            return text
        shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) \
            if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if getattr(action, "switch", False):  # a switch that still accepts an old spelling's value
            return ""
        return super()._format_args(action, default_metavar)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if getattr(action, "switch", False):
            return ", ".join(action.option_strings)
        return super()._format_action_invocation(action)


def examples_epilog(examples) -> str | None:
    """The lines closing a command's help: commands that run as they are on the embedded default."""
    if not examples:
        return None
    return "examples (on the embedded default):\n" + "\n".join(f"  {e}" for e in examples)


def add_global_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("general")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    g.add_argument("--cache-dir", default=None, help="embedding cache directory (default: $MEDREP_CACHE or ~/.cache/medrep)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    g.add_argument("--device", default="auto", help="torch device: auto (GPU when available), cpu, cuda, cuda:1, mps …")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's final flush into a closed pipe raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured): nothing will be flushed into a pipe
        pass


def main(argv: Sequence[str] | None = None) -> int:
    from medrep.errors import MedrepError, cli_place
    from medrep.progress import set_quiet

    try:
        parser = build_parser()
    except MedrepError as err:  # a plug-in that cannot be imported
        print(f"medrep: error: {err}", file=sys.stderr)
        return 2
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
        print(f"medrep {args.command}: error: {err.placed(cli_place(err.where))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medrep {args.command}: interrupted; finished work is kept (rerun with --resume where offered)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`medrep datasets | head`): stop quietly, as SIGPIPE would
        _silence_stdout()
        return 141


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))
    sys.exit(main())

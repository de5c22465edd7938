"""`medrep overlay`: write words onto the test images; report embedding shift, probe / kNN flips and
zero-shot shift toward the written class, per model."""
from __future__ import annotations

import argparse

from medrep.commands.common import add_data_arguments, add_deprecated_alias, arguments_of, load_model, make_cache, out_dir
from medrep.errors import MedrepError

NAME = "overlay"
HELP = "text-overlay test: how much written words move each model's representation and predictions"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep overlay --model demo-cnn --words benign,malignant --data 'demo?n_train=150&n_val=0&n_test=60' --n-boot 100 --out out/overlay",
)


def add_overlay_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    g = p.add_argument_group("text overlay")
    g.add_argument("--words", default=None, help="comma-separated words to write (default: the class names)")
    g.add_argument("--word-class", action="append", default=[], metavar="WORD=CLASS",
                   help="class a word stands for when it is not a class name (e.g. R=malignant for the confounder tag); "
                        "repeat for several words (default: none)")
    add_deprecated_alias(g, "--target", "--word-class", "word_class", append=True, metavar="WORD=CLASS")
    g.add_argument("--font", default=None, help="a .ttf file (default: DejaVu Sans, shipped with matplotlib)")
    g.add_argument("--font-size", type=float, default=0.25, help="share of the image height (≤ 1) or pixels (> 1)")
    g.add_argument("--position", default="center", help="center, top-left, top-right, bottom-left, bottom-right, top, bottom, or X,Y fractions")
    g.add_argument("--colour", default="1.0", help="grey level or R,G,B in [0, 1]")
    g.add_argument("--opacity", type=float, default=1.0, help="1 = opaque text")
    g.add_argument("--margin", type=float, default=0.03,
                   help="gap between a word and the image border, as a share of the image size (default: 0.03)")
    g.add_argument("--no-fit", action="store_true", help="do not shrink text that is wider than the image")
    g.add_argument("--prompt", default="a medical image showing {label}", help="zero-shot prompt template ({label} = class name)")
    g.add_argument("--text", default=None,
                   help="text encoder sharing the image space (e.g. a CLIP text tower) for zero-shot (default: none; a "
                        "model's own text tower is used when it has one)")
    add_deprecated_alias(g, "--text-model", "--text", "text")
    g.add_argument("--text-aligned", action="store_true",
                   help="state that --text shares the image models' embedding space (trained with them); without "
                        "it zero-shot uses only a model's own text tower")
    return g


def _floats(text: str, where: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise MedrepError(f"expected numbers separated by commas, got {text!r}", where=where) from err


def overlay_options(args: argparse.Namespace) -> dict:
    """The OverlayConfig settings the overlay flags give in a form argparse does not parse (lists, pairs)."""
    from medrep.vocabulary import upgrade_template

    if args.text_aligned and not args.text:
        raise MedrepError("needs --text (the text encoder said to share the image space)", where="--text-aligned")
    raw = args.words
    words = tuple(w.strip() for w in raw.split(",") if w.strip()) if raw else None
    targets = {}
    for spec in args.word_class:
        if "=" not in spec:
            raise MedrepError(f"expected WORD=CLASS, got {spec!r}", where="--word-class")
        w, c = spec.split("=", 1)
        targets[w.strip()] = c.strip()
    colour = _floats(args.colour, "--colour")
    if len(colour) not in (1, 3):
        raise MedrepError("give one grey level or three R,G,B values", where="--colour")
    position = args.position
    if "," in position:
        position = _floats(position, "--position")
    return {"words": words, "word_class": targets or None, "position": position,
            "colour": colour[0] if len(colour) == 1 else colour, "prompt": upgrade_template(args.prompt)}


def overlay_config(args: argparse.Namespace, **overrides):
    """The OverlayConfig of the parsed flags; each overlay is built once here, so a bad font, size or position is
    refused before any data or model is loaded."""
    from medrep.configs import from_mapping
    from medrep.overlay import OverlayConfig, TextOverlay

    config = from_mapping(OverlayConfig, vars(args), by="dest", **{**overlay_options(args), **overrides})
    for w in config.words or ["x"]:
        TextOverlay(w, font=config.font, size=config.font_size, position=config.position, colour=config.colour,
                    opacity=config.opacity, margin=config.margin)
    return config


def describe_split_flag(p: argparse.ArgumentParser, what: str) -> None:
    """--split (from the shared data group) is the measured split here: its help says so."""
    for action in p._actions:
        if action.dest == "split":
            action.help = f"{what} (the same as --test-split; default: test)"


def resolve_test_split(args: argparse.Namespace) -> str:
    """The measured split from --split / --test-split (written back, so the manifest records it)."""
    if args.split is not None and args.test_split is not None and args.split != args.test_split:
        raise MedrepError(f"names another split than --test-split {args.test_split}; give one of the two", where="--split")
    where = "--split" if args.split is not None else "--test-split"
    split = args.split or args.test_split or "test"
    if split == "all":
        raise MedrepError("probes are fitted on one split and measured on another; name the split to measure on",
                          where=where)
    if split == args.train_split:
        raise MedrepError(f"is the split the probes are fitted on (--train-split {args.train_split}); measuring on it "
                          "would score the training items", where=where)
    args.test_split = split
    return split


def check_model_specs(args: argparse.Namespace) -> None:
    specs = args.model
    dupes = sorted({s for s in specs if specs.count(s) > 1})
    if dupes:
        raise MedrepError(f"listed more than once: {', '.join(dupes)}", where="--model")


def load_models(args: argparse.Namespace) -> list:
    check_model_specs(args)
    return [load_model(s, args) for s in args.model]


def load_split_data(args: argparse.Namespace):
    """--data with its train and test splits; data without splits is split here (seeded, grouped by patient),
    announced in one line and recorded as ``args._auto_split`` for the manifest."""
    import sys

    from medrep.data import load_dataset
    from medrep.data.autosplit import announce_split, with_train_test

    if args.skip_bad:
        raise MedrepError("not supported here: every model must see the same items (fix or remove the bad files)",
                          where="--skip-bad")
    data, record = with_train_test(load_dataset(args.data), args.train_split, args.test_split or "test", args.seed)
    args._auto_split = record
    if record is not None:
        print(announce_split(record, args.train_split, args.test_split or "test"), file=sys.stderr)
    return data


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, help="model spec (repeat for several models)")
    add_data_arguments(p, split_default=None)
    p.add_argument("--train-split", default="train", help="split the probe and kNN are fitted on")
    p.add_argument("--test-split", default=None, help="split the overlays are written onto (default: test)")
    describe_split_flag(p, "split the overlays are written onto")
    p.add_argument("--k", type=int, default=20, help="neighbours for the kNN classifier")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals")
    add_overlay_arguments(p)
    p.add_argument("--trust-remote-code", action="store_true", help="allow Hugging Face models that ship their own code")
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from medrep.manifest import build_manifest, write_manifest
    from medrep.overlay import format_overlay_table, run_overlay, write_overlay_outputs

    # cheap checks first: a typo should not cost a dataset load and a model load
    check_model_specs(args)
    resolve_test_split(args)
    config = overlay_config(args)
    out = out_dir(args.out)
    data = load_split_data(args)
    from medrep.data.findings import require_single_label

    require_single_label(data)
    encoders = load_models(args)
    text_encoder = None
    if args.text:
        from medrep.models import load_text_encoder

        text_encoder = load_text_encoder(args.text)
    result = run_overlay(encoders, data, config, text_encoder=text_encoder, cache=make_cache(args))
    figures = write_overlay_outputs(result, out, data)
    write_manifest(out, build_manifest("overlay", arguments_of(args), seeds={"seed": args.seed}, auto_split=args._auto_split,
                                       cache_keys={f"{m}/{w}": e["cache_key"] for m, r in result.models.items()
                                                   for w, e in r["words"].items()},
                                       output={"results": "results.json", "figures": {k: v.name for k, v in figures.items()}}))
    print(format_overlay_table(result))
    print(f"wrote results.json, overlay.csv and {len(figures)} figure(s) to {out}")
    return 0

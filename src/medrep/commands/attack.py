"""`medrep attack`: representation-space attacks (collide / push) with accuracy, imperceptibility and a detector."""
from __future__ import annotations

import argparse

from medrep.commands.common import (add_backend_arguments, add_data_arguments, add_deprecated_alias, add_head_classes_argument,
                                   arguments_of,
                                   load_all_data, load_model, make_backend, make_cache, note_skipped, out_dir, pick_data)
from medrep.commands.common import add_subgroup_arguments, subgroup_config
from medrep.data.findings import require_single_label
from medrep.errors import MedrepError

NAME = "attack"
HELP = "attack a model's representation (collide with another class / push away) and measure the damage"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep attack --model demo-vit --limit 8 --attack-steps 5 --noise-draws 2 --out out/attack",
)


def parse_eps(text: str, where: str = "--eps") -> list[float]:
    """'4/255,0.03' → [0.01569, 0.03]; fractions keep ε readable in the usual 1/255 units."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "/" in part:
                num, den = part.split("/", 1)
                out.append(float(num) / float(den))
            else:
                out.append(float(part))
        except (ValueError, ZeroDivisionError):
            raise MedrepError(f"not a number or fraction: {part!r}", where=where) from None
    if not out:
        raise MedrepError("give at least one value, e.g. 4/255 or 2/255,4/255,8/255", where=where)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model spec: demo-vit, demo-cnn, timm:NAME, hf:ID_OR_DIR, open_clip:ARCH[@WEIGHTS], a checkpoint path")
    add_data_arguments(p)
    p.set_defaults(batch_size=32)
    from medrep.robustness.registry import NORMS, OBJECTIVES

    g = p.add_argument_group("attack")
    g.add_argument("--objective", default="collide", choices=list(OBJECTIVES),
                   help="; ".join(f"{e.name}: {e.help}" for e in OBJECTIVES.entries()).replace("%", "%%"))
    g.add_argument("--attack", default="pgd",
                   help="pgd, apgd (Auto-PGD: adaptive step size, momentum, restarts), square (black-box, no gradients), "
                        "ensemble (= apgd,square) or a comma-separated list: several give the worst case per item, each "
                        "attack's accuracy beside it, and a gradient-masking flag when square beats the gradient attacks")
    g.add_argument("--queries", type=int, default=5000, help="query budget of the Square attack per image")
    g.add_argument("--protocol", default=None, choices=["standard"],
                   help="a fixed evaluation protocol whose settings replace the options it fixes; standard: L∞ ε ∈ "
                        "{1,2,4,8}/255, APGD 100 steps + Square 5,000 queries, worst case per item, early exit, the test "
                        "split or 1,000 items, seed 0 (default: none, the options as given)")
    g.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="compute dtype of the attack's forward and backward passes (bfloat16 / float16: autocast; the "
                        "first attack is also run in float32 and both attacked accuracies are reported)")
    g.add_argument("--eps", default="4/255", help="perturbation budget(s) in [0,1] pixel units, comma-separated; fractions allowed (2/255,4/255). "
                   "linf: the largest change of any pixel (at most 1); l2: the Euclidean length of the whole change (at most √(C·H·W))")
    g.add_argument("--norm", default="linf", type=str.lower, choices=list(NORMS),
                   help="; ".join(f"{e.name}: {e.help}" for e in NORMS.entries()).replace("%", "%%"))
    g.add_argument("--attack-steps", type=int, default=50, help="attack iterations per image")
    add_deprecated_alias(g, "--steps", "--attack-steps", "attack_steps", type=int)
    g.add_argument("--step-size", type=float, default=None, help="absolute step size (default: 2.5·ε/attack-steps, as in Madry et al.)")
    rs = g.add_mutually_exclusive_group()
    rs.add_argument("--random-start", dest="random_start", action="store_true", default=None,
                    help="start from a uniform point in the ε-ball (default: on for push, off for collide)")
    rs.add_argument("--no-random-start", dest="random_start", action="store_false", help="start from the clean image")
    g.add_argument("--attack-target", default="image", choices=["image", "centroid"],
                   help="collide onto a seeded image of another class, or onto that class's mean training representation")
    add_deprecated_alias(g, "--target", "--attack-target", "attack_target", choices=["image", "centroid"])
    g.add_argument("--layer", default=None, help="module whose output is attacked (default: the model's representation)")
    g.add_argument("--pool", default=None, choices=["cls", "mean"], help="pooling of that layer (default: the model's own)")
    g.add_argument("--classifiers", default="auto", help="head,probe,knn (default: the head when there is one, else probe,knn)")
    g.add_argument("--early-stop", action="store_true",
                   help="early exit: an item leaves the batch once it meets the objective's success criterion (classified "
                        "as the target's class for collide, misclassified otherwise), keeping the point that met it")
    g.add_argument("--train-split", default="train", help="split whose clean representations fit the probe / kNN / centroids")
    d = p.add_argument_group("detector")
    d.add_argument("--noise-sigma", default="0.005,0.01,0.03",
                   help="σ value(s) of the Gaussian noise of the label-consistency check, comma-separated (one AUC each)")
    d.add_argument("--noise-draws", type=int, default=8, help="noisy copies per image")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--gallery-size", type=int, default=6, help="images in the gallery figure")
    add_head_classes_argument(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT/partial (same arguments)")
    p.add_argument("--out", required=True, help="output directory")
    add_backend_arguments(p)
    add_subgroup_arguments(p)


def run(args: argparse.Namespace) -> int:
    from medrep.partial import discard_partials
    from medrep.data.base import SkipLog
    from medrep.manifest import build_manifest, write_manifest
    from medrep.robustness import run_attack, write_attack_outputs
    from medrep.robustness.classifiers import CLASSIFIERS, head_note, resolve_classifiers
    from medrep.robustness.run import check_detector, check_eps_budget

    from medrep.robustness.attacks import check_eps, make_attack

    # fail on bad options before loading anything
    eps = [check_eps(e) for e in parse_eps(args.eps)]
    subgroups = subgroup_config(args)
    sigmas = check_detector(parse_eps(args.noise_sigma, where="--noise-sigma"), args.noise_draws)
    geometry = make_attack(args.norm, steps=args.attack_steps, step_size=args.step_size)
    check_eps_budget(eps, geometry.norm)  # L2's bound needs the image size: run_attack checks it
    if args.batch_size < 1:
        raise MedrepError("must be at least 1", where="--batch-size")
    named = None if args.classifiers in (None, "auto") else [n.strip() for n in args.classifiers.split(",") if n.strip()]
    for n in named or []:
        if n not in CLASSIFIERS:
            raise MedrepError(f"unknown classifier {n!r} (choose from {', '.join(CLASSIFIERS)})", where="--classifiers")
    from medrep.robustness.attacks import parse_attacks
    from medrep.robustness.objectives import make_objective

    parse_attacks(args.attack)
    if args.queries < 1:
        raise MedrepError(f"must be at least 1 (got {args.queries})", where="--queries")
    centroids = make_objective(args.objective).uses_target and args.attack_target == "centroid"
    backend = make_backend(args)
    out = out_dir(args.out)
    skipped = SkipLog()
    full, items_seen = load_all_data(args, skipped)  # loaded once: the train split comes from it too
    require_single_label(full)
    data = pick_data(full, args)
    train = auto_split = None
    if centroids or any(n in ("probe", "knn") for n in named or []):  # known before the model loads
        train, data, auto_split = _train_and_data(full, data, args)
    encoder = load_model(args.model, args)
    names = resolve_classifiers(args.classifiers, encoder, data.classes)
    note = head_note(encoder, data.classes)
    if note and "head" not in names:
        print(note)
    if train is None and any(n in ("probe", "knn") for n in names):  # "auto" on a model without a head
        train, data, auto_split = _train_and_data(full, data, args)
    result = run_attack(
        encoder, data, train, objective=args.objective, eps=eps, norm=args.norm, steps=args.attack_steps,
        step_size=args.step_size, random_start=args.random_start, target=args.attack_target, layer=args.layer, pool=args.pool,
        classifiers=names, batch_size=args.batch_size, seed=args.seed, noise_sigma=sigmas,
        noise_draws=args.noise_draws, early_stop=args.early_stop, attack=args.attack, queries=args.queries,
        dtype=args.dtype, protocol=args.protocol, n_boot=args.n_boot, gallery_size=args.gallery_size, out_dir=out,
        resume=args.resume, cache=make_cache(args), backend=backend)
    if subgroups is not None:
        from medrep.subgroups.items import attack_subgroups

        result.subgroups = attack_subgroups(result, data, subgroups, args.norm)
    paths = write_attack_outputs(result, out)
    discard_partials(out)
    write_manifest(out, build_manifest(
        "attack", arguments_of(args), seeds={"pairs": args.seed, "attack": args.seed, "limit": args.seed},
        skipped=skipped.skipped, encoder=encoder.describe(), data=data.describe(), auto_split=auto_split,
        output={k: p.name for k, p in paths.items()}))
    from medrep.robustness.outputs import attack_lines, eps_label

    cfg = result.config
    if cfg.get("protocol"):
        print(f"protocol {cfg['protocol']['text']}")
    print(f"{args.objective} attack ({', '.join(cfg.get('attack', ['pgd']))}) on {encoder.name}, {result.data['n']} items, "
          f"{cfg['steps']} steps ({cfg['norm']}), classifier: {result.primary}")
    norm = cfg["norm"]
    eps_text = lambda s: eps_label(s["eps"], norm)  # noqa: E731
    print(f"{'eps' if norm == 'linf' else 'L2 eps':>10} {'clean acc':>10} {'attacked':>10} {'match':>7} {'cos→tgt':>13} {'PSNR dB':>8} {'SSIM':>6}")
    for s in result.summaries:
        m = s["metrics"]
        v = lambda k: m[k]["value"]  # noqa: E731
        cos = f"{v('cosine_to_target_before'):.2f}→{v('cosine_to_target_after'):.2f}" if v("cosine_to_target_after") is not None else "-"
        match = f"{v('match_success_rate'):.1%}" if v("match_success_rate") is not None else "-"
        print(f"{eps_text(s):>10} {v('clean_accuracy'):>10.1%} {v('attacked_accuracy'):>10.1%} {match:>7} {cos:>13} "
              f"{v('psnr_mean'):>8.1f} {v('ssim_mean'):>6.3f}")
    # Every σ is shown: picking the best one on these same test items would overstate the detector.
    print(f"noise-check detector ({result.summaries[0]['detector']['classifier']}, {args.noise_draws} draws): "
          "ROC AUC of attacked vs clean images [95% bootstrap CI], one column per noise σ")
    sigmas = [d["sigma"] for d in result.summaries[0]["detector"]["by_sigma"]]
    print(f"{'eps' if norm == 'linf' else 'L2 eps':>10} " + " ".join(f"{f'σ={sg:g}':>20}" for sg in sigmas))
    for s in result.summaries:
        print(f"{eps_text(s):>10} " + " ".join(f"{_auc_text(d['roc_auc']):>20}" for d in s["detector"]["by_sigma"]))
    for line in attack_lines(result):
        print(line)
    if subgroups is not None:
        from medrep.subgroups.outputs import format_subgroup_table, write_group_table

        write_group_table(result.subgroups, out)
        print(format_subgroup_table(result.subgroups))
    print(f"wrote {out / 'results.json'} and {len(paths) - 1} tables/figures")
    note_skipped(skipped, items_seen)
    return 0


def _train_and_data(full, data, args: argparse.Namespace):
    """(training split, attacked items, the split made here or None): data without any split is divided
    here (seeded, stratified, grouped by patient) so the probe / kNN / centroids never see attacked items."""
    if full.splits:
        return _train_split(full, args.train_split), data, None
    import sys

    from medrep.data.autosplit import announce_split, with_train_test

    split, record = with_train_test(full, "train", "test", args.seed)
    print(announce_split(record), file=sys.stderr)
    return split.split("train"), pick_data(split, args, "test"), record


def _train_split(full, name: str):
    """The --train-split of the loaded data; its errors name --train-split, not --split."""
    if not full.splits:
        raise MedrepError("this dataset has no splits; probe / kNN / centroids need a training split", where="--data")
    if name != "all" and name not in full.splits:
        raise MedrepError(f"no split {name!r} in {getattr(full, 'name', 'the data')} (available: {', '.join(full.splits)})",
                          where="--train-split")
    return full.split(name)


def _auc_text(metric: dict) -> str:
    if metric.get("value") is None:
        return "-"
    if metric.get("low") is None or metric.get("high") is None:
        return f"{metric['value']:.3f}"
    return f"{metric['value']:.3f} [{metric['low']:.2f}, {metric['high']:.2f}]"

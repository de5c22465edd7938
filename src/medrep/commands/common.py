"""Argument groups and helpers shared by the commands."""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import torch

from medrep.data.base import ImageDataset, SkipLog
from medrep.devices import resolve_device  # noqa: F401  (commands import it from here)
from medrep.errors import MedrepError


def add_data_arguments(p: argparse.ArgumentParser, split_default: str | None = "test") -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default="demo", help="data spec: demo, a class-folder tree, a CSV manifest, DICOM file/folder, medmnist:FILE.npz")
    g.add_argument("--split", default=split_default, help="split to use (train, val, test, all)")
    g.add_argument("--limit", type=int, default=None, help="use at most N items (seeded choice; default: all)")
    g.add_argument("--skip-bad", action="store_true", help="skip unreadable items and list them in the manifest")
    g.add_argument("--seed", type=int, default=0, help="random seed (item choice, pairs, bootstrap, permutations)")
    g.add_argument("--batch-size", type=int, default=64, help="images per batch")


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: sets the new option's destination and notes the new name once."""

    def __init__(self, option_strings, dest, new: str = "", append: bool = False, **kwargs):
        self.new, self.append = new, append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from medrep.vocabulary import deprecated

        deprecated(option_string, self.new)
        if self.append:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p, old: str, new: str, dest: str, append: bool = False, **kwargs) -> None:
    """Keep ``old`` working for one release as a hidden alias of ``new`` (same destination)."""
    p.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, append=append, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS, **kwargs)


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: this process (default); ray: shard the work over Ray workers, each loading the model "
                        "once (needs pip install 'medrep[ray]')")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join (e.g. auto, or ray://HOST:10001); default: start a local one")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: one per GPU of the cluster, else one per CPU)")


def make_backend(args: argparse.Namespace):
    """The backend the command's options name (local unless --backend ray); fails early without Ray."""
    from medrep.backends import get_backend

    name = getattr(args, "backend", "local") or "local"
    address = getattr(args, "ray_address", None)
    workers = getattr(args, "ray_workers", None)
    if name == "local" and workers is not None:
        raise MedrepError("a number of Ray workers needs --backend ray", where="--ray-workers")
    return get_backend(name, address=address, workers=workers, device=getattr(args, "device", "auto"))


def _class_names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_head_classes_argument(p: argparse.ArgumentParser) -> None:
    # one parser function for every command, so the flag reads the same everywhere
    p.add_argument("--head-classes", default=None, metavar="A,B,C", type=_class_names,
                   help="the class names of the model's head outputs, in output order; the head is used only when "
                        "they are the data's classes (default: the checkpoint's own labels)")


def load_model(spec: str, args: argparse.Namespace):
    from medrep.models import load_encoder

    encoder = load_encoder(spec, trust_remote_code=getattr(args, "trust_remote_code", False))
    encoder.declare_head_classes(getattr(args, "head_classes", None))
    return encoder.to(resolve_device(args.device))


def load_data(args: argparse.Namespace, split: str | None = None, skipped: SkipLog | None = None) -> ImageDataset:
    return pick_data(load_all_data(args, skipped if skipped is not None else SkipLog())[0], args, split)


def load_all_data(args: argparse.Namespace, skipped: SkipLog) -> tuple[ImageDataset, int]:
    """--data as loaded (every split), bad items left out into ``skipped`` under --skip-bad, and the number
    of items the source held (kept + skipped), for :func:`note_skipped`."""
    from medrep.data import load_dataset

    ds = load_dataset(args.data, skip_bad=args.skip_bad, skipped=skipped)
    return ds, len(ds) + len(skipped.skipped)


def note_skipped(skipped: SkipLog, items_seen: int) -> None:
    """One console line when --skip-bad left items out (the manifest lists which and why)."""
    import sys

    if skipped.skipped:
        print(f"skipped {len(skipped.skipped)} of {max(items_seen, len(skipped.skipped))} items: see manifest.json",
              file=sys.stderr)


def pick_data(ds: ImageDataset, args: argparse.Namespace, split: str | None = None) -> ImageDataset:
    """The split (``split`` or --split) and --limit the command works on, out of a loaded dataset."""
    split = split if split is not None else args.split
    if split not in (None, "all") and not ds.splits:
        split = None  # single-split sources (a plain folder) are used whole
    ds = ds.split(split)
    return ds.limit(args.limit, seed=args.seed) if getattr(args, "limit", None) is not None else ds


@contextlib.contextmanager
def cache_root(cache_dir: str | os.PathLike | None) -> Iterator[None]:
    """While a command runs, make ``cache_dir`` (--cache-dir) the cache root of the whole process.

    The embedding cache is handed --cache-dir directly, but the text-embedding and phantom caches (and
    Ray workers, which inherit it) read $MEDREP_CACHE: without this they wrote to ~/.cache/medrep.
    """
    if cache_dir is None:
        yield
        return
    old = os.environ.get("MEDREP_CACHE")
    os.environ["MEDREP_CACHE"] = os.path.abspath(cache_dir)  # absolute: workers may run elsewhere
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MEDREP_CACHE", None)
        else:
            os.environ["MEDREP_CACHE"] = old


def make_cache(args: argparse.Namespace):
    from medrep.features.cache import EmbeddingCache

    return EmbeddingCache(args.cache_dir, enabled=not args.no_cache)


def out_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise MedrepError("output path exists and is not a directory", where=str(p))
    p.mkdir(parents=True, exist_ok=True)
    return p


def arguments_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def add_subgroup_arguments(p: argparse.ArgumentParser, embeddings: bool = False) -> None:
    """``--by`` and its options: every headline figure by subgroup (and, on ``embeddings``, separability and the
    shortcut check)."""
    p.add_argument("--by", default=None, metavar="ATTR[,ATTR…]",
                   help="item attributes to break every headline figure down by (e.g. sex,age,site: from a dataset "
                        "recipe, CSV attributes= columns, DICOM headers or demo?attributes=site,sex); adds subgroup gaps "
                        "with permutation p-values" + (", subgroup separability and a shortcut check" if embeddings else "")
                        + " (default: none)")
    p.add_argument("--min-group-size", type=int, default=30,
                   help="subgroups with fewer items are shown but flagged too small to judge and left out of the gap "
                        "(default: 30)")
    p.add_argument("--age-bins", default=None, metavar="EDGES",
                   help="edges of the age bands for numeric age attributes, comma-separated (default: decades)")
    if embeddings:
        p.add_argument("--probe-permutations", type=int, default=50,
                       help="refits of the cross-validated attribute probe behind its permutation null "
                            "(default: 50)")


def subgroup_config(args: argparse.Namespace, n_boot: int = 1000, n_permutations: int = 1000):
    """The SubgroupConfig of ``--by`` (None without it)."""
    from medrep.subgroups.config import DECADES, SubgroupConfig, parse_age_bins, parse_by

    by = parse_by(getattr(args, "by", None))
    if not by:
        return None
    if args.min_group_size < 1:
        from medrep.errors import MedrepError

        raise MedrepError("must be at least 1", where="--min-group-size")
    bins = parse_age_bins(args.age_bins) if args.age_bins else DECADES
    probe_permutations = getattr(args, "probe_permutations", 50)
    if probe_permutations < 0:
        from medrep.errors import MedrepError

        raise MedrepError("must be at least 0", where="--probe-permutations")
    return SubgroupConfig(by=by, min_group_size=args.min_group_size, age_bins=bins, n_boot=n_boot,
                          n_permutations=n_permutations, separability_permutations=probe_permutations,
                          seed=getattr(args, "seed", 0) or 0)

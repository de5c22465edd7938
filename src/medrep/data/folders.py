"""Class-per-folder trees: ``root/<class>/…`` or, with a split level, ``root/<split>/<class>/…``.

A split level is recognised when every top-level folder is a split name (train, val, valid,
validation, dev, test).  Classes are the sorted union of class-folder names over all splits, so label
indices agree across splits.  Images may sit at any depth below their class folder (PNG, JPEG, TIFF,
BMP, DICOM — with or without the ``.dcm`` suffix), symlinked folders included; a link back to a folder
above it (a cycle) is skipped with a warning.  Masks live in a parallel tree with the same
relative paths: ``?masks=DIR`` or, if it exists, the sibling ``<root>_masks/``; any image without a
mask file there gets none.  Ids are paths relative to the root.
Options: ``masks=DIR``, and for DICOM ``frame=N``, ``frames=all``, ``window=c,w|none``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from medrep.data.base import ImageDataset, SkipLog, SplitDataset
from medrep.data.files import FileEntry, ReadOptions, build_file_dataset, display_id, find_mask, take_read_options
from medrep.data.images import as_path, is_image_file, show_path
from medrep.data.registry import register_data_scheme
from medrep.errors import BadInputError, MedrepError, Param, SpecError
from medrep.specs import Spec

SPLIT_NAMES = ("train", "val", "valid", "validation", "dev", "test")


def _subdirs(p: Path) -> list[Path]:
    return sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))


def _walk(p: Path, outer: tuple[Path, ...] = (), warn: bool = True):
    """``os.walk`` through symlinked folders too (patient/series folders are often links into a store),
    hidden entries skipped.  A folder that leads back to one above it — up to and including the dataset
    root, given as ``outer`` — is a link cycle: skipped, with a warning naming the link."""
    def key(path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:  # unreadable or dangling: os.walk skips it as well
            return None
        return st.st_dev, st.st_ino

    def cycle(path) -> None:
        if warn:
            warnings.warn(f"{show_path(path)}: link back to a folder above it (a cycle); skipped", stacklevel=4)

    start = tuple(key(o) for o in outer)
    if key(p) in start:
        cycle(p)
        return
    above = {os.fspath(p): start + (key(p),)}  # dirpath → (dev, inode) of every folder from the root down to it
    for dirpath, dirnames, filenames in os.walk(p, followlinks=True):
        chain = above.pop(dirpath, ())
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            sub = os.path.join(dirpath, d)
            k = key(sub)
            if k is None:
                continue
            if k in chain:
                cycle(sub)
                continue
            above[sub] = chain + (k,)
            keep.append(d)
        dirnames[:] = keep
        yield dirpath, filenames


def _images_under(p: Path, root: Path) -> list[Path]:
    """Image files below ``p`` (a folder inside ``root``) at any depth, sorted (deterministic order),
    hidden entries skipped."""
    rel = p.relative_to(root).parts
    outer = tuple(root.joinpath(*rel[:i]) for i in range(len(rel)))
    out = []
    for dirpath, filenames in _walk(p, outer):
        out.extend(Path(dirpath) / f for f in filenames if is_image_file(Path(dirpath) / f))
    return sorted(out)


def _looks_like_class_tree(path: str) -> bool:
    p = Path(path)
    if not p.is_dir():
        return False
    for sub in _subdirs(p):
        for dirpath, filenames in _walk(sub, (p,), warn=False):  # loading warns about cycles, once
            if any(is_image_file(Path(dirpath) / f) for f in filenames[:20]):
                return True
    return False


def load_class_tree(
    root,
    read: ReadOptions | None = None,
    masks: str | None = None,
    skip_bad: bool = False,
    skipped: SkipLog | None = None,
) -> ImageDataset:
    root = as_path(root)
    read = read or ReadOptions()
    where = show_path(root)
    if not root.exists():
        raise BadInputError("no such directory", where=where)
    if not root.is_dir():
        raise BadInputError("is not a directory (expected a folder with one subfolder per class)", where=where)
    top = _subdirs(root)
    if not top:
        raise MedrepError("no class folders (expected ROOT/<class>/<images>, optionally ROOT/<split>/<class>/…)", where=where)
    stray = [c for c in root.iterdir() if c.is_file() and is_image_file(c)]
    if stray:
        # Files beside the class folders have no label; say so instead of dropping them silently.
        warnings.warn(f"{where}: {len(stray)} image file(s) outside any class folder are ignored (e.g. {show_path(stray[0].name)})", stacklevel=2)
    split_level = all(d.name.lower() in SPLIT_NAMES for d in top)
    groups = {d.name: _subdirs(d) for d in top} if split_level else {None: top}
    classes = sorted({c.name for dirs in groups.values() for c in dirs})
    if not classes:
        raise MedrepError(f"split folders {', '.join(d.name for d in top)} contain no class folders", where=where)

    if masks is not None:
        masks_dir = as_path(masks)
        if not masks_dir.is_dir():
            raise BadInputError("mask folder does not exist", where=f"?masks={show_path(masks_dir)}")
    else:
        sibling = root.parent / f"{root.name}_masks"
        masks_dir = sibling if sibling.is_dir() else None

    parts: dict[str, ImageDataset] = {}
    for split, class_dirs in groups.items():
        entries = []
        for cdir in class_dirs:
            label = classes.index(cdir.name)
            for f in _images_under(cdir, root):
                rel = f.relative_to(root)
                mask = find_mask(masks_dir, rel) if masks_dir is not None else None
                entries.append(FileEntry(path=f, label=label, id=display_id(root, f), mask=mask))
        if not entries:
            if split is None:
                raise MedrepError("no images found in the class folders", where=where)
            continue  # an empty split folder is left out rather than failing the whole tree
        name = f"{where}:{split}" if split else where
        parts[split or "all"] = build_file_dataset(entries, classes, name, read, skip_bad, skipped)
    if not parts:
        raise MedrepError("no images found in any split folder", where=where)
    if not split_level:
        ds = parts["all"]
        ds.name = where
        return ds
    return SplitDataset(parts, name=where)


@register_data_scheme("folder", detect=_looks_like_class_tree)
def load_folder(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    opts = dict(spec.options)
    read = take_read_options(opts)
    masks = opts.pop("masks", None)
    if opts:
        raise SpecError(f"unknown option {sorted(opts)[0]!r} for folder: (known: masks, frame, frames, window)", where=Param("data"))
    return load_class_tree(spec.name, read=read, masks=masks, skip_bad=skip_bad, skipped=skipped)

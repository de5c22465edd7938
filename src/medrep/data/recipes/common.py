"""What the recipes share: finding the published files (and saying what was found instead), option checks,
and the finding options every multi-label recipe takes."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from medrep.data.files import ReadOptions, take_read_options
from medrep.data.findings import FindingPolicy, take_finding_options
from medrep.data.images import as_path, show_path
from medrep.errors import MedrepError, Param, SpecError

FINDING_HELP = {
    "finding": "one finding as a binary task (no NAME / NAME); without it, all findings (multi-label)",
    "uncertain": "uncertain (-1) labels: ones, zeros or ignore (default: ignore)",
    "blank": "blank labels: negative (default) or ignore",
}
READ_HELP = {"frame": "DICOM frame (0-based)", "window": "DICOM window c,w or none"}


def recipe_root(raw: str, recipe: str) -> Path:
    root = as_path(raw)
    if not root.is_dir():
        raise MedrepError(f"{recipe}: expected the dataset's folder, but {'it is a file' if root.exists() else 'it does not exist'}",
                          where=show_path(root))
    return root


def listing(folder: Path, limit: int = 8) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "nothing readable"
    if not names:
        return "an empty folder"
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def expect(root: Path, candidates: Iterable[str], recipe: str, what: str = "") -> Path:
    """The first of ``candidates`` (paths relative to ``root``) that exists; else an error naming the file
    expected and what the folder holds instead."""
    candidates = list(candidates)
    for c in candidates:
        if (root / c).exists():
            return root / c
    alts = " or ".join(candidates)
    raise MedrepError(f"{recipe}: expected {alts}{what} in this folder, found {listing(root)}", where=show_path(root))


def find_dataset_folder(root: Path, marker: str, names: Iterable[str]) -> Path:
    """``root`` itself when it holds ``marker``, else its child folder named one of ``names`` that does (users
    point at the download folder or at the dataset folder inside it)."""
    if (root / marker).exists():
        return root
    for name in names:
        if (root / name / marker).exists():
            return root / name
    return root


def take_options(options: dict[str, str], recipe: str, known: Iterable[str], findings: bool = False,
                 read: bool = False) -> tuple[dict[str, str], FindingPolicy, ReadOptions]:
    opts = dict(options)
    policy = take_finding_options(opts) if findings else FindingPolicy()
    read_opts = take_read_options(opts) if read else ReadOptions()
    known = list(known)
    extra = sorted(set(opts) - set(known))
    if extra:
        allowed = known + (list(FINDING_HELP) if findings else []) + (["frame", "frames", "window"] if read else [])
        raise SpecError(f"unknown option {extra[0]!r} for {recipe}: (known: {', '.join(sorted(allowed)) or 'none'})",
                        where=Param("data"))
    return opts, policy, read_opts


PATIENT_IN_PATH = re.compile(r"(?:^|/)(patient\d+)(?:/|$)")


def patient_from_path(path: str) -> str | None:
    """``patient00001`` out of CheXpert / MURA paths."""
    m = PATIENT_IN_PATH.search(path.replace("\\", "/"))
    return m.group(1) if m else None


def image_index(folders: Iterable[Path], suffixes: tuple[str, ...]) -> dict[str, Path]:
    """File name → path over ``folders`` (searched recursively), for sources whose CSV names files only."""
    index: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for p in folder.rglob("*"):
                if p.suffix.lower() in suffixes:
                    index.setdefault(p.name, p)
    return index

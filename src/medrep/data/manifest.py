"""CSV manifests: ``path,label[,mask][,caption][,split]`` (header required, column names case-insensitive).

Paths (image and mask) are relative to the CSV's folder unless absolute; images may be any format
:func:`medrep.data.images.read_image` reads, DICOM included.  Classes are the distinct label values,
sorted (numerically when every label is an integer), unless ``?classes=a,b,c`` fixes their order.
A ``split`` column gives a dataset with those splits (train, val, test first, others alphabetically).
Ids are the image paths as written in the CSV (plus ``#frame=N`` with ``frames=all``).
Options: ``classes=a,b,c`` and, for DICOM, ``frame=N``, ``frames=all``, ``window=c,w|none``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from medrep.data.base import ImageDataset, SkipLog, SplitDataset
from medrep.data.files import FileEntry, build_file_dataset, take_read_options
from medrep.data.images import as_path, check_readable, show_path
from medrep.data.registry import register_data_scheme
from medrep.errors import BadInputError, MedrepError, Param, SpecError
from medrep.specs import Spec, take_list_option

REQUIRED = ("path", "label")
OPTIONAL = ("mask", "caption", "split")
_SPLIT_ORDER = {"train": 0, "val": 1, "valid": 1, "validation": 1, "dev": 1, "test": 2}


def _class_order(values: set[str]) -> list[str]:
    try:
        return sorted(values, key=lambda v: (int(v), v))
    except ValueError:
        return sorted(values)


def read_manifest_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(column names, [(line number, row)]) with names lower-cased; blank lines are dropped."""
    where = show_path(path)
    check_readable(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadInputError(f"not UTF-8 text (byte {err.start}); save the manifest as UTF-8", where=where) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise MedrepError("manifest is empty (expected a header line path,label[,mask][,caption][,split])", where=where) from None
    except csv.Error as err:
        raise BadInputError(f"malformed CSV ({err})", where=where) from None
    cols = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise MedrepError(
            f"missing required column {missing[0]!r} (found columns: {', '.join(cols) or 'none'}; "
            "expected path,label[,mask][,caption][,split])",
            where=where,
        )
    dupes = sorted({c for c in cols if cols.count(c) > 1 and c})
    if dupes:
        raise MedrepError(f"column {dupes[0]!r} appears more than once", where=where)
    rows = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(cols):
                raise BadInputError(f"row {reader.line_num} has {len(values)} fields, the header has {len(cols)}", where=where)
            rows.append((reader.line_num, {c: v.strip() for c, v in zip(cols, values)}))
    except csv.Error as err:
        raise BadInputError(f"malformed CSV near row {reader.line_num} ({err})", where=where) from None
    return cols, rows


def load_manifest(path, options: dict[str, str] | None = None, skip_bad: bool = False, skipped: SkipLog | None = None) -> ImageDataset:
    csv_path = as_path(path)
    where = show_path(csv_path)
    skipped = skipped if skipped is not None else SkipLog()
    opts = dict(options or {})
    read = take_read_options(opts)
    fixed = take_list_option(opts, "classes")
    if opts:
        raise SpecError(f"unknown option {sorted(opts)[0]!r} for csv: (known: classes, frame, frames, window)", where=Param("data"))
    cols, rows = read_manifest_rows(csv_path)
    if not rows:
        raise MedrepError("manifest has a header but no rows", where=where)
    base = csv_path.parent

    for line, row in rows:
        for col in REQUIRED + (("split",) if "split" in cols else ()):
            if not row[col]:
                raise BadInputError(f"row {line}: empty {col!r} value", where=where)
    labels_seen = {row["label"] for _, row in rows}
    if fixed is not None:
        unknown = sorted(labels_seen - set(fixed))
        if unknown:
            line = next(n for n, r in rows if r["label"] == unknown[0])
            raise BadInputError(f"row {line}: label {unknown[0]!r} is not in ?classes={','.join(fixed)}", where=where)
        classes = fixed
    else:
        classes = _class_order(labels_seen)

    seen: dict[str, int] = {}
    by_split: dict[str, list[FileEntry]] = {}
    for line, row in rows:
        rel = row["path"]
        key = PurePosixPath(rel.replace("\\", "/")).as_posix()
        if key in seen:
            raise BadInputError(f"row {line}: {rel} is listed twice (first at row {seen[key]})", where=where)
        seen[key] = line
        img = Path(rel) if Path(rel).is_absolute() else base / rel
        mask = None
        if row.get("mask"):
            mask = Path(row["mask"]) if Path(row["mask"]).is_absolute() else base / row["mask"]
        entry = FileEntry(
            path=img,
            label=classes.index(row["label"]),
            id=key,
            mask=mask,
            caption=row.get("caption") or None,
            origin=f"{where} row {line}",
        )
        by_split.setdefault(row.get("split") or "all", []).append(entry)

    has_captions = "caption" in cols
    parts: dict[str, ImageDataset] = {}
    for split in sorted(by_split, key=lambda s: (_SPLIT_ORDER.get(s.lower(), 9), s)):
        name = f"{where}:{split}" if "split" in cols else where
        try:
            parts[split] = build_file_dataset(by_split[split], classes, name, read, skip_bad, skipped, has_captions)
        except BadInputError:
            if not skip_bad:
                raise
            continue  # every row of this split was skipped; the SkipLog lists them
    if not parts:
        raise BadInputError("no usable rows (all were skipped as bad)", where=where)
    if "split" not in cols:
        return parts["all"]
    return SplitDataset(parts, name=where)


@register_data_scheme("csv", detect=lambda p: p.lower().endswith(".csv") and Path(p).is_file())
def _load_csv(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_manifest(spec.name, spec.options, skip_bad, skipped)

"""Tabular sources: reading a CSV row by row, finding its columns, and assembling images with their labels
(class names, integers, multi-label findings), patients, attributes, masks, captions and splits into
datasets.  The generic ``csv:`` source and every published-dataset recipe build on :class:`TableBuilder`.

Rows are streamed and kept column-wise, so a CheXpert-sized index (224k rows) stays small; images are
opened only when an item is used.
"""
from __future__ import annotations

import csv
import io
import os
from array import array
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from medrep.data.annotations import EmptyMask, MaskSource
from medrep.data.base import ImageDataset, SkipLog, SplitDataset
from medrep.data.files import FileEntry, ReadOptions, SecondReaderEntry, TableInfo, build_file_dataset
from medrep.data.findings import FindingPolicy, apply_policy, binary_classes, resolve_finding
from medrep.data.images import check_readable, show_path
from medrep.errors import BadInputError, MedrepError

SPLIT_ORDER = {"train": 0, "val": 1, "valid": 1, "validation": 1, "validate": 1, "dev": 1, "test": 2}
MULTI_LABEL_CLASS = "(multi-label: see findings)"


def class_order(values: set[str]) -> list[str]:
    """Class names sorted numerically when every one is an integer, else alphabetically."""
    try:
        return sorted(values, key=lambda v: (int(v), v))
    except ValueError:
        return sorted(values)


def split_order(names) -> list[str]:
    return sorted(names, key=lambda s: (SPLIT_ORDER.get(s.lower(), 9), s))


def read_text(path: Path, what: str = "CSV") -> str:
    """A text file as str (``.gz`` files, as MIMIC-CXR ships its CSVs, are decompressed)."""
    check_readable(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise BadInputError(f"not a readable gzip file ({err})", where=show_path(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadInputError(f"not UTF-8 text (byte {err.start}); save the {what} as UTF-8", where=show_path(path)) from None


class CsvTable:
    """A CSV's header (as written, stripped) and its non-blank rows as (line number, values), streamed.

    ``header=False`` reads a headerless file (MURA's path lists); ``columns`` then names its columns.
    """

    def __init__(self, path: Path, header: bool = True, columns: Sequence[str] | None = None, empty_hint: str = ""):
        self.path = Path(path)
        self.where = show_path(self.path)
        self._text = read_text(self.path)
        self._reader = csv.reader(io.StringIO(self._text, newline=""))
        if header:
            try:
                self.header = [h.strip() for h in next(self._reader)]
            except StopIteration:
                raise MedrepError(f"file is empty{empty_hint}", where=self.where) from None
            except csv.Error as err:
                raise BadInputError(f"malformed CSV ({err})", where=self.where) from None
        else:
            self.header = list(columns or [])
        named = [h for h in self.header if h]
        dupes = sorted({h for h in named if named.count(h) > 1})
        if dupes:
            raise MedrepError(f"column {dupes[0]!r} appears more than once", where=self.where)

    def column(self, name: str, option: str | None = None) -> int:
        """Index of column ``name`` (exact, else case-insensitive); an unknown name lists the columns."""
        if name in self.header:
            return self.header.index(name)
        folded = [h.lower() for h in self.header]
        if name.lower() in folded:
            return folded.index(name.lower())
        how = f" (given by ?{option}={name})" if option else ""
        raise MedrepError(f"no column {name!r}{how}; the columns are: {', '.join(repr(h) for h in self.header if h)}",
                          where=self.where)

    def has(self, name: str) -> bool:
        return name.lower() in (h.lower() for h in self.header)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.header)
        try:
            for values in self._reader:
                if not any(v.strip() for v in values):
                    continue
                if width and len(values) != width:
                    raise BadInputError(f"row {self._reader.line_num} has {len(values)} fields, the header has {width}",
                                        where=self.where)
                yield self._reader.line_num, values
        except csv.Error as err:
            raise BadInputError(f"malformed CSV near row {self._reader.line_num} ({err})", where=self.where) from None


class TableBuilder:
    """Rows (one image each) collected column-wise, then turned into a dataset (with splits when given).

    Label forms: ``label`` (a class name or integer), ``codes`` (one 1 / 0 / −1 / NaN per finding, with
    ``findings`` named up front), mask per row (single-label) or per finding (``finding_masks``).
    """

    def __init__(self, where: str, attribute_names: Sequence[str] = (), findings: Sequence[str] | None = None,
                 policy: FindingPolicy | None = None, fill_missing_masks: bool = True):
        self.where = where
        self.fill_missing_masks = fill_missing_masks
        self.attribute_names = tuple(attribute_names)
        self.findings = list(findings) if findings is not None else None
        self.policy = policy or FindingPolicy()
        self.paths: list[Path | str] = []
        self.ids: list[str] = []
        self.origins: list[str] = []
        self.labels: list[str] = []
        self.codes = array("f")
        self.patients: list[str | None] = []
        self.attributes: list[tuple[str, ...]] = []
        self.splits: list[str] = []
        self.captions: list[str | None] = []
        self.masks: list[MaskSource | Path | None] = []
        self.finding_masks: dict[int, dict[str, MaskSource]] = {}
        # a second reader's annotations per row: {finding or None: (masks, points)}; rows absent were not read
        self.second_readings: dict[int, dict[str | None, tuple[list, list]]] = {}
        self.second_points = False  # the second reader's source has most-representative points
        self.frames: list[int | None] = []
        self._seen: dict[str, str] = {}
        self.any_split = False
        self.any_caption = False
        self.annotated = False  # some row has a mask: rows without one get an empty mask (no lesion drawn)

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: Path | str, id: str, origin: str, *, label: str = "", codes: Sequence[float] | None = None,
            patient: str | None = None, attributes: Sequence[str] = (), split: str | None = None,
            caption: str | None = None, mask: MaskSource | Path | None = None, frame: int | None = None) -> int:
        if id in self._seen:
            raise BadInputError(f"{id} is listed twice (first at {self._seen[id]})", where=origin)
        self._seen[id] = origin
        self.paths.append(path)
        self.ids.append(id)
        self.origins.append(origin)
        self.labels.append(label)
        if self.findings is not None:
            if codes is None or len(codes) != len(self.findings):
                raise BadInputError(f"expected {len(self.findings)} finding labels", where=origin)
            self.codes.extend(codes)
        self.patients.append(patient or None)
        self.attributes.append(tuple(attributes))
        self.splits.append(split or "all")
        self.any_split |= split is not None
        self.captions.append(caption)
        self.any_caption |= caption is not None
        self.masks.append(mask)
        self.annotated |= mask is not None
        self.frames.append(frame)
        return len(self.paths) - 1

    def add_finding_mask(self, row: int, finding: str, mask: MaskSource) -> None:
        from medrep.data.annotations import merge_masks

        per = self.finding_masks.setdefault(row, {})
        per[finding] = merge_masks([per[finding], mask]) if finding in per else mask
        self.annotated = True

    def add_second_reading(self, row: int, finding: str | None = None, mask: MaskSource | Path | str | None = None,
                           points: Sequence[Sequence[float]] = ()) -> None:
        """Row ``row`` was read by a second reader (with nothing drawn unless ``mask`` / ``points`` say so); ``finding``:
        the finding the annotation belongs to (None: the row's own, single-label sources)."""
        masks, marked = self.second_readings.setdefault(row, {}).setdefault(finding, ([], []))
        if mask is not None:
            masks.append(mask)
        marked.extend((float(p[0]), float(p[1])) for p in points)

    def _second_for(self, row: int, finding: str | None):
        from medrep.data.annotations import merge_masks

        per = self.second_readings.get(row)
        if per is None:
            return None
        if finding is not None:
            chosen = [per.get(finding, ([], [])), per.get(None, ([], []))]
        else:  # a single-label view of per-finding annotations: everything this reader drew on the image
            chosen = list(per.values())
        masks = [m for ms, _ in chosen for m in ms]
        points = tuple(p for _, ps in chosen for p in ps)
        if len(masks) > 1 and not all(isinstance(m, MaskSource) for m in masks):
            raise BadInputError("several second-reader mask files for one image", where=self.origins[row])
        mask = None if not masks else masks[0] if len(masks) == 1 else merge_masks(masks)
        return SecondReaderEntry(mask=mask, points=points if self.second_points else None)

    def row_of(self, id: str) -> int | None:
        return self._row_index().get(id)

    def _row_index(self) -> dict[str, int]:
        if getattr(self, "_index", None) is None or len(self._index) != len(self.ids):
            self._index = {i: k for k, i in enumerate(self.ids)}
        return self._index

    def _single_label_task(self, fixed: list[str] | None) -> tuple[list[str], np.ndarray, np.ndarray, dict]:
        labels = np.array(self.labels, dtype=object)
        empty = np.flatnonzero(labels == "")
        if len(empty):
            raise BadInputError("empty label value", where=self.origins[int(empty[0])])
        seen = set(self.labels)
        if fixed is not None:
            unknown = sorted(seen - set(fixed))
            if unknown:
                row = self.labels.index(unknown[0])
                raise BadInputError(f"label {unknown[0]!r} is not in ?classes={','.join(fixed)}", where=self.origins[row])
            classes = fixed
        else:
            classes = class_order(seen)
        pos = {c: i for i, c in enumerate(classes)}
        return classes, np.array([pos[v] for v in self.labels], dtype=np.int64), np.arange(len(self)), {}

    def _task(self, fixed: list[str] | None):
        """(classes, label per kept row, kept rows, finding matrix or None, task description)."""
        if self.findings is None:
            classes, labels, rows, task = self._single_label_task(fixed)
            return classes, labels, rows, None, task
        matrix = apply_policy(np.frombuffer(self.codes, dtype=np.float32).reshape(len(self), len(self.findings)),
                              self.policy)
        task = self.policy.to_dict()
        if self.policy.finding is None:
            return [MULTI_LABEL_CLASS], np.zeros(len(self), np.int64), np.arange(len(self)), matrix, task
        j = resolve_finding(self.policy.finding, self.findings, "?finding")
        name = self.findings[j]
        task["finding"] = name
        column = matrix[:, j]
        rows = np.flatnonzero(~np.isnan(column))
        if not len(rows):
            raise MedrepError(f"no image has a usable {name!r} label under uncertain={self.policy.uncertain}, "
                              f"blank={self.policy.blank}", where=self.where)
        return binary_classes(name), column[rows].astype(np.int64), rows, None, task

    def _mask_for(self, row: int, finding: str | None) -> MaskSource | Path | None:
        per = self.finding_masks.get(row)
        if per is not None or (self.finding_masks and self.masks[row] is None):
            from medrep.data.annotations import merge_masks

            if finding is not None:
                own = (per or {}).get(finding)
            else:  # a single-label source with per-finding outlines: every outline of the image
                own = merge_masks(list((per or {}).values())) if per else None
            parts = [m for m in (self.masks[row], own) if m is not None]
            if not parts:
                return EmptyMask()
            return parts[0] if len(parts) == 1 else merge_masks(parts)  # type: ignore[arg-type]
        mask = self.masks[row]
        return EmptyMask() if mask is None and self.annotated and self.fill_missing_masks else mask

    def build(self, read: ReadOptions, skip_bad: bool = False, skipped: SkipLog | None = None,
              classes: list[str] | None = None) -> ImageDataset:
        if not len(self):
            raise MedrepError("no rows", where=self.where)
        skipped = skipped if skipped is not None else SkipLog()
        classes, labels, rows, matrix, task = self._task(classes)
        finding = task.get("finding") if self.findings is not None else None
        info = TableInfo(self.attribute_names, tuple(self.findings) if matrix is not None else (), matrix, task or None)
        by_split: dict[str, list[FileEntry]] = {}
        for label, r in zip(labels.tolist(), rows.tolist()):
            entry = FileEntry(path=self.paths[r], label=label, id=self.ids[r], mask=self._mask_for(r, finding),
                              caption=self.captions[r], frame=self.frames[r], origin=self.origins[r],
                              patient=self.patients[r], attributes=self.attributes[r], row=r,
                              second=self._second_for(r, finding))
            by_split.setdefault(self.splits[r], []).append(entry)
        parts: dict[str, ImageDataset] = {}
        for split in split_order(by_split):
            name = f"{self.where}:{split}" if self.any_split else self.where
            try:
                parts[split] = build_file_dataset(by_split[split], classes, name, read, skip_bad, skipped,
                                                  self.any_caption, info)
            except BadInputError:
                if not skip_bad:
                    raise
        if not parts:
            raise BadInputError("no usable rows (all were skipped as bad)", where=self.where)
        if not self.any_split:
            return parts["all"]
        return SplitDataset(parts, name=self.where)


def resolve_path(raw: str, root: Path | str) -> str:
    """``raw`` relative to ``root`` unless absolute, as a string (a Path per row is slow at 224k rows)."""
    return os.path.join(root, raw)

"""A dataset of image files on disk (folders, CSV manifests and DICOM sources all build one).

Files are checked (exist, non-empty) when the dataset is built and decoded lazily in ``_load``.  With
``skip_bad`` every item is decoded once up front, so that what is unusable is known — and recorded in
the SkipLog for the run manifest — before any analysis starts.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from medrep.data.annotations import MaskSource
from medrep.data.base import ImageDataset, Item, SecondReading, SkipLog, validate_item
from medrep.data.dicom_pixels import parse_window
from medrep.data.images import MASK_SUFFIXES, check_readable, is_dicom_file, read_image, read_mask, show_path
from medrep.errors import BadInputError, SpecError
from medrep.io import digest_bytes, digest_file, digest_json
from medrep.specs import take_int_option


@dataclass(frozen=True)
class FileEntry:
    path: Path | str  # str from the tabular sources: building a Path per row would dominate a large index
    label: int
    id: str
    mask: Path | str | MaskSource | None = None  # a mask file, or boxes / polygons / RLE / several files
    caption: str | None = None
    frame: int | None = None  # DICOM frame (0-based); None = the file's middle frame
    origin: str | None = None  # e.g. "labels.csv row 7", prefixed to messages about this entry
    patient: str | None = None
    attributes: tuple[str, ...] = ()  # values of the dataset's attribute_names, in order
    row: int = -1  # row of the dataset's finding matrix (multi-label sources)
    second: "SecondReaderEntry | None" = None  # a second reader's annotation (CheXlocalize's human benchmark)


@dataclass(frozen=True)
class SecondReaderEntry:
    """Where a second reader's annotation of one entry comes from: a mask (file or source; None: outlined
    nothing) and the points marked as most representative (x, y; None when the source has no points)."""

    mask: Path | str | MaskSource | None = None
    points: tuple[tuple[float, float], ...] | None = None

    def files(self) -> tuple:
        if isinstance(self.mask, (str, Path)):
            return (self.mask,)
        return tuple(self.mask.files) if self.mask is not None else ()

    def digest_key(self, mask_key) -> list:
        return [None if self.mask is None else mask_key(self.mask), None if self.points is None else [list(p) for p in self.points]]


@dataclass(frozen=True)
class ReadOptions:
    """How files are decoded: DICOM frame choice and window (see :mod:`medrep.data.dicom`)."""

    frame: int | None = None
    all_frames: bool = False
    window: tuple[float, float] | str | None = None

    def to_dict(self) -> dict:
        return {"frame": self.frame, "all_frames": self.all_frames, "window": self.window}


def take_read_options(options: dict[str, str]) -> ReadOptions:
    """Pop ``frame``, ``frames`` and ``window`` from spec options (the caller rejects what remains)."""
    frame = take_int_option(options, "frame", "a 0-based integer")
    if frame is not None and frame < 0:
        raise SpecError(f"frame must be ≥ 0, got {frame}", where="?frame")
    all_frames = False
    if "frames" in options:
        raw = options.pop("frames")
        if raw.lower() != "all":
            raise SpecError(f"frames only accepts 'all' (use frame=N for one frame), got {raw!r}", where="?frames")
        all_frames = True
    if frame is not None and all_frames:
        raise SpecError("give either frame=N or frames=all, not both", where="?frames")
    return ReadOptions(frame=frame, all_frames=all_frames, window=parse_window(options.pop("window", None)))


def find_mask(masks_dir: Path, rel: Path) -> Path | None:
    """The mask for image ``rel`` (relative path): same relative path in ``masks_dir``, any mask suffix."""
    for cand in [masks_dir / rel] + [masks_dir / rel.with_suffix(s) for s in MASK_SUFFIXES]:
        if cand.suffix.lower() in MASK_SUFFIXES and cand.is_file():
            return cand
    return None


@dataclass(frozen=True)
class TableInfo:
    """What a tabular source adds to its files: attribute names, and the findings with their 1 / 0 / NaN
    matrix (rows indexed by ``FileEntry.row``) for a multi-label source."""

    attribute_names: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    finding_matrix: np.ndarray | None = None
    task: dict | None = None  # how labels were made (finding policy), for describe() and the cache key


class FileDataset(ImageDataset):
    def __init__(self, entries: list[FileEntry], classes: list[str], name: str, read: ReadOptions, has_captions: bool = False,
                 table: TableInfo | None = None):
        self.entries = entries
        self.classes = list(classes)
        self.name = name
        self.read = read
        self._has_captions = has_captions
        self.table = table or TableInfo()
        self._labels = np.array([e.label for e in entries], dtype=np.int64)
        self._digest: str | None = None
        self._patients = (np.array([e.patient for e in entries], dtype=object)
                          if entries and all(e.patient is not None for e in entries) else None)
        fm = self.table.finding_matrix
        self._findings = fm[np.array([e.row for e in entries], dtype=np.int64)] if fm is not None else None

    def __len__(self) -> int:
        return len(self.entries)

    def _origin_errors(self, e: FileEntry, fn):
        try:
            return fn()
        except BadInputError as err:
            if e.origin is None or (err.where or "").startswith(e.origin):
                raise
            raise BadInputError(str(err), where=e.origin) from None

    def _read_mask(self, e: FileEntry, shape: tuple[int, int]) -> torch.Tensor | None:
        if e.mask is None:
            return None
        if isinstance(e.mask, MaskSource):
            return torch.from_numpy(e.mask.render(shape))
        return read_mask(e.mask, shape=shape)

    def _load(self, index: int) -> Item:
        e = self.entries[index]

        def load():
            image = read_image(e.path, frame=e.frame if e.frame is not None else self.read.frame, window=self.read.window)
            return image, self._read_mask(e, tuple(image.shape[1:]))

        image, mask = self._origin_errors(e, load)
        second = None
        if e.second is not None:
            shape = tuple(image.shape[1:])
            drawn = self._origin_errors(e, lambda: self._read_mask(replace(e, mask=e.second.mask), shape))
            points = None if e.second.points is None else np.array(e.second.points, dtype=np.float64).reshape(-1, 2)
            second = SecondReading(mask=drawn if drawn is not None else torch.zeros(shape, dtype=torch.bool), points=points)
        return Item(id=e.id, image=image, label=e.label, mask=mask, caption=e.caption, patient=e.patient,
                    attributes=dict(zip(self.table.attribute_names, e.attributes)), second_reader=second)

    @property
    def patients(self) -> np.ndarray | None:
        return self._patients

    @property
    def attribute_names(self) -> list[str]:
        return list(self.table.attribute_names)

    def attribute_values(self, name: str) -> np.ndarray:
        if name not in self.table.attribute_names:
            return super().attribute_values(name)
        k = self.table.attribute_names.index(name)
        return np.array([e.attributes[k] for e in self.entries], dtype=object)

    @property
    def findings(self) -> list[str]:
        return list(self.table.findings)

    @property
    def finding_matrix(self) -> np.ndarray | None:
        """(N, F) float32: 1 positive, 0 negative, NaN not used (by the uncertain / blank policy)."""
        return self._findings

    def describe(self) -> dict:
        out = super().describe()
        if self.table.task:
            out["task"] = self.table.task
        return out

    def item_id(self, index: int) -> str:
        return self.entries[index].id

    def has_lesion(self, index: int) -> bool:
        e = self.entries[index]
        if e.mask is None:
            return False
        # the mask alone: the image is decoded only if it is explained
        if isinstance(e.mask, MaskSource):
            return self._origin_errors(e, e.mask.nonempty)
        return self._origin_errors(e, lambda: bool(read_mask(e.mask).any()))

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def has_masks(self) -> bool:
        return bool(self.entries) and all(e.mask is not None for e in self.entries)

    @property
    def has_second_reader(self) -> bool:
        return bool(self.entries) and all(e.second is not None for e in self.entries)

    @property
    def has_captions(self) -> bool:
        return self._has_captions

    def content_digest(self) -> str:
        """File bytes of every image and mask, plus ids, labels, captions and decode options (memoised)."""
        if self._digest is None:
            file_digests: dict[Path, str] = {}

            def dig(p: Path | None) -> str | None:
                if p is None:
                    return None
                if p not in file_digests:
                    file_digests[p] = digest_file(p)
                return file_digests[p]

            def mask_key(m):
                return m.digest_key() if isinstance(m, MaskSource) else dig(m)

            rows = [[e.id, e.label, dig(e.path), mask_key(e.mask), e.caption, e.frame] for e in self.entries]
            content = {"files": rows, "classes": self.classes, "read": self.read.to_dict()}
            # patients, attributes and findings join the key only when present, so existing keys stay as they were
            if self._patients is not None:
                content["patients"] = self._patients.tolist()
            if self.table.attribute_names:
                content["attributes"] = [list(self.table.attribute_names), [list(e.attributes) for e in self.entries]]
            if self._findings is not None:
                content["findings"] = [list(self.table.findings), digest_bytes(self._findings.tobytes())]
            if self.table.task:
                content["task"] = self.table.task
            if any(e.second is not None for e in self.entries):
                content["second_reader"] = [None if e.second is None else e.second.digest_key(mask_key) for e in self.entries]
            self._digest = digest_json(content)
        return self._digest


def check_file(path: str | Path) -> None:
    """:func:`~medrep.data.images.check_readable` in one ``stat`` call and without building a Path: an index of
    hundreds of thousands of files checks each of them."""
    import os
    import stat as stat_module

    try:
        st = os.stat(path)
    except OSError:
        check_readable(path)  # names the problem (no such file, no permission …)
        raise
    if not stat_module.S_ISREG(st.st_mode) or st.st_size == 0:
        check_readable(path)


def _fail(entry: FileEntry, err: BadInputError, skip_bad: bool, skipped: SkipLog) -> None:
    where = entry.origin or entry.id
    if not skip_bad:
        if entry.origin is None:
            raise err
        raise BadInputError(str(err), where=entry.origin) from None
    skipped.add(where, str(err))


def build_file_dataset(
    entries: list[FileEntry],
    classes: list[str],
    name: str,
    read: ReadOptions,
    skip_bad: bool = False,
    skipped: SkipLog | None = None,
    has_captions: bool = False,
    table: TableInfo | None = None,
) -> FileDataset:
    """Check files, expand DICOM frames if asked, and (with ``skip_bad``) drop items that do not decode."""
    skipped = skipped if skipped is not None else SkipLog()
    kept: list[FileEntry] = []
    for e in entries:
        try:
            check_file(e.path)
            for m in ((e.mask,) if isinstance(e.mask, (str, Path)) else e.mask.files if e.mask is not None else ()):
                check_file(m)
            for m in (e.second.files() if e.second is not None else ()):
                check_file(m)
        except BadInputError as err:
            _fail(e, err, skip_bad, skipped)
            continue
        if read.all_frames and is_dicom_file(e.path):
            from medrep.data.dicom_pixels import dicom_frame_count

            try:
                n = dicom_frame_count(e.path)
            except BadInputError as err:
                _fail(e, err, skip_bad, skipped)
                continue
            kept.extend(replace(e, frame=k, id=f"{e.id}#frame={k}") for k in range(n))
        else:
            kept.append(e)
    ds = FileDataset(kept, classes, name, read, has_captions, table)
    if skip_bad:
        good = []
        for i, e in enumerate(kept):
            try:
                validate_item(ds._load(i))
                good.append(e)
            except BadInputError as err:
                skipped.add(e.origin or e.id, str(err).removeprefix(f"{e.origin}: ") if e.origin else str(err))
        ds = FileDataset(good, classes, name, read, has_captions, table)
    if len(ds) == 0:
        raise BadInputError("no usable images" + (" (all were skipped as bad)" if entries else ""), where=name)
    return ds


def display_id(root: Path, path: Path) -> str:
    """Item id: the path relative to the dataset root, posix-style, printable even for non-UTF-8 names."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = path
    return show_path(rel.as_posix())

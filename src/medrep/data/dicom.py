"""The ``dicom:`` data source: a DICOM file, a folder of DICOM files, or class subfolders of them.

Decoding (windowing, multi-frame, privacy: only the pixel-module tags are read) lives in
:mod:`medrep.data.dicom_pixels`; its names are re-exported here for older imports.
"""
from __future__ import annotations

from pathlib import Path

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.dicom_headers import HEADER_OPTIONS, take_header_options, with_header_attributes
from medrep.data.dicom_pixels import (PIXEL_TAGS, _open, dicom_frame_count, parse_window,  # noqa: F401  (re-exports)
                                      read_dicom_frames, window_linear)
from medrep.data.files import FileEntry, build_file_dataset, find_mask, take_read_options
from medrep.data.folders import load_class_tree
from medrep.data.paths import as_path, is_dicom_file, show_path
from medrep.data.registry import register_data_scheme
from medrep.errors import BadInputError, MedrepError, Param, SpecError
from medrep.specs import Spec


def _is_dicom_source(path: str) -> bool:
    """A DICOM file, or a folder whose own files are DICOM (class subfolders go to ``folder:``)."""
    p = Path(path)
    if p.is_file():
        return is_dicom_file(p)
    if p.is_dir():
        files = [c for c in p.iterdir() if c.is_file() and not c.name.startswith(".")]
        return any(is_dicom_file(c) for c in files[:50])
    return False


@register_data_scheme("dicom", detect=_is_dicom_source)
def load_dicom(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    """``dicom:FILE`` (one item), ``dicom:DIR`` of DICOM files (one class, named after the folder), or
    ``dicom:DIR`` of class subfolders (one class per subfolder, as ``folder:``).  ``?attributes=PatientSex,...``
    carries allowed header fields as item attributes (see :mod:`medrep.data.dicom_headers`)."""
    opts = dict(spec.options)
    read = take_read_options(opts)
    masks = opts.pop("masks", None)
    headers = take_header_options(opts)
    if opts:
        raise SpecError(f"unknown option {sorted(opts)[0]!r} for dicom: (known: frame, frames, window, masks, "
                        f"{', '.join(HEADER_OPTIONS)})", where=Param("data"))
    return with_header_attributes(_load_files(spec.name, read, masks, skip_bad, skipped), headers)


def _load_files(raw: str, read, masks: str | None, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = as_path(raw)
    if not root.exists():
        raise BadInputError("no such file or directory", where=show_path(root))
    if root.is_file():
        entry = FileEntry(path=root, label=0, id=show_path(root.name))
        return build_file_dataset([entry], ["unlabelled"], name=show_path(root), read=read, skip_bad=skip_bad, skipped=skipped)
    own = sorted(c for c in root.iterdir() if c.is_file() and not c.name.startswith(".") and is_dicom_file(c))
    if not own:
        return load_class_tree(root, read=read, masks=masks, skip_bad=skip_bad, skipped=skipped)
    if any(c.is_dir() and not c.name.startswith(".") for c in root.iterdir()):
        raise MedrepError(
            "folder holds both DICOM files and subfolders; put every file in a class subfolder, or list them in a CSV manifest",
            where=show_path(root),
        )
    masks_dir = as_path(masks) if masks is not None else root.parent / f"{root.name}_masks"
    if masks is not None and not masks_dir.is_dir():
        raise BadInputError("mask folder does not exist", where=f"?masks={show_path(masks_dir)}")
    entries = [
        FileEntry(path=c, label=0, id=show_path(c.name), mask=find_mask(masks_dir, Path(c.name)) if masks_dir.is_dir() else None)
        for c in own
    ]
    name = show_path(root.name) or "dicom"
    return build_file_dataset(entries, [name], name=show_path(root), read=read, skip_bad=skip_bad, skipped=skipped)

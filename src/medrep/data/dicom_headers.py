"""Item attributes from DICOM headers, on request only (``?attributes=PatientSex,ViewPosition``).

An allow-list: only :data:`HEADER_ATTRIBUTES` can be asked for, and only the asked elements are parsed
(``specific_tags``), so names, ids, dates, institutions and free text are never read into memory.
``PatientAge`` (a DICOM age string, "045Y") is binned as it is read (``?age_bins=18,40,65``; default decades):
the exact age never reaches an item, a subgroup name or a file.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

from medrep.data.ages import DECADES, UNKNOWN, age_band, parse_age_bins
from medrep.errors import SpecError

HEADER_ATTRIBUTES = ("PatientSex", "PatientAge", "ViewPosition", "Modality", "BodyPartExamined", "Manufacturer",
                     "ManufacturerModelName")
#: the spec options a DICOM-backed source takes for header attributes
HEADER_OPTIONS = {
    "attributes": f"DICOM header attributes to carry, from {','.join(HEADER_ATTRIBUTES)} (names, ids, dates and free "
                  "text are never read)",
    "age_bins": "edges of the PatientAge bands, comma-separated years (default: decades)",
}


@dataclass(frozen=True)
class HeaderRequest:
    names: tuple[str, ...]
    age_bins: tuple[float, ...] = DECADES
    option: str = "attributes"  # the spec option that asked (errors name it)


def take_header_options(options: dict[str, str], option: str = "attributes") -> HeaderRequest | None:
    """Pop ``option`` (``attributes``; ``dicom_attributes`` in a CSV manifest, whose ``attributes`` are its columns)
    and ``age_bins`` from spec options; None when no header attribute is asked for.  A field outside the
    allow-list is refused with the allowed list."""
    raw, bins = options.pop(option, None), options.pop("age_bins", None)
    if raw is None:
        if bins is not None:
            raise SpecError(f"age_bins bands PatientAge: add {option}=PatientAge", where="?age_bins")
        return None
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    refused = [n for n in names if n not in HEADER_ATTRIBUTES]
    if refused or not names:
        what = f"{refused[0]!r} is not a DICOM attribute medrep reads" if refused else "name at least one attribute"
        raise SpecError(f"{what} (allowed: {', '.join(HEADER_ATTRIBUTES)}; names, ids, dates and free text are never read)",
                        where=f"?{option}")
    return HeaderRequest(names, parse_age_bins(bins, where="?age_bins") if bins is not None else DECADES, option)


def read_header_attributes(path, request: HeaderRequest) -> tuple[str, ...]:
    """The requested header values of one file ("" where absent, or when the file is not DICOM)."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, specific_tags=list(request.names), stop_before_pixels=True)
    except Exception:  # not DICOM, or an unreadable header: the pixel reader names the problem if it is used
        return tuple(UNKNOWN for _ in request.names)
    values = []
    for name in request.names:
        value = ds.get(name)
        text = UNKNOWN if value is None or value == "" else str(value).strip()
        values.append(age_band(text, request.age_bins) if name == "PatientAge" and text else text)
    return tuple(values)


def with_header_attributes(dataset, request: HeaderRequest | None):
    """``dataset`` (file-backed, or named splits of file-backed parts) with the requested header attributes added
    to each item's attributes; each file's header is read once."""
    if request is None:
        return dataset
    from medrep.data.base import SplitDataset
    from medrep.data.files import FileDataset

    if isinstance(dataset, SplitDataset):
        return SplitDataset({k: with_header_attributes(p, request) for k, p in dataset.parts.items()}, name=dataset.name)
    if not isinstance(dataset, FileDataset):
        raise SpecError(f"dataset {dataset.name} is not read from files; DICOM header attributes need DICOM files",
                        where=f"?{request.option}")
    clash = [n for n in request.names if n in dataset.table.attribute_names]
    if clash:
        raise SpecError(f"the data already has an attribute {clash[0]!r}", where=f"?{request.option}")
    read: dict[str, tuple[str, ...]] = {}  # the frames of one multi-frame file share its header
    entries = []
    for e in dataset.entries:
        key = str(e.path)
        if key not in read:
            read[key] = read_header_attributes(e.path, request)
        entries.append(replace(e, attributes=tuple(e.attributes) + read[key]))
    table = replace(dataset.table, attribute_names=tuple(dataset.table.attribute_names) + request.names)
    return FileDataset(entries, dataset.classes, dataset.name, dataset.read, dataset.has_captions, table)

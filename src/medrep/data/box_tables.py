"""Lesion boxes from a CSV beside a manifest (``csv:FILE?...&boxes=BOXES.csv``): one row per box, several per image.

The box CSV's header names the image (``path``, or ``image``), optionally the finding the box outlines
(``finding``, ``label`` or ``class_name``), and the box as ``x,y,w,h`` (also ``x,y,width,height``) or
``x_min,y_min,x_max,y_max`` — in the original image's pixels; the box is scaled with the image through the
model's geometry.  A box with a finding belongs to that finding (``?finding=NAME`` scores the maps against
NAME's boxes only); a box without one outlines the image's lesion whatever the label.  An image listed in the
manifest without a box has an empty mask (no lesion); a box of an image the manifest does not list, or of an
unknown finding, is an error naming its row.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from medrep.data.annotations import Boxes, box_from
from medrep.data.images import as_path, show_path
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError, MedrepError

_FORMS = {"xywh": (("x", "y", "w", "h"), ("x", "y", "width", "height")),
          "xyxy": (("x_min", "y_min", "x_max", "y_max"), ("xmin", "ymin", "xmax", "ymax"))}
_IMAGE = ("path", "image")
_FINDING = ("finding", "label", "class_name")
EXPECTED = "path[,finding],x,y,w,h or path[,finding],x_min,y_min,x_max,y_max"


def box_csv_path(raw: str, manifest: Path) -> Path:
    """``raw`` as given, else beside the manifest."""
    given = as_path(raw)
    if given.is_file() or given.is_absolute():
        return given
    beside = manifest.parent / raw
    return beside if beside.is_file() else given


def _layout(table: CsvTable) -> tuple[int, int | None, str, list[int]]:
    """(image column, finding column or None, box form, the four coordinate columns)."""
    image = next((table.column(n) for n in _IMAGE if table.has(n)), None)
    finding = next((table.column(n) for n in _FINDING if table.has(n)), None)
    for form, spellings in _FORMS.items():
        for names in spellings:
            if all(table.has(n) for n in names):
                if image is None:
                    break
                return image, finding, form, [table.column(n) for n in names]
    found = ", ".join(h for h in table.header if h) or "none"
    raise MedrepError(f"expected a box CSV with header {EXPECTED} (found columns: {found})", where=table.where)


def attach_boxes(builder: TableBuilder, raw: str, manifest: Path) -> None:
    """Read the box CSV ``raw`` and give each listed image its boxes (per finding where the CSV names one)."""
    path = box_csv_path(raw, manifest)
    if not path.is_file():
        raise BadInputError("box CSV does not exist", where=f"?boxes={show_path(path)}")
    table = CsvTable(path, empty_hint=f" (expected a header line {EXPECTED})")
    image, finding, form, coords = _layout(table)
    per_image: dict[tuple[int, str | None], tuple[list, list]] = {}
    for line, values in table.rows():
        where = f"{table.where} row {line}"
        key = PurePosixPath(values[image].strip().replace("\\", "/")).as_posix()
        row = builder.row_of(key)
        if row is None:
            raise BadInputError(f"image {values[image].strip()!r} is not in the manifest", where=where)
        name = values[finding].strip() if finding is not None else None
        if name is not None and builder.findings is not None and name not in builder.findings:
            raise BadInputError(f"unknown finding {name!r} (known: {', '.join(builder.findings)})", where=where)
        boxes, wheres = per_image.setdefault((row, name or None), ([], []))
        boxes.append(box_from([values[i] for i in coords], form, where))
        wheres.append(where)
    for (row, name), (boxes, wheres) in per_image.items():
        if name is None:
            builder.masks[row] = Boxes(tuple(boxes), tuple(wheres))
        else:
            builder.add_finding_mask(row, name, Boxes(tuple(boxes), tuple(wheres)))
    builder.annotated = True
    builder.fill_missing_masks = True  # a listed image without a box shows no lesion

"""Lesion boxes or polygons from a CSV beside a manifest (``csv:FILE?...&boxes=BOXES.csv`` /
``&polygons=POLYGONS.csv``): one row per box or polygon, several per image.

The CSV's header names the image (``path``, or ``image``), optionally the finding the shape outlines
(``finding``, ``label`` or ``class_name``), and the shape: a box as ``x,y,w,h`` (also ``x,y,width,height``) or
``x_min,y_min,x_max,y_max``; a polygon as one ``polygon`` column holding its vertices as JSON, ``[[x, y], …]``
or COCO's flat ``[x1, y1, x2, y2, …]``.  Coordinates are the original image's pixels; the shape is scaled
with the image through the model's geometry.  A shape with a finding belongs to that finding
(``?finding=NAME`` scores the maps against NAME's shapes only); one without outlines the image's lesion
whatever the label.  An image listed in the manifest without a shape has an empty mask (no lesion); a shape
of an image the manifest does not list, of an unknown finding, or malformed is an error naming its row.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from medrep.data.annotations import Boxes, MaskSource, Polygons, box_from, merge_masks
from medrep.data.images import as_path, show_path
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError, MedrepError

_FORMS = {"xywh": (("x", "y", "w", "h"), ("x", "y", "width", "height")),
          "xyxy": (("x_min", "y_min", "x_max", "y_max"), ("xmin", "ymin", "xmax", "ymax"))}
_IMAGE = ("path", "image")
_FINDING = ("finding", "label", "class_name")
EXPECTED = {"boxes": "path[,finding],x,y,w,h or path[,finding],x_min,y_min,x_max,y_max",
            "polygons": "path[,finding],polygon"}
SINGULAR = {"boxes": "box", "polygons": "polygon"}


def box_csv_path(raw: str, manifest: Path) -> Path:
    """``raw`` as given, else beside the manifest."""
    given = as_path(raw)
    if given.is_file() or given.is_absolute():
        return given
    beside = manifest.parent / raw
    return beside if beside.is_file() else given


def _layout(table: CsvTable, kind: str) -> tuple[int, int | None, str, list[int]]:
    """(image column, finding column or None, shape form, the shape's columns)."""
    image = next((table.column(n) for n in _IMAGE if table.has(n)), None)
    finding = next((table.column(n) for n in _FINDING if table.has(n)), None)
    if image is not None and kind == "polygons" and table.has("polygon"):
        return image, finding, "polygon", [table.column("polygon")]
    for form, spellings in _FORMS.items():
        for names in spellings:
            if image is not None and kind == "boxes" and all(table.has(n) for n in names):
                return image, finding, form, [table.column(n) for n in names]
    found = ", ".join(h for h in table.header if h) or "none"
    raise MedrepError(f"expected a {SINGULAR[kind]} CSV with header {EXPECTED[kind]} (found columns: {found})", where=table.where)


def polygon_from(text: str, where: str) -> Polygons:
    """One polygon from its JSON vertices, ``[[x, y], …]`` or flat ``[x1, y1, …]``; at least three vertices."""
    try:
        raw = json.loads(text)
        flat = [float(v) for pair in raw for v in pair] if raw and isinstance(raw[0], list) else [float(v) for v in raw]
    except (ValueError, TypeError):
        raise BadInputError(f"polygon {text[:40]!r} is not a JSON list of vertices", where=where) from None
    if len(flat) % 2 or len(flat) < 6:
        raise BadInputError(f"polygon needs at least three (x, y) vertices, got {len(flat)} numbers", where=where)
    return Polygons((tuple(zip(flat[0::2], flat[1::2])),), where)


def attach_shapes(builder: TableBuilder, raw: str, manifest: Path, kind: str = "boxes") -> None:
    """Read the shape CSV ``raw`` (``kind``: boxes or polygons) and give each listed image its shapes, per finding
    where the CSV names one."""
    path = box_csv_path(raw, manifest)
    if not path.is_file():
        raise BadInputError(f"{SINGULAR[kind]} CSV does not exist", where=f"?{kind}={show_path(path)}")
    table = CsvTable(path, empty_hint=f" (expected a header line {EXPECTED[kind]})")
    image, finding, form, cols = _layout(table, kind)
    shapes: dict[tuple[int, str | None], list[MaskSource]] = {}
    for line, values in table.rows():
        where = f"{table.where} row {line}"
        key = PurePosixPath(values[image].strip().replace("\\", "/")).as_posix()
        row = builder.row_of(key)
        if row is None:
            raise BadInputError(f"image {values[image].strip()!r} is not in the manifest", where=where)
        name = values[finding].strip() if finding is not None else None
        if name and builder.findings is not None and name not in builder.findings:
            raise BadInputError(f"unknown finding {name!r} (known: {', '.join(builder.findings)})", where=where)
        shape = (polygon_from(values[cols[0]], where) if form == "polygon" else
                 Boxes((box_from([values[i] for i in cols], form, where),), (where,)))
        shapes.setdefault((row, name or None), []).append(shape)
    for (row, name), parts in shapes.items():
        if name is None:
            builder.masks[row] = merge_masks([m for m in (builder.masks[row], *parts) if m is not None])
        else:
            builder.add_finding_mask(row, name, merge_masks(parts))
    builder.annotated = True
    builder.fill_missing_masks = True  # a listed image without a shape shows no lesion


def attach_boxes(builder: TableBuilder, raw: str, manifest: Path) -> None:
    attach_shapes(builder, raw, manifest, "boxes")

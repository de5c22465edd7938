"""RSNA Pneumonia Detection Challenge (2018): ``stage_2_train_labels.csv`` (``patientId,x,y,width,height,Target``:
one row per box, a row with empty coordinates for an image without one) and ``stage_2_train_images/ID.dcm``.
``stage_2_detailed_class_info.csv`` (``patientId,class``) is carried as an attribute when present.  The
challenge's ``patientId`` names one image (one per patient), so it is the patient too."""
from __future__ import annotations

from medrep.data.annotations import Boxes, box_from
from medrep.data.base import ImageDataset, SkipLog
from medrep.data.dicom_headers import HEADER_OPTIONS, take_header_options, with_header_attributes
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import READ_HELP, expect, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError
from medrep.specs import Spec

CLASSES = ("no pneumonia", "pneumonia")

describe_recipe(RecipeInfo(
    name="rsna-pneumonia",
    reads="stage_2_train_labels.csv, stage_2_detailed_class_info.csv, stage_2_train_images/*.dcm",
    labels="no pneumonia / pneumonia (Target)",
    masks="the boxes (x, y, width, height), several per image",
    patients="patientId (one image per patient)",
    splits="none (the stage-2 test set is unlabelled)",
    attributes="class (stage_2_detailed_class_info.csv); DICOM headers with ?attributes=",
    options={**READ_HELP, **HEADER_OPTIONS}))


def _detailed_class(root) -> dict[str, str]:
    path = root / "stage_2_detailed_class_info.csv"
    if not path.is_file():
        return {}
    table = CsvTable(path)
    pid, cls = table.column("patientId"), table.column("class")
    return {values[pid].strip(): values[cls].strip() for _, values in table.rows()}


def load_rsna(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = recipe_root(raw, "rsna-pneumonia")
    opts, _, read = take_options(options, "rsna-pneumonia", list(HEADER_OPTIONS), read=True)
    headers = take_header_options(opts)
    table = CsvTable(expect(root, ["stage_2_train_labels.csv"], "rsna-pneumonia"))
    images = expect(root, ["stage_2_train_images"], "rsna-pneumonia")
    pid, target = table.column("patientId"), table.column("Target")
    coords = [table.column(c) for c in ("x", "y", "width", "height")]
    details = _detailed_class(root)
    builder = TableBuilder(table.where, ["class"] if details else ())
    rows: dict[str, int] = {}
    boxes: dict[int, Boxes] = {}
    for line, values in table.rows():
        origin = f"{table.where} row {line}"
        ident, t = values[pid].strip(), values[target].strip()
        if t not in ("0", "1"):
            raise BadInputError(f"Target {t!r} is not 0 or 1", where=origin)
        if ident not in rows:
            rows[ident] = builder.add(images / f"{ident}.dcm", ident, origin, label=CLASSES[int(t)], patient=ident,
                                      attributes=[details.get(ident, "")] if details else ())
        elif builder.labels[rows[ident]] != CLASSES[int(t)]:
            raise BadInputError(f"Target {t} contradicts this image's earlier rows", where=origin)
        if t == "1":
            box = box_from([values[i] for i in coords], "xywh", origin)
            old = boxes.get(rows[ident])
            boxes[rows[ident]] = Boxes((old.boxes if old else ()) + (box,), (old.where if old else ()) + (origin,))
    for row, b in boxes.items():
        builder.masks[row] = b
    builder.annotated = True
    return with_header_attributes(builder.build(read, skip_bad, skipped, classes=list(CLASSES)), headers)


@register_data_scheme("rsna-pneumonia")
def _rsna(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_rsna(spec.name, spec.options, skip_bad, skipped)

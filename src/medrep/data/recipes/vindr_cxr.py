"""VinDr-CXR (Nguyen et al. 2022): ``annotations/image_labels_{train,test}.csv`` (``image_id[, rad_id]``, one 0/1
column per finding; three radiologists per training image, a consensus per test image),
``annotations/annotations_{train,test}.csv`` (``image_id[, rad_id], class_name, x_min, y_min, x_max, y_max``)
and DICOM images ``{train,test}/ID.dicom``.  A finding is positive when any radiologist marked it; every
radiologist's boxes of a finding are merged into its mask."""
from __future__ import annotations

from pathlib import Path

from medrep.data.annotations import Boxes, box_from
from medrep.data.base import ImageDataset, SkipLog
from medrep.data.dicom_headers import HEADER_OPTIONS, take_header_options, with_header_attributes
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import FINDING_HELP, READ_HELP, expect, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError
from medrep.specs import Spec

describe_recipe(RecipeInfo(
    name="vindr-cxr",
    reads="annotations/image_labels_{train,test}.csv, annotations/annotations_{train,test}.csv, {train,test}/*.dicom",
    labels="28 findings (0/1 per radiologist; positive when any radiologist marked it); ?finding=NAME for one",
    masks="boxes (x_min, y_min, x_max, y_max) of every radiologist, per finding",
    patients="none published (images are de-identified one by one)",
    splits="train, test",
    attributes="DICOM headers with ?attributes= (PatientSex, PatientAge, …)",
    options={**FINDING_HELP, **READ_HELP, **HEADER_OPTIONS}))


def _labels(path: Path) -> tuple[list[str], dict[str, list[float]], str]:
    table = CsvTable(path)
    image = table.column("image_id")
    skip = {image, *( [table.column("rad_id")] if table.has("rad_id") else [])}
    names = [h for i, h in enumerate(table.header) if h and i not in skip]
    cols = [table.column(n) for n in names]
    out: dict[str, list[float]] = {}
    for line, values in table.rows():
        try:
            codes = [float(values[i] or 0) for i in cols]
        except ValueError:
            raise BadInputError("a label is not 0 or 1", where=f"{table.where} row {line}") from None
        ident = values[image].strip()
        prev = out.get(ident)
        out[ident] = [max(a, b) for a, b in zip(prev, codes)] if prev else codes
    return names, out, table.where


def _boxes(path: Path, findings: list[str]) -> dict[str, dict[str, Boxes]]:
    if not path.is_file():
        return {}
    table = CsvTable(path)
    image, cls = table.column("image_id"), table.column("class_name")
    coords = [table.column(c) for c in ("x_min", "y_min", "x_max", "y_max")]
    out: dict[str, dict[str, Boxes]] = {}
    for line, values in table.rows():
        where = f"{table.where} row {line}"
        if not values[coords[0]].strip():  # "No finding" rows have no box
            continue
        finding = values[cls].strip()
        if finding not in findings:
            raise BadInputError(f"unknown finding {finding!r} (known: {', '.join(findings)})", where=where)
        box = box_from([values[i] for i in coords], "xyxy", where)
        per = out.setdefault(values[image].strip(), {})
        old = per.get(finding)
        per[finding] = Boxes((old.boxes if old else ()) + (box,), (old.where if old else ()) + (where,))
    return out


def load_vindr(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = recipe_root(raw, "vindr-cxr")
    opts, policy, read = take_options(options, "vindr-cxr", list(HEADER_OPTIONS), findings=True, read=True)
    headers = take_header_options(opts)
    expect(root, ["annotations"], "vindr-cxr")
    builder = None
    for split in ("train", "test"):
        labels_csv = root / "annotations" / f"image_labels_{split}.csv"
        if split == "test" and not labels_csv.is_file():
            continue
        names, labels, where = _labels(expect(root / "annotations", [f"image_labels_{split}.csv"], "vindr-cxr"))
        if builder is None:
            builder = TableBuilder(str(root), findings=names, policy=policy)
        elif names != builder.findings:
            raise BadInputError("its finding columns differ from image_labels_train.csv", where=where)
        boxes = _boxes(root / "annotations" / f"annotations_{split}.csv", names)
        folder = expect(root, [split], "vindr-cxr")
        for ident, codes in labels.items():
            row = builder.add(folder / f"{ident}.dicom", f"{split}/{ident}", f"{where} image {ident}", codes=codes,
                              split=split)
            for finding, b in boxes.get(ident, {}).items():
                builder.add_finding_mask(row, finding, b)
    return with_header_attributes(builder.build(read, skip_bad, skipped), headers)


@register_data_scheme("vindr-cxr")
def _vindr(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_vindr(spec.name, spec.options, skip_bad, skipped)

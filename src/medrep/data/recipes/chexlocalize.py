"""CheXlocalize (Saporta et al. 2022): ``CheXlocalize/gt_segmentations_{val,test}.json`` (per image id
``patientN_studyM_viewK_frontal``, per pathology, a COCO RLE ``{size, counts}``) with the CheXpert images and
labels ``CheXpert/{val,test}/patientN/studyM/viewK_frontal.jpg`` and ``CheXpert/{val,test}_labels.csv``.
The masks of the 10 localised pathologies belong to their finding (CheXpert's ``Lung Opacity`` is
CheXlocalize's ``Airspace Opacity``); ``explain`` with ``?finding=NAME`` scores against NAME's mask."""
from __future__ import annotations

import json
import re
from pathlib import Path

from medrep.data.annotations import RunLengthMask
from medrep.data.base import ImageDataset, SkipLog
from medrep.data.findings import parse_code
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import FINDING_HELP, expect, find_dataset_folder, patient_from_path, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder, read_text
from medrep.errors import BadInputError
from medrep.specs import Spec

LABEL_NAMES = {"Lung Opacity": "Airspace Opacity"}
IMAGE_ID = re.compile(r"^(patient\d+)_(study\d+)_(view\d+_\w+)$")

describe_recipe(RecipeInfo(
    name="chexlocalize",
    reads="CheXlocalize/gt_segmentations_{val,test}.json, CheXpert/{val,test}/…jpg, CheXpert/{val,test}_labels.csv",
    labels="the 10 localised pathologies from the CheXpert label CSVs (1 / 0); ?finding=NAME for one",
    masks="COCO run-length encodings per image and pathology (decoded by medrep)",
    patients="patientNNNNN",
    splits="val, test",
    options=dict(FINDING_HELP)))


def _labels(path: Path, findings: list[str]) -> dict[str, list[float]]:
    table = CsvTable(path)
    p = table.column("Path")
    names = {LABEL_NAMES.get(h, h): i for i, h in enumerate(table.header)}
    missing = [f for f in findings if f not in names]
    if missing:
        raise BadInputError(f"no column for {missing[0]!r}", where=table.where)
    out = {}
    for line, values in table.rows():
        key = "/".join(values[p].strip().replace("\\", "/").split("/")[-3:])
        try:
            out[key] = [parse_code(values[names[f]]) for f in findings]
        except ValueError as err:
            raise BadInputError(str(err), where=f"{table.where} row {line}") from None
    return out


def load_chexlocalize(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = find_dataset_folder(recipe_root(raw, "chexlocalize"), "CheXlocalize", ())
    _, policy, read = take_options(options, "chexlocalize", [], findings=True)
    expect(root, ["CheXlocalize"], "chexlocalize")
    expect(root, ["CheXpert"], "chexlocalize")
    builder = None
    for split in ("val", "test"):
        seg_path = root / "CheXlocalize" / f"gt_segmentations_{split}.json"
        if split == "test" and not seg_path.is_file():
            continue
        seg_path = expect(root / "CheXlocalize", [f"gt_segmentations_{split}.json"], "chexlocalize")
        try:
            segs = json.loads(read_text(seg_path, "JSON"))
        except json.JSONDecodeError as err:
            raise BadInputError(f"malformed JSON ({err})", where=str(seg_path)) from None
        findings = sorted({f for per in segs.values() for f in per})
        if builder is None:
            builder = TableBuilder(str(root), findings=findings, policy=policy)
        labels = _labels(expect(root / "CheXpert", [f"{split}_labels.csv"], "chexlocalize"), builder.findings)
        for image_id, per in segs.items():
            m = IMAGE_ID.match(image_id)
            where = f"{seg_path} image {image_id}"
            if not m:
                raise BadInputError("image id is not patientN_studyM_viewK_…", where=where)
            key = "/".join(m.groups()) + ".jpg"
            if key not in labels:
                raise BadInputError(f"{key} has no row in {split}_labels.csv", where=where)
            row = builder.add(root / "CheXpert" / split / key, f"{split}/{key}", where, codes=labels[key],
                              patient=patient_from_path(key), split=split)
            for finding, rle in per.items():
                if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
                    raise BadInputError(f"malformed RLE for {finding!r}: expected {{size, counts}}", where=where)
                builder.add_finding_mask(row, finding, RunLengthMask(tuple(rle["size"]), rle["counts"],
                                                                     f"{where} {finding}"))
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("chexlocalize")
def _chexlocalize(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_chexlocalize(spec.name, spec.options, skip_bad, skipped)

"""CheXlocalize (Saporta et al. 2022): ``CheXlocalize/gt_segmentations_{val,test}.json`` (per image id
``patientN_studyM_viewK_frontal``, per pathology, a COCO RLE ``{size, counts}``) with the CheXpert images and
labels ``CheXpert/{val,test}/patientN/studyM/viewK_frontal.jpg`` and ``CheXpert/{val,test}_labels.csv``.
The masks of the 10 localised pathologies belong to their finding (CheXpert's ``Lung Opacity`` is
CheXlocalize's ``Airspace Opacity``); ``explain`` with ``?finding=NAME`` scores against NAME's mask.

The human benchmark, where the release has it (``CheXlocalize/hb_segmentations_test.json``, same structure as the
ground truth, and ``hb_salient_pt_test.json``: per image id and pathology a list of ``[x, y]`` points): radiologists
other than the ground-truth readers.  Each image of that split then carries it as a second reader
(:class:`medrep.data.base.SecondReading`); as the reference code (``eval.py`` ``get_ious`` / ``get_hb_hitrates``)
an image the file does not list was read with nothing drawn and no point marked."""
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
    masks="COCO run-length encodings per image and pathology (decoded by medrep); the human benchmark "
          "(hb_segmentations_test.json, hb_salient_pt_test.json) as a second reader where present",
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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(read_text(path, "JSON"))
    except json.JSONDecodeError as err:
        raise BadInputError(f"malformed JSON ({err})", where=str(path)) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BadInputError("expected an object {image id: {pathology: ...}}", where=str(path))
    return data


def _rle(rle, where: str) -> RunLengthMask:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise BadInputError("malformed RLE: expected {size, counts}", where=where)
    return RunLengthMask(tuple(rle["size"]), rle["counts"], where)


def _points(raw, where: str) -> list[tuple[float, float]]:
    ok = isinstance(raw, list) and all(isinstance(p, (list, tuple)) and len(p) == 2
                                       and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in raw)
    if not ok:
        raise BadInputError("expected a list of [x, y] points", where=where)
    return [(float(p[0]), float(p[1])) for p in raw]


def _human_benchmark(folder: Path, split: str) -> tuple[dict | None, dict | None, Path, Path]:
    """The split's human-benchmark segmentations and salient points (None where the release lacks the file)."""
    seg_path, pt_path = folder / f"hb_segmentations_{split}.json", folder / f"hb_salient_pt_{split}.json"
    segs = _read_json(seg_path) if seg_path.is_file() else None
    points = _read_json(pt_path) if pt_path.is_file() and segs is not None else None
    return segs, points, seg_path, pt_path


def _add_human_benchmark(builder: TableBuilder, row: int, image_id: str, hb) -> None:
    segs, points, seg_path, pt_path = hb
    builder.add_second_reading(row)  # read: an image the files do not list got nothing drawn
    for finding, rle in (segs.get(image_id) or {}).items():
        builder.add_second_reading(row, finding, mask=_rle(rle, f"{seg_path} image {image_id} {finding}"))
    for finding, raw in ((points or {}).get(image_id) or {}).items():
        builder.add_second_reading(row, finding, points=_points(raw, f"{pt_path} image {image_id} {finding}"))


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
        segs = _read_json(seg_path)
        hb = _human_benchmark(root / "CheXlocalize", split)
        builder_points = hb[1] is not None
        findings = sorted({f for per in segs.values() for f in per})
        if builder is None:
            builder = TableBuilder(str(root), findings=findings, policy=policy)
        builder.second_points |= builder_points
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
                builder.add_finding_mask(row, finding, _rle(rle, f"{where} {finding}"))
            if hb[0] is not None:
                _add_human_benchmark(builder, row, image_id, hb)
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("chexlocalize")
def _chexlocalize(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_chexlocalize(spec.name, spec.options, skip_bad, skipped)

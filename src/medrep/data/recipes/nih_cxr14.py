"""NIH ChestX-ray14 (Wang et al. 2017): ``Data_Entry_2017.csv`` (or ``_v2020``), ``BBox_List_2017.csv``,
``train_val_list.txt`` / ``test_list.txt``, images in ``images/`` or ``images_001/images/`` … ``images_012/images/``.

Labels: ``Finding Labels``, pipe-separated (``No Finding`` = none of the 14).  Boxes: ``Bbox [x,y,w,h]`` in the
1024×1024 originals' pixels, one row per box; their ``Infiltrate`` is Data_Entry's ``Infiltration``.
"""
from __future__ import annotations

from pathlib import Path

from medrep.data.annotations import Boxes, box_from
from medrep.data.base import ImageDataset, SkipLog
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import FINDING_HELP, expect, image_index, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder, read_text
from medrep.errors import BadInputError, MedrepError
from medrep.specs import Spec

FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
            "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
BOX_NAMES = {"Infiltrate": "Infiltration"}
ATTRIBUTES = ("Patient Gender", "Patient Age", "View Position")

describe_recipe(RecipeInfo(
    name="nih-cxr14",
    reads="Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv), BBox_List_2017.csv, train_val_list.txt, test_list.txt; "
          "images/ or images_0NN/images/",
    labels="14 findings from the pipe-separated Finding Labels (No Finding = none); ?finding=NAME for one",
    masks="BBox_List_2017.csv boxes (x, y, w, h), per finding (Infiltrate = Infiltration)",
    patients="Patient ID column",
    splits="train (train_val_list.txt), test (test_list.txt); all when the lists are absent",
    attributes="Patient Gender, Patient Age, View Position",
    options=dict(FINDING_HELP)))


def _split_lists(root: Path) -> dict[str, str] | None:
    if not (root / "train_val_list.txt").is_file() or not (root / "test_list.txt").is_file():
        return None
    split_of = {}
    for split, name in (("train", "train_val_list.txt"), ("test", "test_list.txt")):
        for line in read_text(root / name, "list").splitlines():
            if line.strip():
                split_of[line.strip()] = split
    return split_of


def _boxes(root: Path) -> dict[str, dict[str, Boxes]]:
    """Image name → finding → boxes, from BBox_List_2017.csv (whose header is ``Bbox [x,y,w,h]`` split by
    the commas into ``Bbox [x``, ``y``, ``w``, ``h]``)."""
    path = root / "BBox_List_2017.csv"
    if not path.is_file():
        return {}
    table = CsvTable(path)
    img, lab = table.column("Image Index"), table.column("Finding Label")
    coords = [table.column(c) for c in ("Bbox [x", "y", "w", "h]")]
    out: dict[str, dict[str, Boxes]] = {}
    for line, values in table.rows():
        where = f"{table.where} row {line}"
        finding = BOX_NAMES.get(values[lab].strip(), values[lab].strip())
        if finding not in FINDINGS:
            raise BadInputError(f"unknown finding {values[lab]!r} (known: {', '.join(FINDINGS)})", where=where)
        box = box_from([values[i] for i in coords], "xywh", where)
        per = out.setdefault(values[img].strip(), {})
        old = per.get(finding)
        per[finding] = Boxes((old.boxes if old else ()) + (box,), (old.where if old else ()) + (where,))
    return out


def load_nih(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = recipe_root(raw, "nih-cxr14")
    _, policy, read = take_options(options, "nih-cxr14", [], findings=True)
    table = CsvTable(expect(root, ["Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"], "nih-cxr14"))
    img, labels, patient = (table.column(c) for c in ("Image Index", "Finding Labels", "Patient ID"))
    attr_cols = [table.column(a) for a in ATTRIBUTES]
    files = image_index([root / "images", *sorted(root.glob("images_*"))], (".png",))
    if not files:
        raise MedrepError(f"nih-cxr14: expected the PNGs in images/ or images_001/images/ …, found {', '.join(sorted(p.name for p in root.iterdir()))}",
                          where=str(root))
    split_of, boxes = _split_lists(root), _boxes(root)
    builder = TableBuilder(table.where, ATTRIBUTES, findings=list(FINDINGS), policy=policy)
    for line, values in table.rows():
        origin = f"{table.where} row {line}"
        name = values[img].strip()
        tokens = {t.strip() for t in values[labels].split("|")} - {"No Finding", ""}
        unknown = sorted(tokens - set(FINDINGS))
        if unknown:
            raise BadInputError(f"unknown finding {unknown[0]!r} (known: {', '.join(FINDINGS)})", where=origin)
        path = files.get(name, root / "images" / name)  # a missing file is reported with its row
        row = builder.add(path, name, origin, codes=[1.0 if f in tokens else 0.0 for f in FINDINGS],
                          patient=values[patient].strip(), attributes=[values[i].strip() for i in attr_cols],
                          split=split_of.get(name, "unlisted") if split_of is not None else None)
        for finding, b in boxes.get(name, {}).items():
            builder.add_finding_mask(row, finding, b)
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("nih-cxr14")
def _nih(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_nih(spec.name, spec.options, skip_bad, skipped)

"""ISIC skin-lesion challenges, as downloaded:

* 2020 (Rotemberg et al. 2021): ``train.csv`` (``image_name, patient_id, sex, age_approx,
  anatom_site_general_challenge, diagnosis, benign_malignant, target``), images ``train/NAME.jpg`` (or
  ``jpeg/train/``); benign / malignant; patient: ``patient_id``.
* 2019: ``ISIC_2019_Training_GroundTruth.csv`` (one-hot ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK``),
  ``ISIC_2019_Training_Metadata.csv`` (``image, age_approx, anatom_site_general, lesion_id, sex``), images in
  ``ISIC_2019_Training_Input/``; images of one lesion (``lesion_id``) are grouped as one patient would be.
* 2018 task 3: ``ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv`` (one-hot
  ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``), images in ``ISIC2018_Task3_Training_Input/``; lesion groups from
  ``ISIC2018_Task3_Training_LesionGroupings.csv`` (``image,lesion_id,diagnosis_confirm_type``) when present.
  The challenge's files carry no sex or age; the HAM10000 release of the same images does:
  ``HAM10000_metadata.csv`` (``lesion_id,image_id,dx,dx_type,age,sex,localization``) beside them adds ``sex``,
  ``age_approx`` (its ``age``) and ``anatom_site_general`` (its ``localization``).

Attributes are those the files hold (none are invented): ``sex``, ``age_approx``, ``anatom_site_general``.
"""
from __future__ import annotations

from pathlib import Path

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import expect, image_index, listing, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError, MedrepError
from medrep.specs import Spec

ATTRIBUTES = ("sex", "age_approx", "anatom_site_general")
GT_2019 = "ISIC_2019_Training_GroundTruth.csv"
GT_2018 = "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"

describe_recipe(RecipeInfo(
    name="isic",
    reads="2020: train.csv + train/ (or jpeg/train/); 2019: ISIC_2019_Training_GroundTruth.csv + _Metadata.csv + "
          "ISIC_2019_Training_Input/; 2018: ISIC2018_Task3_Training_GroundTruth/…csv + ISIC2018_Task3_Training_Input/ "
          "(+ _LesionGroupings.csv, HAM10000_metadata.csv for sex / age / site)",
    labels="2020: benign / malignant; 2018/2019: the one-hot diagnosis (MEL, NV, BCC, …)",
    masks="none",
    patients="2020: patient_id; 2019/2018: lesion_id (images of one lesion together)",
    splits="none (medrep draws 70/30 by patient where it needs two)",
    attributes="sex, age_approx, anatom_site_general (2018: from HAM10000_metadata.csv when present)"))


def _one_hot(values: list[str], cols: list[int], names: list[str], where: str) -> str:
    hot = [n for i, n in zip(cols, names) if values[i].strip() and float(values[i]) == 1.0]
    if len(hot) != 1:
        raise BadInputError(f"{len(hot)} of the diagnosis columns are 1 (expected exactly one)", where=where)
    return hot[0]


# the columns each metadata file holds for the recipe's attributes and the lesion id
META_2019 = {"sex": "sex", "age_approx": "age_approx", "anatom_site_general": "anatom_site_general", "lesion_id": "lesion_id"}
META_HAM10000 = {"sex": "sex", "age_approx": "age", "anatom_site_general": "localization", "lesion_id": "lesion_id"}
META_GROUPINGS = {"lesion_id": "lesion_id"}


def _metadata(path: Path | None, key: str, columns: dict[str, str]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(the attribute names this file holds, image → {name: value}); nothing when the file is absent."""
    if path is None or not path.is_file():
        return [], {}
    table = CsvTable(path)
    k = table.column(key)
    present = {name: table.column(col) for name, col in columns.items() if table.has(col)}
    rows = {values[k].strip(): {name: values[c].strip() for name, c in present.items()} for _, values in table.rows()}
    return [a for a in ATTRIBUTES if a in present], rows


def _merged_metadata(sources: list[tuple[Path, str, dict[str, str]]]) -> tuple[tuple[str, ...], dict[str, dict[str, str]]]:
    """Every metadata file's attributes and lesion ids, merged per image (a later file fills what an earlier lacks)."""
    names: list[str] = []
    merged: dict[str, dict[str, str]] = {}
    for path, key, columns in sources:
        held, rows = _metadata(path, key, columns)
        names += [a for a in held if a not in names]
        for ident, values in rows.items():
            into = merged.setdefault(ident, {})
            for name, value in values.items():
                if value and not into.get(name):
                    into[name] = value
    return tuple(a for a in ATTRIBUTES if a in names), merged


def _load_2020(root: Path) -> TableBuilder:
    table = CsvTable(root / "train.csv")
    name, patient, target = (table.column(c) for c in ("image_name", "patient_id", "target"))
    attrs = [table.column(c) for c in ("sex", "age_approx", "anatom_site_general_challenge")]
    folder = expect(root, ["train", "jpeg/train"], "isic", " (the 2020 training images)")
    builder = TableBuilder(table.where, ATTRIBUTES)
    for line, values in table.rows():
        origin = f"{table.where} row {line}"
        if values[target].strip() not in ("0", "1"):
            raise BadInputError(f"target {values[target]!r} is not 0 or 1", where=origin)
        image = values[name].strip()
        builder.add(folder / f"{image}.jpg", image, origin, label=("benign", "malignant")[int(values[target])],
                    patient=values[patient].strip() or image, attributes=[values[i].strip() for i in attrs])
    return builder


def _load_one_hot(root: Path, gt: Path, inputs: list[str], metadata: list[tuple[Path, str, dict[str, str]]]) -> TableBuilder:
    table = CsvTable(gt)
    image = table.column("image")
    names = [h for h in table.header if h and h != table.header[image]]
    cols = [table.column(n) for n in names]
    folders = [root / f for f in inputs]
    files = image_index(folders, (".jpg", ".jpeg", ".png"))
    attributes, meta_rows = _merged_metadata(metadata)
    builder = TableBuilder(table.where, attributes)
    for line, values in table.rows():
        origin = f"{table.where} row {line}"
        ident = values[image].strip()
        try:
            label = _one_hot(values, cols, names, origin)
        except ValueError:
            raise BadInputError("a diagnosis column is not a number", where=origin) from None
        m = meta_rows.get(ident, {})
        builder.add(files.get(f"{ident}.jpg", folders[0] / f"{ident}.jpg"), ident, origin, label=label,
                    patient=(m.get("lesion_id") or ident) if meta_rows else None,
                    attributes=[m.get(a, "") for a in attributes])
    return builder


def load_isic(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = recipe_root(raw, "isic")
    _, _, read = take_options(options, "isic", [])
    if (root / "train.csv").is_file():
        builder = _load_2020(root)
    elif (root / GT_2019).is_file():
        builder = _load_one_hot(root, root / GT_2019, ["ISIC_2019_Training_Input"],
                                [(root / "ISIC_2019_Training_Metadata.csv", "image", META_2019)])
    elif (root / GT_2018).is_file():
        builder = _load_one_hot(root, root / GT_2018, ["ISIC2018_Task3_Training_Input"],
                                [(root / "ISIC2018_Task3_Training_LesionGroupings.csv", "image", META_GROUPINGS),
                                 (root / "HAM10000_metadata.csv", "image_id", META_HAM10000)])
    else:
        raise MedrepError(f"isic: expected train.csv (2020), {GT_2019} (2019) or {GT_2018} (2018), found {listing(root)}",
                          where=str(root))
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("isic")
def _isic(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_isic(spec.name, spec.options, skip_bad, skipped)

"""CheXpert (Irvin et al. 2019): ``CheXpert-v1.0[-small]/{train,valid}.csv`` with ``train/`` and ``valid/``.

The CSV paths start with the dataset folder's own name (``CheXpert-v1.0-small/train/patient00001/study1/
view1_frontal.jpg``): they are relative to the folder above.  Labels: one column per finding, 1 / 0 / −1
(uncertain) / blank.  Patient: the ``patientNNNNN`` path part.  Attributes: Sex, Age, Frontal/Lateral, AP/PA.
"""
from __future__ import annotations

import os
from pathlib import Path

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.findings import CODES, parse_code
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import (FINDING_HELP, expect, find_dataset_folder, patient_from_path, recipe_root,
                                        take_options)
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError, MedrepError, SpecError
from medrep.specs import Spec

ATTRIBUTES = ("Sex", "Age", "Frontal/Lateral", "AP/PA")
VIEWS = ("frontal", "lateral", "all")
FOLDER_NAMES = ("CheXpert-v1.0-small", "CheXpert-v1.0")

describe_recipe(RecipeInfo(
    name="chexpert",
    reads="train.csv, valid.csv (paths relative to the folder above: CheXpert-v1.0-small/train/patientN/studyM/viewK_frontal.jpg); "
          "the -small and full releases",
    labels="14 findings, one column each: 1 / 0 / -1 uncertain / blank; ?finding=NAME for one",
    masks="none (see chexlocalize)",
    patients="patientNNNNN path part",
    splits="train, valid",
    attributes="Sex, Age, Frontal/Lateral, AP/PA",
    options={"view": "frontal, lateral or all (default)", **FINDING_HELP}))


def path_resolver(root: Path):
    """CSV path (``CheXpert-v1.0-small/train/…``) → file: relative to the folder above ``root`` when it starts
    with ``root``'s name, else to ``root`` after its first part (the folder was renamed).  Strings, not Paths:
    this runs once per row of a 224k-row index."""
    name, above, inside = root.name, f"{root.parent}{os.sep}", f"{root}{os.sep}"

    def resolve(raw: str) -> str:
        head, _, rest = raw.replace("\\", "/").partition("/")
        return above + raw if head == name or not rest else inside + rest

    return resolve



def read_chexpert_csv(builder: TableBuilder | None, csv_path: Path, root: Path, split: str, view: str,
                      findings: list[str] | None = None) -> TableBuilder:
    """Add one CheXpert-format CSV's rows to ``builder`` (made here from the first CSV's header)."""
    table = CsvTable(csv_path)
    path_col = table.column("Path")
    view_col = table.column("Frontal/Lateral") if table.has("Frontal/Lateral") else None
    attr_cols = [table.column(a) for a in ATTRIBUTES if table.has(a)]
    first = max([path_col, *attr_cols]) + 1
    names = [h for h in table.header[first:] if h]
    if builder is None:
        builder = TableBuilder(table.where, [table.header[i] for i in attr_cols], findings=findings or names)
    idx = [table.column(f) for f in builder.findings]
    code_of, fallback = CODES.get, object()
    resolve = path_resolver(root)
    for line, values in table.rows():
        if view != "all" and view_col is not None and values[view_col].strip().lower() != view:
            continue
        origin = f"{table.where} row {line}"
        rel = values[path_col].strip()
        codes = [code_of(values[i], fallback) for i in idx]
        if fallback in codes:  # not a plain 1.0 / 0.0 / -1.0 / blank: parse_code names what it found
            try:
                codes = [parse_code(values[i]) for i in idx]
            except ValueError as err:
                raise BadInputError(str(err), where=origin) from None
        builder.add(resolve(rel), rel, origin, codes=codes, patient=patient_from_path(rel),
                    attributes=[values[i].strip() for i in attr_cols], split=split)
    return builder


def load_chexpert(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = find_dataset_folder(recipe_root(raw, "chexpert"), "train.csv", FOLDER_NAMES)
    opts, policy, read = take_options(options, "chexpert", ["view"], findings=True)
    view = opts.get("view", "all").lower()
    if view not in VIEWS:
        raise SpecError(f"view must be one of {', '.join(VIEWS)}, got {view!r}", where="?view")
    builder = None
    for split, name in (("train", "train.csv"), ("valid", "valid.csv")):
        csv_path = expect(root, [name], "chexpert", " (CheXpert's label file)")
        builder = read_chexpert_csv(builder, csv_path, root, split, view)
    builder.policy = policy
    builder.where = str(root)  # the dataset's name: its folder, not its first CSV
    if not len(builder):
        raise MedrepError(f"no image with view={view}", where="?view")
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("chexpert")
def _chexpert(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_chexpert(spec.name, spec.options, skip_bad, skipped)

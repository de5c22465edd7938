"""MIMIC-CXR-JPG (Johnson et al. 2019): ``mimic-cxr-2.0.0-{chexpert,negbio}.csv[.gz]`` (labels per study:
``subject_id, study_id``, one column per finding, 1 / 0 / −1 / blank), ``mimic-cxr-2.0.0-split.csv[.gz]``
(``dicom_id, study_id, subject_id, split``), ``mimic-cxr-2.0.0-metadata.csv[.gz]`` (``ViewPosition`` …) and
images ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``.  Every image of a study gets the study's labels."""
from __future__ import annotations

from pathlib import Path

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.findings import parse_code
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import FINDING_HELP, expect, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError, SpecError
from medrep.specs import Spec

LABELERS = ("chexpert", "negbio")

describe_recipe(RecipeInfo(
    name="mimic-cxr-jpg",
    reads="mimic-cxr-2.0.0-{chexpert|negbio}.csv(.gz), -split.csv(.gz), -metadata.csv(.gz), files/pXX/pN/sM/ID.jpg",
    labels="14 findings per study, 1 / 0 / -1 uncertain / blank; ?finding=NAME for one",
    masks="none",
    patients="subject_id",
    splits="train, validate, test (the split file)",
    attributes="ViewPosition",
    options={"labeler": "chexpert (default) or negbio", **FINDING_HELP}))


def _csv(root: Path, stem: str) -> CsvTable:
    return CsvTable(expect(root, [f"{stem}.csv.gz", f"{stem}.csv"], "mimic-cxr-jpg"))


def _study_labels(root: Path, labeler: str) -> tuple[list[str], dict[str, list[float]]]:
    table = _csv(root, f"mimic-cxr-2.0.0-{labeler}")
    study = table.column("study_id")
    skip = {study, table.column("subject_id")}
    names = [h for i, h in enumerate(table.header) if h and i not in skip]
    cols = [table.column(n) for n in names]
    out = {}
    for line, values in table.rows():
        try:
            out[values[study].strip()] = [parse_code(values[i]) for i in cols]
        except ValueError as err:
            raise BadInputError(str(err), where=f"{table.where} row {line}") from None
    return names, out


def load_mimic(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = recipe_root(raw, "mimic-cxr-jpg")
    opts, policy, read = take_options(options, "mimic-cxr-jpg", ["labeler"], findings=True)
    labeler = opts.get("labeler", "chexpert").lower()
    if labeler not in LABELERS:
        raise SpecError(f"labeler must be chexpert or negbio, got {labeler!r}", where="?labeler")
    names, labels = _study_labels(root, labeler)
    meta = _csv(root, "mimic-cxr-2.0.0-metadata")
    m_id, m_view = meta.column("dicom_id"), meta.column("ViewPosition")
    views = {values[m_id].strip(): values[m_view].strip() for _, values in meta.rows()}
    table = _csv(root, "mimic-cxr-2.0.0-split")
    d, st, su, sp = (table.column(c) for c in ("dicom_id", "study_id", "subject_id", "split"))
    builder = TableBuilder(table.where, ["ViewPosition"], findings=names, policy=policy)
    for line, values in table.rows():
        origin = f"{table.where} row {line}"
        dicom, study, subject = values[d].strip(), values[st].strip(), values[su].strip()
        codes = labels.get(study)
        if codes is None:  # a study the labeler left out (no report findings): no labels to use
            continue
        rel = f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
        builder.add(root / rel, rel, origin, codes=codes, patient=subject, attributes=[views.get(dicom, "")],
                    split=values[sp].strip())
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("mimic-cxr-jpg")
def _mimic(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_mimic(spec.name, spec.options, skip_bad, skipped)

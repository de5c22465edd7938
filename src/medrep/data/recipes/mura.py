"""MURA (Rajpurkar et al. 2017): ``MURA-v1.1/{train,valid}_image_paths.csv`` (headerless, one image path per
line, relative to the folder above) and ``{train,valid}_labeled_studies.csv`` (headerless: study folder,
label 0 normal / 1 abnormal).  Labels are per study; patient from the ``patientNNNNN`` path part; the study
type (``XR_SHOULDER`` …) is an attribute."""
from __future__ import annotations

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.chexpert import path_resolver
from medrep.data.recipes.common import expect, find_dataset_folder, patient_from_path, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError
from medrep.specs import Spec

CLASSES = ("normal", "abnormal")

describe_recipe(RecipeInfo(
    name="mura",
    reads="MURA-v1.1/{train,valid}_image_paths.csv (headerless), {train,valid}_labeled_studies.csv (headerless)",
    labels="normal / abnormal, per study",
    masks="none",
    patients="patientNNNNN path part",
    splits="train, valid",
    attributes="study_type (XR_WRIST, XR_SHOULDER, …)"))


def _study_labels(root, split: str) -> dict[str, str]:
    table = CsvTable(expect(root, [f"{split}_labeled_studies.csv"], "mura"), header=False, columns=["study", "label"])
    out = {}
    for line, values in table.rows():
        if values[1].strip() not in ("0", "1"):
            raise BadInputError(f"study label {values[1]!r} is not 0 or 1", where=f"{table.where} row {line}")
        out[values[0].strip().rstrip("/")] = CLASSES[int(values[1])]
    return out


def load_mura(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = find_dataset_folder(recipe_root(raw, "mura"), "train_image_paths.csv", ("MURA-v1.1",))
    _, _, read = take_options(options, "mura", [])
    builder = TableBuilder(str(root), ["study_type"])
    resolve = path_resolver(root)
    for split in ("train", "valid"):
        labels = _study_labels(root, split)
        table = CsvTable(expect(root, [f"{split}_image_paths.csv"], "mura"), header=False, columns=["path"])
        for line, values in table.rows():
            origin = f"{table.where} row {line}"
            rel = values[0].strip()
            study = rel.rsplit("/", 1)[0]
            if study not in labels:
                raise BadInputError(f"study {study}/ is not in {split}_labeled_studies.csv", where=origin)
            parts = rel.split("/")
            kind = next((p for p in parts if p.startswith("XR_")), "")
            builder.add(resolve(rel), rel, origin, label=labels[study],
                        patient=patient_from_path(rel),
                        attributes=[kind], split=split)
    return builder.build(read, skip_bad, skipped, classes=list(CLASSES))


@register_data_scheme("mura")
def _mura(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_mura(spec.name, spec.options, skip_bad, skipped)

"""Item attributes from DICOM headers, on request and from an allow-list: values, age bands, refusals, the
DICOM recipes' option, and a privacy check that no identifying header value reaches any file medrep writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import recipe_trees as trees

from medrep.cli import main
from medrep.data import load_dataset
from medrep.data.dicom_headers import HEADER_ATTRIBUTES
from medrep.errors import MedrepError, SpecError

# identifying header values: none of them may appear in any output
IDENTIFYING = {"PatientName": "Quixote^Dulcinea", "PatientID": "PID-9373155", "PatientBirthDate": "19610412",
               "InstitutionName": "Saint Elsewhere Infirmary", "AccessionNumber": "ACC-5550172",
               "ReferringPhysicianName": "Sancho^Panza", "StudyDate": "20190302"}


def _tree(root: Path, per_class: int = 6) -> Path:
    """root/{normal,pneumonia}/*.dcm with sex, age, view, modality, body part, manufacturer and identifying fields."""
    k = 0
    for cls in ("normal", "pneumonia"):
        for i in range(per_class):
            ages = ["045Y", "006M", "071Y", "095Y", "030Y"]
            header = {**IDENTIFYING, "PatientSex": "FM"[k % 2], "ViewPosition": "PA" if k % 3 else "AP",
                      "Modality": "DX", "BodyPartExamined": "CHEST", "Manufacturer": "Acme Imaging",
                      "ManufacturerModelName": "XR-9000"}
            if k % 6 != 5:  # one file in six has no age
                header["PatientAge"] = ages[k % 5]
            trees.save_dicom(root / cls / f"img{i}.dcm", trees.image(k, cls == "pneumonia"), **header)
            k += 1
    return root


def _values(ds, name):
    return dict(zip(ds.ids, ds.attribute_values(name).tolist()))


def test_requested_header_fields_become_attributes_and_ages_are_banded_on_reading(tmp_path):
    root = _tree(tmp_path / "cxr", per_class=3)
    ds = load_dataset(f"dicom:{root}?attributes=PatientSex,PatientAge,ViewPosition,Modality,BodyPartExamined,"
                      "Manufacturer,ManufacturerModelName")
    assert ds.attribute_names == list(HEADER_ATTRIBUTES)
    # files in id order: normal/img0..2 (k = 0..2), pneumonia/img0..2 (k = 3..5)
    assert _values(ds, "PatientSex") == {"normal/img0.dcm": "F", "normal/img1.dcm": "M", "normal/img2.dcm": "F",
                                         "pneumonia/img0.dcm": "M", "pneumonia/img1.dcm": "F", "pneumonia/img2.dcm": "M"}
    # 045Y → 40-49, 006M (half a year) → <10, 071Y → 70-79, 095Y → >=90, 030Y → 30-39, missing → unknown ("")
    assert list(_values(ds, "PatientAge").values()) == ["40-49", "<10", "70-79", ">=90", "30-39", ""]
    assert set(ds.attribute_values("ViewPosition")) == {"PA", "AP"}
    assert set(ds.attribute_values("ManufacturerModelName")) == {"XR-9000"}
    item = ds[0]
    assert item.attributes == {"PatientSex": "F", "PatientAge": "40-49", "ViewPosition": "AP", "Modality": "DX",
                               "BodyPartExamined": "CHEST", "Manufacturer": "Acme Imaging", "ManufacturerModelName": "XR-9000"}
    bands = load_dataset(f"dicom:{root}?attributes=PatientAge&age_bins=18,65")
    assert list(_values(bands, "PatientAge").values()) == ["18-64", "<18", ">=65", ">=65", "18-64", ""]
    # nothing asked: no attribute, and the dataset's cache key is the one it had before header attributes existed
    plain = load_dataset(f"dicom:{root}")
    assert plain.attribute_names == [] and plain.content_digest() != ds.content_digest()


@pytest.mark.parametrize("option, message", [
    ("attributes=PatientName", "'PatientName' is not a DICOM attribute medrep reads (allowed: PatientSex, PatientAge, "
                               "ViewPosition, Modality, BodyPartExamined, Manufacturer, ManufacturerModelName; names, ids, "
                               "dates and free text are never read)"),
    ("attributes=PatientSex,PatientID", "'PatientID' is not a DICOM attribute"),
    ("attributes=PatientSex,InstitutionName", "'InstitutionName' is not a DICOM attribute"),
    ("age_bins=18,65", "age_bins bands PatientAge: add attributes=PatientAge"),
    ("attributes=PatientAge&age_bins=65,18", "age-bin edges must be increasing numbers"),
])
def test_fields_outside_the_allow_list_are_refused_with_the_allowed_list(tmp_path, option, message):
    root = _tree(tmp_path / "cxr", per_class=1)
    with pytest.raises(MedrepError) as err:
        load_dataset(f"dicom:{root}?{option}")
    assert message in str(err.value)


def test_dicom_recipes_take_the_same_option(tmp_path):
    rsna = load_dataset(f"rsna-pneumonia:{trees.rsna(tmp_path / 'r')}?attributes=PatientSex,PatientAge,ViewPosition")
    assert rsna.attribute_names == ["class", "PatientSex", "PatientAge", "ViewPosition"]
    # RSNA's ages are plain numbers: 38 + 7k → bands; sex alternates M / F
    assert rsna.attribute_values("PatientAge").tolist() == ["30-39", "40-49", "50-59", "50-59", "60-69", "70-79",
                                                            "80-89", "80-89"]
    assert rsna.attribute_values("PatientSex").tolist() == ["M", "F"] * 4
    vindr = load_dataset(f"vindr-cxr:{trees.vindr(tmp_path / 'v')}?finding=Cardiomegaly&attributes=PatientAge,PatientSex")
    train = vindr.split("train")
    assert train.attribute_values("PatientAge").tolist() == ["30-39", "30-39", "40-49", "50-59", "60-69", ""]
    assert train.attribute_values("PatientSex").tolist() == ["F", "M", "O", "F", "M", "O"]
    with pytest.raises(SpecError, match="'PatientBirthDate' is not a DICOM attribute"):
        load_dataset(f"vindr-cxr:{trees.vindr(tmp_path / 'v2')}?attributes=PatientBirthDate")


def test_no_identifying_header_value_reaches_any_output_file(tmp_path, capsys):
    root = _tree(tmp_path / "cxr")
    spec = f"dicom:{root}?attributes=PatientSex,PatientAge,ViewPosition,Modality,Manufacturer,ManufacturerModelName"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["extract", "--model", "demo-cnn", "--data", spec, "--split", "all", "--quiet",
                 "--out", str(tmp_path / "out" / "x"), *cache]) == 0
    assert main(["features", "--model", "demo-cnn", "--data", spec, "--by", "PatientSex,PatientAge,ViewPosition",
                 "--projection", "none", "--n-boot", "20", "--n-permutations", "5", "--shots", "1", "--draws", "2",
                 "--k", "3", "--min-group-size", "2", "--quiet", "--out", str(tmp_path / "out" / "f"), *cache]) == 0, \
        capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "f" / "results.json").read_text())
    assert set(res["subgroups"]) == {"PatientSex", "PatientAge", "ViewPosition"}
    assert set(res["subgroups"]["PatientAge"]["groups"]) <= {"40-49", "<10", "70-79", ">=90", "30-39"}
    printed = capsys.readouterr()
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] + \
              [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(written) >= 5
    exact_ages = ["045Y", "006M", "071Y", "095Y", "030Y"]
    for value in [*IDENTIFYING.values(), *exact_ages]:
        needle = value.encode()
        found = [p.name for p in written if needle in p.read_bytes()]
        assert not found, f"{value} found in {found}"
        assert value not in printed.out and value not in printed.err


def test_a_csv_manifest_of_dicom_files_carries_header_fields_beside_its_columns(tmp_path):
    root = _tree(tmp_path / "cxr", per_class=2)
    trees.save(root / "extra.png", trees.image(99))  # not DICOM: its header fields are unknown
    rows = ["path,label,site"] + [f"{c}/img{i}.dcm,{c},{'AB'[i]}" for c in ("normal", "pneumonia") for i in range(2)]
    manifest = trees.write(root / "manifest.csv", "\n".join(rows + ["extra.png,normal,B"]) + "\n")
    ds = load_dataset(f"csv:{manifest}?dicom_attributes=PatientSex,PatientAge&age_bins=18,65")
    assert ds.attribute_names == ["site", "PatientSex", "PatientAge"]
    # k = 0, 1 (normal), 2, 3 (pneumonia): sex F M F M; ages 045Y, 006M, 071Y, 095Y
    assert _values(ds, "PatientSex") == {"normal/img0.dcm": "F", "normal/img1.dcm": "M", "pneumonia/img0.dcm": "F",
                                         "pneumonia/img1.dcm": "M", "extra.png": ""}
    assert _values(ds, "PatientAge") == {"normal/img0.dcm": "18-64", "normal/img1.dcm": "<18", "pneumonia/img0.dcm": ">=65",
                                         "pneumonia/img1.dcm": ">=65", "extra.png": ""}
    assert _values(ds, "site")["pneumonia/img1.dcm"] == "B"
    # the CSV's own attributes= still names its columns; the header request has its own option, named in errors
    with pytest.raises(SpecError, match=r"^\?dicom_attributes: 'PatientID' is not a DICOM attribute"):
        load_dataset(f"csv:{manifest}?dicom_attributes=PatientID")
    with pytest.raises(SpecError, match="add dicom_attributes=PatientAge"):
        load_dataset(f"csv:{manifest}?age_bins=18,65")
    clashing = trees.write(root / "clash.csv", "path,label,PatientSex\nnormal/img0.dcm,normal,F\nnormal/img1.dcm,normal,M\n")
    with pytest.raises(SpecError, match=r"^\?dicom_attributes: the data already has an attribute 'PatientSex'"):
        load_dataset(f"csv:{clashing}?dicom_attributes=PatientSex")

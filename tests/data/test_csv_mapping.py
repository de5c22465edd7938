"""Generic CSV mapping: any column names, label forms (names, one-hot, per-finding codes, pipe lists), the
finding policies, patients and attributes, and the refusal of multi-label data by one-label commands."""
from __future__ import annotations

import numpy as np
import pytest
from data_helpers import ramp, save_png

from medrep.data import load_dataset
from medrep.data.findings import FindingPolicy, apply_policy, require_single_label
from medrep.errors import BadInputError, MedrepError, SpecError


@pytest.fixture()
def images(tmp_path):
    for i in range(6):
        save_png(tmp_path / "imgs" / f"{i}.png", ramp(8, 8, i))
    return tmp_path


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_named_columns_with_spaces_and_slashes_patients_and_attributes(images):
    csv = _write(images / "t.csv", "Image File,Diagnosis Name,Patient ID,Frontal/Lateral,Age\n"
                 "imgs/0.png,benign,p1,Frontal,40\nimgs/1.png,malignant,p1,Lateral,40\nimgs/2.png,benign,p2,Frontal,51\n")
    ds = load_dataset(f"csv:{csv}?path=Image File&label=diagnosis name&patient=Patient ID")
    assert ds.classes == ["benign", "malignant"] and ds.labels.tolist() == [0, 1, 0]
    assert ds.patients.tolist() == ["p1", "p1", "p2"]
    assert ds.attribute_names == ["Frontal/Lateral", "Age"]  # the columns not used otherwise
    assert ds.attribute_values("Frontal/Lateral").tolist() == ["Frontal", "Lateral", "Frontal"]
    item = ds[1]
    assert item.patient == "p1" and item.attributes == {"Frontal/Lateral": "Lateral", "Age": "40"}
    only = load_dataset(f"csv:{csv}?path=Image File&label=Diagnosis Name&attrs=Age")
    assert only.attribute_names == ["Age"] and only.patients is None
    assert load_dataset(f"csv:{csv}?path=Image File&label=Diagnosis Name&attrs=none").attribute_names == []
    # attributes= is the spelling of every other source; attrs= its short form
    spelled = load_dataset(f"csv:{csv}?path=Image File&label=Diagnosis Name&attributes=Age,Frontal/Lateral")
    assert spelled.attribute_names == ["Age", "Frontal/Lateral"]
    with pytest.raises(MedrepError, match=r"no column 'Sex' \(given by \?attributes=Sex\)"):
        load_dataset(f"csv:{csv}?path=Image File&label=Diagnosis Name&attributes=Sex")
    with pytest.raises(MedrepError, match="attributes= and attrs= are the same option"):
        load_dataset(f"csv:{csv}?path=Image File&label=Diagnosis Name&attributes=Age&attrs=Age")
    with pytest.raises(MedrepError, match=r"no column 'Label' \(given by \?label=Label\); the columns are: 'Image File'"):
        load_dataset(f"csv:{csv}?path=Image File&label=Label")


def test_root_option_and_onehot_classes(images):
    sub = images / "meta"
    sub.mkdir()
    csv = _write(sub / "gt.csv", "image,MEL,NV,BCC\nimgs/0.png,1.0,0.0,0.0\nimgs/1.png,0.0,1.0,0.0\nimgs/2.png,0.0,0.0,1.0\n")
    ds = load_dataset(f"csv:{csv}?path=image&onehot=MEL,NV,BCC&root={images}")
    assert ds.classes == ["BCC", "MEL", "NV"] and [ds.classes[i] for i in ds.labels] == ["MEL", "NV", "BCC"]
    bad = _write(sub / "bad.csv", "image,MEL,NV\nimgs/0.png,1.0,1.0\n")
    with pytest.raises(BadInputError, match=r"bad\.csv row 2: 2 of the one-hot columns MEL, NV are 1"):
        load_dataset(f"csv:{bad}?path=image&onehot=MEL,NV&root={images}")


def _codes_csv(images):
    return _write(images / "codes.csv", "Path,Edema,Pleural Effusion\n"
                  "imgs/0.png,1.0,\nimgs/1.png,-1.0,0.0\nimgs/2.png,0.0,1.0\nimgs/3.png,,-1.0\nimgs/4.png,1.0,1.0\n")


def test_per_finding_codes_and_policies(images):
    csv = _codes_csv(images)
    ds = load_dataset(f"csv:{csv}?findings=Edema,Pleural Effusion")
    assert ds.findings == ["Edema", "Pleural Effusion"]
    nan = np.nan
    # default: uncertain ignored (NaN), blank negative
    np.testing.assert_array_equal(ds.finding_matrix, [[1, 0], [nan, 0], [0, 1], [0, nan], [1, 1]])
    with pytest.raises(MedrepError, match=r"multi-label \(2 findings: Edema, Pleural Effusion\).*\?finding=Edema"):
        require_single_label(ds)
    ones = load_dataset(f"csv:{csv}?findings=Edema,Pleural Effusion&finding=edema&uncertain=ones")
    assert ones.classes == ["no Edema", "Edema"] and ones.labels.tolist() == [1, 1, 0, 0, 1]
    zeros = load_dataset(f"csv:{csv}?findings=Edema,Pleural Effusion&finding=Edema&uncertain=zeros&blank=ignore")
    assert zeros.ids == ["imgs/0.png", "imgs/1.png", "imgs/2.png", "imgs/4.png"] and zeros.labels.tolist() == [1, 0, 0, 1]
    ignore = load_dataset(f"csv:{csv}?findings=Edema,Pleural Effusion&finding=Pleural Effusion")
    assert ignore.ids == ["imgs/0.png", "imgs/1.png", "imgs/2.png", "imgs/4.png"] and ignore.labels.tolist() == [0, 0, 1, 1]
    require_single_label(ignore)  # a binary task is accepted
    with pytest.raises(SpecError, match=r"unknown finding 'Cardiomegaly' \(known: Edema, Pleural Effusion\)"):
        load_dataset(f"csv:{csv}?findings=Edema,Pleural Effusion&finding=Cardiomegaly")
    with pytest.raises(SpecError, match="uncertain must be one of ones, zeros, ignore"):
        load_dataset(f"csv:{csv}?findings=Edema&finding=Edema&uncertain=maybe")
    bad = _write(images / "badcode.csv", "Path,Edema\nimgs/0.png,yes\n")
    with pytest.raises(BadInputError, match=r"badcode\.csv: row 2: 'yes' is not a finding label"):
        load_dataset(f"csv:{bad}?findings=Edema")


def test_apply_policy_matches_the_chexpert_paper_definitions():
    codes = np.array([1, 0, -1, np.nan], dtype=np.float32)
    nan = np.nan
    np.testing.assert_array_equal(apply_policy(codes, FindingPolicy(uncertain="ones")), [1, 0, 1, 0])
    np.testing.assert_array_equal(apply_policy(codes, FindingPolicy(uncertain="zeros")), [1, 0, 0, 0])
    np.testing.assert_array_equal(apply_policy(codes, FindingPolicy(uncertain="ignore", blank="ignore")), [1, 0, nan, nan])


def test_pipe_separated_finding_list(images):
    csv = _write(images / "nih.csv", "Image Index,Finding Labels,Patient ID\n"
                 "imgs/0.png,Cardiomegaly|Effusion,7\nimgs/1.png,No Finding,7\nimgs/2.png,Effusion,9\n")
    ds = load_dataset(f"csv:{csv}?path=Image Index&finding_list=Finding Labels&patient=Patient ID")
    assert ds.findings == ["Cardiomegaly", "Effusion"]
    np.testing.assert_array_equal(ds.finding_matrix, [[1, 1], [0, 0], [0, 1]])
    eff = load_dataset(f"csv:{csv}?path=Image Index&finding_list=Finding Labels&finding=Effusion")
    assert eff.labels.tolist() == [1, 0, 1]
    with pytest.raises(SpecError, match="one label form"):
        load_dataset(f"csv:{csv}?path=Image Index&label=Patient ID&finding_list=Finding Labels")


def test_missing_image_named_with_its_row_or_skipped(images):
    csv = _write(images / "m.csv", "file,y\nimgs/0.png,a\nimgs/gone.png,b\nimgs/2.png,b\n")
    with pytest.raises(BadInputError, match=r"m\.csv row 3: .*gone\.png: no such file"):
        load_dataset(f"csv:{csv}?path=file&label=y")
    from medrep.data import SkipLog

    skipped = SkipLog()
    ds = load_dataset(f"csv:{csv}?path=file&label=y", skip_bad=True, skipped=skipped)
    assert ds.ids == ["imgs/0.png", "imgs/2.png"] and skipped.skipped[0]["item"].endswith("m.csv row 3")

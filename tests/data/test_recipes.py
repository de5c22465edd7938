"""Every recipe reads a small tree in its dataset's published layout: labels, findings, patients, attributes,
masks and splits as the dataset defines them, and the errors of a wrong folder."""
from __future__ import annotations

import numpy as np
import pytest
import recipe_trees as trees

from medrep.data import load_dataset
from medrep.errors import MedrepError, SpecError


def test_chexpert_layout_labels_patients_attributes_and_views(tmp_path):
    root = trees.chexpert(tmp_path)
    ds = load_dataset(f"chexpert:{root}")
    assert ds.splits == ["train", "valid"] and ds.findings == trees.CHEXPERT_FINDINGS
    train = ds.split("train")
    assert train.ids[0] == "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    edema = train.finding_matrix[:, ds.findings.index("Edema")]
    # 1 / 0 / -1 / blank by patient: uncertain ignored (NaN), blank negative by default
    np.testing.assert_array_equal(edema[::2][:4], [1, 0, np.nan, 0])
    assert train.patients[:4].tolist() == ["patient00001"] * 2 + ["patient00002"] * 2
    assert train.attribute_names == ["Sex", "Age", "Frontal/Lateral", "AP/PA"]
    assert train[1].attributes == {"Sex": "Male", "Age": "40", "Frontal/Lateral": "Lateral", "AP/PA": ""}
    assert ds.describe()["n_patients"] == 16
    frontal = load_dataset(f"chexpert:{root}?view=frontal")
    assert len(frontal) == len(ds) // 2 and set(frontal.attribute_values("Frontal/Lateral")) == {"Frontal"}
    binary = load_dataset(f"chexpert:{root}?finding=Edema&uncertain=zeros")
    assert binary.classes == ["no Edema", "Edema"] and binary.findings == []
    assert binary.split("train").labels[::2][:4].tolist() == [1, 0, 0, 0]
    ones = load_dataset(f"chexpert:{root}?finding=Edema&uncertain=ones&blank=ignore").split("train")
    assert ones.labels[::2][:4].tolist() == [1, 0, 1] + [1]  # patient 4 is blank: dropped; patient 5 is 1
    with pytest.raises(SpecError, match=r"unknown finding 'Edemaa' \(known: No Finding, .*Support Devices\)"):
        load_dataset(f"chexpert:{root}?finding=Edemaa")
    with pytest.raises(SpecError, match="unknown option 'views' for chexpert"):
        load_dataset(f"chexpert:{root}?views=frontal")


def test_chexpert_parent_folder_and_wrong_folder(tmp_path):
    trees.chexpert(tmp_path)
    assert len(load_dataset(f"chexpert:{tmp_path}")) == 32  # the download folder holding CheXpert-v1.0-small/
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "labels.csv").write_text("x\n")
    with pytest.raises(MedrepError, match=r"other: chexpert: expected train\.csv .* found labels\.csv"):
        load_dataset(f"chexpert:{tmp_path / 'other'}")


def test_nih_findings_boxes_patients_and_splits(tmp_path):
    root = trees.nih(tmp_path)
    ds = load_dataset(f"nih-cxr14:{root}")
    assert ds.splits == ["train", "test"] and len(ds.split("train")) == 8 and len(ds.split("test")) == 4
    first = ds.split("train")
    j = ds.findings.index
    assert first.finding_matrix[0, j("Cardiomegaly")] == 1 and first.finding_matrix[0, j("Effusion")] == 1
    assert first.finding_matrix[1].sum() == 0  # No Finding
    assert first.patients[:3].tolist() == ["1", "1", "2"]
    assert first[0].attributes == {"Patient Gender": "M", "Patient Age": "50", "View Position": "AP"}
    cardio = load_dataset(f"nih-cxr14:{root}?finding=Cardiomegaly").split("train")
    mask = cardio[0].mask.numpy()
    # Bbox x=8.5, y=10.25, w=12, h=6 → columns 8..20 (x 8.5–20.5), rows 10..16 (y 10.25–16.25)
    assert mask.sum() == 13 * 7 and mask[10, 8] and mask[16, 20] and not mask[17, 8] and not mask[10, 21]
    infil = load_dataset(f"nih-cxr14:{root}?finding=Infiltration").split("train")
    assert infil[2].mask.numpy().sum() == 14 * 12  # BBox_List's "Infiltrate" is Infiltration
    assert not infil.has_lesion(0)  # boxes of other findings do not count


def test_busi_merges_mask_files(tmp_path):
    ds = load_dataset(f"busi:{trees.busi(tmp_path)}")
    assert ds.classes == ["benign", "malignant", "normal"] and len(ds) == 11 and ds.has_masks
    first = ds[0]
    assert first.id == "benign/benign (1).png" and int(first.mask.sum()) == 12 * 14 + 16
    assert not ds.has_lesion(len(ds) - 1)  # normal images have empty masks


def test_aptos_kvasir_mura_isic(tmp_path):
    aptos = load_dataset(f"aptos:{trees.aptos(tmp_path)}")
    assert aptos.classes == ["0", "1", "2", "3", "4"] and aptos.labels.tolist() == [k % 5 for k in range(10)]
    kv = load_dataset(f"kvasir-seg:{trees.kvasir(tmp_path)}")
    assert kv.classes == ["polyp"] and int(kv[0].mask.sum()) == 12 * 14  # JPEG noise thresholded away
    mura = load_dataset(f"mura:{trees.mura(tmp_path)}")
    assert mura.splits == ["train", "valid"] and mura.classes == ["normal", "abnormal"]
    tr = mura.split("train")
    assert tr.ids[0] == "MURA-v1.1/train/XR_WRIST/patient00001/study1_negative/image1.png"
    assert tr.labels.tolist()[:4] == [0, 0, 1, 1] and tr.patients[:2].tolist() == ["patient00001"] * 2
    assert tr.attribute_values("study_type")[:3].tolist() == ["XR_WRIST", "XR_WRIST", "XR_SHOULDER"]
    i19 = load_dataset(f"isic:{trees.isic2019(tmp_path)}")
    assert i19.classes == ["MEL", "NV"] and i19.labels.tolist()[:2] == [0, 1]
    assert i19.patients.tolist()[:3] == ["BCN_0000000", "BCN_0000000", "BCN_0000001"] and i19.patients[-1] == "ISIC_0000011"
    assert i19[1].attributes == {"sex": "female", "age_approx": "40", "anatom_site_general": "anterior torso"}
    i18 = load_dataset(f"isic:{trees.isic2018(tmp_path / 'with')}")
    assert i18.classes == ["MEL", "NV"] and i18.patients.tolist()[:3] == ["HAM_0000000", "HAM_0000000", "HAM_0000001"]
    assert i18.attribute_names == ["sex", "age_approx", "anatom_site_general"]
    assert i18[1].attributes == {"sex": "female", "age_approx": "45.0", "anatom_site_general": "back"}
    assert i18.attribute_values("age_approx")[-1] == "" and i18.attribute_values("sex")[-1] == "unknown"
    # the challenge's own files carry no sex or age: lesion groups only, and no attribute is invented
    bare = load_dataset(f"isic:{trees.isic2018(tmp_path / 'bare', ham_metadata=False)}")
    assert bare.attribute_names == [] and bare.patients.tolist()[:3] == ["HAM_0000000", "HAM_0000000", "HAM_0000001"]
    i20 = load_dataset(f"isic:{trees.isic2020(tmp_path)}")
    assert i20.classes == ["benign", "malignant"] and i20.patients.tolist()[:4] == ["IP_0000000"] * 3 + ["IP_0000001"]
    assert i20[0].attributes["anatom_site_general"] == "torso"


def test_rsna_vindr_dicom_boxes(tmp_path):
    rsna = load_dataset(f"rsna-pneumonia:{trees.rsna(tmp_path)}")
    assert rsna.classes == ["no pneumonia", "pneumonia"] and rsna.labels.tolist() == [1, 0] * 4
    assert int(rsna[0].mask.sum()) == 14 * 12 + 16 and not rsna.has_lesion(1)  # two boxes merged
    assert rsna[1].attributes == {"class": "Normal"} and rsna[3].attributes == {"class": "No Lung Opacity / Not Normal"}
    vindr = load_dataset(f"vindr-cxr:{trees.vindr(tmp_path)}")
    assert vindr.splits == ["train", "test"] and vindr.findings == trees.VINDR_FINDINGS and vindr.patients is None
    tr = vindr.split("train")
    assert tr.finding_matrix[0, 1] == 1 and tr.finding_matrix[0, 4] == 1  # any radiologist: one said No finding
    cardio = load_dataset(f"vindr-cxr:{trees.vindr(tmp_path)}?finding=Cardiomegaly").split("train")
    assert int(cardio[0].mask.sum()) == 14 * 12 and not cardio.has_lesion(1)


def test_mimic_and_chexlocalize(tmp_path):
    mimic = load_dataset(f"mimic-cxr-jpg:{trees.mimic(tmp_path)}")
    assert mimic.splits == ["train", "validate", "test"] and mimic.findings == trees.MIMIC_FINDINGS
    tr = mimic.split("train")
    assert tr.patients[:2].tolist() == ["10000032"] * 2 and tr.attribute_values("ViewPosition")[:2].tolist() == ["PA", "LATERAL"]
    assert tr.ids[0].startswith("files/p10/p10000032/s50414267/")
    loc = load_dataset(f"chexlocalize:{trees.chexlocalize(tmp_path)}?finding=Cardiomegaly")
    assert loc.splits == ["val", "test"] and loc.classes == ["no Cardiomegaly", "Cardiomegaly"]
    val = loc.split("val")
    assert val.labels.tolist() == [1, 0] * 3 and int(val[0].mask.sum()) == 12 * 14 and not val.has_lesion(1)
    m = val[0].mask.numpy()
    assert m[8:20, 10:24].all() and m.sum() == m[8:20, 10:24].sum()


@pytest.mark.parametrize("recipe, build", [("chexpert", trees.chexpert), ("nih-cxr14", trees.nih), ("mimic-cxr-jpg", trees.mimic),
                                           ("mura", trees.mura), ("isic", trees.isic2020), ("rsna-pneumonia", trees.rsna),
                                           ("aptos", trees.aptos), ("busi", trees.busi)])
def test_each_recipe_lists_the_attributes_it_carries(recipe, build, tmp_path):
    from medrep.data.recipes import load_recipes

    declared = load_recipes()[recipe].attributes
    names = load_dataset(f"{recipe}:{build(tmp_path)}").attribute_names
    assert all(n in declared for n in names) and (names or declared == "none"), (names, declared)

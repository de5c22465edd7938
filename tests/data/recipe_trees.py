"""Small trees in the published layouts of the recipes' datasets (real file and column names, label encodings and
quirks), with tiny synthetic images.  Imported as a plain module by the recipe tests."""
from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32
CHEXPERT_FINDINGS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                     "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                     "Fracture", "Support Devices"]


def image(seed: int, positive: bool = False, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 120, (size, size), dtype=np.uint8)
    if positive:  # a bright patch the tiny models can pick up
        img[8:20, 10:24] = 230
    return img


def _seed(text: str) -> int:
    return zlib.crc32(text.encode()) % 1000


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_dicom(path: Path, array: np.ndarray, **header: str) -> Path:
    """A 12-bit MONOCHROME2 DICOM of ``array``, with the ``header`` elements (keyword → value) set."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    stored = array.astype(np.uint16) * 16
    ds.update({"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "Rows": stored.shape[0],
               "Columns": stored.shape[1], "BitsAllocated": 16, "BitsStored": 12, "HighBit": 11, "PixelRepresentation": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RSNA's ages are plain numbers, not DICOM age strings: pydicom warns
        ds.update(header)
        ds.PixelData = stored.tobytes()
        ds.save_as(path, enforce_file_format=True)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def chexpert(tmp: Path, n_patients: int = 8) -> Path:
    """CheXpert-v1.0-small/{train,valid}.csv + images; Edema alternates 1 / 0 / -1 / blank in train."""
    root = tmp / "CheXpert-v1.0-small"
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_FINDINGS)
    codes = ["1.0", "0.0", "-1.0", ""]
    for split, first in (("train", 1), ("valid", 64541)):
        rows = [header]
        for k in range(n_patients):
            pid = f"patient{first + k:05d}"
            for view, (fl, appa) in enumerate((("Frontal", "AP"), ("Lateral", "")), start=1):
                code = codes[k % 4] if split == "train" else ("1.0" if k % 2 == 0 else "0.0")
                positive = code == "1.0"
                rel = f"CheXpert-v1.0-small/{split}/{pid}/study1/view{view}_{fl.lower()}.jpg"
                save(tmp / rel, image(_seed(rel), positive))
                labels = ["" for _ in CHEXPERT_FINDINGS]
                labels[CHEXPERT_FINDINGS.index("Edema")] = code
                labels[CHEXPERT_FINDINGS.index("Pleural Effusion")] = "1.0" if k % 3 == 0 else "0.0"
                labels[CHEXPERT_FINDINGS.index("No Finding")] = "" if positive else "1.0"
                rows.append(f"{rel},{'Female' if k % 2 else 'Male'},{40 + k},{fl},{appa}," + ",".join(labels))
        write(root / f"{split}.csv", "\n".join(rows) + "\n")
    return root


def nih(tmp: Path) -> Path:
    """Data_Entry_2017.csv (trailing empty column), BBox_List_2017.csv (``Bbox [x`` header, trailing commas,
    ``Infiltrate``), split lists, images in images_001/images/."""
    root = tmp / "nih"
    rows = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
            "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"]
    train, test = [], []
    labels = ["Cardiomegaly|Effusion", "No Finding", "Infiltration", "Effusion", "No Finding", "Cardiomegaly"]
    for k in range(12):
        name = f"{k // 2:08d}_{k % 2:03d}.png"
        finding = labels[k % 6]
        save(root / "images_001" / "images" / name, image(k, finding != "No Finding"))
        rows.append(f"{name},{finding},{k % 2},{k // 2 + 1},{50 + k},{'MF'[k % 2]},{'PA' if k % 3 else 'AP'},{SIZE},{SIZE},0.143,0.143,")
        (test if k // 2 >= 4 else train).append(name)
    write(root / "Data_Entry_2017.csv", "\n".join(rows) + "\n")
    write(root / "train_val_list.txt", "\n".join(train) + "\n")
    write(root / "test_list.txt", "\n".join(test) + "\n")
    write(root / "BBox_List_2017.csv", "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
          "00000000_000.png,Cardiomegaly,8.5,10.25,12.0,6.0,,,\n"
          "00000000_000.png,Effusion,2,2,4,4,,,\n"
          "00000001_000.png,Infiltrate,10,8,14,12,,,\n"
          "00000002_001.png,Cardiomegaly,10,8,14,12,,,\n")
    return root


def busi(tmp: Path) -> Path:
    root = tmp / "Dataset_BUSI_with_GT"
    for cls, n in (("benign", 4), ("malignant", 4), ("normal", 3)):
        for i in range(1, n + 1):
            stem = f"{cls} ({i})"
            save(root / cls / f"{stem}.png", image(_seed(stem), cls != "normal"))
            m = np.zeros((SIZE, SIZE), np.uint8)
            if cls != "normal":
                m[8:20, 10:24] = 255
            save(root / cls / f"{stem}_mask.png", m)
            if cls == "benign" and i == 1:  # a second lesion in its own file
                m2 = np.zeros((SIZE, SIZE), np.uint8)
                m2[24:28, 2:6] = 255
                save(root / cls / f"{stem}_mask_1.png", m2)
    return root


def aptos(tmp: Path) -> Path:
    root = tmp / "aptos2019-blindness-detection"
    rows = ["id_code,diagnosis"]
    for k in range(10):
        ident = f"{k:04x}ab12cd"
        save(root / "train_images" / f"{ident}.png", image(k, k % 5 > 1))
        rows.append(f"{ident},{k % 5}")
    write(root / "train.csv", "\n".join(rows) + "\n")
    write(root / "test.csv", "id_code\nffff0000\n")
    return root


def kvasir(tmp: Path) -> Path:
    root = tmp / "Kvasir-SEG"
    for k in range(8):
        name = f"cju{k}ddr6p4k0d0{k}.jpg"
        rgb = np.stack([image(k, True)] * 3, axis=-1)
        save(root / "images" / name, rgb)
        m = np.zeros((SIZE, SIZE), np.uint8)
        m[8:20, 10:24] = 255
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(m).save(root / "masks" / name, quality=75)  # lossy: values near 0 and 255
    return root


def mura(tmp: Path) -> Path:
    root = tmp / "MURA-v1.1"
    for split in ("train", "valid"):
        paths, studies = [], []
        for k in range(6):
            kind = "XR_SHOULDER" if k % 2 else "XR_WRIST"
            pid = f"patient{k + (1 if split == 'train' else 11185):05d}"
            label = k % 2
            study = f"MURA-v1.1/{split}/{kind}/{pid}/study1_{'positive' if label else 'negative'}/"
            studies.append(f"{study},{label}")
            for i in (1, 2):
                rel = f"{study}image{i}.png"
                save(tmp / rel, image(_seed(rel), bool(label)))
                paths.append(rel)
        write(root / f"{split}_image_paths.csv", "\n".join(paths) + "\n")
        write(root / f"{split}_labeled_studies.csv", "\n".join(studies) + "\n")
    return root


def isic2019(tmp: Path) -> Path:
    root = tmp / "isic2019"
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    gt, meta = ["image," + ",".join(classes)], ["image,age_approx,anatom_site_general,lesion_id,sex"]
    for k in range(12):
        ident = f"ISIC_{k:07d}"
        cls = k % 2  # MEL / NV
        save(root / "ISIC_2019_Training_Input" / f"{ident}.jpg", np.stack([image(k, cls == 0)] * 3, axis=-1))
        gt.append(ident + "," + ",".join("1.0" if j == cls else "0.0" for j in range(len(classes))))
        lesion = f"BCN_{k // 2:07d}" if k < 8 else ""
        meta.append(f"{ident},{35 + 5 * (k % 4)},{'anterior torso' if k % 3 else 'head/neck'},{lesion},{'female' if k % 2 else 'male'}")
    write(root / "ISIC_2019_Training_GroundTruth.csv", "\n".join(gt) + "\n")
    write(root / "ISIC_2019_Training_Metadata.csv", "\n".join(meta) + "\n")
    return root


def isic2018(tmp: Path, ham_metadata: bool = True) -> Path:
    """ISIC 2018 task 3 (one-hot GroundTruth in its own folder, LesionGroupings.csv) and, optionally, the HAM10000
    release's metadata (age, sex, localization; ``unknown`` sex and a blank age as published)."""
    root = tmp / "isic2018"
    classes = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    gt, groups = ["image," + ",".join(classes)], ["image,lesion_id,diagnosis_confirm_type"]
    ham = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for k in range(8):
        ident, lesion = f"ISIC_{24306 + k:07d}", f"HAM_{k // 2:07d}"
        cls = k % 2
        save(root / "ISIC2018_Task3_Training_Input" / f"{ident}.jpg", np.stack([image(k, cls == 0)] * 3, axis=-1))
        gt.append(ident + "," + ",".join("1.0" if j == cls else "0.0" for j in range(len(classes))))
        groups.append(f"{ident},{lesion},histopathology")
        age, sex = ("", "unknown") if k == 7 else (f"{40 + 5 * k}.0", "female" if k % 2 else "male")
        ham.append(f"{lesion},{ident},{'mel' if cls == 0 else 'nv'},histo,{age},{sex},{'back' if k % 3 else 'face'}")
    write(root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv", "\n".join(gt) + "\n")
    write(root / "ISIC2018_Task3_Training_LesionGroupings.csv", "\n".join(groups) + "\n")
    if ham_metadata:
        write(root / "HAM10000_metadata.csv", "\n".join(ham) + "\n")
    return root


def isic2020(tmp: Path) -> Path:
    root = tmp / "isic2020"
    rows = ["image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target"]
    for k in range(12):
        ident = f"ISIC_{2637011 + k}"
        target = k % 2
        save(root / "train" / f"{ident}.jpg", np.stack([image(k, bool(target))] * 3, axis=-1))
        rows.append(f"{ident},IP_{k // 3:07d},{'male' if k % 2 else 'female'},{45.0 + k},torso,"
                    f"{'melanoma' if target else 'nevus'},{'malignant' if target else 'benign'},{target}")
    write(root / "train.csv", "\n".join(rows) + "\n")
    return root


def rsna(tmp: Path) -> Path:
    root = tmp / "rsna-pneumonia-detection-challenge"
    rows, details = ["patientId,x,y,width,height,Target"], ["patientId,class"]
    for k in range(8):
        pid = f"0004cfab-14fd-4e49-80ba-63a80b6bddd{k}"
        positive = k % 2 == 0
        # the published headers: the patientId as name and id, sex, a plain-number age, the view, CR, CHEST
        save_dicom(root / "stage_2_train_images" / f"{pid}.dcm", image(k, positive), PatientName=pid, PatientID=pid,
                   PatientSex="MF"[k % 2], PatientAge=str(38 + 7 * k), ViewPosition="PA" if k % 3 else "AP", Modality="CR",
                   BodyPartExamined="CHEST")
        if positive:
            rows.append(f"{pid},10.0,8.0,14.0,12.0,1")
            if k == 0:
                rows.append(f"{pid},2.0,2.0,4.0,4.0,1")
            details.append(f"{pid},Lung Opacity")
        else:
            rows.append(f"{pid},,,,,0")
            details.append(f"{pid},{'Normal' if k % 4 == 1 else 'No Lung Opacity / Not Normal'}")
    write(root / "stage_2_train_labels.csv", "\n".join(rows) + "\n")
    write(root / "stage_2_detailed_class_info.csv", "\n".join(details) + "\n")
    return root


VINDR_FINDINGS = ["Aortic enlargement", "Cardiomegaly", "Nodule/Mass", "Pleural effusion", "No finding"]


def vindr(tmp: Path) -> Path:
    root = tmp / "vindr-cxr" / "1.0.0"
    for split in ("train", "test"):
        labels = ["image_id," + ("rad_id," if split == "train" else "") + ",".join(VINDR_FINDINGS)]
        boxes = ["image_id," + ("rad_id," if split == "train" else "") + "class_name,x_min,y_min,x_max,y_max"]
        for k in range(6):
            ident = f"{split[:2]}{k:030x}"
            positive = k % 2 == 0
            # de-identified headers keep sex and an age string; one image lacks its age
            age = {} if k == 5 else {"PatientAge": f"{30 + 9 * k:03d}Y"}
            save_dicom(root / split / f"{ident}.dicom", image(k + (10 if split == "test" else 0), positive),
                       PatientSex="FMO"[k % 3], **age)
            rads = ("R1", "R2", "R3") if split == "train" else ("",)
            for r, rad in enumerate(rads):
                mark = positive and r == 0  # one radiologist of three marks it
                vals = ["1" if (mark and f == "Cardiomegaly") or (not mark and f == "No finding") else "0"
                        for f in VINDR_FINDINGS]
                labels.append(f"{ident}," + (f"{rad}," if rad else "") + ",".join(vals))
                if mark:
                    boxes.append(f"{ident}," + (f"{rad}," if rad else "") + "Cardiomegaly,10.0,8.0,24.0,20.0")
                else:
                    boxes.append(f"{ident}," + (f"{rad}," if rad else "") + "No finding,,,,")
        write(root / "annotations" / f"image_labels_{split}.csv", "\n".join(labels) + "\n")
        write(root / "annotations" / f"annotations_{split}.csv", "\n".join(boxes) + "\n")
    return root


MIMIC_FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
                  "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
                  "Pneumothorax", "Support Devices"]


def mimic(tmp: Path) -> Path:
    import gzip

    root = tmp / "physionet.org" / "files" / "mimic-cxr-jpg" / "2.0.0"
    labels = ["subject_id,study_id," + ",".join(MIMIC_FINDINGS)]
    split = ["dicom_id,study_id,subject_id,split"]
    meta = ["dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,"
            "ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning"]
    codes = ["1.0", "0.0", "-1.0", ""]
    for k in range(8):
        subject, study = str(10000032 + k), str(50414267 + k)
        vals = ["" for _ in MIMIC_FINDINGS]
        vals[MIMIC_FINDINGS.index("Edema")] = codes[k % 4]
        vals[MIMIC_FINDINGS.index("Cardiomegaly")] = "1.0" if k % 2 else "0.0"
        labels.append(f"{subject},{study}," + ",".join(vals))
        for v, view in enumerate(("PA", "LATERAL")):
            dicom = f"{k:08x}-{v:08x}-a1b2c3d4-e5f60718-90abcdef"
            save(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg",
                 image(10 * k + v, k % 2 == 1))
            split.append(f"{dicom},{study},{subject},{'test' if k >= 6 else 'validate' if k == 5 else 'train'}")
            meta.append(f"{dicom},{subject},{study},CHEST (PA AND LAT),{view},{SIZE},{SIZE},21800506,213014.531,"
                        f"CHEST (PA AND LAT),postero-anterior,Erect")
    for stem, rows in (("chexpert", labels), ("split", split), ("metadata", meta)):
        (root / f"mimic-cxr-2.0.0-{stem}.csv.gz").write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return root


def rle_encode(mask: np.ndarray) -> str:
    """COCO's compressed RLE string of a bool mask (the encoder of pycocotools' rleToString), for test data."""
    flat = mask.T.ravel().astype(np.uint8)
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


CHEXLOCALIZE_FINDINGS = ["Airspace Opacity", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                         "Enlarged Cardiomediastinum", "Lung Lesion", "Pleural Effusion", "Pneumothorax", "Support Devices"]


#: the human benchmark of :func:`chexlocalize`'s test split (positive images 0, 2, 4; the ground truth is rows
#: 8–19, columns 10–23): image 0 outlined exactly and a point inside (IoU 1, hit), image 2 outlined 6 rows lower
#: and two points outside (IoU 84 / 252 = 1/3, miss), image 4 not in the files (nothing drawn: IoU 0, miss)
HUMAN_BENCHMARK = {0: ((slice(8, 20), slice(10, 24)), [[23.9, 19.9]]), 2: ((slice(14, 26), slice(10, 24)), [[2, 2], [30.5, 30]])}


def chexlocalize(tmp: Path, human_benchmark: bool = False) -> Path:
    """CheXlocalize's layout; ``human_benchmark``: with ``hb_segmentations_test.json`` and ``hb_salient_pt_test.json``
    as the release ships them (:data:`HUMAN_BENCHMARK`)."""
    root = tmp / "chexlocalize"
    for split, first in (("val", 64541), ("test", 64741)):
        segs = {}
        header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_FINDINGS)
        rows = [header]
        for k in range(6):
            pid = f"patient{first + k}"
            positive = k % 2 == 0
            save(root / "CheXpert" / split / pid / "study1" / "view1_frontal.jpg", image(k + first, positive))
            vals = ["0.0" for _ in CHEXPERT_FINDINGS]
            vals[CHEXPERT_FINDINGS.index("Cardiomegaly")] = "1.0" if positive else "0.0"
            rows.append(f"CheXpert-v1.0/{split}/{pid}/study1/view1_frontal.jpg,Male,60,Frontal,PA," + ",".join(vals))
            per = {}
            for f in CHEXLOCALIZE_FINDINGS:
                m = np.zeros((SIZE, SIZE), bool)
                if positive and f == "Cardiomegaly":
                    m[8:20, 10:24] = True
                per[f] = {"size": [SIZE, SIZE], "counts": rle_encode(m)}
            segs[f"{pid}_study1_view1_frontal"] = per
        write(root / "CheXpert" / f"{split}_labels.csv", "\n".join(rows) + "\n")
        write(root / "CheXlocalize" / f"gt_segmentations_{split}.json", json.dumps(segs))
    if human_benchmark:
        _chexlocalize_human_benchmark(root, 64741)
    return root


def _chexlocalize_human_benchmark(root: Path, first: int) -> None:
    segs, points = {}, {}
    for k in range(6):
        if k == 4:
            continue  # not read: the files do not list it
        image_id = f"patient{first + k}_study1_view1_frontal"
        per = {}
        for f in CHEXLOCALIZE_FINDINGS:
            m = np.zeros((SIZE, SIZE), bool)
            if k in HUMAN_BENCHMARK and f == "Cardiomegaly":
                m[HUMAN_BENCHMARK[k][0]] = True
            per[f] = {"size": [SIZE, SIZE], "counts": rle_encode(m)}
        segs[image_id] = per
        if k in HUMAN_BENCHMARK:
            points[image_id] = {"Cardiomegaly": HUMAN_BENCHMARK[k][1]}
    write(root / "CheXlocalize" / "hb_segmentations_test.json", json.dumps(segs))
    write(root / "CheXlocalize" / "hb_salient_pt_test.json", json.dumps(points))

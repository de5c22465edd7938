"""Privacy: an audit over DICOM files that carry patient attributes writes none of them anywhere —
not in the output folder, not in the embedding cache, not on stdout/stderr, not in logs or warnings."""
from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

pydicom = pytest.importorskip("pydicom")

# Identifying elements beyond the Patient module (group 0x0010, always included).
IDENTIFYING = {"AccessionNumber", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
               "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "StudyID", "StationName",
               "StudyDate", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"}
# Planted on top of the test files' own values (their birth date and accession number are empty).
PLANTED = {"PatientBirthDate": "19610314", "AccessionNumber": "ACC7731XQ", "PatientAddress": "12 Harbour Lane, Springfield",
           "OtherPatientIDs": "MRN-88412", "ReferringPhysicianName": "Rivera^Nicholas", "PatientTelephoneNumbers": "555-0199-42"}


def _write_copies(root: Path) -> list[tuple[str, str, str]]:
    """Noisy 64×64 copies of pydicom's CT_small and MR_small (class = modality); returns (path, label, split) rows.

    One size for all: the attacks perturb raw pixels, so they batch images of one shape only."""
    from pydicom.data import get_testdata_file

    rows = []
    rng = np.random.default_rng(0)
    for label, name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        ds = pydicom.dcmread(get_testdata_file(name))
        for key, value in PLANTED.items():
            setattr(ds, key, value)
        pixels = ds.pixel_array[::2, ::2] if ds.Rows == 128 else ds.pixel_array
        ds.Rows, ds.Columns = pixels.shape
        for split, n in (("train", 4), ("test", 2)):
            for i in range(n):
                noisy = np.clip(pixels.astype(np.int64) + rng.integers(-40, 41, pixels.shape), 0, np.iinfo(pixels.dtype).max)
                ds.PixelData = noisy.astype(pixels.dtype).tobytes()
                rel = f"images/{label}-{split}-{i}.dcm"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(root / rel)
                rows.append((rel, label, split))
    return rows


def _identifying_values(files: list[Path]) -> set[str]:
    """Every identifying value, read back from the DICOM files themselves."""
    values: set[str] = set()
    for f in files:
        for el in pydicom.dcmread(f).iterall():
            if el.VR in ("SQ", "CS", "US", "SS", "UL", "SL", "FL", "FD", "OB", "OW") or el.keyword == "PixelData":
                continue
            if el.tag.group != 0x0010 and el.keyword not in IDENTIFYING:
                continue
            for v in (el.value if isinstance(el.value, (list, pydicom.multival.MultiValue)) else [el.value]):
                text = str(v).strip()
                values.add(text)
                if el.VR == "PN":  # family and given names on their own, and written with spaces
                    values.update(p for p in text.split("^") if p)
                    values.add(" ".join(p for p in text.split("^") if p))
    # coded or placeholder values ('----', '000000000') say nothing about a patient
    return {v for v in values if len(v) >= 4 and any(c.isalnum() for c in v) and len(set(v)) > 1}


def _pattern(values: set[str]) -> re.Pattern:
    alts = b"|".join(re.escape(v.encode()) for v in sorted(values, key=len, reverse=True))
    return re.compile(rb"(?<![A-Za-z0-9])(?:" + alts + rb")(?![A-Za-z0-9])")


def test_no_patient_attribute_leaves_the_dicom_files(tmp_path, capfd, caplog, one_thread, progress_on):
    from medrep.cli import main
    from medrep.progress import set_quiet

    data = tmp_path / "data"
    rows = _write_copies(data)
    captions = {"ct": "a computed tomography slice", "mr": "a magnetic resonance image"}
    (data / "manifest.csv").write_text("path,label,split,caption\n" + "".join(f"{p},{l},{s},{captions[l]}\n" for p, l, s in rows))
    values = _identifying_values([data / p for p, _, _ in rows])
    assert {"CompressedSamples^CT1", "CompressedSamples^MR1", "1CT1", "4MR1", "JFK IMAGING CENTER", "ABCD1234",
            *PLANTED.values()} <= values
    pattern = _pattern(values)
    assert pattern.search((data / rows[0][0]).read_bytes())  # the check sees what is in the files

    config = {
        "title": "privacy audit", "data": str(data / "manifest.csv"), "models": ["demo-cnn"], "text": "minilm",
        "batch_size": 8, "n_boot": 20,
        "analyses": {
            "robustness": {"objectives": ["collide"], "eps": [8 / 255], "attack_steps": 1, "limit": 4},
            "explain": {"enabled": False},  # needs lesion masks
            "features": {"k": 3, "shots": [1], "projections": [], "n_permutations": 10},
            "overlay": {"limit": None},
            "alignment": {"anchors": [6], "stitching": False},
        },
    }
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out, cache = tmp_path / "out", tmp_path / "cache"
    caplog.set_level(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rc = main(["audit", str(cfg), "--out", str(out), "--cache-dir", str(cache), "--device", "cpu"])
    finally:
        set_quiet(False)
    captured = capfd.readouterr()
    assert rc == 0, captured.err

    import json

    results = json.loads((out / "results.json").read_text())
    assert [s["id"] for s in results["sections"] if s["error"] is None] == ["robustness", "features", "alignment"], \
        results["sections"]
    assert "error" not in results["overlay"]

    written = [p for root in (out, cache) for p in root.rglob("*")]
    assert len([p for p in written if p.is_file()]) > 20 and any(p.suffix == ".npy" for p in written)
    leaks = []
    for p in written:
        if pattern.search(str(p).encode()):
            leaks.append(f"file name {p}")
        if p.is_file() and (m := pattern.search(p.read_bytes())):
            leaks.append(f"{p}: {m.group().decode(errors='replace')!r}")
    streams = {"stdout": captured.out, "stderr": captured.err, "log": caplog.text,
               "warnings": "\n".join(str(w.message) for w in caught)}
    for name, text in streams.items():
        if m := pattern.search(text.encode()):
            leaks.append(f"{name}: {m.group().decode()!r}")
    assert not leaks, leaks
    assert "[1/3]" in captured.err  # progress was on, so its lines were checked too

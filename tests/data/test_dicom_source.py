"""DICOM decoding on pydicom's own test files, checked against pydicom's LUT functions.

Files used (all ship with pydicom): CT_small (signed 16-bit CT, rescale slope/intercept, no window),
MR_small (signed 16-bit MR with WindowCenter/Width), dicomdirtests …/CR1/6154 (12-bit MONOCHROME1 CR,
rescale + window, no file suffix), examples_rgb_color (8-bit RGB), SC_ybr_full_422_uncompressed
(YBR_FULL_422), examples_palette (PALETTE COLOR), examples_ybr_color (30-frame JPEG baseline YBR),
rtdose (15-frame 32-bit), JPEG2000 (JPEG 2000, decoded by Pillow's plugin), JPEGLSNearLossless_08
(JPEG-LS: no decoder installed here), MR_truncated (short pixel data).
"""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space, get_decoder, pixel_array

from medrep.data import SkipLog, load_dataset
from medrep.data.dicom import read_dicom_frames, window_linear
from medrep.data.images import read_image
from medrep.errors import BadInputError, SpecError

warnings.filterwarnings("ignore", module="pydicom")


def _dcm(name: str):
    return pydicom.dcmread(get_testdata_file(name))


def _minmax(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.min()) / (x.max() - x.min())


def test_ct_small_modality_lut_then_minmax():
    ds = _dcm("CT_small.dcm")
    img = read_image(get_testdata_file("CT_small.dcm"))
    assert tuple(img.shape) == (1, 128, 128)
    hu = apply_modality_lut(ds.pixel_array, ds)
    assert float(ds.RescaleIntercept) == -1024.0
    np.testing.assert_allclose(img[0].numpy(), _minmax(hu), atol=1e-6)


def test_mr_small_header_window_matches_pydicom_voi_lut():
    ds = _dcm("MR_small.dcm")
    img = read_image(get_testdata_file("MR_small.dcm"))[0].numpy()
    voi = apply_voi_lut(ds.pixel_array, ds)
    # pydicom maps a LINEAR window onto the stored range of signed 16-bit data, [-32768, 32767]
    np.testing.assert_allclose(img, (voi + 32768) / 65535, atol=1e-6)
    # hand check of DICOM's LINEAR formula (center 600, width 1600) on the darkest pixel (127)
    raw = ds.pixel_array
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (600.0, 1600.0)
    assert img[raw == raw.min()][0] == pytest.approx((127 - 599.5) / 1599 + 0.5, abs=1e-6)
    assert img[raw >= 1400].min() == 1.0  # above the window: saturated


def test_window_option_overrides_header_and_none_gives_minmax():
    path = get_testdata_file("CT_small.dcm")
    ds = _dcm("CT_small.dcm")
    hu = apply_modality_lut(ds.pixel_array, ds)
    ct = load_dataset(f"dicom:{path}?window=40,400")[0].image[0].numpy()
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ref = apply_voi_lut(hu, ds)
    np.testing.assert_allclose(_minmax(ct), _minmax(ref), atol=1e-6)
    np.testing.assert_allclose(ct, window_linear(hu, 40, 400), atol=1e-6)
    assert ct.min() == 0.0 and ct.max() == 1.0
    mr = load_dataset(f"dicom:{get_testdata_file('MR_small.dcm')}?window=none")[0].image[0].numpy()
    np.testing.assert_allclose(mr, _minmax(_dcm("MR_small.dcm").pixel_array), atol=1e-6)
    with pytest.raises(SpecError, match="window"):
        load_dataset(f"dicom:{path}?window=40")


def test_monochrome1_is_inverted():
    path = get_testdata_file("6154")  # dicomdirtests/77654033/CR1/6154, no suffix
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    img = read_image(path)[0].numpy()
    voi = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    np.testing.assert_allclose(_minmax(img), 1 - _minmax(voi), atol=1e-6)
    # exact: pydicom's output range is the modality-rescaled 12-bit range [200, 4095 * 0.684 + 200]
    lo, hi = 200.0, 4095 * 0.684 + 200
    np.testing.assert_allclose(img, 1 - (voi - lo) / (hi - lo), atol=1e-6)
    assert np.corrcoef(img.ravel(), ds.pixel_array.ravel())[0, 1] < -0.99


def test_rgb_ybr_and_palette_colour():
    rgb = read_image(get_testdata_file("examples_rgb_color.dcm")).numpy()
    np.testing.assert_array_equal(rgb, _dcm("examples_rgb_color.dcm").pixel_array.transpose(2, 0, 1) / np.float32(255))

    ybr_ds = _dcm("SC_ybr_full_422_uncompressed.dcm")
    assert ybr_ds.PhotometricInterpretation == "YBR_FULL_422"
    ref = convert_color_space(pixel_array(ybr_ds, raw=True), "YBR_FULL", "RGB") / 255.0
    ybr = read_image(get_testdata_file("SC_ybr_full_422_uncompressed.dcm")).numpy()
    np.testing.assert_allclose(ybr, ref.transpose(2, 0, 1), atol=1e-6)
    assert ybr[0, 5, 5] > 0.9 and ybr[1, 5, 5] < 0.1  # top-left of this test card is red

    pal_ds = _dcm("examples_palette.dcm")
    pal = read_image(get_testdata_file("examples_palette.dcm")).numpy()
    bits = int(pal_ds.RedPaletteColorLookupTableDescriptor[2])
    np.testing.assert_allclose(pal, apply_color_lut(pal_ds.pixel_array, pal_ds).transpose(2, 0, 1) / (2**bits - 1), atol=1e-6)


def test_multiframe_middle_frame_one_frame_and_all_frames():
    path = get_testdata_file("examples_ybr_color.dcm")
    frames = _dcm("examples_ybr_color.dcm").pixel_array  # (30, 240, 320, 3), converted to RGB by pydicom
    default = load_dataset(f"dicom:{path}")
    assert len(default) == 1
    np.testing.assert_allclose(default[0].image.numpy(), frames[15].transpose(2, 0, 1) / 255.0, atol=1e-6)
    np.testing.assert_allclose(load_dataset(f"dicom:{path}?frame=3")[0].image.numpy(), frames[3].transpose(2, 0, 1) / 255.0, atol=1e-6)
    expanded = load_dataset(f"dicom:{path}?frames=all")
    assert len(expanded) == 30 and expanded.ids[7] == "examples_ybr_color.dcm#frame=7"
    np.testing.assert_allclose(expanded[29].image.numpy(), frames[29].transpose(2, 0, 1) / 255.0, atol=1e-6)
    with pytest.raises(BadInputError, match=r"examples_ybr_color\.dcm: frame 30 is out of range \(the file has 30 frames\)"):
        load_dataset(f"dicom:{path}?frame=30")[0]


def test_multiframe_32bit_grayscale():
    ds = _dcm("rtdose.dcm")
    img = read_image(get_testdata_file("rtdose.dcm"))[0].numpy()
    np.testing.assert_allclose(img, _minmax(apply_modality_lut(ds.pixel_array[7], ds)), atol=1e-6)


def test_jpeg2000_decodes_like_pydicom():
    ds = _dcm("JPEG2000.dcm")
    if not get_decoder(ds.file_meta.TransferSyntaxUID).is_available:
        pytest.skip("no JPEG 2000 decoder installed")
    img = read_image(get_testdata_file("JPEG2000.dcm"))[0].numpy()
    np.testing.assert_allclose(img, _minmax(apply_modality_lut(ds.pixel_array, ds)), atol=1e-6)


def test_missing_decoder_is_named(monkeypatch):
    import pydicom.pixels

    class Missing:  # the decoder as pydicom reports it where the DICOM extra is not installed
        is_available = False
        missing_dependencies = ["pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda ts: Missing())
    with pytest.raises(BadInputError, match=r"JPEGLSNearLossless_08\.dcm: no installed decoder for JPEG-LS.*pylibjpeg"):
        read_image(get_testdata_file("JPEGLSNearLossless_08.dcm"))


def test_corrupt_dicoms_name_the_file(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    data = open(src, "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=r"cut\.dcm: (corrupt DICOM|cannot decode pixel data|DICOM has no pixel data)"):
        read_image(tmp_path / "cut.dcm")
    (tmp_path / "head.dcm").write_bytes(data[:300])
    with pytest.raises(BadInputError, match=r"head\.dcm: "):
        read_image(tmp_path / "head.dcm")

    ds = pydicom.dcmread(src)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(BadInputError, match=r"nopix\.dcm: DICOM has no pixel data"):
        read_image(tmp_path / "nopix.dcm")

    ds = pydicom.dcmread(src)
    ds.Rows = 999  # broken pixel module: PixelData too short for the declared size
    ds.save_as(tmp_path / "rows.dcm")
    with pytest.raises(BadInputError, match=r"rows\.dcm: cannot decode pixel data"):
        read_image(tmp_path / "rows.dcm")

    with pytest.raises(BadInputError, match=r"MR_truncated\.dcm: cannot decode pixel data.*less than expected"):
        read_image(get_testdata_file("MR_truncated.dcm"))

    (tmp_path / "text.dcm").write_bytes(b"hello, not DICOM" * 20)
    with pytest.raises(BadInputError, match=r"text\.dcm: not a DICOM file"):
        read_image(tmp_path / "text.dcm")


SECRETS = ("Doe^Secret", "PID-424242", "19010101", "ACC-31337", "St. Hidden Hospital")


def _tagged_copy(src: str, dst) -> None:
    ds = pydicom.dcmread(src)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber, ds.InstitutionName = SECRETS
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)


def test_dicom_class_folders_labels_ids_and_privacy(tmp_path):
    root = tmp_path / "dicoms"
    _tagged_copy(get_testdata_file("CT_small.dcm"), root / "ct" / "a.dcm")
    _tagged_copy(get_testdata_file("MR_small.dcm"), root / "mr" / "series1" / "b.dcm")
    shutil.copy(get_testdata_file("6154"), root / "mr" / "c")  # no suffix: found by its DICM magic
    broken = pydicom.dcmread(root / "ct" / "a.dcm")
    del broken.PixelData
    broken.save_as(root / "ct" / "broken.dcm")

    skipped = SkipLog()
    ds = load_dataset(str(root), skip_bad=True, skipped=skipped)  # bare path → class-folder tree
    assert ds.classes == ["ct", "mr"]
    assert ds.ids == ["ct/a.dcm", "mr/c", "mr/series1/b.dcm"]
    assert ds.labels.tolist() == [0, 1, 1]
    assert [s["item"] for s in skipped.skipped] == ["ct/broken.dcm"]
    items = list(ds)
    assert tuple(items[2].image.shape) == (1, 64, 64)
    via_scheme = load_dataset(f"dicom:{root}", skip_bad=True)
    assert via_scheme.ids == ds.ids and via_scheme.labels.tolist() == [0, 1, 1]
    with pytest.raises(BadInputError) as err:
        read_image(root / "ct" / "broken.dcm")
    everything = " ".join(
        [*ds.ids, *ds.classes, str(ds.describe()), str(skipped.skipped), str(err.value)]
        + [str(it.caption) for it in items]
    )
    for secret in SECRETS:
        assert secret not in everything


def test_flat_dicom_folder_and_single_file(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "one.dcm")
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), folder / "two.dcm")
    ds = load_dataset(str(folder))  # detected as a DICOM folder (files at top level)
    assert ds.classes == ["scans"] and ds.ids == ["one.dcm", "two.dcm"]
    np.testing.assert_allclose(ds[0].image.numpy(), ds[1].image.numpy(), atol=1e-6)  # same pixels, RLE-compressed
    single = load_dataset(get_testdata_file("MR_small.dcm"))
    assert len(single) == 1 and single.ids == ["MR_small.dcm"]
    d1 = single.content_digest()
    assert d1 == load_dataset(get_testdata_file("MR_small.dcm")).content_digest()
    assert d1 != load_dataset(get_testdata_file("MR_small.dcm") + "?window=none").content_digest()


def test_read_dicom_frames_all_on_two_frame_rgb():
    frames = read_dicom_frames(get_testdata_file("SC_rgb_rle_2frame.dcm"), frames="all")
    ref = _dcm("SC_rgb_rle_2frame.dcm").pixel_array
    assert len(frames) == 2
    for k in range(2):
        np.testing.assert_array_equal(frames[k], ref[k].transpose(2, 0, 1) / np.float32(255))


def _enhanced(path, stored, shared=None, per_frame=None, **top):
    """An Enhanced-CT-like multi-frame file: ``stored`` (frames×4×4 uint16), functional group items given as
    dicts of keyword → value, where a ``*Sequence`` value is a dict for its single item."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def item(d):
        out = Dataset()
        for k, v in d.items():
            setattr(out, k, [item(v)] if isinstance(v, dict) else v)
        return out

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    stored = np.asarray(stored, np.uint16)
    ds.update({"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "NumberOfFrames": stored.shape[0],
               "Rows": 4, "Columns": 4, "BitsAllocated": 16, "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 0, **top})
    if shared is not None:
        ds.SharedFunctionalGroupsSequence = [item(shared)]
    if per_frame is not None:
        ds.PerFrameFunctionalGroupsSequence = [item(d) for d in per_frame]
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _lin(hu, c, w):  # DICOM's LINEAR window inside the window: (x - (c - 0.5)) / (w - 1) + 0.5
    return (hu - (c - 0.5)) / (w - 1) + 0.5


def test_enhanced_shared_rescale_wins_over_top_level(tmp_path):
    # stored 1064, shared intercept -1024 → 40 HU; the top-level intercept 0 must not be used
    path = _enhanced(tmp_path / "enh.dcm", np.full((3, 4, 4), 1064),
                     shared={"PixelValueTransformationSequence": {"RescaleIntercept": -1024, "RescaleSlope": 1}},
                     RescaleIntercept=0, RescaleSlope=1)
    frames = read_dicom_frames(path, frames="all", window=(40.0, 400.0))
    for f in frames:
        np.testing.assert_allclose(f, _lin(40, 40, 400), atol=1e-6)  # 0.501253, not 1.0 (1064 is above the window)


def test_enhanced_per_frame_rescale_wins_over_shared(tmp_path):
    per_frame = [{"PixelValueTransformationSequence": {"RescaleIntercept": -1024, "RescaleSlope": 1}},
                 {"PixelValueTransformationSequence": {"RescaleIntercept": -1000, "RescaleSlope": 1}},
                 {"FrameContentSequence": {"FrameAcquisitionNumber": 3}}]  # no transformation: the shared one
    path = _enhanced(tmp_path / "perframe.dcm", np.full((3, 4, 4), 1064), per_frame=per_frame,
                     shared={"PixelValueTransformationSequence": {"RescaleIntercept": -1100, "RescaleSlope": 1}})
    f0, f1, f2 = (float(f.mean()) for f in read_dicom_frames(path, frames="all", window=(40.0, 400.0)))
    assert f0 == pytest.approx(_lin(40, 40, 400), abs=1e-6)  # 1064 - 1024 = 40 HU → 0.501253
    assert f1 == pytest.approx(_lin(64, 40, 400), abs=1e-6)  # 1064 - 1000 = 64 HU → 0.561404
    assert f2 == pytest.approx(_lin(-36, 40, 400), abs=1e-6)  # 1064 - 1100 = -36 HU → 0.310777
    assert (round(f1, 6), round(f2, 6)) == (0.561404, 0.310777)
    via_spec = load_dataset(f"dicom:{path}?frames=all&window=40,400")
    assert [round(float(it.image.mean()), 6) for it in via_spec] == [0.501253, 0.561404, 0.310777]


def test_enhanced_frame_voi_lut_window_used_without_explicit_window(tmp_path):
    # 40 HU everywhere; shared window (0, 400), frame 1 its own (100, 201); the top-level SIGMOID (1000, 10)
    # is overridden whole (centre, width and function come from the one level that gives the window)
    pvt = {"RescaleIntercept": -1024, "RescaleSlope": 1}
    path = _enhanced(tmp_path / "voi.dcm", np.full((3, 4, 4), 1064),
                     shared={"PixelValueTransformationSequence": pvt, "FrameVOILUTSequence": {"WindowCenter": 0, "WindowWidth": 400}},
                     per_frame=[{}, {"FrameVOILUTSequence": {"WindowCenter": 100, "WindowWidth": 201}}, {}],
                     WindowCenter=1000, WindowWidth=10, VOILUTFunction="SIGMOID")
    f0, f1, f2 = (float(f.mean()) for f in read_dicom_frames(path, frames="all"))
    assert f0 == pytest.approx((40 + 0.5) / 399 + 0.5, abs=1e-6)  # LINEAR: 0.601504 (SIGMOID would give 0.598688)
    assert f2 == pytest.approx(0.601504, abs=1e-6)
    assert f1 == pytest.approx((40 - 99.5) / 200 + 0.5, abs=1e-6)  # 0.2025
    # an explicit window and window=none still override the file's own
    assert float(read_dicom_frames(path, window=(40.0, 400.0))[0].mean()) == pytest.approx(0.501253, abs=1e-6)
    assert float(read_dicom_frames(path, window="none")[0].max()) == 0.0  # constant frame: min–max gives 0


def test_enhanced_functional_groups_keep_only_pixel_value_macros(tmp_path):
    from medrep.data.dicom import _open

    secret = "Doe^Hidden"
    path = _enhanced(tmp_path / "priv.dcm", np.full((1, 4, 4), 1064),
                     shared={"PixelValueTransformationSequence": {"RescaleIntercept": -1024, "RescaleSlope": 1},
                             "PlanePositionSequence": {"ImagePositionPatient": [0, 0, 0]}, "PatientName": secret},
                     per_frame=[{"FrameContentSequence": {"FrameAcquisitionNumber": 1}, "PatientID": "PID-99"}],
                     PatientName=secret)
    ds = _open(path)
    assert "PatientName" not in ds
    assert [e.keyword for e in ds.SharedFunctionalGroupsSequence[0]] == ["PixelValueTransformationSequence"]
    assert [e.keyword for e in ds.PerFrameFunctionalGroupsSequence[0]] == []
    assert float(read_dicom_frames(path, window=(40.0, 400.0))[0].mean()) == pytest.approx(0.501253, abs=1e-6)


def test_enhanced_per_frame_groups_must_match_the_frame_count(tmp_path):
    path = _enhanced(tmp_path / "short.dcm", np.full((3, 4, 4), 1064),
                     per_frame=[{"PixelValueTransformationSequence": {"RescaleIntercept": -1024, "RescaleSlope": 1}}] * 2)
    with pytest.raises(BadInputError, match=r"short\.dcm: PerFrameFunctionalGroupsSequence has 2 items for 3 frames"):
        read_dicom_frames(path)
    # without a macro to take from them (e.g. pydicom's liver_1frame.dcm, a SEG cut to one frame) they are not needed
    path = _enhanced(tmp_path / "seg.dcm", np.full((3, 4, 4), 1064), per_frame=[{"FrameContentSequence": {"FrameAcquisitionNumber": 1}}] * 2,
                     shared={"PixelValueTransformationSequence": {"RescaleIntercept": -1024, "RescaleSlope": 1}})
    assert float(read_dicom_frames(path, window=(40.0, 400.0))[0].mean()) == pytest.approx(0.501253, abs=1e-6)


def test_a_frames_rescale_does_not_leak_into_the_next_frame(tmp_path):
    # frame 0 has its own rescale, frame 1 none and no shared group: frame 1 falls back to the top level
    path = _enhanced(tmp_path / "leak.dcm", np.full((2, 4, 4), 1064),
                     per_frame=[{"PixelValueTransformationSequence": {"RescaleIntercept": -1000, "RescaleSlope": 1}},
                                {"FrameContentSequence": {"FrameAcquisitionNumber": 2}}],
                     RescaleIntercept=-1024, RescaleSlope=1)
    f0, f1 = (float(f.mean()) for f in read_dicom_frames(path, frames="all", window=(40.0, 400.0)))
    assert f0 == pytest.approx(_lin(64, 40, 400), abs=1e-6)
    assert f1 == pytest.approx(_lin(40, 40, 400), abs=1e-6)  # the top level's -1024, not frame 0's -1000

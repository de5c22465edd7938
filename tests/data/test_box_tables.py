"""`csv:FILE?...&boxes=BOXES.csv` / `&polygons=POLYGONS.csv`: lesion boxes and polygons from a second CSV (one row
per shape, several per image, per finding or for the image), rendered as masks and scored by explain; each
malformed input named by file and row."""
from __future__ import annotations

import json

import numpy as np
import pytest
import recipe_trees as trees

from medrep.cli import main
from medrep.data import load_dataset
from medrep.errors import MedrepError


def _manifest(tmp_path, header="path,label", rows=None):
    for k in range(4):
        trees.save(tmp_path / "img" / f"i{k}.png", trees.image(k, k % 2 == 0))
    rows = rows or [f"img/i{k}.png,{'lesion' if k % 2 == 0 else 'normal'}" for k in range(4)]
    return trees.write(tmp_path / "labels.csv", "\n".join([header, *rows]) + "\n")


def _expected(shape, *boxes):
    m = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:  # corners in pixels, integer here: the pixels they cover
        m[y0:y1, x0:x1] = True
    return m


def test_boxes_without_a_finding_outline_the_image_and_images_without_one_have_no_lesion(tmp_path):
    csv = _manifest(tmp_path)
    trees.write(tmp_path / "boxes.csv", "path,x,y,w,h\nimg/i0.png,10,8,14,12\nimg/i0.png,2,2,4,4\nimg/i2.png,0,0,8,6\n")
    ds = load_dataset(f"csv:{csv}?boxes=boxes.csv")  # beside the manifest
    assert ds.has_masks and [ds.has_lesion(i) for i in range(4)] == [True, False, True, False]
    by_id = {ds[i].id: ds[i].mask.numpy() for i in range(4)}
    assert (by_id["img/i0.png"] == _expected((32, 32), (10, 8, 24, 20), (2, 2, 6, 6))).all()
    assert (by_id["img/i2.png"] == _expected((32, 32), (0, 0, 8, 6))).all()
    assert not by_id["img/i1.png"].any()


def test_boxes_per_finding_belong_to_that_finding(tmp_path):
    csv = _manifest(tmp_path, "path,Edema,Effusion", [f"img/i{k}.png,{k % 2},{(k + 1) % 2}" for k in range(4)])
    trees.write(tmp_path / "boxes.csv", "image,finding,x_min,y_min,x_max,y_max\n"
                                       "img/i0.png,Edema,10,8,24,20\nimg/i0.png,Effusion,2,2,6,6\n"
                                       "img/i1.png,Effusion,0,0,8,6\n")
    spec = f"csv:{csv}?findings=Edema,Effusion&boxes={tmp_path / 'boxes.csv'}"
    edema = load_dataset(spec + "&finding=Edema")
    effusion = load_dataset(spec + "&finding=Effusion")
    assert (edema[0].mask.numpy() == _expected((32, 32), (10, 8, 24, 20))).all() and not edema.has_lesion(1)
    assert (effusion[0].mask.numpy() == _expected((32, 32), (2, 2, 6, 6))).all()
    assert (effusion[1].mask.numpy() == _expected((32, 32), (0, 0, 8, 6))).all()


@pytest.mark.parametrize("boxes, message", [
    ("path,x,y,w,h\nimg/i9.png,1,1,2,2\n", "boxes.csv row 2: image 'img/i9.png' is not in the manifest"),
    ("path,x,y,w,h\nimg/i0.png,1,1,0,2\n", "boxes.csv row 2: box 1,1,0,2 (xywh) has no area"),
    ("path,x,y,w,h\nimg/i0.png,1,1,a,2\n", "boxes.csv row 2: box 1,1,a,2 is not four numbers"),
    ("path,left,top\nimg/i0.png,1,1\n", "expected a box CSV with header path[,finding],x,y,w,h or "
                                        "path[,finding],x_min,y_min,x_max,y_max (found columns: path, left, top)"),
])
def test_bad_box_tables_are_named_by_file_and_row(tmp_path, boxes, message):
    csv = _manifest(tmp_path)
    trees.write(tmp_path / "boxes.csv", boxes)
    with pytest.raises(MedrepError) as err:
        load_dataset(f"csv:{csv}?boxes=boxes.csv")
    assert message in str(err.value)


def test_a_box_outside_the_image_and_an_unknown_finding_are_refused(tmp_path):
    csv = _manifest(tmp_path, "path,Edema,Effusion", [f"img/i{k}.png,{k % 2},0" for k in range(4)])
    trees.write(tmp_path / "b1.csv", "path,finding,x,y,w,h\nimg/i0.png,Oedema,1,1,2,2\n")
    with pytest.raises(MedrepError, match=r"b1.csv row 2: unknown finding 'Oedema' \(known: Edema, Effusion\)"):
        load_dataset(f"csv:{csv}?findings=Edema,Effusion&boxes=b1.csv")
    trees.write(tmp_path / "b2.csv", "path,x,y,w,h\nimg/i0.png,20,20,30,4\n")
    ds = load_dataset(f"csv:{csv}?findings=Edema,Effusion&finding=Edema&boxes=b2.csv")
    with pytest.raises(MedrepError, match=r"b2.csv row 2: box x 20–50, y 20–24 lies outside the 32×32 image"):
        ds[0]


def test_explain_scores_maps_against_the_boxes(tmp_path, capsys):
    csv = _manifest(tmp_path)
    trees.write(tmp_path / "boxes.csv", "path,x,y,w,h\nimg/i0.png,10,8,14,12\nimg/i2.png,10,8,14,12\n")
    assert main(["explain", "--model", "demo-cnn", "--data", f"csv:{csv}?boxes=boxes.csv", "--methods", "gradcam",
                 "--no-baselines", "--metrics", "pointing", "--batch-size", "4", "--quiet", "--out", str(tmp_path / "e"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert res["data"]["n_scored"] == 2 and res["data"]["n_without_mask"] == 2 and res["localisation"] == {"run": True}
    assert res["mask_area"]["mean"] == pytest.approx(14 * 12 / 32 ** 2)


def test_mask_images_and_a_box_table_together_are_refused(tmp_path):
    trees.save(tmp_path / "m.png", np.zeros((32, 32), np.uint8))
    csv = _manifest(tmp_path, "path,label,mask", [f"img/i{k}.png,{k % 2},m.png" for k in range(4)])
    trees.write(tmp_path / "boxes.csv", "path,x,y,w,h\nimg/i0.png,1,1,2,2\n")
    with pytest.raises(MedrepError, match=r"\?boxes: give mask images \(a mask column\) or a box CSV, not both"):
        load_dataset(f"csv:{csv}?boxes=boxes.csv")


def test_polygons_in_either_json_form_become_masks_and_malformed_ones_are_named(tmp_path):
    csv = _manifest(tmp_path, "path,Edema,Effusion", [f"img/i{k}.png,{k % 2},0" for k in range(4)])
    trees.write(tmp_path / "poly.csv", 'path,finding,polygon\n'
                                      'img/i0.png,Edema,"[[2, 2], [10, 2], [10, 6], [2, 6]]"\n'
                                      'img/i0.png,Edema,"[20, 20, 28, 20, 28, 30, 20, 30]"\n')
    ds = load_dataset(f"csv:{csv}?findings=Edema,Effusion&finding=Edema&polygons=poly.csv")
    from PIL import Image, ImageDraw  # the reference: the same polygons drawn by Pillow directly

    ref = Image.new("1", (32, 32), 0)
    for poly in ([(2, 2), (10, 2), (10, 6), (2, 6)], [(20, 20), (28, 20), (28, 30), (20, 30)]):
        ImageDraw.Draw(ref).polygon(poly, fill=1, outline=1)
    assert (ds[0].mask.numpy() == np.array(ref, dtype=bool)).all() and not ds.has_lesion(1)
    assert ds[0].mask.numpy()[2:7, 2:11].all() and ds[0].mask.numpy()[20:31, 20:29].all()
    for text, message in (('"[[1, 1], [5, 5]]"', "poly.csv row 2: polygon needs at least three (x, y) vertices, got 4"),
                          ("not-json", "poly.csv row 2: polygon 'not-json' is not a JSON list of vertices")):
        trees.write(tmp_path / "poly.csv", f"path,polygon\nimg/i0.png,{text}\n")
        with pytest.raises(MedrepError) as err:
            load_dataset(f"csv:{csv}?findings=Edema,Effusion&polygons=poly.csv")[0]
        assert message in str(err.value)
    trees.write(tmp_path / "poly.csv", "path,x,y,w,h\nimg/i0.png,1,1,2,2\n")
    with pytest.raises(MedrepError, match=r"expected a polygon CSV with header path\[,finding\],polygon"):
        load_dataset(f"csv:{csv}?findings=Edema,Effusion&polygons=poly.csv")


def test_explain_refuses_data_where_only_some_images_name_a_mask(tmp_path, capsys):
    trees.save(tmp_path / "m.png", np.zeros((32, 32), np.uint8))
    csv = _manifest(tmp_path, "path,label,mask", [f"img/i{k}.png,{k % 2},{'m.png' if k < 2 else ''}" for k in range(4)])
    assert main(["explain", "--model", "demo-cnn", "--data", str(csv), "--methods", "gradcam", "--no-baselines",
                 "--metrics", "pointing", "--quiet", "--out", str(tmp_path / "e"), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--data: only some images of dataset" in err and "give every image one" in err and "Traceback" not in err

"""Annotations as masks: COCO RLE decoding (checked on hand-computed cases), boxes, polygons, merged mask files,
and the one-line errors for a box outside the image, a malformed RLE and a mask of another size."""
from __future__ import annotations

import numpy as np
import pytest
import recipe_trees as trees

from medrep.data.annotations import Boxes, Polygons, RunLengthMask, box_from, decode_rle, rle_counts_from_string
from medrep.errors import BadInputError


def test_rle_string_decoding_by_hand():
    # counts [1, 1, 1, 2, 1]: the first three are stored as is ('1' = 48 + 1); from the fourth on, the difference
    # to the count two before: 2 − 1 = 1 → '1', 1 − 1 = 0 → '0'
    assert rle_counts_from_string("11110", "t") == [1, 1, 1, 2, 1]
    # counts [1, 3, 1, 1]: the fourth is 1 − 3 = −2, one 5-bit chunk 0b11110 = 30 with the sign bit set → chr(78) 'N'
    assert rle_counts_from_string("131N", "t") == [1, 3, 1, 1]
    # a run of 40 needs two chunks: 40 = 8 + 1·32 → (8 | 0x20) + 48 = 'X', then 1 + 48 = '1'
    assert rle_counts_from_string("X1", "t") == [40]
    # column-major: 3×2 with runs 0×1, 1×3, 0×1, 1×1 → column 0 = [0, 1, 1], column 1 = [1, 0, 1]
    np.testing.assert_array_equal(decode_rle([3, 2], "131N", "t"), [[0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(decode_rle([3, 2], [1, 3, 1, 1], "t"), [[0, 1], [1, 0], [1, 1]])


def test_rle_round_trip_with_the_test_encoder():
    rng = np.random.default_rng(0)
    m = rng.random((17, 23)) > 0.6
    np.testing.assert_array_equal(decode_rle(m.shape, trees.rle_encode(m), "t"), m)


def test_malformed_rle_and_size_mismatch_are_one_line_errors():
    with pytest.raises(BadInputError, match=r"seg\.json p1 Edema: malformed RLE: runs cover 5 pixels, size 3×2 has 6"):
        decode_rle([3, 2], [1, 3, 1], "seg.json p1 Edema")
    with pytest.raises(BadInputError, match="malformed RLE: character ' ' at 1"):
        decode_rle([3, 2], "1 ", "x")
    with pytest.raises(BadInputError, match="ends inside a number"):
        decode_rle([3, 2], "X", "x")
    with pytest.raises(BadInputError, match=r"p1: RLE mask is 3×2 \(h×w\) but the image is 4×4"):
        RunLengthMask((3, 2), "131N", "p1").render((4, 4))


def test_boxes_both_forms_several_per_image_and_outside():
    a = box_from(["2", "3", "4", "2"], "xywh", "r1")
    b = box_from(["2", "3", "6", "5"], "xyxy", "r2")
    assert a == b == (2.0, 3.0, 6.0, 5.0)
    m = Boxes((a, (0.0, 0.0, 1.0, 1.0)), ("r1", "r2")).render((8, 8))
    assert m.sum() == 4 * 2 + 1 and m[3:5, 2:6].all() and m[0, 0]
    with pytest.raises(BadInputError, match=r"labels\.csv row 4: box x 2–12, y 3–5 lies outside the 8×8 image"):
        Boxes(((2.0, 3.0, 12.0, 5.0),), ("labels.csv row 4",)).render((8, 8))
    with pytest.raises(BadInputError, match="r3: box 1,1,0,2 .* has no area"):
        box_from(["1", "1", "0", "2"], "xywh", "r3")


def test_polygon_fill():
    m = Polygons((((1, 1), (6, 1), (6, 4), (1, 4)),), "p").render((8, 8))
    assert m[1:5, 1:7].all() and m.sum() == 4 * 6

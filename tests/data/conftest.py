"""Small on-disk datasets made in tmp_path for the data-source tests."""
from __future__ import annotations

import numpy as np
import pytest
from data_helpers import ramp, save_png


@pytest.fixture()
def class_tree(tmp_path):
    """root/{benign,malignant}/*.png (2 + 3 images) with masks in the sibling root_masks/."""
    root = tmp_path / "tree"
    arrays = {}
    for cls, n in (("benign", 2), ("malignant", 3)):
        for i in range(n):
            arr = ramp(12, 10, seed=len(arrays))
            save_png(root / cls / f"img{i}.png", arr)
            mask = np.zeros((12, 10), dtype=np.uint8)
            mask[2 : 4 + i, 3:6] = 255
            save_png(tmp_path / "tree_masks" / cls / f"img{i}.png", mask)
            arrays[f"{cls}/img{i}.png"] = (arr, mask > 0)
    return root, arrays

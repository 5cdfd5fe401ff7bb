"""ADE20K-150 names and palette."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtpano_ros.labels import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    IGNORE_INDEX,
    SKY_ID,
    class_id,
    colorize_labels,
)


def test_tables():
    assert len(ADE20K_CLASSES) == 150 and len(set(ADE20K_CLASSES)) == 150
    assert all(name == name.strip() and name for name in ADE20K_CLASSES)
    assert ADE20K_CLASSES[SKY_ID] == "sky" and ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[-1] == "flag"
    assert ADE20K_PALETTE.shape == (150, 3) and ADE20K_PALETTE.dtype == np.uint8
    assert not ADE20K_PALETTE.flags.writeable
    assert len({tuple(c) for c in ADE20K_PALETTE.tolist()}) >= 148  # a couple of classes share a colour
    assert IGNORE_INDEX == 255
    assert class_id("sky") == SKY_ID
    with pytest.raises(KeyError, match="sky"):
        class_id("skyy")


def test_colorize():
    labels = np.array([[0, 2], [149, IGNORE_INDEX]], dtype=np.uint8)
    rgb = colorize_labels(labels)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 1], ADE20K_PALETTE[SKY_ID])
    np.testing.assert_array_equal(rgb[1, 0], ADE20K_PALETTE[149])
    np.testing.assert_array_equal(rgb[1, 1], [0, 0, 0])
    t = colorize_labels(torch.tensor([[-1, 7, 300]]))
    np.testing.assert_array_equal(t[0, 1], ADE20K_PALETTE[7])
    assert t[0, 0].sum() == 0 and t[0, 2].sum() == 0
    with pytest.raises(TypeError, match="integer"):
        colorize_labels(np.zeros((2, 2), np.float32))

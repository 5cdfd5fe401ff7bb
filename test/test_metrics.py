"""training.metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from training.metrics import (
    confusion_matrix,
    cos_latitude_weights,
    depth_metrics,
    normal_metrics,
    seam_score,
    segmentation_metrics,
)


def test_depth_metrics_hand_computed():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 1.0], [4.0, 4.0]])
    m = depth_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx((0 + 1 + 0.25 + 0) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 1 + 1 / 4 + 0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 1 + 0) / 4))
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(2) ** 2 + math.log(4 / 3) ** 2) / 4))
    # ratios 1, 2, 4/3, 1
    assert m["delta1"] == pytest.approx(0.5)
    assert m["delta2"] == pytest.approx(0.75)
    assert m["delta3"] == pytest.approx(0.75)
    assert m["n_valid"] == 4


def test_depth_invalid_cap_mask_and_bad_predictions():
    gt = np.array([[0.0, 2.0, 50.0, np.nan]])
    pred = np.array([[5.0, 2.0, 1.0, 3.0]])
    m = depth_metrics(pred, gt, max_depth_m=10.0)
    assert m["n_valid"] == 1 and m["abs_rel"] == 0.0
    # a NaN prediction on a valid pixel is an error, not skipped
    m = depth_metrics(np.array([[np.nan, 2.0]]), np.array([[2.0, 2.0]]))
    assert m["n_valid"] == 2 and m["abs_rel"] == pytest.approx((2 - 1e-3) / 2 / 2)
    m = depth_metrics(pred, gt, mask=np.zeros((1, 4), bool))
    assert m["n_valid"] == 0 and math.isnan(m["abs_rel"])


def test_depth_median_alignment_removes_scale():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 5, (8, 16))
    m = depth_metrics(2.5 * gt, gt, align="median")
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert depth_metrics(2.5 * gt, gt)["abs_rel"] == pytest.approx(1.5)


def test_depth_latitude_weighting():
    h, w = 4, 2
    gt = np.ones((h, w))
    pred = np.ones((h, w))
    pred[0] = 2.0  # error 1 in the top row only
    wts = cos_latitude_weights(h, w)
    expect = wts[0].sum() / wts.sum()
    assert depth_metrics(pred, gt, lat_weighted=True)["abs_rel"] == pytest.approx(expect)
    assert depth_metrics(pred, gt)["abs_rel"] == pytest.approx(0.25)
    assert wts[0, 0] == pytest.approx(math.cos(math.radians(67.5)))


def _rot_x(v, deg):
    a = math.radians(deg)
    return np.array([v[0], math.cos(a) * v[1] - math.sin(a) * v[2], math.sin(a) * v[1] + math.cos(a) * v[2]])


def test_normal_metrics_hand_computed():
    g = np.array([0.0, 0.0, 1.0])
    angles = [0.0, 10.0, 90.0]
    gt = np.tile(g, (1, 3, 1))
    pred = np.stack([_rot_x(g, a) * 3.0 for a in angles])[None]  # length does not matter
    m = normal_metrics(pred, gt)
    assert m["mean"] == pytest.approx(np.mean(angles), abs=1e-6)
    assert m["median"] == pytest.approx(10.0, abs=1e-6)
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(angles))), abs=1e-6)
    assert m["pct_11_25"] == pytest.approx(200 / 3)
    assert m["pct_30"] == pytest.approx(200 / 3)
    # invalid gt (zero) skipped; NaN prediction counts as 180 degrees
    gt2 = np.array([[[0, 0, 1.0], [0, 0, 0]]])
    pred2 = np.array([[[np.nan, 0, 0], [0, 0, 1.0]]])
    m2 = normal_metrics(pred2, gt2)
    assert m2["n_valid"] == 1 and m2["mean"] == pytest.approx(180.0)


def test_segmentation_hand_computed():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 7, 255]])
    conf = confusion_matrix(pred, gt, num_classes=10)
    assert conf.sum() == 6  # ignored gt pixels dropped
    seg = segmentation_metrics(conf)
    # class 0: tp1 fp1 fn1 -> 1/3; class 1: tp2 fp1 fn0 -> 2/3; class 2: tp1 fp0 fn1 -> 1/2
    iou = seg["per_class_iou"]
    assert iou[0] == pytest.approx(100 / 3) and iou[1] == pytest.approx(200 / 3) and iou[2] == pytest.approx(50)
    assert np.isnan(iou[3])
    assert seg["miou"] == pytest.approx((100 / 3 + 200 / 3 + 50) / 3)
    assert seg["pixel_acc"] == pytest.approx(100 * 4 / 6)
    sub = segmentation_metrics(conf, classes=[1, 2])
    assert sub["miou"] == pytest.approx((200 / 3 + 50) / 2)
    # an unknown (255) prediction is a miss for its gt class
    c2 = confusion_matrix(np.array([255, 0]), np.array([0, 0]), num_classes=3)
    s2 = segmentation_metrics(c2)
    assert s2["pixel_acc"] == pytest.approx(50.0) and s2["per_class_iou"][0] == pytest.approx(50.0)


def test_seam_score():
    h, w = 8, 64
    lon = (0.5 - (np.arange(w) + 0.5) / w) * 2 * np.pi
    smooth = np.tile(np.sin(lon) + 2, (h, 1))
    assert seam_score(smooth) == pytest.approx(1.0, rel=0.05)
    ramp = np.tile(np.arange(w, dtype=float), (h, 1))  # steps of 1 inside, jump of w-1 at the border
    assert seam_score(ramp) == pytest.approx(w - 1)
    assert seam_score(np.stack([ramp, ramp], -1)) == pytest.approx(w - 1)

"""training/evaluate.py --data on the real_gt layout: the README protocol on exact procedural ground truth."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from training import evaluate as ev
from training.metrics import latitude_priors, real_gt_metrics, structural_iou

synthetic = pytest.importorskip("training.synthetic")

HW = (32, 64)


def _write_pano(folder, rgb, depth, normals, labels, meta=None):
    folder.mkdir(parents=True)
    assert cv2.imwrite(str(folder / "rgb.png"), np.ascontiguousarray(rgb[..., ::-1]))
    np.savez_compressed(folder / "gt.npz", depth=depth.astype(np.float32), normals=normals.astype(np.float32),
                        labels=labels.astype(np.uint8))
    (folder / "meta.json").write_text(json.dumps(meta or {"camera_height_m": 1.5}))


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    """Two indoor procedural panoramas in the real_gt layout (0 / NaN / 255 where there is no ground truth)."""
    root = tmp_path_factory.mktemp("real_gt")
    for seed in (5, 6):
        r = synthetic.render_erp(synthetic.make_scene(seed, kind="indoor"), *HW)
        ok = r["depth"] > 0
        normals = np.where(ok[..., None], r["normals"], np.nan)
        labels = r["semantic"].copy()
        labels[:, :6] = 255  # a strip without labels: predictions there must not count
        _write_pano(root / f"scene_{seed}", r["rgb"], np.where(ok, r["depth"], 0.0), normals, labels)
    return root


def _exact(sample, scale=1.0):
    ok = sample["depth"] > 0
    return {"depth": sample["depth"] * scale, "normals": np.nan_to_num(sample["normals"]),
            "semantic": np.where(sample["labels"] == 255, 77, sample["labels"]).astype(np.uint8), "ok": ok}


def test_real_gt_layout_is_read(scene_dir):
    assert ev.is_real_gt_dir(scene_dir) and ev.is_real_gt_dir(scene_dir / "scene_5")
    assert not ev.is_real_gt_dir(scene_dir.parent)
    s = list(ev.real_gt_samples(scene_dir))
    assert [x["name"] for x in s] == ["scene_5", "scene_6"]
    assert s[0]["rgb"].shape == (*HW, 3) and s[0]["rgb"].dtype == np.uint8
    assert s[0]["meta"]["camera_height_m"] == 1.5


def test_perfect_prediction_scores_zero_zero_one(scene_dir):
    res = ev.evaluate_real(lambda rgb: {}, [])  # no panoramas: count 0, NaN means
    assert res["count"] == 0 and np.isnan(res["structural_miou"])
    samples = list(ev.real_gt_samples(scene_dir))
    cur = [None]

    def gen():
        for s in samples:
            cur[0] = s
            yield s

    res = ev.evaluate_real(lambda rgb: _exact(cur[0]), gen())
    assert res["count"] == 2
    assert res["depth_abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert res["depth_abs_rel_median_aligned"] == pytest.approx(0.0, abs=1e-6)
    assert res["normal_mean_deg"] == pytest.approx(0.0, abs=0.05)
    for k in ("iou_wall", "iou_floor", "iou_ceiling", "structural_miou"):
        assert res[k] == pytest.approx(1.0)


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_scaled_prediction_metric_vs_median_aligned(scene_dir, scale):
    checked = 0
    for s in ev.real_gt_samples(scene_dir):
        p = _exact(s, scale)
        m = real_gt_metrics(p["depth"], p["normals"], p["semantic"], s["depth"], s["normals"], s["labels"])
        if scale * s["depth"].max() <= 10.0:  # no prediction clipped by the 10 m cap
            assert m["depth_abs_rel"] == pytest.approx(abs(scale - 1), rel=1e-5)
            checked += 1
        assert m["depth_abs_rel_median_aligned"] == pytest.approx(0.0, abs=1e-6)
    assert checked == 2 or scale > 1


def test_ten_metre_cap_and_weighting():
    gt = np.full(HW, 2.0)
    gt[:4] = 25.0  # beyond the cap: excluded, whatever is predicted there
    pred = np.full(HW, 2.0)
    pred[:4] = 1.0
    pred[-4:] = 4.0  # the bottom rows are wrong by 100 %
    normals = np.zeros((*HW, 3))
    normals[..., 2] = 1.0
    labels = np.zeros(HW, np.uint8)
    m = real_gt_metrics(pred, normals, labels, gt, normals, labels)
    lat = (0.5 - (np.arange(HW[0]) + 0.5) / HW[0]) * np.pi
    w = np.cos(lat)[4:]
    expect = (w[-4:].sum() * 1.0) / w.sum()  # cos-latitude weighted mean over the rows within the cap
    assert m["depth_abs_rel"] == pytest.approx(expect)
    # a prediction beyond the cap is clipped to 10 m: error (10 - 2) / 2, not (50 - 2) / 2
    m = real_gt_metrics(np.full(HW, 50.0), normals, labels, np.full(HW, 2.0), normals, labels)
    assert m["depth_abs_rel"] == pytest.approx(4.0)


def test_structural_iou_counts_other_labelled_classes_against_a_class():
    gt = np.array([[0, 0, 14, 255]])  # wall, wall, door, no label
    pred = np.array([[0, 3, 0, 0]])
    r = structural_iou(pred, gt)
    assert r["iou_wall"] == pytest.approx(1 / 3)  # TP 1; FN the wall called floor; FP the door called wall
    assert r["iou_floor"] == 0.0 and np.isnan(r["iou_ceiling"])
    assert r["structural_miou"] == pytest.approx((1 / 3 + 0) / 2)


def test_latitude_priors_closed_form():
    p = latitude_priors(*HW)
    lat = (0.5 - (np.arange(HW[0]) + 0.5) / HW[0]) * 180
    up, down = lat > 25, lat < -25
    assert (p["semantic"][up] == 5).all() and (p["semantic"][down] == 3).all()
    assert (p["semantic"][~up & ~down] == 0).all()
    assert (p["normals"][up] == [0, 0, -1]).all() and (p["normals"][down] == [0, 0, 1]).all()
    band = p["normals"][~up & ~down]
    np.testing.assert_allclose(band[..., 2], 0.0)
    np.testing.assert_allclose(np.linalg.norm(band, axis=-1), 1.0, rtol=1e-6)
    # the image centre column looks along +x: its wall normal faces the camera, -x
    mid = p["normals"][HW[0] // 2, HW[1] // 2]
    assert mid[0] < -0.99 and abs(mid[2]) == 0
    assert (p["depth"] == 1.0).all()


def test_cli_priors_on_a_world_where_the_priors_are_exact(tmp_path, capsys):
    """A panorama whose ground truth is the latitude prior itself: the --prior column must be perfect."""
    p = latitude_priors(*HW)
    rgb = np.random.default_rng(0).integers(0, 255, (*HW, 3), dtype=np.uint8)
    _write_pano(tmp_path / "band_world", rgb, np.full(HW, 3.0), p["normals"], p["semantic"])
    res = ev.main(["--model", "none", "--prior", "--data", str(tmp_path), "--json"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["model"] == "prior" and last["count"] == 1 and res["count"] == 1
    assert last["depth_absrel_median_aligned"] == pytest.approx(0.0, abs=1e-6)
    assert last["depth_absrel"] == pytest.approx(2 / 3)  # the constant 1 m against 3 m
    assert last["normal_mean_deg"] == pytest.approx(0.0, abs=0.05)
    assert last["structural_miou"] == pytest.approx(1.0)


def test_cli_model_beside_priors(scene_dir, capsys):
    res = ev.main(["--model", "mtpano-tiny", "--prior", "--data", str(scene_dir), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    last = json.loads(out[-1])
    assert last["model"] == "mtpano-tiny" and last["count"] == 2 and "prior" in last
    assert any("prior" in line and "mtpano-tiny" in line for line in out)  # side-by-side header
    for k in ("depth_absrel", "depth_absrel_median_aligned", "normal_mean_deg", "structural_miou"):
        assert np.isfinite(last[k]) and np.isfinite(last["prior"][k])
    assert res["prior"]["structural_miou"] == pytest.approx(last["prior"]["structural_miou"])
    with pytest.raises(SystemExit):
        ev.main(["--model", "none", "--prior", "--synthetic"])

"""Structured3D / Stanford2D3D / Matterport3D loaders on tiny fixtures written here in each dataset's format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from training.data.matterport3d import Matterport3DDataset
from training.data.panorama_files import decode_normal_image
from training.data.stanford2d3d import Stanford2D3DDataset
from training.data.structured3d import Structured3DDataset

synthetic = pytest.importorskip("training.synthetic")
H, W = 32, 64


@pytest.fixture(scope="module")
def pano():
    return synthetic.render_erp(synthetic.make_scene(9, kind="indoor"), H, W)


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.ndim == 3:
        arr = arr[..., ::-1]
    assert cv2.imwrite(str(path), np.ascontiguousarray(arr))


def _palette_png(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    im.save(path)


def _nyu_ids():
    ids = np.zeros((H, W), np.uint8)  # 0 = unlabelled
    ids[: H // 3] = 22  # ceiling
    ids[H // 3: 2 * H // 3] = 1  # wall
    ids[2 * H // 3:] = 2  # floor
    ids[:, :4] = 0
    return ids


def _check_contract(s, hw=(H, W)):
    assert s["image"].shape == (3, *hw) and s["image"].dtype == torch.float32
    assert s["depth"].shape == (1, *hw) and s["depth_mask"].dtype == torch.bool
    assert s["normals"].shape == (3, *hw) and s["normals_mask"].shape == (1, *hw)
    assert s["semantic"].shape == hw and s["semantic"].dtype == torch.int64
    assert (s["depth"][~s["depth_mask"]] == 0).all()


def test_structured3d(tmp_path, pano):
    for sid in (0, 3001):
        d = tmp_path / f"scene_{sid:05d}" / "2D_rendering" / "485142" / "panorama" / "full"
        _png(d / "rgb_rawlight.png", pano["rgb"])
        mm = np.round(pano["depth"] * 1000).astype(np.uint16)
        _png(d / "depth.png", mm)
        _palette_png(d / "semantic.png", _nyu_ids())
        _png(d / "normal.png", np.round((pano["normals"] + 1) / 2 * 255).astype(np.uint8))
    ds = Structured3DDataset(tmp_path, split="train", out_hw=(H, W))
    assert len(ds) == 1 and ds.records[0]["name"].startswith("scene_00000")
    assert len(Structured3DDataset(tmp_path, split="val", out_hw=(H, W))) == 1
    s = ds[0]
    _check_contract(s)
    ok = pano["depth"] > 0
    np.testing.assert_allclose(s["depth"][0].numpy()[ok], pano["depth"][ok], atol=6e-4)
    sem = s["semantic"].numpy()
    assert (sem[: H // 3, 4:] == 5).all() and (sem[H // 3: 2 * H // 3, 4:] == 0).all()
    assert (sem[2 * H // 3:, 4:] == 3).all() and (sem[:, :4] == 255).all()
    # normals derived from depth agree with the renderer's exact normals (both REP 103)
    m = s["normals_mask"][0].numpy() & (np.linalg.norm(pano["normals"], axis=-1) > 0.5)
    cosang = np.sum(s["normals"].permute(1, 2, 0).numpy()[m] * pano["normals"][m], -1)
    assert np.median(np.degrees(np.arccos(np.clip(cosang, -1, 1)))) < 5
    # normals read from the file with a given frame matrix (identity: the fixture is already REP 103)
    f = Structured3DDataset(tmp_path, split="train", out_hw=(H, W), normals="file", normals_matrix=np.eye(3))[0]
    fm = f["normals_mask"][0].numpy() & m
    cosf = np.sum(f["normals"].permute(1, 2, 0).numpy()[fm] * pano["normals"][fm], -1)
    assert np.median(cosf) > 0.99
    small = Structured3DDataset(tmp_path, split="train", out_hw=(16, 32), augment=True)[0]
    _check_contract(small, (16, 32))
    with pytest.raises(ValueError, match="normals_matrix"):
        Structured3DDataset(tmp_path, normals="file")
    with pytest.raises(FileNotFoundError, match="Structured3D"):
        Structured3DDataset(tmp_path / "nothing")


def test_stanford2d3d(tmp_path, pano):
    labels = ["<UNK>_0_<UNK>_0_0", "ceiling_1_office_1_1", "wall_3_office_1_1", "floor_1_office_1_1",
              "beam_1_office_1_1", "chair_2_office_1_1"]
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "semantic_labels.json").write_text(json.dumps(labels))
    stem = "camera_0d600f92f8d14e288ddc590c32584a5a_office_1_frame_equirectangular_domain"
    base = tmp_path / "area_1" / "pano"
    _png(base / "rgb" / f"{stem}_rgb.png", pano["rgb"])
    raw = np.round(pano["depth"] * 512).astype(np.uint16)
    raw[pano["depth"] <= 0] = 65535
    raw[:2] = 65535  # the unscanned cap
    _png(base / "depth" / f"{stem}_depth.png", raw)
    idx = np.full((H, W), 0x0D0D0D, np.int64)  # missing
    idx[5:10] = 1
    idx[10:20] = 2
    idx[20:25] = 4
    idx[25:] = 5
    rgb = np.stack(((idx >> 16) & 255, (idx >> 8) & 255, idx & 255), -1).astype(np.uint8)
    _png(base / "semantic" / f"{stem}_semantic.png", rgb)
    ds = Stanford2D3DDataset(tmp_path, areas=["area_1"], out_hw=(H, W))
    assert len(ds) == 1
    s = ds[0]
    _check_contract(s)
    dep = s["depth"][0].numpy()
    assert not s["depth_mask"][0, :2].any()
    ok = (pano["depth"] > 0) & (np.arange(H)[:, None] >= 2)
    np.testing.assert_allclose(dep[ok], pano["depth"][ok], atol=1.1 / 512)
    sem = s["semantic"].numpy()
    assert (sem[:5] == 255).all() and (sem[5:10] == 5).all() and (sem[10:20] == 0).all()
    assert (sem[20:25] == 255).all() and (sem[25:] == 19).all()  # beam ignored, chair -> chair
    with pytest.raises(ValueError, match="split"):
        Stanford2D3DDataset(tmp_path, split="test")


def test_matterport3d_layouts(tmp_path, pano):
    root = tmp_path / "mp"
    img = root / "mp3d_results_panoramas" / "17DRP5sb8fy" / "0a1b2c_panorama.jpg"
    _png(img, pano["rgb"])
    lab = root / "mp3d_aligned_labels" / "17DRP5sb8fy"
    mm = np.round(pano["depth"] * 1000).astype(np.uint16)
    mm[:, :3] = 12000  # beyond 10 m: invalid
    _png(lab / "depth" / "0a1b2c_depth.png", mm)
    ids = np.zeros((H, W), np.uint8)
    ids[:, 10:20] = 17  # mpcat40 ceiling
    ids[:, 20:30] = 3  # mpcat40 chair
    _palette_png(lab / "semantic" / "0a1b2c_semantic.png", ids)
    s = Matterport3DDataset(root, out_hw=(H, W))[0]
    _check_contract(s)
    assert not s["depth_mask"][0, :, :3].any()
    sem = s["semantic"].numpy()
    assert (sem[:, 10:20] == 5).all() and (sem[:, 20:30] == 19).all() and (sem[:, :10] == 255).all()
    with pytest.raises(FileNotFoundError, match="Matterport3D"):
        Matterport3DDataset(root, scans=["other"], out_hw=(H, W))
    # the 360-benchmark list layout: depth in 1/4000 m
    lroot = tmp_path / "list"
    _png(lroot / "a" / "rgb.png", pano["rgb"])
    _png(lroot / "a" / "depth.png", np.round(pano["depth"] * 4000).astype(np.uint16))
    (lroot / "train.txt").write_text("a/rgb.png a/depth.png\n")
    ls = Matterport3DDataset(lroot, layout="list", list_file=str(lroot / "train.txt"), out_hw=(H, W))[0]
    ok = (pano["depth"] > 0) & (pano["depth"] < 10)
    np.testing.assert_allclose(ls["depth"][0].numpy()[ok], pano["depth"][ok], atol=2e-4)
    assert (ls["semantic"] == 255).all()
    with pytest.raises(ValueError, match="list_file"):
        Matterport3DDataset(lroot, layout="list")


def test_decode_normal_image_invalid_grey():
    rgb = np.array([[[128, 128, 128], [255, 128, 128], [128, 128, 0]]], np.uint8)
    n, ok = decode_normal_image(rgb)
    np.testing.assert_array_equal(ok, [[False, True, True]])
    np.testing.assert_allclose(n[0, 1], [1, 0, 0], atol=0.01)
    np.testing.assert_allclose(n[0, 2], [0, 0, -1], atol=0.01)

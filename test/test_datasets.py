"""Structured3D / Stanford2D3D / Matterport3D loaders on tiny fixtures written here in each dataset's format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from training.config import ConfigError
from training.data import matterport3d, stanford2d3d, structured3d
from training.data.panorama_files import decode_normal_image

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


def Structured3DDataset(root, **kw):
    return structured3d.from_config({"root": str(root), **kw})


def Stanford2D3DDataset(root, **kw):
    return stanford2d3d.from_config({"root": str(root), **kw})


def Matterport3DDataset(root, **kw):
    return matterport3d.from_config({"root": str(root), **kw})


def _check_contract(s, hw=(H, W)):
    assert s["image"].shape == (3, *hw) and s["image"].dtype == torch.float32
    assert s["depth"].shape == (1, *hw) and s["depth_mask"].dtype == torch.bool
    assert s["normals"].shape == (3, *hw) and s["normals_mask"].shape == (1, *hw)
    assert s["semantic"].shape == hw and s["semantic"].dtype == torch.int64
    assert (s["depth"][~s["depth_mask"]] == 0).all()


def write_structured3d(root, pano, scenes=(0, 3001), rooms=("485142",)):
    for sid in scenes:
        for room in rooms:
            d = root / f"scene_{sid:05d}" / "2D_rendering" / room / "panorama" / "full"
            _png(d / "rgb_rawlight.png", pano["rgb"])
            _png(d / "depth.png", np.round(pano["depth"] * 1000).astype(np.uint16))
            _palette_png(d / "semantic.png", _nyu_ids())
            _png(d / "normal.png", np.round((pano["normals"] + 1) / 2 * 255).astype(np.uint8))
    return root


def write_stanford2d3d(root, pano, count=1):
    labels = ["<UNK>_0_<UNK>_0_0", "ceiling_1_office_1_1", "wall_3_office_1_1", "floor_1_office_1_1",
              "beam_1_office_1_1", "chair_2_office_1_1"]
    (root / "assets").mkdir(parents=True, exist_ok=True)
    (root / "assets" / "semantic_labels.json").write_text(json.dumps(labels))
    base = root / "area_1" / "pano"
    for i in range(count):
        stem = f"camera_0d600f92f8d14e288ddc590c32584a5{i}_office_1_frame_equirectangular_domain"
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
    return root


def write_matterport3d(root, pano, count=1):
    for i in range(count):
        img = root / "mp3d_results_panoramas" / "17DRP5sb8fy" / f"0a1b2{i}_panorama.jpg"
        _png(img, pano["rgb"])
        lab = root / "mp3d_aligned_labels" / "17DRP5sb8fy"
        mm = np.round(pano["depth"] * 1000).astype(np.uint16)
        mm[:, :3] = 12000  # beyond 10 m: invalid
        _png(lab / "depth" / f"0a1b2{i}_depth.png", mm)
        ids = np.zeros((H, W), np.uint8)
        ids[:, 10:20] = 17  # mpcat40 ceiling
        ids[:, 20:30] = 3  # mpcat40 chair
        _palette_png(lab / "semantic" / f"0a1b2{i}_semantic.png", ids)
    return root


def test_structured3d(tmp_path, pano):
    write_structured3d(tmp_path, pano)
    ds = Structured3DDataset(tmp_path, split="train", size=[H, W])
    assert len(ds) == 1 and ds.records[0]["name"].startswith("scene_00000")
    assert len(Structured3DDataset(tmp_path, split="val", size=[H, W])) == 1
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
    f = Structured3DDataset(tmp_path, split="train", size=[H, W], normals="file", normals_matrix=np.eye(3).tolist())[0]
    fm = f["normals_mask"][0].numpy() & m
    cosf = np.sum(f["normals"].permute(1, 2, 0).numpy()[fm] * pano["normals"][fm], -1)
    assert np.median(cosf) > 0.99
    # the constructor takes the root and keyword options too (older out_hw and numpy matrices accepted)
    direct = structured3d.Structured3DDataset(tmp_path, split="val", out_hw=(H, W), normals="file",
                                              normals_matrix=np.eye(3))
    assert len(direct) == 1 and direct.cfg.size == [H, W] and direct.records[0]["name"].startswith("scene_03001")
    with pytest.raises(ConfigError, match="'structured3d.lihgt'; did you mean 'structured3d.light'"):
        structured3d.Structured3DDataset(tmp_path, lihgt="warm")
    small = Structured3DDataset(tmp_path, split="train", size=[16, 32], augment=True)[0]
    _check_contract(small, (16, 32))
    with pytest.raises(ValueError, match="normals_matrix"):
        Structured3DDataset(tmp_path, normals="file")
    with pytest.raises(FileNotFoundError, match="Structured3D"):
        Structured3DDataset(tmp_path / "nothing")


def test_stanford2d3d(tmp_path, pano):
    write_stanford2d3d(tmp_path, pano)
    ds = Stanford2D3DDataset(tmp_path, areas=["area_1"], size=[H, W])
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
    with pytest.raises(ConfigError, match="stanford2d3d.split"):
        Stanford2D3DDataset(tmp_path, split="test")


def test_matterport3d_layouts(tmp_path, pano):
    root = write_matterport3d(tmp_path / "mp", pano)
    s = Matterport3DDataset(root, size=[H, W])[0]
    _check_contract(s)
    assert not s["depth_mask"][0, :, :3].any()
    sem = s["semantic"].numpy()
    assert (sem[:, 10:20] == 5).all() and (sem[:, 20:30] == 19).all() and (sem[:, :10] == 255).all()
    with pytest.raises(FileNotFoundError, match="Matterport3D"):
        Matterport3DDataset(root, scans=["other"], size=[H, W])
    # the 360-benchmark list layout: depth in 1/4000 m
    lroot = tmp_path / "list"
    _png(lroot / "a" / "rgb.png", pano["rgb"])
    _png(lroot / "a" / "depth.png", np.round(pano["depth"] * 4000).astype(np.uint16))
    (lroot / "train.txt").write_text("a/rgb.png a/depth.png\n")
    ls = Matterport3DDataset(lroot, layout="list", list_file=str(lroot / "train.txt"), size=[H, W])[0]
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


# ------------------------------------------------------------------------------ every kind, two epochs, batch 2
COMMON_KEYS = {"image", "depth", "depth_mask", "normals", "normals_mask", "semantic", "depth_affine", "grad",
               "edge_distance"}


def _store(root):
    from training import pseudo_label

    pseudo_label.main(["--synthetic", "0:3", "--out", str(root), "--teacher", "oracle", "--views", "4",
                       "--view-size", "32", "--erp-size", f"{H}x{W}"])
    return str(root)


def _synthetic_folder(root):
    """The folder format of `python -m training.synthetic`: samples/NNNNNN.npz."""
    (root / "samples").mkdir(parents=True)
    for i in range(3):
        r = synthetic.render_erp(synthetic.make_scene(5 + i), H, W)
        np.savez_compressed(root / "samples" / f"{i:06d}.npz", rgb=r["rgb"], depth=r["depth"],
                            normals=r["normals"].astype(np.float16), semantic=r["semantic"], seed=np.int64(5 + i))
    return str(root)


DATASET_CONFIGS = {  # kind -> (tmp root, pano) -> dataset config of a 3-sample fixture
    "synthetic": lambda root, pano: {"kind": "synthetic", "seed": 0, "count": 3, "size": [H, W], "augment": True},
    "pseudo_labels": lambda root, pano: {"kind": "pseudo_labels", "root": _store(root / "store"), "augment": True},
    "structured3d": lambda root, pano: {"kind": "structured3d", "root": str(write_structured3d(
        root / "s3d", pano, scenes=(0, 1, 2))), "size": [H, W], "augment": True},
    "stanford2d3d": lambda root, pano: {"kind": "stanford2d3d", "root": str(write_stanford2d3d(
        root / "s2d3d", pano, count=3)), "areas": ["area_1"], "size": [H, W], "augment": True},
    "matterport3d": lambda root, pano: {"kind": "matterport3d", "root": str(write_matterport3d(
        root / "mp3d", pano, count=3)), "size": [H, W], "augment": True},
    "mix": lambda root, pano: {"kind": "mix", "weights": [1.0, 1.0], "sources": [
        {"kind": "synthetic", "seed": 0, "count": 2, "size": [H, W], "augment": True},
        {"kind": "structured3d", "root": str(write_structured3d(root / "s3d", pano, scenes=(0,))), "size": [H, W]}]},
}


def test_every_registered_kind_has_a_fixture():
    from training.data import DATASETS

    assert set(DATASETS) == set(DATASET_CONFIGS)


@pytest.mark.parametrize("kind", sorted(DATASET_CONFIGS))
def test_every_kind_iterates_two_epochs_with_batch_2(kind, tmp_path, pano):
    import importlib.util

    from training.config import TrainConfig
    from training.data import DATASETS, build_dataset
    from training.train import make_loader

    if importlib.util.find_spec(DATASETS[kind].split(":")[0]) is None:
        pytest.skip(f"kind {kind!r} is registered but its module is not in this checkout yet")
    if kind == "synthetic":  # also the stored-samples form
        stored = build_dataset({"kind": "synthetic", "root": _synthetic_folder(tmp_path / "syn"), "augment": True})
        assert len(stored) == 3 and stored[7]["image"].shape == (3, H, W)
    ds = build_dataset(DATASET_CONFIGS[kind](tmp_path, pano))
    n = len(ds)
    assert n >= 2
    loader = iter(make_loader(ds, TrainConfig(batch_size=2, seed=0), step=0))
    seen = []
    for _ in range(n + 1):  # 2n + 2 samples: past the end of the second epoch
        batch = next(loader)
        assert COMMON_KEYS <= set(batch), sorted(COMMON_KEYS - set(batch))
        _check_contract({k: v[1] for k, v in batch.items()})
        assert batch["image"].shape[0] == 2
        seen.append(batch["image"])
    # the same panorama comes back in the second epoch with another augmentation (keys differ by n)
    first, again = ds[0], ds[n]
    if kind != "mix":
        assert not torch.equal(first["image"], again["image"])
        assert torch.equal(ds[0]["image"], first["image"])  # and the same key gives the same sample


def test_structured3d_folder_trains_several_epochs_and_loads(tmp_path, pano):
    """The command a user types, from another folder: 3 panoramas, batch 2, 5 steps = 3+ epochs."""
    import subprocess
    import sys
    from pathlib import Path

    from mtpano_ros.model import load_model

    root = write_structured3d(tmp_path / "Structured3D", pano, scenes=(0, 1, 2))
    out = tmp_path / "run"
    cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "training" / "train.py"), f"out_dir={out}",
           "model.overrides.input_hw=[32,64]", f"data.train={{kind: structured3d, root: {root}, augment: true}}",
           "train.steps=5", "train.batch_size=2", "train.device=cpu", "train.threads=1", "train.ckpt_every=2",
           "train.log_every=1", "train.image_every=0"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "step 5 " in r.stdout
    model = load_model(out / "final")
    assert tuple(model.config["input_hw"]) == (32, 64)
    effective = __import__("yaml").safe_load((out / "config.yaml").read_text())
    assert effective["data"]["train"]["size"] == [32, 64] and effective["data"]["train"]["split"] == "train"

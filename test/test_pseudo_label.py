"""Pseudo-label store: layouts, fusion against exact labels, resume, skipped files, sharding, the dataset."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from training import pseudo_label as pl
from training.data.pseudo_labels import PseudoLabelDataset, mirror, yaw_roll


def _pl(store, **kw) -> PseudoLabelDataset:
    return PseudoLabelDataset({"root": str(store), **kw})


synthetic = pytest.importorskip("training.synthetic")

ERP = (32, 64)
VIEW = (40, 40)


def test_layouts():
    r = pl.make_layout("random", 3)
    assert len(r["fov_deg"]) == 32
    assert (r["fov_deg"] >= 80).all() and (r["fov_deg"] <= 120).all()
    assert (np.abs(r["pitch_deg"]) <= 90).all()
    np.testing.assert_array_equal(r["yaw_deg"], pl.make_layout("random", 3)["yaw_deg"])
    assert len(pl.make_layout("ico12", 0)["fov_deg"]) == 12
    assert len(pl.make_layout("ico20", 0, ico_fov_deg=70)["fov_deg"]) == 20
    with pytest.raises(ValueError, match="layout"):
        pl.make_layout("cube", 0)


def test_exact_oracle_fusion_reproduces_the_scene():
    """Exact views pasted back and fused must agree with the panorama's own ground truth."""
    from training.teachers.oracle import OracleTeacher

    scene = synthetic.make_scene(11, kind="indoor")
    gt = synthetic.render_erp(scene, 48, 96)
    cams = pl.make_layout("random", 4, n_views=24)
    _, labels = OracleTeacher(corruption=False).render(scene, cams, (64, 64))
    m = pl.merge_views(labels, cams, (48, 96))
    cover = m["semantic"] != 255
    assert cover.mean() > 0.97
    assert (m["semantic"][cover] == gt["semantic"][cover]).mean() > 0.95
    both = (m["depth"] > 0) & (gt["depth"] > 0)
    rel = np.abs(m["depth"][both] - gt["depth"][both]) / gt["depth"][both]
    assert np.median(rel) < 0.01
    nv = (m["normals_conf"] > 0.9) & (np.linalg.norm(gt["normals"], axis=-1) > 0.5)
    cosang = np.sum(m["normals"][nv] * gt["normals"][nv], -1)
    assert np.median(np.degrees(np.arccos(np.clip(cosang, -1, 1)))) < 3.0
    for k in ("semantic_conf", "normals_conf", "depth_conf"):
        assert m[k].min() >= 0 and m[k].max() <= 1 + 1e-6


def _run(tmp, *extra, env=None, monkeypatch=None):
    if env and monkeypatch:
        for k, v in env.items():
            monkeypatch.setenv(k, str(v))
    return pl.main(["--out", str(tmp), "--view-size", f"{VIEW[0]}x{VIEW[1]}", "--erp-size", f"{ERP[0]}x{ERP[1]}",
                    "--views", "8", *extra])


def test_synthetic_store_resume_and_sharding(tmp_path, monkeypatch):
    store = tmp_path / "store"
    for rank in (0, 1):  # two shards, as torchrun would launch them
        _run(store, "--synthetic", "20:3", "--teacher", "oracle", env={"RANK": rank, "WORLD_SIZE": 2},
             monkeypatch=monkeypatch)
    items = sorted(p.name for p in (store / "items").iterdir())
    assert items == [pl.item_id_for_seed(s, "auto") for s in (20, 21, 22)]
    meta = json.loads((store / "meta.json").read_text())
    assert meta["erp_hw"] == list(ERP) and meta["teacher"]["name"] == "oracle"
    info = json.loads((store / "items" / items[1] / "item.json").read_text())
    assert info["source"] == {"kind": "procedural", "seed": 21, "scene_kind": "auto"}  # re-creatable
    before = {p: p.stat().st_mtime_ns for p in (store / "items").rglob("*") if p.is_file()}
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    _run(store, "--synthetic", "20:4", "--teacher", "oracle")  # resume: only seed 23 is new
    after = {p: p.stat().st_mtime_ns for p in (store / "items").rglob("*") if p.is_file()}
    assert all(after[p] == t for p, t in before.items())
    assert len(list((store / "items").iterdir())) == 4
    assert not list((store / "items").glob(".tmp-*"))
    with np.load(store / "items" / items[0] / "views.npz") as v:
        assert v["zdepth"].shape == (8, *VIEW) and v["normals"].shape == (8, *VIEW, 3)
        assert v["semantic"].dtype == np.uint8 and v["fov_deg"].shape == (8,)
    with np.load(store / "items" / items[0] / "merged.npz") as m:
        assert m["semantic"].shape == ERP and m["normals"].shape == (*ERP, 3)
    with pytest.raises(ValueError, match="erp_hw"):  # refuses to mix sizes
        pl.main(["--out", str(store), "--synthetic", "0:1", "--teacher", "oracle", "--erp-size", "16x32"])

    ds = _pl(store, augment=False)
    assert len(ds) == 4
    s = ds[0]
    assert s["image"].shape == (3, *ERP) and s["image"].dtype == torch.float32
    assert 0 <= float(s["image"].min()) and float(s["image"].max()) <= 1
    assert s["depth"].shape == (1, *ERP) and s["depth_mask"].dtype == torch.bool
    assert s["semantic"].shape == ERP and s["semantic"].dtype == torch.int64
    assert s["normals"].shape == (3, *ERP) and s["normals_mask"].shape == (1, *ERP)
    # patch-wise depth: only the chosen view's patch is supervised
    assert 0.01 < s["depth_mask"].float().mean() < 0.6
    assert (s["depth"][~s["depth_mask"]] == 0).all() and (s["depth"][s["depth_mask"]] > 0).all()
    assert s["grad"].shape == (2, *ERP) and s["edge_distance"].shape == (1, *ERP)
    aug = _pl(store, augment=True)
    a, b, c = aug[6], aug[6], aug[7]  # keys beyond len: key % len picks the item, key seeds the randomness
    for k in ("image", "depth", "normals", "semantic"):
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["image"], c["image"])
    merged = _pl(store, depth="merged", augment=False)[0]
    assert merged["depth_mask"].float().mean() > 0.9
    up = _pl(store, size=[64, 128], augment=False)[1]
    assert up["image"].shape == (3, 64, 128) and up["semantic"].shape == (64, 128)
    # the store says whether its depth is metric: an affine-invariant teacher's store flags every sample
    assert not bool(s["depth_affine"])
    meta = json.loads((store / "meta.json").read_text())
    (store / "meta.json").write_text(json.dumps({**meta, "depth_kind": "affine"}))
    assert bool(_pl(store, augment=False)[0]["depth_affine"])
    (store / "meta.json").write_text(json.dumps(meta))


def test_files_with_image_teachers_and_skipped_list(tmp_path):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    seg_dir = tmp_path / "seg"
    labels = {i: str(i) for i in range(150)}
    SegformerForSemanticSegmentation(SegformerConfig(
        num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8], num_attention_heads=[1],
        decoder_hidden_size=8, num_labels=150, id2label=labels, patch_sizes=[7], strides=[4],
        mlp_ratios=[2])).save_pretrained(seg_dir)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(seg_dir)
    panos = tmp_path / "panos"
    panos.mkdir()
    scene = synthetic.make_scene(2)
    rgb = synthetic.render_erp(scene, 64, 128)["rgb"]
    cv2.imwrite(str(panos / "room.png"), rgb[..., ::-1])
    (panos / "broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(panos / "square.png"), np.zeros((40, 40, 3), np.uint8))
    store = tmp_path / "store"
    pl.main(["--input", str(panos), "--out", str(store), "--teacher", f"hf-seg:{seg_dir}", "--layout", "ico12",
             "--view-size", "32", "--erp-size", "32x64"])
    items = list((store / "items").iterdir())
    assert len(items) == 1 and items[0].name.startswith("room-")
    skipped = (store / "skipped-rank0.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0].rsplit("/", 1)[1] for line in skipped) == ["broken.jpg", "square.png"]
    with np.load(items[0] / "merged.npz") as m:
        assert "semantic" in m.files and "depth" not in m.files
    img = cv2.imread(str(items[0] / "image.png"))
    assert img.shape == (32, 64, 3)
    s = _pl(store, augment=False)[0]
    assert not s["depth_mask"].any() and not s["normals_mask"].any()


def test_cut_views_matches_rendered_view():
    scene = synthetic.make_scene(7, kind="indoor")
    pano = synthetic.render_erp(scene, 256, 512)["rgb"]
    cams = {"yaw_deg": np.array([30.0]), "pitch_deg": np.array([10.0]), "roll_deg": np.zeros(1),
            "fov_deg": np.array([90.0])}
    cut = pl.cut_views(pano, cams, (48, 48))[0].astype(np.float32)
    ref = synthetic.render_perspective(scene, 30.0, 10.0, 0.0, 90.0, out_hw=(48, 48))["rgb"].astype(np.float32)
    assert np.median(np.abs(cut - ref)) < 12  # same view, different sampling


def test_augmentations_keep_normals_consistent_with_geometry():
    """Rolling/mirroring the panorama must move normals with the pixels (checked against fresh renders)."""
    from mtpano_ros.geometry import normals_from_depth

    scene = synthetic.make_scene(4, kind="indoor")
    gt = synthetic.render_erp(scene, 32, 64)
    s = {"image": torch.from_numpy(gt["rgb"]).permute(2, 0, 1).float() / 255,
         "depth": torch.from_numpy(gt["depth"])[None], "normals": torch.from_numpy(gt["normals"]).permute(2, 0, 1)}
    for aug in (lambda x: yaw_roll(x, 13), mirror):
        a = aug(s)
        ref = normals_from_depth(a["depth"][None])[0]
        ok = (a["depth"][0] > 0) & (ref.norm(dim=0) > 0.5)
        cosang = (a["normals"] * ref).sum(0)[ok]
        assert torch.median(cosang) > math.cos(math.radians(10))


def test_ssi_depth_loss_is_affine_invariant():
    from training.losses import DEFAULTS, align_scale_shift, depth_loss

    g = torch.rand(2, 1, 8, 16) + 1
    m = torch.rand(2, 1, 8, 16) > 0.2
    pred = g * torch.tensor([3.0, 0.5]).view(2, 1, 1, 1) + torch.tensor([0.5, -0.2]).view(2, 1, 1, 1)
    ssi = {**DEFAULTS, "depth_loss": "ssi"}
    assert depth_loss(pred, g, m, ssi) < 1e-4 < depth_loss(pred, g, m, dict(DEFAULTS))
    torch.testing.assert_close(align_scale_shift(pred, g, m)[m], g[m], atol=1e-4, rtol=1e-4)
    noisy = pred + 0.3 * torch.randn_like(pred)
    assert depth_loss(noisy, g, m, ssi) > 1e-2  # not blind: only scale and shift are free

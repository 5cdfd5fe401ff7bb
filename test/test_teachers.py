"""Teachers: real transformers loading code on tiny random models, MoGe-2 / mmseg output conversion, oracle."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from training.teachers import build_teacher, parse_teacher_spec
from training.teachers.base import camera_rays, normals_from_zdepth
from training.teachers.internimage import convert_mmseg_result
from training.teachers.moge2 import convert_moge_output
from training.teachers.oracle import corrupt_view

RNG = np.random.default_rng(0)
VIEWS = RNG.integers(0, 256, size=(2, 40, 48, 3), dtype=np.uint8)


def _plane_zdepth(h: int, w: int, fov: float, normal_cam: np.ndarray, dist: float) -> np.ndarray:
    """z-depth of the plane {p : n.p = -dist} (n unit, facing the camera) seen by a view."""
    rays = camera_rays(h, w, fov)
    t = -dist / (rays @ normal_cam)
    return t.astype(np.float32)


def test_normals_from_zdepth_recovers_a_tilted_plane():
    n = np.array([0.3, -0.4, -1.0])
    n /= np.linalg.norm(n)
    z = _plane_zdepth(30, 40, 90.0, n, 2.0)
    assert (z > 0).all()
    got = normals_from_zdepth(z, 90.0)
    err = np.degrees(np.arccos(np.clip(got.reshape(-1, 3) @ n, -1, 1)))
    assert err.max() < 0.5


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
        SwinConfig,
    )

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    labels = {i: f"class{i}" for i in range(150)}
    seg = SegformerForSemanticSegmentation(SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], num_attention_heads=[1, 1],
        decoder_hidden_size=16, num_labels=150, id2label=labels, label2id={v: k for k, v in labels.items()},
        patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2]))
    seg.save_pretrained(root / "segformer")
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(root / "segformer")
    m2f = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2,
                                   image_size=64, out_features=["stage1", "stage2", "stage3", "stage4"]),
        num_labels=150, id2label=labels, hidden_dim=32, num_queries=4, encoder_feedforward_dim=32,
        dim_feedforward=32, decoder_layers=2, encoder_layers=1, mask_feature_size=32, feature_size=32,
        num_attention_heads=2, common_stride=4))
    m2f.save_pretrained(root / "mask2former")
    Mask2FormerImageProcessor(size={"height": 64, "width": 64}, do_reduce_labels=True).save_pretrained(
        root / "mask2former")
    for kind in ("metric", "relative"):
        bb = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                          image_size=28, patch_size=14, out_features=["stage1", "stage2"],
                          reshape_hidden_states=False)
        da = DepthAnythingForDepthEstimation(DepthAnythingConfig(
            backbone_config=bb, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16], reassemble_factors=[2, 1],
            fusion_hidden_size=8, head_hidden_size=8, depth_estimation_type=kind, max_depth=1e4))
        da.save_pretrained(root / f"da-{kind}")
        DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False,
                          ensure_multiple_of=14).save_pretrained(root / f"da-{kind}")
    return root


def test_hf_seg_segformer_matches_direct_model(hf_dirs):
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    t = build_teacher("hf-seg", model_dir=str(hf_dirs / "segformer"))
    out = t(VIEWS, 90.0)
    assert out["semantic"].shape == (2, 40, 48) and out["semantic"].dtype == np.uint8
    assert out["semantic"].max() < 150
    assert ((out["confidence"] > 0) & (out["confidence"] <= 1 + 1e-6)).all()
    # the same computation by hand, from a fresh load
    model = SegformerForSemanticSegmentation.from_pretrained(hf_dirs / "segformer").eval()
    px = SegformerImageProcessor.from_pretrained(hf_dirs / "segformer")(images=list(VIEWS), return_tensors="pt")
    with torch.no_grad():
        logits = torch.nn.functional.interpolate(model(**px).logits, size=(40, 48), mode="bilinear")
    np.testing.assert_allclose(t.class_scores(VIEWS), logits.softmax(1).numpy(), atol=1e-5)
    assert (out["semantic"] == logits.argmax(1).numpy()).mean() > 0.99  # up to float near-ties


def test_hf_seg_mask2former_universal_path(hf_dirs):
    t = build_teacher("hf-seg", model_dir=str(hf_dirs / "mask2former"))
    assert t.universal
    out = t(VIEWS[:1], 100.0)
    assert out["semantic"].shape == (1, 40, 48) and out["semantic"].max() < 150
    assert (out["confidence"] > 0).all() and (out["confidence"] <= 1 + 1e-6).all()


def test_hf_seg_refuses_non_ade_checkpoint(tmp_path):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    m = SegformerForSemanticSegmentation(SegformerConfig(num_encoder_blocks=1, depths=[1], sr_ratios=[1],
                                                         hidden_sizes=[8], num_attention_heads=[1],
                                                         decoder_hidden_size=8, num_labels=19,
                                                         patch_sizes=[7], strides=[4], mlp_ratios=[2]))
    m.save_pretrained(tmp_path)
    SegformerImageProcessor().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="ADE20K-150"):
        build_teacher("hf-seg", model_dir=str(tmp_path))


def test_hf_depth_metric_and_relative(hf_dirs):
    metric = build_teacher("hf-depth", model_dir=str(hf_dirs / "da-metric"))
    assert metric.depth_kind == "metric"
    out = metric(VIEWS, [80.0, 110.0])
    raw = metric.raw_depth(VIEWS)
    assert out["zdepth"].shape == (2, 40, 48) and out["normals"].shape == (2, 40, 48, 3)
    np.testing.assert_allclose(out["zdepth"][out["valid"]], raw[out["valid"]], rtol=1e-6)
    assert (out["zdepth"][~out["valid"]] == 0).all()
    n = out["normals"]
    nz = np.linalg.norm(n, axis=-1) > 0
    assert nz.any()
    np.testing.assert_allclose(np.linalg.norm(n[nz], axis=-1), 1.0, atol=1e-4)
    for i, fov in enumerate((80.0, 110.0)):  # facing the camera
        assert (np.sum(n[i] * camera_rays(40, 48, fov), -1)[nz[i]] <= 1e-6).all()
    rel = build_teacher("hf-depth", model_dir=str(hf_dirs / "da-relative"))
    assert rel.depth_kind == "affine"
    r = rel(VIEWS, 90.0)
    for i in range(2):
        if r["valid"][i].any():
            assert np.median(r["zdepth"][i][r["valid"][i]]) == pytest.approx(1.0, rel=1e-3)


def test_hf_missing_dir_has_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        build_teacher("hf-depth", model_dir=str(tmp_path))


def test_moge_conversion_on_documented_shapes():
    h, w, fov = 24, 32, 90.0
    n_true = np.array([0.0, 0.0, -1.0])
    z = _plane_zdepth(h, w, fov, n_true, 3.0)
    mask = np.ones((1, h, w), bool)
    mask[0, :4] = False  # e.g. sky
    depth = np.where(mask, z[None], np.inf).astype(np.float32)
    points = (camera_rays(h, w, fov) * z[..., None])[None].astype(np.float32)
    normal = np.where(mask[..., None], np.array([0.0, 0.0, 1.0]), 0.0)[...].astype(np.float32)  # back-facing
    out = convert_moge_output({"points": torch.from_numpy(points), "depth": torch.from_numpy(depth),
                               "mask": torch.from_numpy(mask), "normal": torch.from_numpy(normal),
                               "intrinsics": torch.eye(3)[None]}, np.array([fov]))
    assert out["zdepth"].shape == (1, h, w)
    assert (out["zdepth"][0, :4] == 0).all() and not out["valid"][0, :4].any()
    np.testing.assert_allclose(out["zdepth"][0, 4:], z[4:], rtol=1e-6)
    np.testing.assert_allclose(out["normals"][0, 4:], np.broadcast_to(n_true, (h - 4, w, 3)), atol=1e-6)
    assert np.isfinite(out["points"]).all()
    # without the normal head: normals from depth
    out2 = convert_moge_output({"depth": depth[0], "mask": mask[0]}, fov)
    inner = out2["normals"][0, 6:-1, 1:-1]
    np.testing.assert_allclose(inner, np.broadcast_to(n_true, inner.shape), atol=1e-4)


def test_moge_real_package_api():
    pytest.importorskip("moge")
    from moge.model.v2 import MoGeModel

    params = inspect.signature(MoGeModel.infer).parameters
    assert "fov_x" in params and "resolution_level" in params


def test_mmseg_conversion_both_api_generations():
    ids = np.array([[0, 5, 149], [150, -1, 2]])
    sem, conf = convert_mmseg_result([ids])
    np.testing.assert_array_equal(sem, [[0, 5, 149], [255, 255, 2]])
    np.testing.assert_array_equal(conf, [[1, 1, 1], [0, 0, 1]])

    class Data:
        def __init__(self, data):
            self.data = data

    class Sample:
        pass

    logits = torch.zeros(150, 2, 3)
    logits[7, 0, 0] = 10.0
    logits[3, 1, 2] = 1.0
    s = Sample()
    s.pred_sem_seg = Data(logits.argmax(0)[None])
    s.seg_logits = Data(logits)
    sem, conf = convert_mmseg_result(s)
    assert sem[0, 0] == 7 and sem[1, 2] == 3
    assert conf[0, 0] > 0.99 and conf[1, 1] == pytest.approx(1 / 150, rel=1e-4)


def test_internimage_code_loads_from_its_folder_without_sys_path(tmp_path):
    """InternImage's segmentation/ layout: a package importing a namespace package (ops_dcnv3 has no __init__)."""
    import sys

    from training.teachers.internimage import load_packages

    (tmp_path / "t13_ops" / "modules").mkdir(parents=True)
    (tmp_path / "t13_ops" / "modules" / "__init__.py").write_text("from .dcn import OP\n")
    (tmp_path / "t13_ops" / "modules" / "dcn.py").write_text("OP = 'dcn'\n")
    (tmp_path / "t13_custom" / "models").mkdir(parents=True)
    (tmp_path / "t13_custom" / "__init__.py").write_text("from .models import BACKBONE\n")
    (tmp_path / "t13_custom" / "models" / "__init__.py").write_text(
        "from t13_ops import modules\nBACKBONE = 'internimage+' + modules.OP\n")
    path_before = list(sys.path)
    try:
        assert load_packages(tmp_path, ("t13_ops", "t13_custom", "t13_absent")) == ["t13_ops", "t13_custom"]
        assert sys.path == path_before
        import t13_custom

        assert t13_custom.BACKBONE == "internimage+dcn"
        assert load_packages(tmp_path, ("t13_ops", "t13_custom")) == []  # already imported: left alone
    finally:
        for name in [n for n in sys.modules if n.startswith(("t13_ops", "t13_custom"))]:
            del sys.modules[name]
    with pytest.raises(FileNotFoundError, match="segmentation"):
        load_packages(tmp_path / "missing")


def test_internimage_real_package_api():
    pytest.importorskip("mmseg")
    import mmseg.apis as apis

    assert hasattr(apis, "inference_segmentor") or hasattr(apis, "inference_model")


def _exact_view(h=64, w=64):
    z = np.full((h, w), 4.0, np.float32)
    z[:, w // 2:] = 2.0  # a depth edge down the middle
    n = np.zeros((h, w, 3), np.float32)
    n[..., 2] = -1.0
    sem = np.zeros((h, w), np.uint8)
    sem[:, w // 2:] = 7
    return {"zdepth": z, "normals": n, "semantic": sem, "valid": np.ones((h, w), bool)}


def test_corruption_parts_do_what_they_say():
    exact = _exact_view()
    same = corrupt_view(exact, np.random.default_rng(1))
    for k in ("zdepth", "normals", "semantic", "valid"):
        np.testing.assert_array_equal(same[k], exact[k])
    scaled = corrupt_view(exact, np.random.default_rng(1), scale_sigma=0.2)
    ratio = scaled["zdepth"] / exact["zdepth"]
    assert np.ptp(ratio) < 1e-5 and abs(ratio[0, 0] - 1) > 1e-4  # one scale per view
    blurred = corrupt_view(exact, np.random.default_rng(1), edge_blur_px=2.0)
    edge_cols = blurred["zdepth"][:, 30:34]
    assert ((edge_cols > 2.0 + 1e-3) & (edge_cols < 4.0 - 1e-3)).any()  # smeared across the edge
    np.testing.assert_array_equal(blurred["zdepth"][:, :20], exact["zdepth"][:, :20])  # untouched away from it
    noisy = corrupt_view(exact, np.random.default_rng(1), label_noise=0.2)
    frac = (noisy["semantic"] != exact["semantic"]).mean()
    assert 0.0 < frac <= 0.25
    holes = [corrupt_view(exact, np.random.default_rng(s), hole_prob=1.0) for s in range(3)]
    for hcv in holes:
        assert (~hcv["valid"]).any()
        assert (hcv["zdepth"][~hcv["valid"]] == 0).all() and (hcv["semantic"][~hcv["valid"]] == 255).all()
    ang = corrupt_view(exact, np.random.default_rng(1), normal_noise_deg=3.0)["normals"]
    err = np.degrees(np.arccos(np.clip(-ang[..., 2], -1, 1)))
    assert 0.5 < err.mean() < 10 and np.allclose(np.linalg.norm(ang, axis=-1), 1, atol=1e-5)


def test_oracle_renders_exact_labels_of_a_scene():
    synthetic = pytest.importorskip("training.synthetic")
    scene = synthetic.make_scene(3, kind="indoor")
    cams = {"yaw_deg": np.array([0.0, 120.0]), "pitch_deg": np.array([0.0, -60.0]), "roll_deg": np.zeros(2),
            "fov_deg": np.array([90.0, 100.0])}
    exact = build_teacher("oracle", corruption=False)
    rgb, lab = exact.render(scene, cams, (32, 40))
    assert rgb.shape == (2, 32, 40, 3) and rgb.dtype == np.uint8
    ref = synthetic.render_perspective(scene, 120.0, -60.0, 0.0, 100.0, out_hw=(32, 40))
    np.testing.assert_allclose(lab["zdepth"][1], np.where(lab["valid"][1], ref["zdepth"], 0), rtol=1e-6)
    np.testing.assert_array_equal(lab["semantic"][1], ref["semantic"])
    noisy = build_teacher("oracle", seed=5)
    a = noisy(rgb, cams["fov_deg"], cams, scene)
    b = noisy(rgb, cams["fov_deg"], cams, scene)
    np.testing.assert_array_equal(a["zdepth"], b["zdepth"])  # deterministic
    assert not np.array_equal(a["zdepth"], lab["zdepth"])
    with pytest.raises(ValueError, match="scene"):
        noisy(rgb, cams["fov_deg"])


def test_teacher_spec_parsing():
    assert parse_teacher_spec("oracle") == ("oracle", {})
    assert parse_teacher_spec("hf-seg:/models/seg") == ("hf-seg", {"model_dir": "/models/seg"})
    name, kw = parse_teacher_spec("internimage:config=a.py,checkpoint=b.pth,device=cuda:0")
    assert name == "internimage" and kw["config"] == "a.py" and kw["device"] == "cuda:0"
    assert parse_teacher_spec("oracle:seed=3")[1] == {"seed": 3}
    assert math.isclose(parse_teacher_spec("hf-depth:model_dir=x,max_depth_m=20.5")[1]["max_depth_m"], 20.5)


# ------------------------------------------------------------------------------------------------ tflite (LiteRT)
SHARED = Path(__file__).resolve().parents[2] / "shared"
DEEPLAB = SHARED / "teachers" / "deeplabv3_mnv2_ade20k" / "lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite"
PANOS = SHARED / "data" / "panoramas"
needs_deeplab = pytest.mark.skipif(not DEEPLAB.is_file(), reason=f"the DeepLabV3 ADE20K teacher is not at {DEEPLAB} "
                                   "(../shared is only on the development machine)")


@pytest.fixture(scope="module")
def deeplab():
    return build_teacher("tflite", model_path=str(DEEPLAB))


def _real_views(name: str, yaw_deg: list[float], pitch_deg: list[float], hw=(200, 240)):
    from training.pseudo_label import cut_views, read_panorama

    path = PANOS / name
    if not path.is_file():
        pytest.skip(f"real panorama {path} absent (../shared is only on the development machine)")
    n = len(yaw_deg)
    cams = {"yaw_deg": np.asarray(yaw_deg, float), "pitch_deg": np.asarray(pitch_deg, float),
            "roll_deg": np.zeros(n), "fov_deg": np.full(n, 90.0)}
    return cut_views(read_panorama(path), cams, hw), cams


@needs_deeplab
def test_tflite_teacher_on_real_views_shapes_and_id_mapping(deeplab):
    views, cams = _real_views("indoor_home_2048x1024.jpg", [0.0, 180.0], [20.0, -30.0])
    out = deeplab(views, cams["fov_deg"], cams)
    assert set(out) == {"semantic", "confidence"}  # semantic only: no depth, normals or validity mask
    assert out["semantic"].shape == (2, 200, 240) and out["semantic"].dtype == np.uint8
    assert out["confidence"].shape == (2, 200, 240) and out["confidence"].dtype == np.float32
    assert deeplab.provides == frozenset({"semantic"}) and deeplab.depth_kind == "none"
    # the mapping against the raw scores: 151 scores per pixel, class k -> ADE20K id k - 1
    scores = deeplab.scores(views[0])
    assert scores.shape == (200, 240, 151) and scores.dtype == np.float32
    raw = scores.argmax(-1)
    sem, conf = out["semantic"][0], out["confidence"][0]
    kept = sem != 255
    assert kept.mean() > 0.5
    np.testing.assert_array_equal(sem[kept], raw[kept] - 1)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(conf[kept], p.max(-1)[kept], atol=1e-5)
    assert (conf[~kept] == 0).all() and (conf[kept] >= deeplab.min_confidence).all()
    # an indoor view (door, walls, ceiling): the structural classes dominate
    assert np.isin(sem[kept], [0, 5, 14]).mean() > 0.7


@needs_deeplab
def test_tflite_teacher_outdoor_view_sees_sky(deeplab):
    views, cams = _real_views("outdoor_sunset_2050x1025.jpg", [0.0], [20.0])
    sem = deeplab(views, cams["fov_deg"], cams)["semantic"][0]
    assert (sem[:100] == 2).mean() > 0.5  # the upper half of a view above the horizon: ADE20K sky = 2


@needs_deeplab
def test_tflite_label_rules_other_thresholds_and_tilted_views(deeplab):
    from training.teachers.tflite import TFLiteSegTeacher

    # crafted scores: "other" (0) wins -> 255; class 4 (floor) -> 3; weak wall (class 1) under its 0.5 bar -> 255
    s = np.zeros((1, 4, 151), np.float32)
    s[0, 0, 0] = 20.0
    s[0, 1, 4] = 20.0
    s[0, 2, 1] = np.log(0.45 / 0.55 * 150)  # softmax p(wall) = 0.45: above the base 0.3, below wall's 0.5
    s[0, 3, 4] = np.log(0.6 / 0.4 * 150)  # p(floor) = 0.6
    sem, conf, raw = deeplab.label_scores(s)
    assert raw[0].tolist() == [0, 4, 1, 4]
    assert sem[0].tolist() == [255, 3, 255, 3]
    assert conf[0, 0] == 0 and conf[0, 1] > 0.99 and conf[0, 2] == 0
    np.testing.assert_allclose(conf[0, 3], 0.6, atol=1e-5)
    loose = TFLiteSegTeacher(str(DEEPLAB), class_min_confidence={}, min_confidence=0.0)
    assert loose.label_scores(s)[0][0].tolist() == [255, 3, 0, 3]
    strict = TFLiteSegTeacher(str(DEEPLAB), class_min_confidence="floor:0.7;5:0.2")
    assert strict.class_min_confidence == {3: 0.7, 5: 0.2}
    assert strict.label_scores(s)[0][0].tolist() == [255, 3, 0, 255]  # wall falls back to the base 0.3
    with pytest.raises(ValueError, match="unknown ADE20K class"):
        TFLiteSegTeacher(str(DEEPLAB), class_min_confidence="walls:0.5")
    # views pitched beyond max_abs_pitch_deg stay unlabelled (the model only knows upright photographs)
    views, cams = _real_views("indoor_home_2048x1024.jpg", [0.0, 0.0], [0.0, 85.0], hw=(64, 64))
    out = deeplab(views, cams["fov_deg"], cams)
    assert (out["semantic"][1] == 255).all() and (out["confidence"][1] == 0).all()
    assert (out["semantic"][0] != 255).any()


@needs_deeplab
def test_tflite_elevation_limits_remove_impossible_sky_and_floor(deeplab):
    from training.teachers.tflite import TFLiteSegTeacher, ray_elevation_deg

    # a plain indoor wall this model calls "sky" (a known failure), seen from the horizon: -45..45 deg of elevation
    views, cams = _real_views("indoor_home_2048x1024.jpg", [90.0, 0.0], [0.0, -30.0], hw=(96, 96))
    loose = TFLiteSegTeacher(str(DEEPLAB), elevation_limits_deg={})(views, cams["fov_deg"], cams)["semantic"]
    out = deeplab(views, cams["fov_deg"], cams)["semantic"]
    elev = np.stack([ray_elevation_deg(cams, i, (96, 96)) for i in range(2)])
    assert ((loose == 2) & (elev < -10)).sum() > 500  # without the rule: sky far below the horizon
    assert not ((out == 2) & (elev < -10)).any() and not ((out == 3) & (elev > 10)).any()
    np.testing.assert_array_equal(out[elev >= -10][loose[elev >= -10] == 2], 2)  # sky above stays
    assert np.all((out == loose) | (out == 255))  # the rule only removes labels
    with pytest.raises(ValueError, match="MIN_DEG:MAX_DEG"):
        TFLiteSegTeacher(str(DEEPLAB), elevation_limits_deg="sky:-10")
    assert TFLiteSegTeacher(str(DEEPLAB), elevation_limits_deg="sky:-5:90;3:-90:0").elevation_limits_deg == {
        2: (-5.0, 90.0), 3: (-90.0, 0.0)}


def test_tflite_teacher_errors_and_spec():
    assert parse_teacher_spec("tflite:/m/x.tflite") == ("tflite", {"model_path": "/m/x.tflite"})
    name, kw = parse_teacher_spec("tflite:model_path=/m/x.tflite,class_min_confidence=wall:0.7,min_confidence=0.2")
    assert kw == {"model_path": "/m/x.tflite", "class_min_confidence": "wall:0.7", "min_confidence": 0.2}
    with pytest.raises(FileNotFoundError, match="no model file"):
        build_teacher("tflite", model_path="/nonexistent/model.tflite")


def test_tflite_teacher_names_the_missing_package(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if ai-edge-litert were not installed
    with pytest.raises(ImportError, match="pip install ai-edge-litert"):
        build_teacher("tflite", model_path="/any/model.tflite")


@needs_deeplab
def test_tflite_semantic_only_store_and_dataset(tmp_path):
    """A semantic-only teacher through the pseudo-label store: no geometry stored, no geometry supervised."""
    from training import pseudo_label as pl
    from training.data.pseudo_labels import from_config

    pano = PANOS / "indoor_cabin_1024x512.jpg"
    if not pano.is_file():
        pytest.skip(f"real panorama {pano} absent")
    store = tmp_path / "store"
    assert pl.main(["--input", str(pano), "--out", str(store), "--teacher", f"tflite:{DEEPLAB}", "--layout", "ico12",
                    "--ico-fov", "100", "--view-size", "48x48", "--erp-size", "32x64", "--device", "cpu"]) == 0
    item = next((store / "items").iterdir())
    with np.load(item / "views.npz") as v:
        assert {"zdepth", "normals", "valid"}.isdisjoint(v.files)
        assert (v["semantic"][np.abs(v["pitch_deg"]) > 60] == 255).all()  # the two polar views: unlabelled
    with np.load(item / "merged.npz") as m:
        assert set(m.files) == {"semantic", "semantic_conf"}
        assert (m["semantic"] != 255).mean() > 0.5
    meta = json.loads((store / "meta.json").read_text())
    assert meta["teacher"]["name"] == "tflite" and meta["teacher"]["provides"] == ["semantic"]
    for depth in ("patch", "merged"):
        s = from_config({"kind": "pseudo_labels", "root": str(store), "depth": depth})[0]
        assert not s["depth_mask"].any() and not s["normals_mask"].any() and not s["merged_depth_mask"].any()
        assert (s["depth"] == 0).all() and (s["normals"] == 0).all()
        assert (s["semantic"] != 255).any() and s["semantic"].shape == (32, 64)

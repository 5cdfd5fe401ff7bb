"""Training data aimed at real photographs: domain randomisation, the weighted mix, gravity priors, loss.gravity,
decoder initialisation from another variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.data import build_dataset
from training.data.gravity import CEILING, apply_gravity_priors
from training.losses import compute_losses
from training.synthetic import make_scene, render_erp
from training.synthetic.appearance import _blur_wrap, _vignette, randomize_appearance
from training.synthetic.scenes import camera_rotation

HW = (32, 64)


@pytest.fixture(scope="module")
def level_scene():
    """An indoor procedural scene with a level camera (exact floor geometry: floor at z = 0)."""
    scene = make_scene(11, "indoor")
    scene.rot_wc = camera_rotation(0.3, 0.0, 0.0)
    return scene, render_erp(scene, 64, 128)


def test_domain_randomisation_is_seeded_bounded_and_changes_appearance(level_scene):
    _, r = level_scene
    rgb, sem = r["rgb"], r["semantic"]
    a = randomize_appearance(rgb, sem, np.random.default_rng(5))
    b = randomize_appearance(rgb, sem, np.random.default_rng(5))
    c = randomize_appearance(rgb, sem, np.random.default_rng(6))
    assert a.dtype == np.uint8 and a.shape == rgb.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    diffs = [np.abs(randomize_appearance(rgb, sem, np.random.default_rng(s)).astype(float) - rgb).mean()
             for s in range(6)]
    assert np.mean(diffs) > 8  # grey levels: a visible change on average
    assert np.array_equal(randomize_appearance(rgb, sem, np.random.default_rng(0), strength=0.0), rgb)


def test_blur_wraps_at_the_seam_and_vignette_follows_the_lens_axes():
    img = np.random.default_rng(0).random((16, 64, 3)).astype(np.float32)
    rolled = _blur_wrap(np.roll(img, 20, axis=1), 1.2)
    assert np.allclose(np.roll(_blur_wrap(img, 1.2), 20, axis=1), rolled, atol=1e-5)
    g = _vignette(16, 64, 0.4)[..., 0]
    eq = 7  # a row next to the equator
    assert g[eq, 31] > 0.99 and g[eq, 0] > 0.99  # image centre (+x) and the seam (-x): lens axes
    assert 0.6 <= g[eq, 16] < 0.65 and 0.6 <= g[eq, 48] < 0.65  # ~90 degrees off both axes: the stitching line
    assert g.min() >= 0.6 - 1e-6


def test_mix_draws_sources_by_weight_reproducibly_and_collates():
    cfg = {"kind": "mix", "weights": [3, 1], "seed": 2, "sources": [
        {"kind": "synthetic", "seed": 100, "count": 2, "size": list(HW), "augment": True},
        {"kind": "synthetic", "seed": 200, "count": 2, "size": list(HW), "aux_targets": False,
         "domain_randomization": True}]}
    ds = build_dataset(cfg)
    assert len(ds) == 4
    picks = np.array([ds.source_of(k) for k in range(2000)])
    assert abs((picks == 0).mean() - 0.75) < 0.04
    k1 = int(np.argmax(picks == 1))
    a, b = ds[k1], ds[k1]
    assert torch.equal(a["image"], b["image"])
    assert "grad" not in a and a["vertical_mask"].shape == (1, *HW) and not a["vertical_mask"].any()
    batch = torch.utils.data.default_collate([ds[k] for k in range(6)])
    assert batch["image"].shape == (6, 3, *HW)
    with pytest.raises(ValueError, match="weights"):
        build_dataset({**cfg, "weights": [1.0]})


def _sample(semantic: np.ndarray) -> dict:
    h, w = semantic.shape
    return {"semantic": torch.from_numpy(semantic.astype(np.int64)), "normals": torch.zeros(3, h, w),
            "normals_mask": torch.zeros(1, h, w, dtype=torch.bool), "depth": torch.zeros(1, h, w),
            "depth_mask": torch.zeros(1, h, w, dtype=torch.bool)}


def test_gravity_priors_fix_impossible_labels_and_fill_normals():
    h, w = HW
    sem = np.full((h, w), 3, np.uint8)  # "floor" everywhere, also above the horizon
    sem[:4] = CEILING
    sem[h - 4:, :8] = CEILING  # "ceiling" below the horizon: impossible
    sem[10:14] = 0  # a wall band above the horizon
    out = apply_gravity_priors(_sample(sem))
    top, bottom = slice(0, h // 2 - 1), slice(h // 2 + 1, h)
    s = out["semantic"].numpy()
    assert (s[top][sem[top] == 3] == 255).all()  # floor above the horizon -> ignore
    assert (s[h - 4:, :8] == 255).all()  # ceiling below -> ignore
    n, m = out["normals"].numpy(), out["normals_mask"][0].numpy()
    floor_px = s == 3
    assert floor_px[bottom].any() and (n[2][floor_px] == 1).all() and m[floor_px].all()
    ceil_px = s == CEILING
    assert ceil_px[:4].all() and (n[2][ceil_px] == -1).all() and m[ceil_px].all()
    assert out["vertical_mask"][0].numpy()[10:14].all() and not out["vertical_mask"][0, 0].any()
    assert not out["depth_mask"].any()  # no camera height: no depth


def test_gravity_ground_depth_from_camera_height_matches_the_exact_scene(level_scene):
    scene, r = level_scene
    sem = r["semantic"]
    out = apply_gravity_priors(_sample(sem), camera_height_m=float(scene.cam_pos[2]))
    filled = out["depth_mask"][0].numpy()
    from mtpano_ros.geometry.ground import GROUND_CLASSES

    floor = np.isin(sem, GROUND_CLASSES) & (r["depth"] > 0)  # floor and rugs (a few mm thick)
    assert filled.sum() > 200 and (filled <= floor).all()
    rel = np.abs(out["depth"][0].numpy()[filled] - r["depth"][filled]) / r["depth"][filled]
    assert np.median(rel) < 1e-3 and rel.max() < 0.02  # exact up to pixel-centre sampling
    gt_n = r["normals"][filled]
    assert np.allclose(gt_n, [0, 0, 1], atol=1e-2)  # the prior's normal is the scene's floor normal


def test_gravity_loss_penalises_tilted_normals_on_vertical_surfaces():
    b, (h, w) = 2, HW
    normals = torch.zeros(b, 3, h, w)
    normals[:, 0] = 1.0  # horizontal: facing +x
    base = {"semantic_logits": torch.zeros(b, 150, h, w), "depth": torch.ones(b, 1, h, w)}
    batch = {"semantic": torch.full((b, h, w), 255), "depth": torch.zeros(b, 1, h, w),
             "depth_mask": torch.zeros(b, 1, h, w, dtype=torch.bool), "normals": torch.zeros(b, 3, h, w),
             "normals_mask": torch.zeros(b, 1, h, w, dtype=torch.bool),
             "vertical_mask": torch.ones(b, 1, h, w, dtype=torch.bool)}
    _, logs = compute_losses({**base, "normals": normals}, batch, {"gravity": 1.0})
    assert logs["loss/gravity"] == pytest.approx(0.0, abs=1e-7)
    tilted = torch.zeros(b, 3, h, w, requires_grad=True)
    with torch.no_grad():
        tilted[:, 0] = math.cos(0.5)
        tilted[:, 2] = math.sin(0.5)
    total, logs = compute_losses({**base, "normals": tilted}, batch, {"gravity": 1.0})
    assert logs["loss/gravity"] == pytest.approx(math.sin(0.5) ** 2, rel=1e-5)
    total.backward()
    assert tilted.grad[:, 2].abs().sum() > 0


def test_init_decoder_copies_the_tiny_decoder_into_lite():
    from mtpano_ros.model import create_model
    from training.train import init_decoder

    torch.manual_seed(0)
    tiny = create_model("mtpano-tiny").state_dict()
    lite = create_model("mtpano-lite")
    stem = lite.backbone.conv_stem.weight.clone()
    names = init_decoder(lite, tiny, "tiny")
    assert "necks.depth.fusion_stage.layers.0.projection.weight" in names
    assert not any(n.startswith("backbone.") for n in names)
    sd = lite.state_dict()
    assert all(torch.equal(sd[n], tiny[n]) for n in names)
    assert torch.equal(lite.backbone.conv_stem.weight, stem)
    with pytest.raises(ValueError, match="no tensor matches"):
        init_decoder(lite, {"x.weight": torch.zeros(1)}, "nothing")


def test_facing_loss_is_zero_for_camera_facing_normals_and_positive_otherwise(level_scene):
    from training.losses import facing_loss

    _, r = level_scene
    gt = torch.from_numpy(r["normals"]).permute(2, 0, 1)[None]
    sem = torch.from_numpy(r["semantic"].astype(np.int64))[None]
    assert float(facing_loss(gt, sem)) < 1e-6  # exact scene normals face the camera
    away = (-gt).requires_grad_(True)
    loss = facing_loss(away, sem)
    assert float(loss) > 0.1
    loss.backward()
    assert away.grad.abs().sum() > 0
    const = torch.zeros_like(gt)
    const[:, 0] = 1.0  # one direction everywhere: faces away from the camera on the half sphere behind it
    assert float(facing_loss(const, sem)) > 0.05


def _scene_tensors(r: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    depth = torch.from_numpy(np.nan_to_num(r["depth"], nan=0.0).astype(np.float32))[None, None]
    normals = torch.from_numpy(np.nan_to_num(r["normals"], nan=0.0).astype(np.float32)).permute(2, 0, 1)[None]
    sem = torch.from_numpy(r["semantic"].astype(np.int64))[None]
    return depth, normals, sem


def test_level_plane_loss_is_zero_on_exact_floors_and_ceilings_at_any_scale(level_scene):
    from training.losses import level_plane_loss

    _, r = level_scene
    depth, _, sem = _scene_tensors(r)
    none = torch.zeros_like(depth, dtype=torch.bool)
    exact = float(level_plane_loss(depth, sem, none))
    assert exact < 2e-3  # rugs sit a few mm above the floor
    assert float(level_plane_loss(3.7 * depth, sem, none)) == pytest.approx(exact, abs=1e-5)  # scale-free
    u = torch.arange(depth.shape[-1], dtype=torch.float32)
    bent = (depth * (1 + 0.2 * torch.sin(2 * math.pi * u / depth.shape[-1]))).requires_grad_(True)
    loss = level_plane_loss(bent, sem, none)
    assert float(loss.detach()) > 0.05  # a floor that rises on one side is no level plane
    loss.backward()
    assert bent.grad.abs().sum() > 0
    assert float(level_plane_loss(bent, sem, torch.ones_like(none))) == 0.0  # depth targets exist: left alone


def test_depth_normal_loss_agrees_on_the_exact_scene_and_trains_only_the_depth(level_scene):
    from training.losses import depth_normal_loss

    _, r = level_scene
    depth, normals, sem = _scene_tensors(r)
    mask = (depth > 0) & (sem != 2)[:, None]
    exact = float(depth_normal_loss(depth, normals, mask))
    assert exact < 0.03  # 1 - |cos|: a few degrees at creases and pixel-centre sampling
    u = torch.arange(depth.shape[-1], dtype=torch.float32)
    wavy = (depth * (1 + 0.05 * torch.sin(2 * math.pi * 8 * u / depth.shape[-1]))).requires_grad_(True)
    n = normals.clone().requires_grad_(True)
    loss = depth_normal_loss(wavy, n, mask)
    assert float(loss.detach()) > 3 * exact + 0.02
    loss.backward()
    assert wavy.grad.abs().sum() > 0 and n.grad is None  # the predicted normals are the reference, not trained
    assert float(depth_normal_loss(depth, torch.roll(normals, 1, dims=1), mask)) > 0.3


def test_geometry_terms_apply_only_where_no_depth_target_exists(level_scene):
    _, r = level_scene
    depth, normals, sem = _scene_tensors(r)
    h, w = depth.shape[-2:]
    u = torch.arange(w, dtype=torch.float32)
    bent = depth * (1 + 0.2 * torch.sin(2 * math.pi * u / w))
    out = {"semantic_logits": torch.zeros(1, 150, h, w), "depth": bent, "normals": normals}
    batch = {"semantic": sem, "depth": depth, "normals": normals, "depth_mask": torch.zeros_like(depth, dtype=bool),
             "normals_mask": torch.zeros_like(depth, dtype=bool)}
    cfg = {"level_planes": 1.0, "depth_normal": 1.0}
    _, real = compute_losses(out, batch, cfg)
    _, labelled = compute_losses(out, {**batch, "depth_mask": depth > 0}, cfg)
    assert real["loss/level_planes"] > 0.05 and real["loss/depth_normal"] > 0.01
    assert labelled["loss/level_planes"] == 0.0 and labelled["loss/depth_normal"] == 0.0
    _, off = compute_losses(out, batch, {})
    assert "loss/level_planes" not in off and "loss/depth_normal" not in off


def test_gravity_priors_drop_polar_walls_and_low_sky_and_face_the_nadir_up():
    """Teachers call plain ceilings and floors seen straight on "wall": near the poles such labels are dropped
    (no vertical-normal constraint there); sky below the horizon is dropped; straight down faces up."""
    h, w = 36, 72  # 5 degrees per row: row r spans latitudes 90 - 5 r .. 85 - 5 r
    lat = 90.0 - 5.0 * (np.arange(h) + 0.5)
    sem = np.zeros((h, w), np.uint8)  # "wall" everywhere
    sem[25:, :10] = 2  # "sky" below the horizon
    out = apply_gravity_priors(_sample(sem))
    s, vm = out["semantic"].numpy(), out["vertical_mask"][0].numpy()
    polar = np.abs(lat) > 50
    assert (s[polar] == 255).all() and not vm[polar].any()
    assert (s[~polar][:, 10:] == 0).all() and vm[~polar][:, 10:].all()  # walls near the horizon stay vertical
    assert (s[25:, :10] == 255).all()
    n, m = out["normals"].numpy(), out["normals_mask"][0].numpy()
    nadir = lat < -65
    assert m[nadir].all() and (n[2][nadir] == 1).all() and not m[lat > -65].any()
    sem[:] = CEILING
    up = apply_gravity_priors(_sample(sem))
    assert (up["normals"].numpy()[2][lat > 3] == -1).all()  # ceilings above the horizon face down


def test_sky_below_loss_penalises_sky_under_the_horizon_only():
    from training.losses import sky_below_loss

    h, w = 36, 72
    logits = torch.zeros(1, 150, h, w)
    base = float(sky_below_loss(logits))
    assert base == pytest.approx(-math.log(149 / 150), rel=1e-4)  # uniform: p_sky = 1/150
    logits[:, 2, : h // 2] = 10.0  # confident sky above the horizon: no penalty
    assert float(sky_below_loss(logits)) == pytest.approx(base, rel=1e-4)
    low = logits.clone().requires_grad_(True)
    with torch.no_grad():
        low[:, 2, h - 6:] = 10.0  # sky near the nadir
    loss = sky_below_loss(low)
    assert float(loss.detach()) > 10 * base
    loss.backward()
    assert low.grad[:, 2, h - 6:].gt(0).all()  # descent lowers the sky logit there

"""Procedural panoramas: determinism, exact geometry of the labels, ERP <-> perspective consistency."""

import numpy as np
import pytest
import torch

from mtpano_ros.geometry import erp_ray_grid_np, erp_to_perspective, view_rotation
from training.synthetic import make_scene, render_erp, render_perspective
from training.synthetic.scenes import CEILING, FLOOR, SKY, WALL

H, W = 64, 128


@pytest.fixture(scope="module")
def indoor():
    scene = make_scene(3, "indoor")
    return scene, render_erp(scene, H, W)


def test_deterministic_and_seed_dependent(indoor):
    scene, a = indoor
    b = render_erp(make_scene(3, "indoor"), H, W)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = render_erp(make_scene(4, "indoor"), H, W)
    assert not np.array_equal(a["depth"], c["depth"])


def test_outputs_contract(indoor):
    _, r = indoor
    assert r["rgb"].shape == (H, W, 3) and r["rgb"].dtype == np.uint8
    assert r["depth"].shape == (H, W) and r["depth"].dtype == np.float32
    assert r["normals"].shape == (H, W, 3) and r["normals"].dtype == np.float32
    assert r["semantic"].shape == (H, W) and r["semantic"].dtype == np.uint8
    assert (r["depth"] > 0).all()  # closed room: every ray hits something
    assert not (r["semantic"] == SKY).any()
    n = np.linalg.norm(r["normals"], axis=-1)
    np.testing.assert_allclose(n, 1.0, atol=1e-4)
    rays = erp_ray_grid_np(H, W)
    assert ((r["normals"] * rays).sum(-1) < 1e-4).all()  # facing the camera


def test_floor_ceiling_walls_are_exact(indoor):
    scene, r = indoor
    X, Y, Z = scene.info["room_m"]
    pts = erp_ray_grid_np(H, W) * r["depth"][..., None]  # panorama frame
    world = pts @ scene.rot_wc.T.astype(np.float64) + scene.cam_pos
    sem = r["semantic"]
    np.testing.assert_allclose(world[sem == FLOOR][:, 2], 0.0, atol=1e-3)
    np.testing.assert_allclose(world[sem == CEILING][:, 2], Z, atol=1e-3)
    wall = world[sem == WALL]
    on_outer = (np.abs(np.abs(wall[:, 0]) - X / 2) < 1e-3) | (np.abs(np.abs(wall[:, 1]) - Y / 2) < 1e-3)
    assert on_outer.mean() > 0.5  # the rest belongs to an L-shape wall block
    # floor normals point up in the world, i.e. rot_wc^T z in the panorama frame
    up = scene.rot_wc.T @ np.array([0, 0, 1.0])
    np.testing.assert_allclose(r["normals"][sem == FLOOR], np.broadcast_to(up, ((sem == FLOOR).sum(), 3)),
                               atol=1e-4)


def test_outdoor_has_sky_and_street():
    r = render_erp(make_scene(5, "outdoor"), H, W)
    sem = r["semantic"]
    assert (sem == SKY).any() and (r["depth"][sem == SKY] == 0).all()
    assert (np.linalg.norm(r["normals"][sem == SKY], axis=-1) == 0).all()
    assert {1, 6}.issubset(set(np.unique(sem).tolist()))  # building, road
    rows = np.nonzero((sem == SKY).any(1))[0]
    assert rows.max() < H * 0.6  # sky only above the horizon (small camera tilt allowed)


def test_perspective_matches_erp():
    scene = make_scene(11, "indoor")
    erp = render_erp(scene, 256, 512)
    yaw, pitch, roll, fov, hw = 30.0, -20.0, 5.0, 90.0, (48, 64)
    v = render_perspective(scene, yaw, pitch, roll, fov, hw)
    assert v["zdepth"].shape == hw and v["normals"].shape == hw + (3,)
    stack = np.concatenate([erp["depth"][..., None], erp["normals"], erp["semantic"][..., None].astype(np.float32)],
                           -1)
    t = torch.from_numpy(stack).permute(2, 0, 1)[None].double()
    cut = erp_to_perspective(t, yaw, pitch, roll, fov, hw, mode="nearest")[0, 0].numpy()
    same = cut[4] == v["semantic"]
    assert same.mean() > 0.9
    rel = np.abs(cut[0] - v["depth"]) / v["depth"]
    assert np.median(rel[same]) < 0.02
    # view-frame normals rotated to the panorama frame agree with the ERP normals
    r = view_rotation(yaw, pitch, roll)[0].numpy()
    n_pano = v["normals"] @ r.T
    cos = (n_pano * cut[1:4].transpose(1, 2, 0)).sum(-1)
    assert np.median(cos[same]) > 0.999
    # z-depth is radial depth projected on the optical axis (never larger)
    assert (v["zdepth"] <= v["depth"] + 1e-5).all()


@pytest.mark.parametrize("seed,kind", [(21, "indoor"), (22, "outdoor")])
def test_erp_culling_matches_brute_force(seed, kind):
    from training.synthetic.raycast import cast_erp, cast_rays

    scene = make_scene(seed, kind)
    rays = erp_ray_grid_np(H, W).astype(np.float32)
    t, idx, _ = cast_erp(scene.prims, scene.cam_pos, scene.rot_wc, rays)
    d = np.ascontiguousarray((rays.reshape(-1, 3) @ scene.rot_wc.T).T.astype(np.float32))
    t2, idx2, _ = cast_rays(scene.prims, scene.cam_pos, d)
    assert np.array_equal(idx.reshape(-1), idx2)
    np.testing.assert_allclose(t.reshape(-1), t2, rtol=1e-5)

"""The official MTPano output frame -> REP 103 conversion (evidence in mtpano_ros/model/pdbridge.py).

A synthetic box room around the camera is expressed the way the official code expresses it: the world ray of
ERP pixel (u, v) is N = (-cos(phi) cos(theta), sin(phi), cos(phi) sin(theta)) with theta = u pi, phi = v pi / 2,
u, v in [-1, 1] (v = -1 on the top row), and normals point away from the camera along the hit axis (as the
official generate_box_panorama builds them and as its labels are oriented).
"""

from __future__ import annotations

import math

import torch

from mtpano_ros.geometry.erp import erp_ray_grid
from mtpano_ros.model import create_model
from mtpano_ros.model.pdbridge import official_normals_to_rep103, official_points_to_rep103

H, W = 32, 64


def _official_box_scene():
    v = (2 * (torch.arange(H, dtype=torch.float64) + 0.5) / H - 1)[:, None].expand(H, W)
    u = (2 * (torch.arange(W, dtype=torch.float64) + 0.5) / W - 1)[None, :].expand(H, W)
    theta, phi = u * math.pi, v * math.pi / 2
    ray = torch.stack([-torch.cos(phi) * torch.cos(theta), torch.sin(phi), torch.cos(phi) * torch.sin(theta)])
    half = torch.tensor([2.0, 1.5, 3.0], dtype=torch.float64)[:, None, None]  # box half-sizes in N-space
    t = half / ray.abs().clamp_min(1e-9)
    depth, axis = t.min(dim=0)
    normal = torch.nn.functional.one_hot(axis, 3).permute(2, 0, 1).double() * torch.sign(ray)  # away from camera
    return ray[None].float(), depth[None, None].float(), normal[None].float()


def test_floor_is_up_and_wall_ahead_faces_back():
    _, _, n_off = _official_box_scene()
    ours = official_normals_to_rep103(n_off)
    floor = ours[0, :, H - 1, W // 2]  # bottom row: the floor below the camera
    wall = ours[0, :, H // 2, W // 2]  # image centre: straight ahead (+x), the wall in front
    assert torch.allclose(floor, torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(wall, torch.tensor([-1.0, 0.0, 0.0]))
    ceiling = ours[0, :, 0, W // 2]
    assert torch.allclose(ceiling, torch.tensor([0.0, 0.0, -1.0]))
    left = ours[0, :, H // 2, W // 4]  # a quarter from the left: longitude +90 deg = +y, that wall faces -y
    assert torch.allclose(left, torch.tensor([0.0, -1.0, 0.0]))


def test_every_normal_faces_the_camera_and_points_match_our_rays():
    ray_off, depth, n_off = _official_box_scene()
    ours_ray = erp_ray_grid(H, W).permute(2, 0, 1)[None]
    assert torch.allclose(official_points_to_rep103(ray_off), ours_ray, atol=1e-5)  # the frame rotation
    pts = official_points_to_rep103(ray_off * depth)
    assert torch.allclose(pts, ours_ray * depth, atol=1e-4)
    n = official_normals_to_rep103(n_off)
    assert ((n * ours_ray).sum(dim=1) < 0).all()  # facing the camera (DESIGN §3)


def test_model_output_converts_official_heads():
    """A model whose heads are in the official frame (as mtpano-vitl) reports REP 103 normals and points."""
    ray_off, depth, n_off = _official_box_scene()
    m = create_model("mtpano-tiny", head_frame="official")

    def fake_raw(x, with_aux=True):
        out = {"semseg": torch.zeros(1, 150, H, W), "depth": depth, "normals": 3.0 * n_off}
        if with_aux:
            out["aux_preds"] = {"semseg": out["semseg"], "depth": depth, "normals": n_off}
            out["ext_preds"] = {"grad": torch.zeros(1, 2, H, W), "sdf": depth, "point": ray_off * depth}
        return out

    m.forward_raw = fake_raw
    x = torch.rand(1, 3, H, W)
    m.eval()
    out = m(x)
    assert torch.allclose(out["normals"], official_normals_to_rep103(n_off))
    m.train()
    out = m(x)
    ours_ray = erp_ray_grid(H, W).permute(2, 0, 1)[None]
    assert torch.allclose(out["aux"]["points"], ours_ray * depth, atol=1e-4)

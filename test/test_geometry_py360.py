"""Our perspective views agree with py360convert's e2p on a real panorama (reference implementation)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mtpano_ros.geometry import erp_to_perspective, erp_to_perspective_np, perspective_erp_coords

py360convert = pytest.importorskip("py360convert")
cv2 = pytest.importorskip("cv2")

PANOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panoramas"


def py360_fov(fov_deg: float, out_hw: tuple[int, int]) -> tuple[float, float]:
    """py360convert puts the outermost pixel CENTRES at +-tan(fov/2); we put the pixel EDGES there (f = w/2/tan).

    Returns the (h_fov, v_fov) in degrees that makes its pixel grid identical to ours.
    """
    h, w = out_hw
    t = math.tan(math.radians(fov_deg) / 2.0)
    return (math.degrees(2 * math.atan((w - 1) / w * t)), math.degrees(2 * math.atan((h - 1) / w * t)))


def py360_view(img, yaw, pitch, roll, fov, out_hw, mode="bilinear"):
    # py360convert: u_deg > 0 turns right (ours: yaw > 0 turns left), v_deg = pitch, in_rot_deg = roll
    return py360convert.e2p(img, py360_fov(fov, out_hw), -yaw, pitch, out_hw, in_rot_deg=roll, mode=mode)


VIEWS = [(0.0, 0.0, 0.0), (35.0, 20.0, 0.0), (-60.0, -30.0, 10.0), (70.0, 45.0, -20.0), (-20.0, -80.0, 0.0),
         (10.0, 88.0, 30.0)]


def test_same_geometry_as_py360convert():
    from py360convert import utils

    H, W, out_hw, fov = 256, 512, (40, 60), 100.0
    for yaw, pitch, roll in VIEWS:
        hf, vf = py360_fov(fov, out_hw)
        xyz = utils.xyzpers(math.radians(hf), math.radians(vf), -math.radians(-yaw), math.radians(pitch), out_hw,
                            math.radians(roll))
        u, v = utils.xyz2uv(xyz.astype(np.float64))
        cx, cy = utils.uv2coor(u, v, H, W)
        ours = perspective_erp_coords(yaw, pitch, roll, fov, out_hw, (H, W))[0].numpy()
        du = np.abs(cx[..., 0] - ours[..., 0])
        du = np.minimum(du, W - du)  # both wrap, possibly to the other end
        assert du.max() < 1e-3 and np.abs(cy[..., 0] - ours[..., 1]).max() < 1e-3


def test_views_agree_with_py360convert_on_a_real_panorama():
    path = PANOS / "indoor_home_2048x1024.jpg"
    if not path.exists():
        pytest.skip(f"{path} not available")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    out_hw, fov = (192, 256), 100.0
    ours = erp_to_perspective_np(img, [v[0] for v in VIEWS], [v[1] for v in VIEWS], [v[2] for v in VIEWS], fov,
                                 out_hw)
    erp_t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    ours_t = erp_to_perspective(erp_t, [v[0] for v in VIEWS], [v[1] for v in VIEWS], [v[2] for v in VIEWS], fov,
                                out_hw)[0].permute(0, 2, 3, 1).numpy()
    for k, (yaw, pitch, roll) in enumerate(VIEWS):  # none of these views reaches the seam at lon = +-180
        ref = py360_view(img, yaw, pitch, roll, fov, out_hw).astype(np.float64)
        assert ref.shape == ours[k].shape
        d_np = np.abs(ours[k].astype(np.float64) - ref).mean()
        d_t = np.abs(ours_t[k] - ref).mean()
        assert d_np <= 0.1, (yaw, pitch, roll, d_np)  # same OpenCV fixed-point remap: nearly identical
        assert d_t <= 1.0, (yaw, pitch, roll, d_t)
    lab = (img[..., 0] // 2).astype(np.uint8)
    ours_n = erp_to_perspective_np(lab, 35.0, 20.0, 0.0, fov, out_hw, mode="nearest")[0]
    ref_n = py360_view(lab, 35.0, 20.0, 0.0, fov, out_hw, mode="nearest")
    assert (ours_n == ref_n).mean() > 0.99

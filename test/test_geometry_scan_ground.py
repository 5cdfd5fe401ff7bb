"""Virtual laser scan and ground scale (mtpano_ros.geometry.scan / .ground) on scenes with exact depth.

Analytic rooms (closed-form depth) pin the rule of DESIGN §5 exactly; procedural scenes from training.synthetic
(exact depth, known camera height) check it on cluttered geometry against a per-beam brute force.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force_scan

from mtpano_ros.geometry import erp_lonlat_grid_np, erp_ray_grid_np
from mtpano_ros.geometry.ground import GROUND_CLASSES, ScaleSmoother, ground_height, ground_scale
from mtpano_ros.geometry.scan import scan_angles, virtual_scan
from mtpano_ros.labels import ADE20K_CLASSES
from training.synthetic import make_scene, render_erp

FLOOR, WALL = 3, 0


def box_room(hw: tuple[int, int], half_xy: tuple[float, float], below_m: float, above_m: float):
    """Exact radial depth (H, W) and labels of a camera inside an axis-aligned box room: walls at x = +-hx,
    y = +-hy, floor at z = -below_m, ceiling at z = +above_m (panorama frame, metres)."""
    rays = erp_ray_grid_np(*hw)
    with np.errstate(divide="ignore"):
        t = np.stack([np.where(rays[..., 0] != 0, half_xy[0] / np.abs(rays[..., 0]), np.inf),
                      np.where(rays[..., 1] != 0, half_xy[1] / np.abs(rays[..., 1]), np.inf),
                      np.where(rays[..., 2] < 0, below_m / -rays[..., 2], np.inf),
                      np.where(rays[..., 2] > 0, above_m / rays[..., 2], np.inf)], axis=-1)
    which = t.argmin(axis=-1)
    labels = np.choose(which, [WALL, WALL, FLOOR, 5]).astype(np.uint8)
    return t.min(axis=-1).astype(np.float32), labels


def test_scan_angles_cover_minus_pi_to_pi():
    amin, amax, inc = scan_angles(720)
    assert amin == -np.pi and inc == pytest.approx(np.pi / 360) and amax == pytest.approx(np.pi - inc)


@pytest.mark.parametrize("num_beams", [64, 256, 360])
def test_scan_in_a_box_room_matches_closed_form(num_beams):
    hw = (128, 256)
    depth, _ = box_room(hw, (3.0, 2.0), below_m=1.2, above_m=1.5)
    ranges = virtual_scan(depth, num_beams, -0.5, 0.5)
    amin, _, inc = scan_angles(num_beams)
    # each beam sees only wall pixels in the band; range = min over its bin of the wall's horizontal distance
    lon = erp_lonlat_grid_np(*hw)[0, :, 0]
    wall = np.minimum(3.0 / np.maximum(np.abs(np.cos(lon)), 1e-12), 2.0 / np.maximum(np.abs(np.sin(lon)), 1e-12))
    for i in range(num_beams):
        diff = (lon - (amin + i * inc) + np.pi) % (2 * np.pi) - np.pi
        sel = (diff >= -inc / 2 - 1e-9) & (diff < inc / 2 - 1e-9)
        expected = wall[sel].min() if sel.any() else np.inf
        assert ranges[i] == pytest.approx(expected, rel=1e-5), i
    # beam 0 looks along -x, beam N/4 along -y, N/2 along +x, 3N/4 along +y: closed-form wall distances
    if num_beams % 4 == 0 and hw[1] % num_beams == 0:
        q = num_beams // 4
        np.testing.assert_allclose(ranges[[0, q, 2 * q, 3 * q]], [3.0, 2.0, 3.0, 2.0], rtol=2e-3)


def test_scan_height_band_range_limits_and_empty_beams():
    hw = (64, 128)
    depth, _ = box_room(hw, (3.0, 3.0), below_m=1.0, above_m=1.0)
    assert np.isinf(virtual_scan(depth, 90, 5.0, 6.0)).all()  # nothing that high: +inf everywhere (REP 117)
    floor_only = virtual_scan(depth, 90, -1.01, -0.99)  # the floor ring where z = -1: horizontal up to ~3 m
    assert np.isfinite(floor_only).all()
    assert np.isinf(virtual_scan(depth, 90, -0.5, 0.5, range_max_m=2.5)).all()  # walls are >= 3 m away
    depth[:, :64] = np.nan  # the +y half (columns 0..63: azimuth pi .. 0) has no valid depth
    ranges = virtual_scan(depth, 128, -0.5, 0.5)
    amin, _, inc = scan_angles(128)
    angles = amin + np.arange(128) * inc
    assert np.isinf(ranges[(angles > inc) & (angles < np.pi - inc)]).all()
    assert np.isfinite(ranges[(angles < -inc) & (angles > -np.pi + inc)]).all()
    with pytest.raises(ValueError, match="band"):
        virtual_scan(depth, 10, 1.0, -1.0)


@pytest.mark.parametrize("seed, num_beams", [(11, 360), (12, 720), (2000003, 500)])
def test_scan_on_procedural_scenes_matches_brute_force(seed, num_beams):
    sample = render_erp(make_scene(seed), 96, 192)
    depth = sample["depth"]
    got = virtual_scan(depth, num_beams, -0.4, 0.6, range_min_m=0.2, range_max_m=12.0)
    expected = brute_force_scan(depth, num_beams, -0.4, 0.6, 0.2, 12.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.isfinite(got).sum() > min(num_beams, 192) // 4  # the band hits real geometry (<= 1 beam per column)


def test_ground_classes_are_ground():
    names = {ADE20K_CLASSES[i] for i in GROUND_CLASSES}
    assert {"floor", "road", "grass", "sidewalk", "earth", "rug", "path"} <= names
    assert not names & {"wall", "sky", "ceiling", "table", "car", "person"}


def test_ground_scale_in_a_box_room():
    depth, labels = box_room((128, 256), (4.0, 3.0), below_m=1.35, above_m=1.5)
    assert ground_height(depth, labels) == pytest.approx(1.35, rel=1e-4)
    assert ground_scale(depth * 0.5, labels, 1.35) == pytest.approx(2.0, rel=1e-4)
    assert ground_scale(depth, labels[::2, ::2], 1.35) == pytest.approx(1.0, rel=1e-3)  # labels at half size
    walls = np.where(labels == FLOOR, WALL, labels).astype(np.uint8)
    assert ground_scale(depth, walls, 1.35) is None  # no ground pixels
    few = np.full_like(labels, WALL)
    few[-3:, :20] = FLOOR
    assert ground_scale(depth, few, 1.35) is None  # too few
    with pytest.raises(ValueError, match="camera_height_m"):
        ground_scale(depth, labels, 0.0)


def test_ground_scale_rejects_ground_that_is_not_level():
    hw = (128, 256)
    rays = erp_ray_grid_np(*hw)
    tilt = np.deg2rad(25.0)
    normal = np.array([np.sin(tilt), 0.0, np.cos(tilt)])  # a 25-degree slope 1.5 m below the camera
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -1.5 / (rays @ normal)
    depth = np.where(t > 0, t, np.nan).astype(np.float32)
    labels = np.full(hw, FLOOR, np.uint8)
    assert ground_height(depth, labels, max_tilt_deg=30.0) == pytest.approx(1.5, rel=1e-3)
    assert ground_scale(depth, labels, 1.5) is None


@pytest.mark.parametrize("seed", [5, 6, 2000001, 2000002])
def test_ground_scale_on_procedural_scenes_recovers_the_camera_height(seed):
    scene = make_scene(seed)
    camera_height_m = float(scene.cam_pos[2])  # the floor / ground is z = 0 in the scene's world frame
    sample = render_erp(scene, 128, 256)
    scale = ground_scale(sample["depth"], sample["semantic"], camera_height_m)
    assert scale == pytest.approx(1.0, abs=0.02), (scene.kind, camera_height_m)
    wrong = ground_scale(sample["depth"] * 0.7, sample["semantic"], camera_height_m)
    assert wrong == pytest.approx(1.0 / 0.7, rel=0.02)


def test_scale_smoother_median_outliers_and_restart():
    s = ScaleSmoother(window=5, max_jump=1.5)
    assert s.update(None) is None
    for v in (1.0, 1.1, 0.9, 1.05):
        s.update(v)
    assert s.value == pytest.approx(1.025)
    assert s.update(3.0) == pytest.approx(1.025) and s.rejected == 1  # an outlier frame is not used
    assert s.update(None) == pytest.approx(1.025)  # no estimate: keep the last value
    for _ in range(5):
        s.update(2.0)
    assert s.value == pytest.approx(2.0)  # five in a row: the scene changed, follow it

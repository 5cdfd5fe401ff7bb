"""Spherical geometry: view convention, sampling (seam, poles), patches, cubemap, depth, normals, layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtpano_ros.geometry import (
    area_weights,
    camera_rays,
    cubemap_to_erp,
    depth_to_points,
    depth_to_points_np,
    erp_ray_grid,
    erp_ray_grid_np,
    erp_to_cubemap,
    erp_to_perspective,
    erp_to_perspective_np,
    icosahedral_views,
    lonlat_to_pixel,
    lonlat_to_ray,
    normals_from_depth,
    perspective_depth_to_erp,
    perspective_erp_coords,
    perspective_normals_to_erp,
    perspective_to_erp,
    pixel_to_lonlat,
    radial_to_zdepth,
    ray_to_lonlat,
    sample_views,
    view_rotation,
    zdepth_to_radial,
)

YAW = [0.0, 37.0, -120.0, 180.0, 75.0]
PITCH = [0.0, 20.0, -45.0, 89.0, -90.0]
ROLL = [0.0, 0.0, 15.0, -30.0, 5.0]
FOV = [90.0, 60.0, 100.0, 75.0, 120.0]


def ray_erp(h: int, w: int, dtype=torch.float64) -> torch.Tensor:
    """(1, 3, H, W) image whose channels are the unit ray of each ERP pixel (smooth on the sphere)."""
    return erp_ray_grid(h, w, dtype=dtype).permute(2, 0, 1)[None].contiguous()


def expected_view_rays(yaw, pitch, roll, fov, hw, dtype=torch.float64) -> torch.Tensor:
    """(V, 3, h, w) unit rays in the panorama frame that each view pixel looks along."""
    r = camera_rays(torch.as_tensor(fov, dtype=torch.float64).reshape(-1), hw)
    r = r / r.norm(dim=-1, keepdim=True)
    rot = view_rotation(yaw, pitch, roll)
    return torch.einsum("vij,vhwj->vihw", rot, r).to(dtype)


def rot_np(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


# ----------------------------------------------------------------------------------------------- convention
def test_view_rotation_matches_the_written_convention():
    C = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    R = view_rotation(YAW, PITCH, ROLL).numpy()
    assert R.shape == (5, 3, 3) and R.dtype == np.float64
    for k in range(5):
        ref = rot_np("z", YAW[k]) @ rot_np("y", -PITCH[k]) @ rot_np("x", ROLL[k]) @ C
        np.testing.assert_allclose(R[k], ref, atol=1e-12)
        np.testing.assert_allclose(R[k] @ R[k].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R[k]) == pytest.approx(1.0)


def test_view_directions_yaw_left_pitch_up():
    R = view_rotation([0.0, 90.0, 0.0, 0.0], [0.0, 0.0, 90.0, -90.0], 0.0).numpy()
    fwd = R[:, :, 2]  # camera +z
    np.testing.assert_allclose(fwd, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]], atol=1e-12)
    # at rest the image right is -y (panorama right) and the image down is -z
    np.testing.assert_allclose(R[0, :, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(R[0, :, 1], [0, 0, -1], atol=1e-12)


def test_looking_up_equals_rolled_view():
    # yaw about the vertical axis while looking straight up is a roll of the image
    a = view_rotation(40.0, 90.0, 0.0)
    b = view_rotation(0.0, 90.0, 40.0)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_erp_pixel_ray_round_trip():
    H, W = 16, 32
    u = torch.rand(1000, dtype=torch.float64) * W - 0.5
    v = torch.rand(1000, dtype=torch.float64) * H - 0.5
    lon, lat = pixel_to_lonlat(u, v, H, W)
    lon2, lat2 = ray_to_lonlat(3.0 * lonlat_to_ray(lon, lat))
    u2, v2 = lonlat_to_pixel(lon2, lat2, H, W)
    u2 = torch.remainder(u2 + 0.5, W) - 0.5
    torch.testing.assert_close(u2, u, atol=1e-9, rtol=0)
    torch.testing.assert_close(v2, v, atol=1e-9, rtol=0)


def test_view_centre_lands_on_known_erp_pixel():
    H, W = 64, 128
    uv = perspective_erp_coords(YAW[:3], PITCH[:3], ROLL[:3], FOV[:3], (9, 11), (H, W))
    centre = uv[:, 4, 5]  # odd size: this pixel centre is the optical axis
    lon = torch.deg2rad(torch.tensor(YAW[:3], dtype=torch.float64))
    lat = torch.deg2rad(torch.tensor(PITCH[:3], dtype=torch.float64))
    eu, ev = lonlat_to_pixel(lon, lat, H, W)
    eu = torch.remainder(eu + 0.5, W) - 0.5
    torch.testing.assert_close(centre, torch.stack((eu, ev), -1), atol=1e-9, rtol=0)
    # straight ahead, 90 deg fov: the right edge of the view is 45 deg to the right = column 5/8 W - 0.5
    uv = perspective_erp_coords(0.0, 0.0, 0.0, 90.0, (1, 2), (H, W))
    f = 1.0  # (w/2)/tan(45) for w = 2
    lon_right = -math.atan(0.5 / f)
    assert uv[0, 0, 1, 0].item() == pytest.approx((0.5 - lon_right / (2 * math.pi)) * W - 0.5)
    assert uv[0, 0, 1, 1].item() == pytest.approx(H / 2 - 0.5)


# ------------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("pitch", [90.0, 89.3, 60.0, 0.0, -88.0, -90.0])
def test_views_sample_the_right_rays_including_poles(pitch):
    H, W = 32, 64
    out = erp_to_perspective(ray_erp(H, W), [17.0, -163.0], pitch, [0.0, 25.0], 60.0, (33, 33))
    exp = expected_view_rays([17.0, -163.0], pitch, [0.0, 25.0], 60.0, (33, 33))
    assert out.shape == (1, 2, 3, 33, 33)
    # bilinear interpolation error of a smooth field; clamping at the poles instead of crossing them gives ~0.03
    assert (out[0] - exp).abs().max().item() < 5e-3


def test_seam_view_equals_rolled_panorama():
    H, W = 24, 48
    g = torch.Generator().manual_seed(0)
    erp = torch.rand(2, 3, H, W, generator=g, dtype=torch.float64)
    rolled = torch.roll(erp, W // 2, dims=-1)  # what was at lon = pi is now at lon = 0
    a = erp_to_perspective(erp, 180.0, [0.0, 30.0], 0.0, 100.0, (20, 20))
    b = erp_to_perspective(rolled, 0.0, [0.0, 30.0], 0.0, 100.0, (20, 20))
    torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_pole_does_not_mix_longitudes():
    # left half of the sphere (lon > 0) is 1, right half 0; looking straight up the boundary is the x axis
    H, W = 32, 64
    lon = pixel_to_lonlat(torch.arange(W, dtype=torch.float64), torch.zeros(W), H, W)[0]
    erp = (lon > 0).to(torch.float64).expand(H, W)[None, None].contiguous()
    out = erp_to_perspective(erp, 0.0, 90.0, 0.0, 30.0, (31, 31))[0, 0, 0]
    rays = expected_view_rays(0.0, 90.0, 0.0, 30.0, (31, 31))[0]
    lon_view = torch.atan2(rays[1], rays[0])
    far = ((lon_view.abs() > 0.3) & (lon_view.abs() < math.pi - 0.3))  # well away from the lon = 0 / pi cut
    # above the first row centre the bilinear neighbour is the row across the pole (lon + pi), so skip that cap
    far &= rays[2] < math.cos(math.pi / H)
    assert far.sum() > 500
    torch.testing.assert_close(out[far], (lon_view[far] > 0).to(out.dtype), atol=1e-9, rtol=0)


def test_nearest_keeps_labels_and_dtype():
    H, W = 16, 32
    lab = torch.randint(0, 150, (2, 1, H, W), dtype=torch.uint8)
    lab[0, 0, 5, 7] = 255
    out = erp_to_perspective(lab, [0.0, 45.0], [0.0, -10.0], 0.0, 90.0, (8, 8), mode="nearest")
    assert out.dtype == torch.uint8 and out.shape == (2, 2, 1, 8, 8)
    assert set(out.unique().tolist()) <= set(lab.unique().tolist())
    lab64 = lab.long()
    torch.testing.assert_close(erp_to_perspective(lab64, [0.0, 45.0], [0.0, -10.0], 0.0, 90.0, (8, 8),
                                                  mode="nearest"), out.long())
    with pytest.raises(TypeError, match="nearest"):
        erp_to_perspective(lab, 0.0, 0.0, 0.0, 90.0, (8, 8))


def test_float32_and_float64_agree():
    H, W = 32, 64
    e64 = torch.rand(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = erp_to_perspective(e64, YAW, PITCH, ROLL, FOV, (24, 24))
    b = erp_to_perspective(e64.float(), YAW, PITCH, ROLL, FOV, (24, 24))
    assert b.dtype == torch.float32 and a.dtype == torch.float64
    assert (a - b.double()).abs().max().item() < 1e-3
    assert (a - b.double()).abs().mean().item() < 1e-5
    c = erp_to_perspective(e64.half(), YAW, PITCH, ROLL, FOV, (24, 24))  # sampled in float32, stored in half
    assert c.dtype == torch.float16 and (a - c.double()).abs().max().item() < 2e-3


def test_numpy_fast_path_matches_torch():
    H, W = 48, 96
    rng = np.random.default_rng(2)
    img = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img[::4, ::4], 4, 0), 4, 1))  # blocky: few interp edges
    t = erp_to_perspective(torch.from_numpy(img).permute(2, 0, 1)[None].double(), YAW, PITCH, ROLL, FOV, (20, 28))
    t = t[0].permute(0, 2, 3, 1).numpy()
    n = erp_to_perspective_np(img, YAW, PITCH, ROLL, FOV, (20, 28))
    assert n.dtype == np.uint8 and n.shape == (5, 20, 28, 3)
    assert np.abs(n.astype(float) - t).mean() < 1.0  # OpenCV weights are quantised to 1/32 pixel
    lab = rng.integers(0, 150, (H, W)).astype(np.uint8)
    ln = erp_to_perspective_np(lab, YAW, PITCH, ROLL, FOV, (20, 28), mode="nearest")
    lt = erp_to_perspective(torch.from_numpy(lab)[None, None], YAW, PITCH, ROLL, FOV, (20, 28), mode="nearest")
    assert ln.shape == (5, 20, 28)
    assert (ln == lt[0, :, 0].numpy()).mean() > 0.98  # ties at exact half-pixels may round differently
    f = erp_to_perspective_np(img.astype(np.float32) / 255, YAW, PITCH, ROLL, FOV, (20, 28))
    assert f.dtype == np.float32 and np.abs(f * 255 - t).mean() < 1.0


def test_batched_views_equal_single_calls():
    e = torch.rand(3, 2, 16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    both = erp_to_perspective(e, YAW, PITCH, ROLL, FOV, (10, 12))
    assert both.shape == (3, 5, 2, 10, 12)
    for k in range(5):
        one = erp_to_perspective(e[1:2], YAW[k], PITCH[k], ROLL[k], FOV[k], (10, 12))
        torch.testing.assert_close(one[0, 0], both[1, k])


# ------------------------------------------------------------------------------------------------- patches
def test_patch_round_trip_view_patch_view():
    H, W = 64, 128
    yaw, pitch, roll, fov = YAW, PITCH, ROLL, [60.0] * 5
    views = expected_view_rays(yaw, pitch, roll, fov, (24, 24))[None]  # exact view content: the rays
    patch, mask = perspective_to_erp(views, yaw, pitch, roll, fov, (H, W))
    assert patch.shape == (1, 5, 3, H, W) and mask.shape == (1, 5, 1, H, W) and mask.dtype == torch.bool
    rays = ray_erp(H, W)[0]
    m = mask[0, :, 0]
    assert m.any(dim=(1, 2)).all()
    err = (patch[0] - rays[None]).norm(dim=1)[m]
    assert err.max().item() < 0.03  # bilinear inside the view, one view pixel ~ 0.045 rad
    assert (patch[0].norm(dim=1)[~m] == 0).all()
    # and back: re-cutting the patch gives the view again (inside, away from the border)
    again = erp_to_perspective(patch[:, 0], yaw[0], pitch[0], roll[0], fov[0], (24, 24))
    torch.testing.assert_close(again[0, 0, :, 2:-2, 2:-2], views[0, 0, :, 2:-2, 2:-2], atol=0.03, rtol=0)


def test_patch_mask_is_the_view_frustum():
    H, W = 32, 64
    ones = torch.ones(1, 1, 1, 16, 16)
    _, mask = perspective_to_erp(ones, 0.0, 0.0, 0.0, 90.0, (H, W))
    rays = ray_to_lonlat(erp_ray_grid(H, W, dtype=torch.float64))
    lon, lat = rays
    x = torch.cos(lat) * torch.cos(lon)
    inside = (x > 0) & ((torch.cos(lat) * torch.sin(lon)).abs() <= x) & (torch.sin(lat).abs() <= x)
    assert torch.equal(mask[0, 0, 0], inside)


def test_depth_patch_of_a_wall_is_analytic():
    # wall x = 2 m seen by a yaw-0 view: z-depth is 2 everywhere; radial depth on the ERP is 2 / (cos lat cos lon)
    H, W = 32, 64
    z = torch.full((1, 1, 1, 20, 20), 2.0, dtype=torch.float64)
    depth, mask = perspective_depth_to_erp(z, 0.0, 0.0, 0.0, 90.0, (H, W))
    rays = erp_ray_grid(H, W, dtype=torch.float64)
    exp = 2.0 / rays[..., 0]
    m = mask[0, 0, 0]
    assert m.sum() > 50
    torch.testing.assert_close(depth[0, 0, 0][m], exp[m], atol=1e-9, rtol=1e-9)
    pts = depth_to_points(depth[:, 0])
    torch.testing.assert_close(pts[0, 0][m], torch.full_like(pts[0, 0][m], 2.0), atol=1e-9, rtol=0)


def test_depth_patch_does_not_smear_into_holes():
    z = torch.full((1, 1, 1, 20, 20), 3.0)
    z[..., :, 10:] = 0.0
    depth, mask = perspective_depth_to_erp(z, 0.0, 0.0, 0.0, 90.0, (32, 64))
    assert mask.any()
    d = depth[mask]
    assert torch.all(d >= 3.0 - 1e-5)  # never a blend of 3 m with the invalid 0
    assert torch.all(depth[~mask] == 0)


def test_normals_patch_rotates_into_panorama_frame():
    yaw = [30.0, -100.0]
    n = torch.zeros(1, 2, 3, 8, 8)
    n[:, :, 2] = -1.0  # facing the camera, OpenCV frame
    out, mask = perspective_normals_to_erp(n, yaw, [10.0, 0.0], 0.0, 90.0, (32, 64))
    for k in range(2):
        exp = -view_rotation(yaw[k], [10.0, 0.0][k], 0.0)[0, :, 2].float()
        got = out[0, k].permute(1, 2, 0)[mask[0, k, 0]]
        torch.testing.assert_close(got, exp.expand_as(got), atol=1e-5, rtol=0)


def test_zdepth_radial_inverse_and_corner():
    z = torch.rand(2, 3, 1, 6, 8, dtype=torch.float64) + 0.5
    fov = [60.0, 90.0, 110.0]
    r = zdepth_to_radial(z, fov)
    torch.testing.assert_close(radial_to_zdepth(r, fov), z)
    assert torch.all(r >= z)
    one = zdepth_to_radial(torch.ones(1, 2, dtype=torch.float64), 90.0)  # pixel centres at (+-0.5, 0) / f=1
    torch.testing.assert_close(one, torch.full((1, 2), math.sqrt(1.25), dtype=torch.float64))
    with pytest.raises(ValueError, match="V=3"):
        zdepth_to_radial(torch.ones(2, 1, 6, 8), fov)


# ---------------------------------------------------------------------------------------------------- cubemap
def test_cubemap_round_trip():
    H, W = 32, 64
    e = ray_erp(H, W)
    faces = erp_to_cubemap(e, 24)
    assert faces.shape == (1, 6, 3, 24, 24)
    # face centres look along +x, -y, -x, +y, +z, -z
    c = faces[0, :, :, 11:13, 11:13].mean(dim=(-1, -2))
    exp = torch.tensor([[1, 0, 0], [0, -1, 0], [-1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]], dtype=c.dtype)
    torch.testing.assert_close(c, exp, atol=0.01, rtol=0)
    back = cubemap_to_erp(faces, (H, W))
    assert back.shape == (1, 3, H, W)
    assert (back - e).abs().max().item() < 0.02
    lab = torch.randint(0, 150, (1, 1, H, W), dtype=torch.uint8)
    lb = cubemap_to_erp(erp_to_cubemap(lab, 48, mode="nearest"), (H, W))
    # nearest twice is exact where cube pixels are finer than ERP pixels (not near the poles)
    assert lb.dtype == torch.uint8 and (lb == lab)[..., H // 4:-H // 4, :].float().mean() > 0.97


# ------------------------------------------------------------------------------------------ depth and normals
def plane_depth(H, W, n, d):
    """Radial depth of the plane {p : n.p = -d} (d > 0 m), 0 where the ray misses it."""
    rays = erp_ray_grid(H, W, dtype=torch.float64)
    dn = rays @ torch.tensor(n, dtype=torch.float64)
    depth = torch.where(dn < -0.05, -d / dn, torch.zeros_like(dn))
    return depth[None, None]


def test_floor_plane_points_and_normals():
    H, W = 32, 64
    depth = plane_depth(H, W, (0.0, 0.0, 1.0), 1.5)  # floor 1.5 m below the camera
    pts = depth_to_points(depth)
    valid = depth[0, 0] > 0
    torch.testing.assert_close(pts[0, 2][valid], torch.full_like(pts[0, 2][valid], -1.5), atol=1e-12, rtol=0)
    n = normals_from_depth(depth)
    inner = valid.clone()
    inner[:-1] &= valid[1:]
    inner[1:] &= valid[:-1]
    got = n[0].permute(1, 2, 0)[inner]
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, 1.0], dtype=got.dtype).expand_as(got), atol=1e-9,
                               rtol=0)
    assert torch.all(n[0][:, ~valid] == 0)


def test_wall_across_the_seam_normals():
    # wall behind the camera at x = -2: its pixels straddle the seam (lon = +-pi), normals face +x
    H, W = 32, 64
    depth = plane_depth(H, W, (1.0, 0.0, 0.0), 2.0)
    n = normals_from_depth(depth.float())
    assert n.dtype == torch.float32
    v = depth[0, 0] > 0
    inner = v & torch.roll(v, 1, -1) & torch.roll(v, -1, -1)
    inner[1:] &= v[:-1]
    inner[:-1] &= v[1:]
    assert inner[:, 0].any() and inner[:, -1].any()  # the seam columns are covered
    got = n[0].permute(1, 2, 0)[inner]
    torch.testing.assert_close(got, torch.tensor([1.0, 0.0, 0.0]).expand_as(got), atol=1e-5, rtol=0)


def test_sphere_normals_face_camera_and_points_np():
    H, W = 16, 32
    depth = torch.full((2, 1, H, W), 4.0, dtype=torch.float64)
    n = normals_from_depth(depth)
    rays = ray_erp(H, W)
    torch.testing.assert_close(n[0, :, 1:-1], -rays[0, :, 1:-1], atol=1e-9, rtol=0)
    d = np.random.default_rng(4).random((H, W)).astype(np.float32) + 1
    p_np = depth_to_points_np(d)
    p_t = depth_to_points(torch.from_numpy(d)[None, None])[0].permute(1, 2, 0).numpy()
    assert p_np.shape == (H, W, 3) and p_np.dtype == np.float32
    np.testing.assert_allclose(p_np, p_t, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(p_np, axis=-1), d, rtol=1e-5)
    np.testing.assert_allclose(erp_ray_grid_np(H, W), rays[0].permute(1, 2, 0).numpy())


def test_area_weights_integrate_to_sphere():
    w = area_weights(64, 128, dtype=torch.float64)
    assert w.shape == (64, 128)
    assert (w.sum() * (2 * math.pi / 128) * (math.pi / 64)).item() == pytest.approx(4 * math.pi, rel=1e-3)
    assert torch.all(w > 0) and w[32, 0] > w[0, 0]


# ------------------------------------------------------------------------------------------------- gradients
def test_gradcheck_erp_to_perspective():
    e = torch.rand(1, 2, 6, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: erp_to_perspective(x, [10.0, 170.0], [80.0, -20.0], 5.0, 70.0, (3, 4)),
                                    (e,))


def test_gradcheck_angles_and_patches():
    e = ray_erp(8, 16)
    yaw = torch.tensor([12.3, -47.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: erp_to_perspective(e, y, 20.0, 0.0, 60.0, (3, 3)), (yaw,))
    v = torch.rand(1, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: perspective_to_erp(x, [0.0, 90.0], 0.0, 0.0, 90.0, (6, 12))[0], (v,))
    z = (torch.rand(1, 2, 1, 4, 4, dtype=torch.float64) + 1.0).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: perspective_depth_to_erp(x, [0.0, 90.0], 0.0, 0.0, 90.0, (6, 12))[0],
                                    (z,))
    n = torch.nn.functional.normalize(torch.rand(1, 1, 3, 3, 3, dtype=torch.float64) - 0.5, dim=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: perspective_normals_to_erp(x, 20.0, 10.0, 0.0, 90.0, (4, 8))[0], (n,))


def test_gradcheck_normals_from_depth():
    d = (torch.rand(1, 1, 6, 8, dtype=torch.float64) + 1.0).requires_grad_()
    assert torch.autograd.gradcheck(normals_from_depth, (d,))


# --------------------------------------------------------------------------------------------------- layouts
def test_sample_views_is_seeded_and_in_range():
    a = sample_views(50, seed=7, pitch_range_deg=(-30, 60), fov_range_deg=(70, 110), roll_range_deg=(-10, 10))
    b = sample_views(50, seed=7, pitch_range_deg=(-30, 60), fov_range_deg=(70, 110), roll_range_deg=(-10, 10))
    c = sample_views(50, seed=8, pitch_range_deg=(-30, 60), fov_range_deg=(70, 110), roll_range_deg=(-10, 10))
    assert set(a) == {"yaw_deg", "pitch_deg", "roll_deg", "fov_deg"}
    for k in a:
        assert a[k].shape == (50,) and a[k].dtype == np.float64
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a["yaw_deg"], c["yaw_deg"])
    assert a["yaw_deg"].min() >= -180 and a["yaw_deg"].max() < 180
    assert a["pitch_deg"].min() >= -30 and a["pitch_deg"].max() <= 60
    assert a["fov_deg"].min() >= 70 and a["fov_deg"].max() <= 110
    assert a["roll_deg"].min() >= -10 and a["roll_deg"].max() <= 10
    z = sample_views(4000, seed=0)
    # uniform directions: the mean of sin(pitch) is ~0 and |pitch| > 60 deg holds ~13.4 % of them
    assert abs(np.sin(np.deg2rad(z["pitch_deg"])).mean()) < 0.05
    assert abs((np.abs(z["pitch_deg"]) > 60).mean() - (1 - math.sin(math.radians(60)))) < 0.03
    with pytest.raises(ValueError, match="pitch_range_deg"):
        sample_views(3, 0, pitch_range_deg=(10, -10))


@pytest.mark.parametrize("n", [12, 20])
def test_icosahedral_views_cover_the_sphere(n):
    lay = icosahedral_views(n, fov_deg=80.0)
    assert all(lay[k].shape == (n,) for k in lay)
    R = view_rotation(lay["yaw_deg"], lay["pitch_deg"], lay["roll_deg"])
    fwd = R[:, :, 2]
    # centres are distinct and evenly spread: nearest-neighbour angles all equal
    dots = (fwd @ fwd.T).fill_diagonal_(-2).max(dim=1).values
    assert torch.allclose(dots, dots[0].expand_as(dots), atol=1e-9)
    ones = torch.ones(1, n, 1, 8, 8)
    _, mask = perspective_to_erp(ones, lay["yaw_deg"], lay["pitch_deg"], lay["roll_deg"], lay["fov_deg"], (48, 96))
    assert mask.any(dim=1).all()
    with pytest.raises(ValueError):
        icosahedral_views(8)


# ------------------------------------------------------------------------------------------------------ errors
def test_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        erp_to_perspective(torch.rand(3, 8, 16), 0.0, 0.0, 0.0, 90.0, (4, 4))
    with pytest.raises(ValueError, match=r"\(B, V, C, h, w\)"):
        perspective_to_erp(torch.rand(1, 3, 4, 4), 0.0, 0.0, 0.0, 90.0, (8, 16))
    with pytest.raises(ValueError, match=r"\(B, V, 1, h, w\)"):
        perspective_depth_to_erp(torch.rand(1, 1, 2, 4, 4), 0.0, 0.0, 0.0, 90.0, (8, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        depth_to_points(torch.rand(8, 16))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        depth_to_points_np(np.ones((1, 8, 16), np.float32))
    with pytest.raises(ValueError, match="fov_deg"):
        erp_to_perspective(torch.rand(1, 1, 8, 16), 0.0, 0.0, 0.0, 180.0, (4, 4))
    with pytest.raises(ValueError, match="yaw_deg has 2"):
        erp_to_perspective(torch.rand(1, 1, 8, 16), [0.0, 1.0], [0.0, 1.0, 2.0], 0.0, 90.0, (4, 4))
    with pytest.raises(ValueError, match="out_hw"):
        erp_to_perspective(torch.rand(1, 1, 8, 16), 0.0, 0.0, 0.0, 90.0, (4, 0))
    with pytest.raises(ValueError, match=r"\(B, V, C, h, w\)|views"):
        perspective_to_erp(torch.rand(1, 2, 1, 4, 4), [0.0, 1.0, 2.0], 0.0, 0.0, 90.0, (8, 16))

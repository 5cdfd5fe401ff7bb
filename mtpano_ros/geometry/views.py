"""Perspective views cut from an ERP panorama and spherical patches pasted back (torch, batched).

View convention (shared by every part of the project):
    A view is (yaw_deg, pitch_deg, roll_deg, fov_deg) with fov_deg the HORIZONTAL field of view and a pixel
    size out_hw = (h, w). Camera frame is OpenCV (x right, y down, z forward) with
        f = (w / 2) / tan(fov / 2),  cx = w / 2,  cy = h / 2,  pixel centres at +0.5,
        ray_cam(u, v) = (((u + 0.5) - w / 2) / f, ((v + 0.5) - h / 2) / f, 1).
    Camera -> panorama rotation: R = Rz(yaw) @ Ry(-pitch) @ Rx(roll) @ C with
        C = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  (OpenCV x -> -y, y -> -z, z -> +x of REP 103).
    yaw > 0 turns left (towards +y), pitch > 0 looks up (+z); yaw = pitch = roll = 0 looks along +x.

Sampling of the ERP wraps horizontally (column 0 and W-1 are neighbours) and crosses the poles correctly: the
row "above" row 0 is row 0 shifted by half a turn, so bilinear weights near a pole never mix in the wrong
longitude. Sampling grids for repeated view sets are cached (they are never handed out, so never modified).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from mtpano_ros.geometry.erp import erp_ray_grid

_C = ((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))


# --------------------------------------------------------------------------------------------------- parameters
def _as_views(yaw_deg, pitch_deg, roll_deg, fov_deg, dtype=torch.float64, device=None) -> tuple[torch.Tensor, ...]:
    """Broadcast the four view parameters to (V,) tensors of one dtype."""
    out = []
    for name, x in (("yaw_deg", yaw_deg), ("pitch_deg", pitch_deg), ("roll_deg", roll_deg), ("fov_deg", fov_deg)):
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)
        if t.dim() > 1:
            raise ValueError(f"{name} must be a float or a (V,) sequence/tensor, got shape {tuple(t.shape)}")
        if t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"{name} must be real degrees, got {t.dtype}")
        out.append(t.to(dtype=dtype, device=device).reshape(-1))
    n = max(t.numel() for t in out)
    for name, t in zip(("yaw_deg", "pitch_deg", "roll_deg", "fov_deg"), out):
        if t.numel() not in (1, n):
            raise ValueError(f"view parameters must all have V={n} entries (or be scalars); {name} has {t.numel()}")
    out = [t.expand(n) for t in out]
    fov = out[3]
    if not torch.all((fov > 0) & (fov < 180)):
        raise ValueError(f"fov_deg (horizontal field of view) must be in (0, 180), got {fov.tolist()}")
    return tuple(out)


def view_rotation(yaw_deg, pitch_deg, roll_deg=0.0) -> torch.Tensor:
    """Camera (OpenCV) -> panorama (REP 103) rotations of V views.

    yaw_deg, pitch_deg, roll_deg: floats or (V,) sequences/tensors (degrees). Returns (V, 3, 3), float64 unless a
    floating tensor is passed (then its dtype/device), differentiable in the angles.
    R = Rz(yaw) @ Ry(-pitch) @ Rx(roll) @ C; a vector p_cam in the view frame is R @ p_cam in the panorama frame.
    """
    dtype, device = torch.float64, None
    for x in (yaw_deg, pitch_deg, roll_deg):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            dtype, device = x.dtype, x.device
            break
    yaw, pitch, roll, _ = _as_views(yaw_deg, pitch_deg, roll_deg, 90.0, dtype=dtype, device=device)
    return _rotation(yaw, pitch, roll)


def _rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    a, b, g = torch.deg2rad(yaw), torch.deg2rad(-pitch), torch.deg2rad(roll)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    ca, sa, cb, sb, cg, sg = a.cos(), a.sin(), b.cos(), b.sin(), g.cos(), g.sin()
    rz = torch.stack((ca, -sa, z, sa, ca, z, z, z, o), -1).reshape(-1, 3, 3)
    ry = torch.stack((cb, z, sb, z, o, z, -sb, z, cb), -1).reshape(-1, 3, 3)
    rx = torch.stack((o, z, z, z, cg, -sg, z, sg, cg), -1).reshape(-1, 3, 3)
    c = torch.tensor(_C, dtype=a.dtype, device=a.device)
    return rz @ ry @ rx @ c


def focal_px(fov_deg, width: int) -> torch.Tensor:
    """Pinhole focal length in pixels for a horizontal fov_deg (float or (V,)) and view width w: (w/2)/tan(fov/2)."""
    fov = torch.as_tensor(fov_deg, dtype=torch.float64) if not isinstance(fov_deg, torch.Tensor) else fov_deg
    return (width / 2.0) / torch.tan(torch.deg2rad(fov) / 2.0)


def camera_rays(fov_deg, out_hw: tuple[int, int], dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Unnormalised rays (x/z, y/z, 1) at view pixel centres, OpenCV frame: (V, h, w, 3) for fov_deg of shape (V,)."""
    h, w = _check_hw(out_hw, "out_hw")
    fov = torch.as_tensor(fov_deg, dtype=dtype, device=device).reshape(-1)
    f = focal_px(fov, w).to(dtype)
    u = (torch.arange(w, dtype=dtype, device=device) + 0.5 - w / 2.0)
    v = (torch.arange(h, dtype=dtype, device=device) + 0.5 - h / 2.0)
    x = (u[None, None, :] / f[:, None, None]).expand(-1, h, w)
    y = (v[None, :, None] / f[:, None, None]).expand(-1, h, w)
    return torch.stack((x, y, torch.ones_like(x)), -1)


def _check_hw(hw, name: str) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in hw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (height, width) of positive ints, got {hw!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be a pair (height, width) of positive ints, got {hw!r}")
    return h, w


def _check_image(x: torch.Tensor, name: str, expected: str, dims: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.dim() != dims:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


# ------------------------------------------------------------------------------------------------- grid caching
_GRID_CACHE: OrderedDict = OrderedDict()
_GRID_CACHE_BYTES = 384 * 2**20  # cached grids of 32 views of 512x512 take ~50-70 MB each
_GRID_LOCK = threading.Lock()


def _nbytes(val) -> int:
    if isinstance(val, torch.Tensor):
        return val.numel() * val.element_size()
    if isinstance(val, np.ndarray):
        return val.nbytes
    if isinstance(val, (tuple, list)):
        return sum(_nbytes(v) for v in val)
    return 0


def _cached(key, make):
    """Small LRU (bounded by bytes) for sampling grids; `key` is None when the grid must not be cached."""
    if key is None:
        return make()
    with _GRID_LOCK:
        hit = _GRID_CACHE.get(key)
        if hit is not None:
            _GRID_CACHE.move_to_end(key)
            return hit[0]
    val = make()
    size = _nbytes(val)
    if size <= _GRID_CACHE_BYTES // 2:
        with _GRID_LOCK:
            _GRID_CACHE[key] = (val, size)
            while sum(v[1] for v in _GRID_CACHE.values()) > _GRID_CACHE_BYTES:
                _GRID_CACHE.popitem(last=False)
    return val


def _key(tag: str, views: tuple[torch.Tensor, ...], *rest):
    if any(t.requires_grad for t in views):
        return None
    return (tag, tuple(tuple(t.detach().cpu().tolist()) for t in views)) + rest


def clear_grid_cache() -> None:
    """Drop all cached sampling grids (they are rebuilt on demand)."""
    with _GRID_LOCK:
        _GRID_CACHE.clear()


# ------------------------------------------------------------------------------------------- ERP -> perspective
def perspective_erp_coords(yaw_deg, pitch_deg, roll_deg, fov_deg, out_hw: tuple[int, int],
                           erp_hw: tuple[int, int], dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Continuous ERP pixel coordinates (u, v) seen by each view pixel: (V, h, w, 2).

    u in [-0.5, W - 0.5) (wrapped), v in [-0.5, H - 0.5]; pixel centres are integers (DESIGN §3 convention).
    """
    H, W = _check_hw(erp_hw, "erp_hw")
    h, w = _check_hw(out_hw, "out_hw")
    yaw, pitch, roll, fov = _as_views(yaw_deg, pitch_deg, roll_deg, fov_deg, dtype=dtype, device=device)
    rot = _rotation(yaw, pitch, roll)[:, :, :, None, None]  # (V, 3, 3, 1, 1)
    f = focal_px(fov, w).to(dtype)[:, None, None]
    # the camera ray (a, b, 1) is affine in the pixel indices, so R @ ray = a R[:, 0] + b R[:, 1] + R[:, 2]
    a = (torch.arange(w, dtype=dtype, device=device) + (0.5 - w / 2.0))[None, None, :] / f  # (V, 1, w)
    b = (torch.arange(h, dtype=dtype, device=device) + (0.5 - h / 2.0))[None, :, None] / f  # (V, h, 1)
    x, y, z = (a * rot[:, i, 0] + (b * rot[:, i, 1] + rot[:, i, 2]) for i in range(3))
    lon = torch.atan2(y, x)
    lat = torch.atan2(z, torch.hypot(x, y))
    u = lon * (-W / (2.0 * math.pi)) + (0.5 * W - 0.5)
    v = lat * (-H / math.pi) + (0.5 * H - 0.5)
    u = torch.remainder(u + 0.5, W) - 0.5
    return torch.stack((u, v), -1)


def _pad_erp(erp: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H+2, W+2): one row across each pole (half-turn shifted) and one wrapped column."""
    W = erp.shape[-1]
    top = torch.roll(erp[..., :1, :], W // 2, dims=-1)
    bottom = torch.roll(erp[..., -1:, :], W // 2, dims=-1)
    x = torch.cat((top, erp, bottom), dim=-2)
    return torch.cat((x[..., -1:], x, x[..., :1]), dim=-1)


def _erp_grid(yaw_deg, pitch_deg, roll_deg, fov_deg, out_hw, erp_hw, dtype, device) -> torch.Tensor:
    """grid_sample grid (1, V*h, w, 2) into the padded ERP of size (H+2, W+2), align_corners=False."""
    H, W = erp_hw
    views = _as_views(yaw_deg, pitch_deg, roll_deg, fov_deg, dtype=torch.float64)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    if any(t.requires_grad for t in (yaw_deg, pitch_deg, roll_deg, fov_deg) if isinstance(t, torch.Tensor)):
        views = _as_views(yaw_deg, pitch_deg, roll_deg, fov_deg, dtype=work, device=device)
        key = None
    else:
        key = _key("e2p", views, tuple(out_hw), tuple(erp_hw), dtype, str(device))

    def make():
        uv = perspective_erp_coords(*views, out_hw, erp_hw, dtype=work, device=device)
        gx = (uv[..., 0] + 1.5) * (2.0 / (W + 2)) - 1.0
        gy = (uv[..., 1] + 1.5) * (2.0 / (H + 2)) - 1.0
        g = torch.stack((gx, gy), -1).to(dtype)
        return g.reshape(1, -1, g.shape[-2], 2)

    return _cached(key, make)


def _sampling_source(x: torch.Tensor, name: str, mode: str) -> torch.Tensor:
    """The tensor grid_sample reads: integer labels (nearest only) lifted to a float type that holds them exactly,
    half precision lifted to float32 (a half-precision sampling grid would be off by up to a pixel)."""
    if not x.is_floating_point():
        if mode != "nearest":
            raise TypeError(f"{name} of dtype {x.dtype} needs mode='nearest' (labels); convert to float for bilinear")
        return x.to(torch.float64 if x.dtype in (torch.int32, torch.int64) else torch.float32)
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def erp_to_perspective(erp: torch.Tensor, yaw_deg, pitch_deg, roll_deg, fov_deg, out_hw: tuple[int, int],
                       mode: str = "bilinear") -> torch.Tensor:
    """Cut V perspective views from each of B panoramas in one call.

    erp: (B, C, H, W) ERP images/maps (float for "bilinear"; any dtype for "nearest", e.g. uint8/int64 labels).
    yaw_deg, pitch_deg, roll_deg, fov_deg: floats or (V,) sequences/tensors, degrees (fov = horizontal).
    out_hw: (h, w) view size in pixels. mode: "bilinear" for colour/float maps, "nearest" for labels.
    Returns (B, V, C, h, w) in erp's dtype; differentiable in erp (and in the angles when they require grad).
    """
    _check_image(erp, "erp", "(B, C, H, W)", 4)
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    B, C, H, W = erp.shape
    h, w = _check_hw(out_hw, "out_hw")
    src = _sampling_source(erp, "erp", mode)
    grid = _erp_grid(yaw_deg, pitch_deg, roll_deg, fov_deg, (h, w), (H, W), src.dtype, src.device)
    out = F.grid_sample(_pad_erp(src), grid.expand(B, -1, -1, -1), mode=mode, padding_mode="border",
                        align_corners=False)
    out = out.reshape(B, C, -1, h, w).transpose(1, 2)
    if out.dtype != erp.dtype:
        out = out.to(erp.dtype) if erp.is_floating_point() else out.round().to(erp.dtype)
    return out


# -------------------------------------------------------------------------------- perspective -> ERP (patches)
def _patch_grid(yaw_deg, pitch_deg, roll_deg, fov_deg, view_hw, erp_hw, dtype, device):
    """(V, H, W, 2) grid into the views (align_corners=False), (V, H, W) bool validity, (V, H, W) optical-axis
    component of each ERP pixel's unit ray in the view frame (clamped > 0)."""
    H, W = erp_hw
    h, w = view_hw
    grad = any(isinstance(t, torch.Tensor) and t.requires_grad for t in (yaw_deg, pitch_deg, roll_deg, fov_deg))
    work = torch.float64 if dtype == torch.float64 else torch.float32
    views = _as_views(yaw_deg, pitch_deg, roll_deg, fov_deg, dtype=work if grad else torch.float64,
                      device=device if grad else None)
    key = None if grad else _key("p2e", views, tuple(view_hw), tuple(erp_hw), dtype, str(device))

    def make():
        yaw, pitch, roll, fov = (t.to(dtype=work, device=device) for t in views)
        rot = _rotation(yaw, pitch, roll)
        rays = erp_ray_grid(H, W, dtype=work, device=device)
        cam = torch.einsum("vji,hwj->vhwi", rot, rays)  # R^T @ ray
        x, y, z = cam.unbind(-1)
        f = focal_px(fov, w).to(work)[:, None, None]
        zs = torch.where(z > 1e-9, z, torch.ones_like(z))
        u = f * x / zs + w / 2.0 - 0.5
        v = f * y / zs + h / 2.0 - 0.5
        valid = (z > 1e-9) & (u >= -0.5) & (u <= w - 0.5) & (v >= -0.5) & (v <= h - 0.5)
        gx = (u + 0.5) * (2.0 / w) - 1.0
        gy = (v + 0.5) * (2.0 / h) - 1.0
        g = torch.stack((gx, gy), -1)
        g = torch.where(valid[..., None], g, torch.full_like(g, -2.0)).to(dtype)
        return g, valid, z.clamp_min(1e-9).to(dtype)

    return _cached(key, make)


def _check_views(views: torch.Tensor, name: str, channels: int | None = None) -> None:
    exp = f"(B, V, {channels if channels else 'C'}, h, w)"
    _check_image(views, name, exp, 5)
    if channels is not None and views.shape[2] != channels:
        raise ValueError(f"{name} must have shape {exp}, got {tuple(views.shape)}")


def perspective_to_erp(views: torch.Tensor, yaw_deg, pitch_deg, roll_deg, fov_deg, erp_hw: tuple[int, int],
                       mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each view back onto the ERP grid as a spherical patch.

    views: (B, V, C, h, w) (float for "bilinear", any dtype for "nearest"); view parameters as in
    erp_to_perspective; erp_hw: (H, W). Returns (values (B, V, C, H, W) in views' dtype, zero outside the patch;
    mask (B, V, 1, H, W) bool, True where the ERP pixel's ray falls inside the view).
    """
    _check_views(views, "views")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    B, V, C, h, w = views.shape
    H, W = _check_hw(erp_hw, "erp_hw")
    src = _sampling_source(views, "views", mode)
    grid, valid, _ = _patch_grid(yaw_deg, pitch_deg, roll_deg, fov_deg, (h, w), (H, W), src.dtype, src.device)
    if grid.shape[0] != V:
        raise ValueError(f"views has V={V} views but {grid.shape[0]} view parameter sets were given")
    out = F.grid_sample(src.reshape(B * V, C, h, w), grid.repeat(B, 1, 1, 1), mode=mode, padding_mode="border",
                        align_corners=False).reshape(B, V, C, H, W)
    mask = valid[None, :, None].expand(B, V, 1, H, W).clone()  # never hand out the cached tensor
    out = out * mask.to(out.dtype)
    if out.dtype != views.dtype:
        out = out.to(views.dtype) if views.is_floating_point() else out.round().to(views.dtype)
    return out, mask


def perspective_depth_to_erp(zdepth: torch.Tensor, yaw_deg, pitch_deg, roll_deg, fov_deg,
                             erp_hw: tuple[int, int], mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Paste perspective z-depth maps onto the ERP grid as radial depth patches.

    zdepth: (B, V, 1, h, w) metres along the view's optical axis (<= 0 or non-finite = invalid).
    Returns (radial depth (B, V, 1, H, W) metres, 0 where invalid; mask (B, V, 1, H, W) bool). With "bilinear"
    an ERP pixel is valid only when all view pixels it blends are valid (no smearing into holes).
    """
    _check_views(zdepth, "zdepth", 1)
    if not zdepth.is_floating_point():
        raise TypeError(f"zdepth must be a float tensor (B, V, 1, h, w) in metres, got {zdepth.dtype}")
    B, V, _, h, w = zdepth.shape
    H, W = _check_hw(erp_hw, "erp_hw")
    ok = torch.isfinite(zdepth) & (zdepth > 0)
    z = torch.where(ok, zdepth, torch.zeros_like(zdepth))
    grid, valid, cz = _patch_grid(yaw_deg, pitch_deg, roll_deg, fov_deg, (h, w), (H, W), z.dtype, z.device)
    if grid.shape[0] != V:
        raise ValueError(f"zdepth has V={V} views but {grid.shape[0]} view parameter sets were given")
    both = torch.cat((z, ok.to(z.dtype)), dim=2).reshape(B * V, 2, h, w)
    s = F.grid_sample(both, grid.repeat(B, 1, 1, 1), mode=mode, padding_mode="border",
                      align_corners=False).reshape(B, V, 2, H, W)
    zs, cover = s[:, :, :1], s[:, :, 1:]
    # radial distance along the ERP ray whose unit direction in the camera frame has optical component cz: z / cz
    cz = cz[None, :, None]
    mask = valid[None, :, None] & (cover > 1.0 - 1e-4) & (zs > 0)
    radial = torch.where(mask, zs / cz, torch.zeros_like(zs))
    return radial, mask


def perspective_normals_to_erp(normals_cam: torch.Tensor, yaw_deg, pitch_deg, roll_deg, fov_deg,
                               erp_hw: tuple[int, int], mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Paste perspective normal maps onto the ERP grid, rotated into the panorama frame.

    normals_cam: (B, V, 3, h, w) unit vectors in the OpenCV view frame (all-zero / non-finite = invalid).
    Returns (normals (B, V, 3, H, W) unit vectors in the panorama frame (REP 103), 0 where invalid;
    mask (B, V, 1, H, W) bool).
    """
    _check_views(normals_cam, "normals_cam", 3)
    if not normals_cam.is_floating_point():
        raise TypeError(f"normals_cam must be a float tensor (B, V, 3, h, w), got {normals_cam.dtype}")
    B, V, _, h, w = normals_cam.shape
    H, W = _check_hw(erp_hw, "erp_hw")
    n = torch.nan_to_num(normals_cam, nan=0.0, posinf=0.0, neginf=0.0)
    ok = (n.norm(dim=2, keepdim=True) > 0.5).to(n.dtype)
    grid, valid, _ = _patch_grid(yaw_deg, pitch_deg, roll_deg, fov_deg, (h, w), (H, W), n.dtype, n.device)
    if grid.shape[0] != V:
        raise ValueError(f"normals_cam has V={V} views but {grid.shape[0]} view parameter sets were given")
    both = torch.cat((n, ok), dim=2).reshape(B * V, 4, h, w)
    s = F.grid_sample(both, grid.repeat(B, 1, 1, 1), mode=mode, padding_mode="border",
                      align_corners=False).reshape(B, V, 4, H, W)
    ns, cover = s[:, :, :3], s[:, :, 3:]
    rot = _rotation(*_as_views(yaw_deg, pitch_deg, roll_deg, fov_deg, dtype=ns.dtype, device=ns.device)[:3])
    ns = torch.einsum("vij,bvjhw->bvihw", rot, ns)
    norm = ns.norm(dim=2, keepdim=True)
    mask = valid[None, :, None] & (cover > 1.0 - 1e-4) & (norm > 1e-6)
    out = torch.where(mask, ns / norm.clamp_min(1e-12), torch.zeros_like(ns))
    return out, mask


# --------------------------------------------------------------------------------------------------- cubemap
CUBE_FACES = ("front", "right", "back", "left", "up", "down")
"""Cubemap face order; face k is the 90° view with yaw/pitch CUBE_YAW_DEG[k]/CUBE_PITCH_DEG[k], roll 0."""
CUBE_YAW_DEG = (0.0, -90.0, 180.0, 90.0, 0.0, 0.0)
CUBE_PITCH_DEG = (0.0, 0.0, 0.0, 0.0, 90.0, -90.0)


def erp_to_cubemap(erp: torch.Tensor, face_w: int, mode: str = "bilinear") -> torch.Tensor:
    """ERP (B, C, H, W) -> cube faces (B, 6, C, face_w, face_w) in CUBE_FACES order (views with fov 90°).

    Face orientation follows the view convention (the "up" face is the view with yaw 0, pitch 90, roll 0).
    """
    return erp_to_perspective(erp, CUBE_YAW_DEG, CUBE_PITCH_DEG, 0.0, 90.0, (face_w, face_w), mode=mode)


def cubemap_to_erp(faces: torch.Tensor, erp_hw: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Cube faces (B, 6, C, w, w) in CUBE_FACES order -> ERP (B, C, H, W), averaging where faces overlap."""
    _check_image(faces, "faces", "(B, 6, C, w, w)", 5)
    if faces.shape[1] != 6 or faces.shape[-1] != faces.shape[-2]:
        raise ValueError(f"faces must have shape (B, 6, C, w, w), got {tuple(faces.shape)}")
    src = faces if faces.is_floating_point() else faces.to(torch.float32)
    vals, mask = perspective_to_erp(src, CUBE_YAW_DEG, CUBE_PITCH_DEG, 0.0, 90.0, erp_hw,
                                    mode=mode if faces.is_floating_point() else "nearest")
    if faces.is_floating_point():
        m = mask.to(vals.dtype)
        return (vals * m).sum(1) / m.sum(1).clamp_min(1.0)
    # labels: take the first face that covers the pixel (no averaging of ids)
    first = torch.argmax(mask.to(torch.uint8), dim=1, keepdim=True)
    out = torch.gather(vals, 1, first.expand(-1, -1, vals.shape[2], -1, -1))[:, 0]
    return out.round().to(faces.dtype)


# ------------------------------------------------------------------------------------------- numpy fast path
def _pad_erp_np(erp: np.ndarray) -> np.ndarray:
    """numpy twin of _pad_erp for (H, W, ...) arrays -> (H+2, W+2, ...)."""
    W = erp.shape[1]
    top = np.roll(erp[:1], W // 2, axis=1)
    bottom = np.roll(erp[-1:], W // 2, axis=1)
    x = np.concatenate((top, erp, bottom), axis=0)
    return np.concatenate((x[:, -1:], x, x[:, :1]), axis=1)


def _cv2_maps(views, out_hw, erp_hw, nearest: bool):
    """Cached cv2 fixed-point remap tables into the padded ERP, views stacked vertically in chunks.

    Returns a list of (first_view, last_view + 1, map1, map2); each chunk stays below OpenCV's 32767-row limit.
    """
    import cv2

    key = _key("e2p_cv2", views, tuple(out_hw), tuple(erp_hw), nearest)

    def make():
        h, w = out_hw
        uv = perspective_erp_coords(*views, out_hw, erp_hw, dtype=torch.float32)
        mx = (uv[..., 0] + 1.0).numpy()
        my = (uv[..., 1] + 1.0).numpy()
        step = max(1, 32000 // h)
        chunks = []
        for s in range(0, mx.shape[0], step):
            e = min(s + step, mx.shape[0])
            m1, m2 = cv2.convertMaps(mx[s:e].reshape(-1, w), my[s:e].reshape(-1, w), cv2.CV_16SC2,
                                     nninterpolation=nearest)
            for m in (m1, m2):
                if m is not None:  # nearest needs no interpolation table
                    m.setflags(write=False)
            chunks.append((s, e, m1, m2))
        return chunks

    return _cached(key, make)


def erp_to_perspective_np(erp, yaw_deg, pitch_deg, roll_deg, fov_deg, out_hw: tuple[int, int],
                          mode: str = "bilinear"):
    """numpy twin of erp_to_perspective for one panorama, fast on CPU (uses OpenCV's remap when installed).

    erp: (H, W) or (H, W, C) array; uint8, uint16, int16, float32 or float64 (other dtypes go through torch).
    View parameters and mode as erp_to_perspective (bilinear for colour/float maps, nearest for labels).
    Returns (V, h, w) or (V, h, w, C) in erp's dtype. Bilinear weights are quantised to 1/32 pixel (OpenCV).
    """
    if not isinstance(erp, np.ndarray) or erp.ndim not in (2, 3):
        raise ValueError(f"erp must be a numpy array of shape (H, W) or (H, W, C), got "
                         f"{getattr(erp, 'shape', type(erp).__name__)}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    if erp.dtype == np.bool_ and mode != "nearest":
        raise TypeError("a bool erp (a mask) needs mode='nearest'; or convert it to float32 for bilinear")
    h, w = _check_hw(out_hw, "out_hw")
    H, W = erp.shape[:2]
    views = _as_views(yaw_deg, pitch_deg, roll_deg, fov_deg)
    try:
        import cv2
    except ImportError:
        cv2 = None
    channels_ok = erp.ndim == 2 or erp.shape[2] <= 4
    if (cv2 is None or erp.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64)
            or W + 2 > 32767 or H + 2 > 32767 or not channels_ok):
        t = torch.from_numpy(np.ascontiguousarray(erp))
        t = t[None, None] if erp.ndim == 2 else t.permute(2, 0, 1)[None]
        if mode == "bilinear" and not t.is_floating_point():
            out = erp_to_perspective(t.float(), *views, (h, w), mode).round().clamp(
                float(np.iinfo(erp.dtype).min), float(np.iinfo(erp.dtype).max)).to(t.dtype)
        else:
            out = erp_to_perspective(t, *views, (h, w), mode)
        out = out[0].permute(0, 2, 3, 1).numpy()
        return out[..., 0] if erp.ndim == 2 else out
    chunks = _cv2_maps(views, (h, w), (H, W), mode == "nearest")
    padded = _pad_erp_np(np.ascontiguousarray(erp))
    interp = cv2.INTER_NEAREST if mode == "nearest" else cv2.INTER_LINEAR
    outs = [cv2.remap(padded, m1, m2, interp, borderMode=cv2.BORDER_REPLICATE).reshape((e - s, h, w) + erp.shape[2:])
            for s, e, m1, m2 in chunks]
    return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

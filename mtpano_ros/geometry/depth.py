"""Depth on the sphere: radial <-> z-depth, points in the panorama frame, normals from depth, area weights."""

from __future__ import annotations

import numpy as np
import torch

from mtpano_ros.geometry.erp import erp_ray_grid, erp_ray_grid_np
from mtpano_ros.geometry.views import camera_rays


def _ray_norm(fov_deg, hw: tuple[int, int], dtype, device) -> torch.Tensor:
    """|ray_cam| = sqrt(x^2 + y^2 + 1) for view pixel centres: (V, 1, h, w) (V = number of fovs)."""
    rays = camera_rays(torch.as_tensor(fov_deg, dtype=torch.float64).reshape(-1), hw, dtype=torch.float64)
    return rays.norm(dim=-1)[:, None].to(dtype=dtype, device=device)


def _view_factor(depth: torch.Tensor, fov_deg, name: str) -> torch.Tensor:
    if not isinstance(depth, torch.Tensor) or not depth.is_floating_point() or depth.dim() < 2:
        raise TypeError(f"{name} must be a float tensor (..., h, w), e.g. (B, V, 1, h, w), got "
                        f"{getattr(depth, 'dtype', type(depth).__name__)} {tuple(getattr(depth, 'shape', ()))}")
    fov = torch.as_tensor(fov_deg, dtype=torch.float64).reshape(-1)
    k = _ray_norm(fov, tuple(depth.shape[-2:]), depth.dtype, depth.device)  # (V, 1, h, w)
    if fov.numel() == 1:
        return k[0, 0]
    if depth.dim() < 4 or depth.shape[-4] != fov.numel() or depth.shape[-3] != 1:
        raise ValueError(f"with {fov.numel()} fovs, {name} must have shape (..., V={fov.numel()}, 1, h, w), "
                         f"got {tuple(depth.shape)}")
    return k


def zdepth_to_radial(zdepth: torch.Tensor, fov_deg) -> torch.Tensor:
    """Perspective z-depth -> radial depth (distance along each pixel's ray), both metres.

    zdepth: (..., h, w) with fov_deg a float, or (..., V, 1, h, w) with fov_deg (V,) horizontal fovs (degrees).
    Returns the same shape. Invalid values (0, NaN) stay invalid.
    """
    return zdepth * _view_factor(zdepth, fov_deg, "zdepth")


def radial_to_zdepth(depth: torch.Tensor, fov_deg) -> torch.Tensor:
    """Radial depth in a perspective view -> z-depth (along the optical axis); shapes as zdepth_to_radial."""
    return depth / _view_factor(depth, fov_deg, "depth")


def _check_erp_depth(depth: torch.Tensor, name: str = "depth") -> None:
    if not isinstance(depth, torch.Tensor) or depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"{name} must be a tensor of shape (B, 1, H, W) (radial metres), got "
                         f"{tuple(getattr(depth, 'shape', ()))}")
    if not depth.is_floating_point():
        raise TypeError(f"{name} must be a float tensor (B, 1, H, W) in metres, got {depth.dtype}")


def depth_to_points(depth: torch.Tensor) -> torch.Tensor:
    """ERP radial depth (B, 1, H, W) metres -> 3-D points (B, 3, H, W) in the panorama frame (REP 103), metres.

    Invalid depth (0 / NaN) gives the origin / NaN points; mask them with the depth.
    """
    _check_erp_depth(depth)
    H, W = depth.shape[-2:]
    rays = erp_ray_grid(H, W, dtype=depth.dtype, device=depth.device).permute(2, 0, 1)
    return depth * rays[None]


def depth_to_points_np(depth: np.ndarray) -> np.ndarray:
    """numpy version: ERP radial depth (H, W) metres -> points (H, W, 3) float32, panorama frame, metres."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"depth must be a float array of shape (H, W) (radial metres), got {depth.dtype} "
                         f"{depth.shape}")
    rays = erp_ray_grid_np(*depth.shape)
    return (depth[..., None] * rays).astype(np.float32)


def normals_from_depth(depth: torch.Tensor) -> torch.Tensor:
    """Surface normals from ERP radial depth: (B, 1, H, W) metres -> (B, 3, H, W) unit, panorama frame.

    Central differences of the 3-D points; horizontally they wrap (column 0 and W-1 are neighbours), vertically
    they are one-sided at the top/bottom rows. Normals face the camera (n . p <= 0). Where the depth or a
    neighbour used is invalid (<= 0 / non-finite) the normal is 0.
    """
    _check_erp_depth(depth)
    ok = torch.isfinite(depth) & (depth > 0)
    p = depth_to_points(torch.where(ok, depth, torch.zeros_like(depth)))
    du = torch.roll(p, -1, dims=-1) - torch.roll(p, 1, dims=-1)
    ok_u = torch.roll(ok, -1, dims=-1) & torch.roll(ok, 1, dims=-1)
    pv = torch.cat((p[..., :1, :], p, p[..., -1:, :]), dim=-2)
    okv = torch.cat((ok[..., :1, :], ok, ok[..., -1:, :]), dim=-2)
    dv = pv[..., 2:, :] - pv[..., :-2, :]
    ok_v = okv[..., 2:, :] & okv[..., :-2, :]
    n = torch.cross(du, dv, dim=1)
    flip = (n * p).sum(1, keepdim=True) > 0
    n = torch.where(flip, -n, n)
    norm = n.norm(dim=1, keepdim=True)
    good = ok & ok_u & ok_v & (norm > 0)
    return torch.where(good, n / norm.clamp_min(torch.finfo(n.dtype).tiny), torch.zeros_like(n))


def area_weights(height: int, width: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Solid-angle weight of each ERP pixel, cos(latitude) of its centre: (H, W) tensor (not normalised)."""
    v = torch.arange(int(height), dtype=torch.float64)
    lat = (0.5 - (v + 0.5) / height) * torch.pi
    return torch.cos(lat)[:, None].expand(int(height), int(width)).to(dtype=dtype, device=device).contiguous()

"""Equirectangular (ERP) pixel <-> longitude/latitude <-> unit ray, in the panorama frame (DESIGN §3).

Frame: REP 103, x forward, y left, z up. Pixel (u, v) has its centre at (u + 0.5, v + 0.5).
    longitude = (0.5 - (u + 0.5) / W) * 2*pi   (0 at the image centre = +x, positive to the left = +y)
    latitude  = (0.5 - (v + 0.5) / H) * pi     (+pi/2 towards the top row = +z)
    ray = (cos(lat) cos(lon), cos(lat) sin(lon), sin(lat))
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def pixel_to_lonlat(u: torch.Tensor, v: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel coordinates (any shape, 0 = left/top pixel edge + 0.5 centre) -> (lon, lat) radians."""
    lon = (0.5 - (u + 0.5) / width) * (2.0 * math.pi)
    lat = (0.5 - (v + 0.5) / height) * math.pi
    return lon, lat


def lonlat_to_pixel(lon: torch.Tensor, lat: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lon, lat) radians (any shape) -> continuous pixel coordinates (u, v); u is not wrapped."""
    u = (0.5 - lon / (2.0 * math.pi)) * width - 0.5
    v = (0.5 - lat / math.pi) * height - 0.5
    return u, v


def lonlat_to_ray(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """(lon, lat) radians, shape S -> unit rays, shape S + (3,), panorama frame."""
    c = torch.cos(lat)
    return torch.stack((c * torch.cos(lon), c * torch.sin(lon), torch.sin(lat)), dim=-1)


def ray_to_lonlat(ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays (..., 3), any length > 0, panorama frame -> (lon, lat) radians, each shape (...)."""
    x, y, z = ray.unbind(-1)
    lon = torch.atan2(y, x)
    lat = torch.atan2(z, torch.sqrt(x * x + y * y))
    return lon, lat


@functools.lru_cache(maxsize=32)
def _lonlat_grid_np(height: int, width: int) -> np.ndarray:
    u = np.arange(width, dtype=np.float64)
    v = np.arange(height, dtype=np.float64)
    lon = (0.5 - (u + 0.5) / width) * 2.0 * np.pi
    lat = (0.5 - (v + 0.5) / height) * np.pi
    grid = np.stack(np.broadcast_arrays(lon[None, :], lat[:, None]), axis=-1)
    grid.setflags(write=False)
    return grid


def erp_lonlat_grid_np(height: int, width: int) -> np.ndarray:
    """Cached read-only (H, W, 2) float64 array of (lon, lat) radians at ERP pixel centres."""
    return _lonlat_grid_np(int(height), int(width))


@functools.lru_cache(maxsize=32)
def _ray_grid_np(height: int, width: int) -> np.ndarray:
    g = _lonlat_grid_np(height, width)
    lon, lat = g[..., 0], g[..., 1]
    c = np.cos(lat)
    rays = np.stack((c * np.cos(lon), c * np.sin(lon), np.sin(lat)), axis=-1)
    rays.setflags(write=False)
    return rays


def erp_ray_grid_np(height: int, width: int) -> np.ndarray:
    """Cached read-only (H, W, 3) float64 unit rays (panorama frame) at ERP pixel centres."""
    return _ray_grid_np(int(height), int(width))


def erp_lonlat_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W, 2) tensor of (lon, lat) radians at ERP pixel centres (a fresh tensor; safe to modify)."""
    return torch.from_numpy(erp_lonlat_grid_np(height, width).copy()).to(dtype=dtype, device=device)


def erp_ray_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W, 3) tensor of unit rays (panorama frame) at ERP pixel centres (a fresh tensor)."""
    return torch.from_numpy(erp_ray_grid_np(height, width).copy()).to(dtype=dtype, device=device)

"""A virtual 2D laser scan from an ERP radial depth image (DESIGN §5), numpy only.

Beam i points at azimuth a_i = angle_min + i * angle_increment, counter-clockwise from +x (REP 103 panorama frame:
x forward, y left, z up), with angle_min = -pi and angle_increment = 2*pi / num_beams, so the beams cover
[-pi, pi). A pixel belongs to the beam whose azimuth is nearest to its own (the beam's bin is
[a_i - inc/2, a_i + inc/2), wrapping at +-pi). The range of a beam is the smallest horizontal distance
d * cos(lat) over its pixels whose height d * sin(lat) (relative to the camera) lies in [min_height_m, max_height_m]
and whose horizontal distance lies in [range_min_m, range_max_m]; +inf where there is none (REP 117).
Every column of an ERP image has one azimuth, so with more beams than columns some beams are always empty: keep
num_beams <= the depth image's width.
"""

from __future__ import annotations

import functools

import numpy as np

from mtpano_ros.geometry.erp import erp_lonlat_grid_np


def scan_angles(num_beams: int) -> tuple[float, float, float]:
    """(angle_min, angle_max, angle_increment) in radians of a num_beams scan covering [-pi, pi)."""
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    increment = 2.0 * np.pi / num_beams
    return -np.pi, -np.pi + (num_beams - 1) * increment, increment


@functools.lru_cache(maxsize=16)
def _column_tables(height: int, width: int, num_beams: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beam index (W,) int64 of each column, cos(lat) (H, 1) and sin(lat) (H, 1) float32), read-only."""
    grid = erp_lonlat_grid_np(height, width)  # (H, W, 2) (lon, lat) radians, float64
    lon, lat = grid[..., 0], grid[..., 1]
    increment = 2.0 * np.pi / num_beams
    # nearest beam: round((lon - angle_min) / inc); the 1e-9 keeps exact half-way pixels on one side everywhere
    beam = np.floor((lon[0] + np.pi) / increment + 0.5 + 1e-9).astype(np.int64) % num_beams
    cos_lat = np.cos(lat[:, :1]).astype(np.float32)
    sin_lat = np.sin(lat[:, :1]).astype(np.float32)
    for a in (beam, cos_lat, sin_lat):
        a.setflags(write=False)
    return beam, cos_lat, sin_lat


def virtual_scan(depth: np.ndarray, num_beams: int = 720, min_height_m: float = -0.3, max_height_m: float = 0.3,
                 range_min_m: float = 0.0, range_max_m: float = np.inf) -> np.ndarray:
    """LaserScan ranges (num_beams,) float32 metres from an ERP radial depth image, by the rule in this module's doc.

    depth: (H, W) float radial metres in the panorama frame, NaN or <= 0 invalid. Heights are relative to the
    camera (z up). Beams with no pixel in the height band and range limits are +inf.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W) radial metres, got shape {depth.shape}")
    if min_height_m > max_height_m:
        raise ValueError(f"min_height_m {min_height_m} > max_height_m {max_height_m}: give a band low <= high")
    height, width = depth.shape
    beam, cos_lat, sin_lat = _column_tables(height, width, int(num_beams))
    d = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        horizontal = d * cos_lat
        z = d * sin_lat
        keep = (d > 0) & (z >= min_height_m) & (z <= max_height_m) & (horizontal >= range_min_m) & \
            (horizontal <= range_max_m)
    column_min = np.where(keep, horizontal, np.float32(np.inf)).min(axis=0)  # (W,): one azimuth per column
    ranges = np.full(int(num_beams), np.inf, dtype=np.float32)
    np.minimum.at(ranges, beam, column_min)
    return ranges

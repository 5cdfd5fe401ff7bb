"""View layouts: a seeded random view sampler and the fixed icosahedral layouts (12 and 20 views).

All return a dict of float64 numpy arrays {"yaw_deg", "pitch_deg", "roll_deg", "fov_deg"}, each (V,), in the view
convention of mtpano_ros.geometry.views.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np


def _layout(yaw, pitch, roll, fov) -> dict[str, np.ndarray]:
    n = len(yaw)
    return {k: np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()
            for k, x in (("yaw_deg", yaw), ("pitch_deg", pitch), ("roll_deg", roll), ("fov_deg", fov))}


def _check_range(r, name: str, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) in degrees, got {r!r}") from None
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {r!r}")
    return a, b


def sample_views(n: int, seed: int, pitch_range_deg=(-90.0, 90.0), fov_range_deg=(80.0, 120.0),
                 roll_range_deg=(0.0, 0.0)) -> dict[str, np.ndarray]:
    """n random views, reproducible from seed.

    yaw uniform in [-180, 180); view directions uniform on the sphere band pitch_range_deg (sin(pitch) uniform);
    fov_deg (horizontal) and roll_deg uniform in their ranges. Returns dict of (n,) float64 arrays.
    """
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    p0, p1 = _check_range(pitch_range_deg, "pitch_range_deg", -90.0, 90.0)
    f0, f1 = _check_range(fov_range_deg, "fov_range_deg", 0.0, 180.0)
    if f0 <= 0 or f1 >= 180:
        raise ValueError(f"fov_range_deg must lie inside (0, 180), got {fov_range_deg!r}")
    r0, r1 = _check_range(roll_range_deg, "roll_range_deg", -180.0, 180.0)
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(-180.0, 180.0, int(n))
    s = rng.uniform(np.sin(np.deg2rad(p0)), np.sin(np.deg2rad(p1)), int(n))
    pitch = np.rad2deg(np.arcsin(np.clip(s, -1.0, 1.0)))
    fov = rng.uniform(f0, f1, int(n))
    roll = rng.uniform(r0, r1, int(n))
    return _layout(yaw, pitch, roll, fov)


@functools.lru_cache(maxsize=2)
def _icosahedron_dirs(count: int) -> np.ndarray:
    """Unit directions: 12 icosahedron vertices (two at the poles) or its 20 face centres."""
    lat = np.arctan(0.5)
    verts = [(0.0, 0.0, 1.0), (0.0, 0.0, -1.0)]
    for k in range(5):
        for sign, off in ((1.0, 0.0), (-1.0, 36.0)):
            lon = np.deg2rad(72.0 * k + off)
            verts.append((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), sign * np.sin(lat)))
    v = np.array(verts)
    if count == 12:
        return v
    edge = min(np.linalg.norm(a - b) for a, b in itertools.combinations(v, 2))
    centres = []
    for i, j, k in itertools.combinations(range(12), 3):
        if all(abs(np.linalg.norm(v[a] - v[b]) - edge) < 1e-6 for a, b in ((i, j), (j, k), (i, k))):
            c = v[i] + v[j] + v[k]
            centres.append(c / np.linalg.norm(c))
    assert len(centres) == 20
    return np.array(centres)


def icosahedral_views(n: int, fov_deg: float = 90.0) -> dict[str, np.ndarray]:
    """Fixed layouts: n=12 views at the icosahedron vertices (incl. straight up/down) or n=20 at its face centres.

    Any point of the sphere is within 37.4° of a view centre, so square views with fov_deg >= 75 cover the sphere.
    Returns dict of (n,) float64 arrays, roll 0, fov_deg for every view.
    """
    if n not in (12, 20):
        raise ValueError(f"icosahedral_views supports n=12 (vertices) or n=20 (face centres), got {n}")
    d = _icosahedron_dirs(n)
    yaw = np.rad2deg(np.arctan2(d[:, 1], d[:, 0]))
    pitch = np.rad2deg(np.arcsin(np.clip(d[:, 2], -1.0, 1.0)))
    yaw = np.where(np.abs(pitch) > 89.999, 0.0, yaw)
    return _layout(yaw, pitch, 0.0, float(fov_deg))

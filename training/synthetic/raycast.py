"""Vectorised ray casting against the primitives of a procedural scene (numpy, float32).

World frame: x, y horizontal, z up, metres. A primitive is one of
    box       oriented about z: centre (3,), half extents (3,), yaw_rad
    room      the inside of an axis-aligned box (the camera sits inside; rays hit its far faces)
    cylinder  vertical: centre (3,) (z at mid height), radius, half height
    sphere    centre (3,), radius
Arrays are stored component-first for speed: every intersect function takes ray origins O (3,) or (3,N) and unit
directions D (3,N) and returns (t (N,) float32 distance along the ray, inf on a miss; normal (3,N) world frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EPS = 1e-4
INF = np.float32(np.inf)


@dataclass
class Prim:
    """One scene primitive. `label` is an ADE20K id; `material` a name from shading.MATERIALS; `face_labels`
    (room only) maps face index (0 x-, 1 x+, 2 y-, 3 y+, 4 z-, 5 z+) to a label id."""

    kind: str
    centre: np.ndarray
    size: np.ndarray  # box/room: half extents (3,); cylinder: (radius, radius, half height); sphere: (r, r, r)
    label: int
    material: str
    colour: np.ndarray  # base albedo (3,) in [0, 1]
    yaw_rad: float = 0.0
    face_labels: tuple[int, ...] | None = None
    face_materials: tuple[str, ...] | None = None
    face_colours: np.ndarray | None = None  # (6, 3)
    seed: int = 0
    cast_shadow: bool = True
    bounds: np.ndarray = field(init=False)  # (2, 3) world AABB (min, max)

    def __post_init__(self) -> None:
        self.centre = np.asarray(self.centre, np.float32)
        self.size = np.asarray(self.size, np.float32)
        self.colour = np.asarray(self.colour, np.float32)
        if self.kind == "box":
            c, s = abs(np.cos(self.yaw_rad)), abs(np.sin(self.yaw_rad))
            hx = c * self.size[0] + s * self.size[1]
            hy = s * self.size[0] + c * self.size[1]
            half = np.array([hx, hy, self.size[2]], np.float32)
        else:
            half = self.size
        self.bounds = np.stack([self.centre - half, self.centre + half]).astype(np.float32)


def _safe_inv(d: np.ndarray) -> np.ndarray:
    d = np.where(np.abs(d) < 1e-9, np.float32(1e-9), d)
    return (1.0 / d).astype(np.float32)


def _rel(p: Prim, O: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray origins relative to the primitive centre as three (n,) or scalar arrays."""
    return O[0] - p.centre[0], O[1] - p.centre[1], O[2] - p.centre[2]


def intersect_box(p: Prim, O: np.ndarray, D: np.ndarray, inside: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Slab test for an oriented (about z) box; `inside=True` returns the exit point (room interior).
    O (3,) or (3,N), D (3,N); returns t (N,), normal (3,N)."""
    c, s = np.float32(np.cos(p.yaw_rad)), np.float32(np.sin(p.yaw_rad))
    px, py, pz = _rel(p, O, D.shape[1])
    if p.yaw_rad != 0.0:
        px, py = c * px + s * py, -s * px + c * py
        dx, dy = c * D[0] + s * D[1], -s * D[0] + c * D[1]
    else:
        dx, dy = D[0], D[1]
    dz = D[2]
    hx, hy, hz = p.size
    ix, iy, iz = _safe_inv(dx), _safe_inv(dy), _safe_inv(dz)
    ax, bx = (-hx - px) * ix, (hx - px) * ix
    ay, by = (-hy - py) * iy, (hy - py) * iy
    az, bz = (-hz - pz) * iz, (hz - pz) * iz
    if inside:
        fx, fy, fz = np.maximum(ax, bx), np.maximum(ay, by), np.maximum(az, bz)
        t = np.minimum(np.minimum(fx, fy), fz)
        axis = np.where(t == fx, 0, np.where(t == fy, 1, 2))
        hit = t > EPS
    else:
        nx, ny, nz = np.minimum(ax, bx), np.minimum(ay, by), np.minimum(az, bz)
        tn = np.maximum(np.maximum(nx, ny), nz)
        tf = np.minimum(np.minimum(np.maximum(ax, bx), np.maximum(ay, by)), np.maximum(az, bz))
        axis = np.where(tn == nx, 0, np.where(tn == ny, 1, 2))
        hit = (tn <= tf) & (tn > EPS)
        t = tn
    t = np.where(hit, t, INF).astype(np.float32)
    lnx = np.where(axis == 0, -np.sign(dx), 0).astype(np.float32)
    lny = np.where(axis == 1, -np.sign(dy), 0).astype(np.float32)
    lnz = np.where(axis == 2, -np.sign(dz), 0).astype(np.float32)
    if p.yaw_rad != 0.0:
        lnx, lny = c * lnx - s * lny, s * lnx + c * lny
    return t, np.stack([lnx, lny, lnz])


def room_face(p: Prim, points: np.ndarray) -> np.ndarray:
    """Face index (0 x-, 1 x+, 2 y-, 3 y+, 4 z-, 5 z+) of points (N,3) on the surface of an axis-aligned room."""
    rel = (points - p.centre) / p.size
    axis = np.abs(rel).argmax(-1)
    side = (rel[np.arange(len(rel)), axis] > 0).astype(np.int64)
    return axis * 2 + side


def intersect_cylinder(p: Prim, O: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical capped cylinder. O (3,) or (3,N), D (3,N)."""
    r, hh = p.size[0], p.size[2]
    px, py, pz = _rel(p, O, D.shape[1])
    dx, dy, dz = D
    a = dx * dx + dy * dy
    b = 2 * (px * dx + py * dy)
    cc = px * px + py * py - r * r
    disc = b * b - 4 * a * cc
    ok = (disc >= 0) & (a > 1e-12)
    sq = np.sqrt(np.maximum(disc, 0))
    a2 = np.where(a > 1e-12, 2 * a, 1.0)
    t_side = (-b - sq) / a2
    z = pz + t_side * dz
    t_side = np.where(ok & (t_side > EPS) & (np.abs(z) <= hh), t_side, INF)
    iz = _safe_inv(dz)
    t_cap = np.where(pz > 0, (hh - pz) * iz, (-hh - pz) * iz)
    x = px + t_cap * dx
    y = py + t_cap * dy
    t_cap = np.where((t_cap > EPS) & (x * x + y * y <= r * r) & (np.abs(pz) >= hh), t_cap, INF)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap).astype(np.float32)
    tt = np.where(np.isfinite(t), t, 0)
    nx = np.where(use_cap, 0, (px + tt * dx) / r)
    ny = np.where(use_cap, 0, (py + tt * dy) / r)
    nz = np.where(use_cap, np.sign(pz), 0) * np.ones_like(t)
    return t, np.stack([nx, ny, nz]).astype(np.float32)


def intersect_sphere(p: Prim, O: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sphere. O (3,) or (3,N), D (3,N)."""
    r = p.size[0]
    px, py, pz = _rel(p, O, D.shape[1])
    b = px * D[0] + py * D[1] + pz * D[2]
    cc = px * px + py * py + pz * pz - r * r
    disc = b * b - cc
    t = -b - np.sqrt(np.maximum(disc, 0))
    hit = (disc >= 0) & (t > EPS)
    t = np.where(hit, t, INF).astype(np.float32)
    tt = np.where(hit, t, 0)
    return t, (np.stack([px + tt * D[0], py + tt * D[1], pz + tt * D[2]]) / r).astype(np.float32)


def intersect(p: Prim, O: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on the primitive kind. O (3,) or (3,N) world origins, D (3,N) unit directions;
    returns t (N,) float32 (inf on a miss) and the world normal (3,N) (sign not yet made camera-facing)."""
    if p.kind == "box":
        return intersect_box(p, O, D)
    if p.kind == "room":
        return intersect_box(p, O, D, inside=True)
    if p.kind == "cylinder":
        return intersect_cylinder(p, O, D)
    if p.kind == "sphere":
        return intersect_sphere(p, O, D)
    raise ValueError(f"unknown primitive kind {p.kind!r}; expected box, room, cylinder or sphere")


def _erp_pixel_rect(p: Prim, origin: np.ndarray, rot_wc: np.ndarray, height: int, width: int):
    """Conservative pixel rectangle (rows slice, list of column slices) covering primitive `p` in an ERP
    rendered from `origin` with camera->world rotation `rot_wc`, from the primitive's bounding sphere;
    None means "test every pixel"."""
    if p.kind == "room":
        return None
    lo, hi = p.bounds
    rad = float(np.linalg.norm(hi - lo)) / 2 * 1.02 + 1e-3
    rel = ((lo + hi) / 2 - origin) @ rot_wc  # world -> camera frame (R^T v)
    dist = float(np.linalg.norm(rel))
    if dist <= rad:
        return None
    ang = float(np.arcsin(rad / dist))
    lat_c = float(np.arcsin(np.clip(rel[2] / dist, -1, 1)))
    lon_c = float(np.arctan2(rel[1], rel[0]))
    lat_hi, lat_lo = lat_c + ang, lat_c - ang
    v0 = int(np.floor((0.5 - lat_hi / np.pi) * height - 1.0))
    v1 = int(np.ceil((0.5 - lat_lo / np.pi) * height + 1.0))
    rows = slice(max(v0, 0), min(v1, height))
    if lat_hi >= np.pi / 2 or lat_lo <= -np.pi / 2:
        return rows, [slice(0, width)]
    dlon = float(np.arcsin(min(1.0, np.sin(ang) / np.cos(lat_c))))
    u0 = int(np.floor((0.5 - (lon_c + dlon) / (2 * np.pi)) * width - 1.0))
    u1 = int(np.ceil((0.5 - (lon_c - dlon) / (2 * np.pi)) * width + 1.0))
    span = u1 - u0
    if span >= width:
        return rows, [slice(0, width)]
    u0 %= width
    if u0 + span <= width:
        return rows, [slice(u0, u0 + span)]
    return rows, [slice(u0, width), slice(0, u0 + span - width)]


def cast_erp(prims: list[Prim], origin: np.ndarray, rot_wc: np.ndarray, rays: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit for every ERP pixel ray.

    rays: (H, W, 3) unit rays in the camera (panorama) frame; rot_wc (3,3) camera->world; origin (3,) world.
    Returns t (H,W) float32 (inf = miss), prim index (H,W) int16 (-1 = miss), normal (3,H,W) world frame.
    """
    H, W = rays.shape[:2]
    Dw = np.ascontiguousarray((rays.reshape(-1, 3) @ rot_wc.T).astype(np.float32).T).reshape(3, H, W)
    t_best = np.full((H, W), INF, np.float32)
    idx = np.full((H, W), -1, np.int16)
    nrm = np.zeros((3, H, W), np.float32)
    for k, p in enumerate(prims):
        rect = _erp_pixel_rect(p, origin, rot_wc, H, W)
        regions = [(slice(0, H), slice(0, W))] if rect is None else [(rect[0], cs) for cs in rect[1]]
        for rs, cs in regions:
            sub = t_best[rs, cs]
            if sub.size == 0:
                continue
            t, n = intersect(p, origin, Dw[:, rs, cs].reshape(3, -1))
            t = t.reshape(sub.shape)
            closer = t < sub
            if not closer.any():
                continue
            t_best[rs, cs] = np.where(closer, t, sub)
            idx[rs, cs] = np.where(closer, np.int16(k), idx[rs, cs])
            nrm[:, rs, cs] = np.where(closer, n.reshape((3,) + sub.shape), nrm[:, rs, cs])
    return t_best, idx, nrm


def cast_rays(prims: list[Prim], O: np.ndarray, D: np.ndarray, t_max: np.ndarray | float = np.inf,
              any_hit: bool = False, skip_noncasters: bool = False):
    """Generic rays (no image structure): O (3,) or (3,N), D (3,N) unit directions, world frame.

    Returns (t (N,), prim index (N,) int16, normal (3,N)), or with any_hit=True a bool (N,) occlusion mask for
    hits closer than t_max (shadow rays). Each primitive is culled by a bounding-sphere test first.
    """
    N = D.shape[1]
    t_best = np.full(N, INF, np.float32)
    idx = np.full(N, -1, np.int16)
    nrm = np.zeros((3, N), np.float32)
    occluded = np.zeros(N, bool)
    t_max = np.broadcast_to(np.asarray(t_max, np.float32), (N,))
    for k, p in enumerate(prims):
        if skip_noncasters and not p.cast_shadow:
            continue
        if p.kind != "room":
            cen = p.bounds.mean(0)
            rad = float(np.linalg.norm(p.bounds[1] - p.bounds[0])) / 2 + 1e-3
            rx, ry, rz = cen[0] - O[0], cen[1] - O[1], cen[2] - O[2]
            along = rx * D[0] + ry * D[1] + rz * D[2]
            perp2 = rx * rx + ry * ry + rz * rz - along * along
            keep = (perp2 <= rad * rad) & (along > -rad)
            if any_hit:
                keep &= ~occluded
            sel = np.nonzero(keep)[0]
        else:
            sel = np.nonzero(~occluded)[0] if any_hit else np.arange(N)
        if len(sel) == 0:
            continue
        Os = O[:, sel] if O.ndim == 2 else O
        t, n = intersect(p, Os, D[:, sel])
        if any_hit:
            occluded[sel] |= t < t_max[sel]
            continue
        closer = t < t_best[sel]
        s = sel[closer]
        t_best[s] = t[closer]
        idx[s] = k
        nrm[:, s] = n[:, closer]
    if any_hit:
        return occluded
    return t_best, idx, nrm

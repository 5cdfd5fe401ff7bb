"""Render procedural scenes to ERP panoramas and perspective views with exact depth, normals and labels.

Shading: procedural albedo (wood, tiles, plaster, fabric, carpet, canvas, glass, facade, asphalt, grass, bark,
foliage) times ambient + Lambertian point/area lights (indoor) or sun (outdoor), with ray-traced shadows, then
gamma 2.2. Sky pixels: depth 0, normals 0, label sky (2).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from mtpano_ros.geometry import camera_rays, erp_ray_grid_np, view_rotation
from training.synthetic.raycast import cast_erp, cast_rays, room_face
from training.synthetic.scenes import SKY, Scene


def _rot(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """v (n,3) @ m (3,3) written as three broadcasts (numpy's matmul is slow for K=3 on many rows)."""
    m = m.astype(v.dtype)
    return v[:, 0:1] * m[0] + v[:, 1:2] * m[1] + v[:, 2:3] * m[2]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (n,3) arrays."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


_GAMMA_LUT = (np.linspace(0, 1, 4096, dtype=np.float64) ** (1 / 2.2)).astype(np.float32)


def _hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer lattice coordinates (any shape)."""
    x = a.astype(np.float64) * 127.1 + b.astype(np.float64) * 311.7 + (seed % 9973) * 74.7
    return np.modf(np.abs(np.sin(x) * 43758.5453))[0].astype(np.float32)


def _tangent_coords(P: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two surface coordinates (metres) per hit point: the world axes other than the normal's dominant one."""
    axis = np.abs(N).argmax(-1)
    a = np.where(axis == 0, P[:, 1], P[:, 0])
    b = np.where(axis == 2, P[:, 1], P[:, 2])
    return a, b


def _albedo(material: str, colour: np.ndarray, seed: int, P: np.ndarray, N: np.ndarray) -> np.ndarray:
    """(n, 3) albedo in [0, 1] of `material` at world points P (n,3) with world normals N (n,3)."""
    a, b = _tangent_coords(P, N)
    ph = (seed % 1000) * 0.37
    if material == "plaster":
        f = 1 + 0.04 * np.sin(a * 3.1 + ph) * np.sin(b * 2.3 + ph) + 0.03 * (_hash(np.floor(a * 60), np.floor(b * 60),
                                                                                    seed) - 0.5)
    elif material == "wood":
        along = np.where(np.abs(N[:, 2]) > 0.5, a, b) if seed % 2 else a
        across = np.where(np.abs(N[:, 2]) > 0.5, b, a) if seed % 2 else b
        plank = np.floor(across / 0.18)
        grain = np.sin(along * 25 + 4 * np.sin(across * 7 + plank) + plank * 3.1)
        seam = (np.modf(np.abs(across) / 0.18)[0] < 0.04).astype(np.float32)
        f = (0.85 + 0.1 * grain + 0.12 * (_hash(plank, plank * 0 + 1, seed) - 0.5)) * (1 - 0.35 * seam)
    elif material == "tiles":
        s = 0.3 + (seed % 4) * 0.1
        fa, fb = np.modf(np.abs(a) / s)[0], np.modf(np.abs(b) / s)[0]
        grout = ((fa < 0.05) | (fb < 0.05)).astype(np.float32)
        tile = _hash(np.floor(a / s), np.floor(b / s), seed)
        f = (0.92 + 0.12 * (tile - 0.5)) * (1 - 0.45 * grout)
    elif material == "fabric":
        f = 0.9 + 0.06 * np.sin(a * 150) * np.sin(b * 150) + 0.08 * np.sin(a * 4 + ph) * np.sin(b * 5)
    elif material == "carpet":
        f = 0.85 + 0.25 * (_hash(np.floor(a * 80), np.floor(b * 80), seed) - 0.5) + 0.1 * np.sin(a * 6 + b * 4 + ph)
    elif material == "canvas":
        c2 = np.stack([np.sin(a * 5 + ph), np.sin(b * 4 - ph), np.sin((a + b) * 3)], -1)
        return np.clip(colour * 0.6 + 0.3 * (c2 * 0.5 + 0.5) * colour[::-1], 0, 1).astype(np.float32)
    elif material == "glass":
        f = 1.0 + 0.15 * np.sin(b * 2.0) + 0.05 * np.sin(a * 9)
    elif material == "facade":
        fa, fb = np.modf(np.abs(a) / 3.0)[0], np.modf(np.abs(b) / 3.2)[0]
        win = ((fa > 0.3) & (fa < 0.7) & (fb > 0.35) & (fb < 0.75) & (P[:, 2] > 1.0)).astype(np.float32)
        f = (0.95 + 0.05 * np.sin(a * 1.3 + ph)) * (1 - 0.6 * win)
        tint = np.array([0.4, 0.5, 0.7], np.float32)
        base = colour * f[:, None]
        return np.clip(base * (1 - win[:, None]) + (tint * 0.5) * win[:, None], 0, 1).astype(np.float32)
    elif material == "asphalt":
        f = 0.9 + 0.2 * (_hash(np.floor(a * 40), np.floor(b * 40), seed) - 0.5)
        lane = (np.abs(P[:, 1]) < 0.07) & (np.modf(np.abs(P[:, 0]) / 4.0)[0] < 0.5)
        out = colour * f[:, None]
        out[lane] = 0.85
        return np.clip(out, 0, 1).astype(np.float32)
    elif material == "grass":
        f = 0.8 + 0.4 * (_hash(np.floor(a * 30), np.floor(b * 30), seed) - 0.5)
        f = f + 0.15 * np.sin(a * 0.7 + ph) * np.sin(b)
    elif material == "bark":
        f = 0.8 + 0.2 * np.sin(np.arctan2(N[:, 1], N[:, 0]) * 14 + P[:, 2] * 2)
    elif material == "foliage":
        f = 0.75 + 0.4 * (_hash(np.floor(P[:, 0] * 6 + P[:, 2] * 3), np.floor(P[:, 1] * 6 - P[:, 2] * 4), seed) - 0.5)
    else:  # plain
        f = 1.0 + 0.02 * np.sin(a * 3 + b * 2)
    return np.clip(colour[None, :] * f[:, None], 0, 1).astype(np.float32)


def _surface(scene: Scene, idx: np.ndarray, P: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hit: label (n,) uint8, albedo (n,3), emissive flag (n,) bool."""
    n = len(idx)
    label = np.full(n, 255, np.uint8)
    alb = np.zeros((n, 3), np.float32)
    emissive = np.zeros(n, bool)
    order = np.argsort(idx, kind="stable")
    sidx = idx[order]
    bounds = np.searchsorted(sidx, np.arange(len(scene.prims) + 1))
    for k, p in enumerate(scene.prims):
        sel = order[bounds[k]:bounds[k + 1]]
        if len(sel) == 0:
            continue
        if p.kind == "room":
            face = room_face(p, P[sel])
            for f in np.unique(face):
                fs = sel[face == f]
                label[fs] = p.face_labels[f]
                alb[fs] = _albedo(p.face_materials[f], p.face_colours[f], p.seed + int(f), P[fs], N[fs])
        else:
            label[sel] = p.label
            alb[sel] = _albedo(p.material, p.colour, p.seed, P[sel], N[sel])
            emissive[sel] = p.material == "glass"
    return label, alb, emissive


def _light(scene: Scene, P: np.ndarray, N: np.ndarray, rep: np.ndarray | None = None) -> np.ndarray:
    """Irradiance (n,3) at hit points P (n,3) with normals N (n,3): ambient + shadowed Lambertian point/area
    lights or sun. rep (n,) optional index of the hit whose shadow ray stands in for each hit (shadows are
    traced once per representative; ERP renders use one per 2x2 pixel block)."""
    rng = np.random.default_rng([scene.seed, 7])
    E = np.broadcast_to(scene.ambient, P.shape).copy()
    reps = np.arange(len(P)) if rep is None else np.unique(rep)
    Po = np.ascontiguousarray((P[reps] + N[reps] * 2e-3).T)

    def visibility(dirs_t: np.ndarray, t_max) -> np.ndarray:
        occ = cast_rays(scene.prims, Po, dirs_t, t_max=t_max, any_hit=True, skip_noncasters=True)
        if rep is None:
            return ~occ
        vis = np.zeros(len(P), bool)
        vis[reps] = ~occ
        return vis[rep]

    if scene.sun_dir is not None:
        lam = np.clip(N @ scene.sun_dir, 0, None)
        vis = visibility(np.ascontiguousarray(np.broadcast_to(scene.sun_dir[:, None], (3, len(reps)))), np.inf)
        E += (lam * vis)[:, None] * scene.sun_rgb
    for L in scene.lights:
        samples = [L.pos] if L.radius_m <= 0 else [L.pos + rng.uniform(-L.radius_m, L.radius_m, 3) * (1, 1, 0)
                                                   for _ in range(2)]
        for pos in samples:
            d = pos - P
            dist = np.sqrt(_dot(d, d))
            lam = np.clip(_dot(N, d) / dist, 0, None)
            dr = (pos[:, None] - Po)
            dist_r = np.sqrt((dr * dr).sum(0))
            vis = visibility(dr / dist_r, dist_r - 0.01)
            E += ((lam * vis / (1.0 + 0.1 * dist * dist)) / len(samples))[:, None] * L.rgb
    return E


def _sky(scene: Scene, D: np.ndarray) -> np.ndarray:
    if scene.sky_rgb is None:
        return np.zeros_like(D)
    hor, zen = scene.sky_rgb
    t = np.clip(D[:, 2], 0, 1)[:, None] ** 0.6
    col = hor * (1 - t) + zen * t
    cloud = np.clip(np.sin(D[:, 0] * 9 + 2 * np.sin(D[:, 1] * 7)) * np.sin(D[:, 1] * 11 + D[:, 2] * 5), 0, 1) ** 2
    col = col + (0.35 * cloud * (D[:, 2] > 0.05))[:, None]
    if scene.sun_dir is not None:
        col = col + (np.clip(D @ scene.sun_dir, 0, 1) ** 200)[:, None] * 1.5
    below = D[:, 2] < 0
    col[below] = hor * 0.8
    return col


def _finish(scene: Scene, t: np.ndarray, idx: np.ndarray, Nw: np.ndarray, Dw: np.ndarray, origin: np.ndarray,
            rep_of_pixel: np.ndarray | None = None):
    """Flat per-ray results (t (n,), idx (n,), Nw (n,3), Dw (n,3)) -> rgb uint8 (n,3), depth (n,) along the ray,
    world normals (n,3), labels (n,). rep_of_pixel (n,) optional pixel whose shadow ray each pixel shares."""
    n = len(t)
    hit = np.nonzero(idx >= 0)[0]
    P = origin + t[hit, None] * Dw[hit]
    Nh = Nw[hit]
    flip = _dot(Nh, Dw[hit]) > 0
    Nh[flip] *= -1
    label = np.full(n, SKY, np.uint8)
    depth = np.zeros(n, np.float32)
    normals = np.zeros((n, 3), np.float32)
    lin = np.zeros((n, 3), np.float32)
    miss = np.nonzero(idx < 0)[0]
    if len(miss):
        lin[miss] = _sky(scene, Dw[miss])
    lab, alb, emis = _surface(scene, idx[hit], P, Nh)
    rep = None
    if rep_of_pixel is not None:
        pos_in_hit = np.full(n, -1, np.int64)
        pos_in_hit[hit] = np.arange(len(hit))
        rep = pos_in_hit[rep_of_pixel[hit]]
        rep = np.where(rep < 0, np.arange(len(hit)), rep)
    E = _light(scene, P, Nh, rep)
    col = alb * E
    col = 1 - np.exp(-1.6 * col)  # soft tone curve
    col[emis] = alb[emis] * 1.1
    lin[hit] = col
    label[hit] = lab
    depth[hit] = t[hit]
    normals[hit] = Nh
    noise = np.random.default_rng([scene.seed, 9]).standard_normal((n, 3), dtype=np.float32) * np.float32(0.008)
    rgb = np.clip(_GAMMA_LUT[(np.clip(lin, 0, 1) * 4095 + 0.5).astype(np.int32)] + noise, 0, 1)
    return (rgb * 255 + 0.5).astype(np.uint8), depth, normals, label


@functools.lru_cache(maxsize=8)
def _erp_grids(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached float32 ERP rays (H,W,3) and, per pixel, the flat index of its 2x2 block's top-left pixel."""
    rays = erp_ray_grid_np(height, width).astype(np.float32)
    vv, uu = np.meshgrid(np.arange(height) // 2 * 2, np.arange(width) // 2 * 2, indexing="ij")
    rays.setflags(write=False)
    return rays, (vv * width + uu).reshape(-1)


def render_erp(scene: Scene, height: int, width: int) -> dict[str, np.ndarray]:
    """Render the scene's ERP panorama at (height, width) from its camera.

    Returns numpy: "rgb" (H,W,3) uint8; "depth" (H,W) float32 radial metres (0 = sky/invalid); "normals" (H,W,3)
    float32 unit vectors in the panorama frame (REP 103, facing the camera; 0 on sky); "semantic" (H,W) uint8
    ADE20K ids (sky = 2).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    rays, rep_of_pixel = _erp_grids(int(height), int(width))
    t, idx, Nw = cast_erp(scene.prims, scene.cam_pos, scene.rot_wc, rays)
    Dw = _rot(rays.reshape(-1, 3), scene.rot_wc.T)
    rgb, depth, nw, label = _finish(scene, t.reshape(-1), idx.reshape(-1), Nw.reshape(3, -1).T, Dw, scene.cam_pos,
                                    rep_of_pixel)
    normals = _rot(nw, scene.rot_wc)  # world -> panorama frame
    return {"rgb": rgb.reshape(height, width, 3), "depth": depth.reshape(height, width),
            "normals": normals.reshape(height, width, 3).astype(np.float32), "semantic": label.reshape(height, width)}


def render_perspective(scene: Scene, yaw_deg: float, pitch_deg: float, roll_deg: float, fov_deg: float,
                       out_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Render one perspective view (view convention of mtpano_ros.geometry.view_rotation; fov_deg horizontal).

    Returns numpy: "rgb" (h,w,3) uint8; "zdepth" (h,w) float32 metres along the optical axis (0 invalid); "depth"
    (h,w) radial metres; "normals" (h,w,3) OpenCV view frame (x right, y down, z forward), facing the camera;
    "semantic" (h,w) uint8 ADE20K ids.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    r_cp = view_rotation(float(yaw_deg), float(pitch_deg), float(roll_deg))[0].numpy()  # camera -> panorama
    rc = camera_rays(float(fov_deg), (h, w), dtype=torch.float64)[0].numpy().reshape(-1, 3)
    norm = np.linalg.norm(rc, axis=-1)
    Dp = rc / norm[:, None]
    r_cw = scene.rot_wc.astype(np.float64) @ r_cp  # camera -> world
    Dw = (Dp @ r_cw.T).astype(np.float32)
    t, idx, Nw = cast_rays(scene.prims, scene.cam_pos, np.ascontiguousarray(Dw.T))
    Nw = Nw.T
    rgb, depth, nw, label = _finish(scene, t, idx, Nw, Dw, scene.cam_pos)
    n_cam = (nw @ r_cw).astype(np.float32)
    return {"rgb": rgb.reshape(h, w, 3), "zdepth": (depth / norm).astype(np.float32).reshape(h, w),
            "depth": depth.reshape(h, w), "normals": n_cam.reshape(h, w, 3), "semantic": label.reshape(h, w)}

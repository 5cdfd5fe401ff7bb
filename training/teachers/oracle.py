"""Oracle teacher: exact perspective labels of a procedural scene, optionally corrupted like a real teacher.

It renders each view with `training.synthetic.render_perspective(scene, yaw, pitch, roll, fov, out_hw)` (the
project's view convention), so it needs the scene and the cameras rather than the pixels. The corruption
mimics how perspective foundation models err, each part switchable:
- `scale_sigma`: per-view metric scale error, depth *= exp(N(0, sigma)) (MoGe-2-like metric ambiguity);
- `edge_blur_px`: depth and normals smeared across depth discontinuities (flying pixels, soft edges);
- `normal_noise_deg`: small per-pixel angular noise on normals;
- `label_noise`: fraction of the view whose labels are wrong in blobs (boundaries shifted, blobs of a
  wrong class), with lowered confidence there;
- `hole_prob`: chance per view of an elliptic hole with no depth, normals or label (mask off).
Deterministic: the noise of view i comes from `seed` and the view's camera.
"""

from __future__ import annotations

import math

import numpy as np

from training.teachers.base import Teacher

DEFAULT_CORRUPTION = {"scale_sigma": 0.08, "edge_blur_px": 2.0, "normal_noise_deg": 3.0, "label_noise": 0.05,
                      "hole_prob": 0.25}
NO_CORRUPTION = {"scale_sigma": 0.0, "edge_blur_px": 0.0, "normal_noise_deg": 0.0, "label_noise": 0.0,
                 "hole_prob": 0.0}


def _view_rng(seed: int, cam: tuple[float, ...]) -> np.random.Generator:
    key = [int(seed) & 0xFFFFFFFF] + [int(round(c * 1000)) & 0xFFFFFFFF for c in cam]
    return np.random.default_rng(key)


def _smooth_field(rng: np.random.Generator, hw: tuple[int, int], cells: int = 6) -> np.ndarray:
    """Low-frequency noise in [0, 1], (H, W) float32."""
    import cv2

    g = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(g, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)


def corrupt_view(label: dict, rng: np.random.Generator, scale_sigma: float = 0.0, edge_blur_px: float = 0.0,
                 normal_noise_deg: float = 0.0, label_noise: float = 0.0, hole_prob: float = 0.0,
                 num_classes: int = 150) -> dict:
    """Corrupt one exact view label dict {"zdepth" (h,w), "normals" (h,w,3), "semantic" (h,w), "valid" (h,w)}.

    Returns new arrays plus "confidence" (h, w) float32. Units and frames are unchanged (metres, OpenCV).
    """
    import cv2

    z = label["zdepth"].astype(np.float32).copy()
    n = label["normals"].astype(np.float32).copy()
    sem = label["semantic"].astype(np.uint8).copy()
    valid = label["valid"].copy()
    h, w = z.shape
    conf = np.ones((h, w), np.float32)
    if edge_blur_px > 0:
        logz = np.log(np.where(valid, np.maximum(z, 1e-3), 1.0))
        gx = np.abs(np.diff(logz, axis=1, append=logz[:, -1:]))
        gy = np.abs(np.diff(logz, axis=0, append=logz[-1:]))
        edges = ((gx > 0.05) | (gy > 0.05)).astype(np.uint8)
        k = int(2 * math.ceil(edge_blur_px) + 1)
        near = cv2.dilate(edges, np.ones((k, k), np.uint8)).astype(bool) & valid
        wv = valid.astype(np.float32)
        den = cv2.GaussianBlur(wv, (k, k), edge_blur_px)
        zb = cv2.GaussianBlur(z * wv, (k, k), edge_blur_px) / np.maximum(den, 1e-6)
        nb = cv2.GaussianBlur(n * wv[..., None], (k, k), edge_blur_px)
        z = np.where(near, zb, z)
        n = np.where(near[..., None], nb, n)
        conf = np.where(near, 0.7, conf)
    if normal_noise_deg > 0:
        n = n + rng.normal(0.0, math.radians(normal_noise_deg), n.shape).astype(np.float32)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(valid[..., None] & (norm > 1e-6), n / np.maximum(norm, 1e-6), 0.0)
    if scale_sigma > 0:
        z = z * float(math.exp(rng.normal(0.0, scale_sigma)))
    if label_noise > 0:
        field = _smooth_field(rng, (h, w))
        blobs = field > np.quantile(field, 1.0 - label_noise)
        dy, dx = rng.integers(-max(h // 12, 2), max(h // 12, 2) + 1, size=2)
        shifted = np.roll(sem, (int(dy), int(dx)), axis=(0, 1))
        wrong = np.where(rng.random() < 0.5, shifted, rng.integers(0, num_classes)).astype(np.uint8)
        sem = np.where(blobs & (sem != 255), wrong, sem)
        conf = np.where(blobs, 0.5, conf)
    if hole_prob > 0 and rng.random() < hole_prob:
        hole = np.zeros((h, w), np.uint8)
        cy, cx = rng.random(2) * (h, w)
        ax = (int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0.05, 0.2) * h))
        cv2.ellipse(hole, (int(cx), int(cy)), ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        hole = hole.astype(bool)
        valid = valid & ~hole
        sem = np.where(hole, 255, sem).astype(np.uint8)
        conf = np.where(hole, 0.0, conf)
    z = np.where(valid, z, 0.0).astype(np.float32)
    n = np.where(valid[..., None], n, 0.0).astype(np.float32)
    conf = np.where(sem == 255, 0.0, conf).astype(np.float32)
    return {"zdepth": z, "normals": n, "semantic": sem, "valid": valid, "confidence": conf}


class OracleTeacher(Teacher):
    """Exact (or corrupted) perspective labels rendered from a procedural scene."""

    name = "oracle"
    provides = frozenset({"depth", "normals", "semantic"})
    depth_kind = "metric"

    def __init__(self, corruption: dict | None | bool = None, seed: int = 0):
        if corruption is True or corruption is None:
            corruption = dict(DEFAULT_CORRUPTION)
        elif corruption is False:
            corruption = dict(NO_CORRUPTION)
        unknown = set(corruption) - set(NO_CORRUPTION)
        if unknown:
            raise ValueError(f"unknown corruption keys {sorted(unknown)}; expected {sorted(NO_CORRUPTION)}")
        self.corruption = {**NO_CORRUPTION, **corruption}
        self.seed = int(seed)

    def render(self, scene, cameras: dict, out_hw: tuple[int, int]) -> tuple[np.ndarray, dict]:
        """Render and label the cameras' views: returns (rgb (N,h,w,3) uint8, labels dict as in the base module).

        cameras: {"yaw_deg","pitch_deg","roll_deg","fov_deg"} arrays (N,) in degrees, the project's convention.
        """
        from training.synthetic import render_perspective

        rgbs, outs = [], []
        for i in range(len(cameras["fov_deg"])):
            cam = tuple(float(cameras[k][i]) for k in ("yaw_deg", "pitch_deg", "roll_deg", "fov_deg"))
            r = render_perspective(scene, *cam, out_hw=tuple(out_hw))
            z = np.asarray(r["zdepth"], np.float32)
            valid = np.isfinite(z) & (z > 0)
            exact = {"zdepth": np.where(valid, z, 0.0), "normals": np.asarray(r["normals"], np.float32),
                     "semantic": np.asarray(r["semantic"], np.uint8), "valid": valid}
            outs.append(corrupt_view(exact, _view_rng(self.seed, cam), **self.corruption))
            rgbs.append(np.asarray(r["rgb"], np.uint8))
        labels = {k: np.stack([o[k] for o in outs]) for k in outs[0]}
        return np.stack(rgbs), labels

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        if scene is None or cameras is None:
            raise ValueError("the oracle teacher renders from the procedural scene: pass scene= (from "
                             "training.synthetic.make_scene(seed)) and cameras= (the views' yaw/pitch/roll/fov)")
        views = np.asarray(views)
        return self.render(scene, cameras, views.shape[1:3])[1]

    def describe(self) -> dict:
        return {**super().describe(), "corruption": self.corruption, "seed": self.seed}

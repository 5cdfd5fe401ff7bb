"""The teacher interface and the helpers every adapter shares.

A teacher labels perspective views. Input: views uint8 RGB (N, H, W, 3) and their horizontal field of view in
degrees (a float or (N,)); the pinhole model is the project's view convention (f = (W/2)/tan(fov/2),
cx = W/2, cy = H/2, pixel centres at +0.5). Output: a dict of numpy arrays, batched over the N views:

    "zdepth"     (N, H, W) float32  z-depth in metres along the optical axis, 0 where invalid
    "normals"    (N, H, W, 3) float32 unit normals, OpenCV view frame (x right, y down, z forward),
                 facing the camera (dot(n, ray) < 0), 0 where invalid
    "semantic"   (N, H, W) uint8    ADE20K-150 ids, 255 = unknown
    "confidence" (N, H, W) float32  [0, 1], how much to trust the semantic label of the pixel
    "valid"      (N, H, W) bool     where zdepth and normals hold a value
    "points"     (N, H, W, 3) float32 (optional) metric points, OpenCV view frame

A teacher that provides only some of these leaves the others out; `CombinedTeacher` joins a geometry teacher
and a semantic teacher. `depth_kind` says whether depth is metric ("metric") or only known up to an unknown
per-view scale and shift ("affine"); the trainer uses a scale-and-shift-invariant loss for the latter.
"""

from __future__ import annotations

import math

import numpy as np

GEOMETRY_KEYS = ("zdepth", "normals", "valid", "points")
SEMANTIC_KEYS = ("semantic", "confidence")


class Teacher:
    """Base class: subclasses set `name`, `provides` and implement `__call__`."""

    name = "teacher"
    provides: frozenset[str] = frozenset()
    depth_kind = "metric"

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        """Label views (N, H, W, 3) uint8 RGB with horizontal FOV `fov_deg` (float or (N,)). See module doc.

        `cameras` ({"yaw_deg", "pitch_deg", "roll_deg", "fov_deg"} arrays (N,)) and `scene` are only used by
        teachers that render rather than look (the oracle); image teachers ignore them.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-serialisable description stored with the pseudo labels."""
        return {"name": self.name, "provides": sorted(self.provides), "depth_kind": self.depth_kind}


class CombinedTeacher(Teacher):
    """Geometry (depth, normals) from one teacher, semantics from another."""

    name = "combined"

    def __init__(self, geometry: Teacher, semantics: Teacher):
        self.geometry = geometry
        self.semantics = semantics
        self.provides = frozenset(geometry.provides) | frozenset(semantics.provides)
        self.depth_kind = geometry.depth_kind

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        out = {k: v for k, v in self.geometry(views, fov_deg, cameras, scene).items() if k in GEOMETRY_KEYS}
        sem = self.semantics(views, fov_deg, cameras, scene)
        out.update({k: v for k, v in sem.items() if k in SEMANTIC_KEYS})
        return out

    def describe(self) -> dict:
        return {"name": self.name, "geometry": self.geometry.describe(), "semantics": self.semantics.describe(),
                "depth_kind": self.depth_kind}


def check_views(views: np.ndarray, fov_deg) -> tuple[np.ndarray, np.ndarray]:
    """Validate a batch of views; returns (views (N,H,W,3) uint8, fov_deg (N,) float64)."""
    views = np.asarray(views)
    if views.ndim == 3:
        views = views[None]
    if views.ndim != 4 or views.shape[-1] != 3 or views.dtype != np.uint8:
        raise ValueError(f"views must be uint8 RGB (N, H, W, 3), got {views.dtype} {views.shape}; "
                         "convert with np.asarray(img, dtype=np.uint8)")
    fov = np.broadcast_to(np.asarray(fov_deg, dtype=np.float64), (views.shape[0],)).copy()
    if not np.all((fov > 0) & (fov < 180)):
        raise ValueError(f"fov_deg must be the horizontal field of view in (0, 180) degrees, got {fov}")
    return views, fov


def focal_px(width: int, fov_deg: float) -> float:
    """Focal length in pixels of the project's pinhole view: (W/2) / tan(fov/2)."""
    return (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def camera_rays(height: int, width: int, fov_deg: float) -> np.ndarray:
    """(H, W, 3) float64 un-normalised rays (x, y, 1) of a view, OpenCV frame, pixel centres at +0.5."""
    f = focal_px(width, fov_deg)
    u = (np.arange(width) + 0.5 - width / 2.0) / f
    v = (np.arange(height) + 0.5 - height / 2.0) / f
    x, y = np.meshgrid(u, v)
    return np.stack((x, y, np.ones_like(x)), axis=-1)


def zdepth_to_points(zdepth: np.ndarray, fov_deg: float) -> np.ndarray:
    """z-depth (H, W) metres -> points (H, W, 3) OpenCV view frame."""
    h, w = zdepth.shape
    return camera_rays(h, w, fov_deg) * zdepth[..., None]


def normals_from_zdepth(zdepth: np.ndarray, fov_deg: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Normals (H, W, 3) float32, OpenCV view frame, facing the camera, from z-depth (H, W) metres.

    Central differences of the back-projected points (one-sided at the border); pixels whose neighbours are
    invalid get 0.
    """
    valid = zdepth > 0 if valid is None else valid & (zdepth > 0)
    p = zdepth_to_points(np.where(valid, zdepth, 0.0), fov_deg)
    dx = np.zeros_like(p)
    dy = np.zeros_like(p)
    dx[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dx[:, 0] = p[:, 1] - p[:, 0]
    dx[:, -1] = p[:, -1] - p[:, -2]
    dy[1:-1] = p[2:] - p[:-2]
    dy[0] = p[1] - p[0]
    dy[-1] = p[-1] - p[-2]
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = n / np.maximum(norm, 1e-12)
    n = orient_towards_camera(n, camera_rays(*zdepth.shape, fov_deg))
    ok = valid.copy()
    ok[:, 1:] &= valid[:, :-1]
    ok[:, :-1] &= valid[:, 1:]
    ok[1:] &= valid[:-1]
    ok[:-1] &= valid[1:]
    ok &= norm[..., 0] > 0
    return np.where(ok[..., None], n, 0.0).astype(np.float32)


def orient_towards_camera(normals: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Flip normals (..., 3) so that dot(n, ray) <= 0 (they face the camera); rays broadcastable (..., 3)."""
    s = np.sum(normals * rays, axis=-1, keepdims=True)
    return np.where(s > 0, -normals, normals)


def softmax_confidence(logits: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class logits (..., C, ...) -> (argmax ids, max softmax probability), both without the class axis."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=axis, keepdims=True)
    return p.argmax(axis=axis), p.max(axis=axis).astype(np.float32)


def resize_map(x: np.ndarray, out_hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize one (h, w) or (h, w, C) map to out_hw with OpenCV (bilinear, or nearest for ids/masks)."""
    import cv2

    h, w = out_hw
    if x.shape[:2] == (h, w):
        return x
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    if x.dtype == np.bool_:
        return cv2.resize(x.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return cv2.resize(x, (w, h), interpolation=interp)

"""Metric scale from the ground and a known camera height (DESIGN §5), numpy only.

A robot knows how high its 360° camera sits. Pixels labelled as ground (floor, road, grass, ...) below the horizon
lie on a plane at that distance below the camera, so the ratio camera height / measured height rescales a depth
image whose scale is off. Used by the node (``camera_height_m``) and by offline evaluation.
"""

from __future__ import annotations

import numpy as np

from mtpano_ros.geometry.erp import erp_ray_grid_np

# ADE20K-150 ids of walkable, roughly level ground (names as in mtpano_ros.labels.ADE20K_CLASSES).
GROUND_CLASSES = (3, 6, 9, 11, 13, 28, 29, 46, 52, 54, 91, 94)
# floor, road, grass, sidewalk, earth, rug, field, sand, path, runway, dirt track, land


def ground_height(depth: np.ndarray, semantic: np.ndarray, min_pixels: int = 200, min_fraction: float = 0.01,
                  max_below_horizon_deg: float = 5.0, max_tilt_deg: float = 10.0,
                  ground_classes: tuple[int, ...] = GROUND_CLASSES) -> float | None:
    """Distance (in the depth's units) from the camera to the ground plane seen in an ERP image, or None.

    depth: (H, W) float radial distance, NaN or <= 0 invalid; semantic: (H, W) integer ADE20K ids, same size (or
    an integer multiple / fraction of it: it is resampled by nearest neighbour to depth's size). Ground pixels are
    those with a class in ``ground_classes``, valid depth and a latitude below -max_below_horizon_deg (grazing
    pixels near the horizon are the least reliable). Their points (panorama frame, REP 103) get a plane fit
    (least squares, then refit on the points within 3 median absolute deviations): the result is the camera's
    distance to that plane. For a level camera this is the robust median of -z of the ground points.

    None when fewer than max(min_pixels, min_fraction * H * W) ground pixels are found, or when the fitted plane's
    normal is more than max_tilt_deg from the panorama's z axis (the ground is not level, or the camera is tilted).
    """
    if depth.ndim != 2 or semantic.ndim != 2:
        raise ValueError(f"depth and semantic must be (H, W), got {depth.shape} and {semantic.shape}")
    height, width = depth.shape
    if semantic.shape != depth.shape:
        rows = np.arange(height) * semantic.shape[0] // height
        cols = np.arange(width) * semantic.shape[1] // width
        semantic = semantic[rows[:, None], cols[None, :]]
    band = height // 2 + int(np.ceil(max_below_horizon_deg / 180.0 * height))  # first row below the margin
    d = np.asarray(depth[band:], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mask = np.isin(semantic[band:], ground_classes) & (d > 0)
    count = int(mask.sum())
    if count < max(min_pixels, min_fraction * height * width):
        return None
    points = erp_ray_grid_np(height, width)[band:][mask] * d[mask][:, None]  # (N, 3)
    keep = np.ones(count, dtype=bool)
    for _ in range(2):
        centre = points[keep].mean(axis=0)
        _, vectors = np.linalg.eigh(np.cov((points[keep] - centre).T))
        normal = vectors[:, 0] * (1.0 if vectors[2, 0] >= 0 else -1.0)  # smallest eigenvalue; pointing up
        residual = (points - centre) @ normal
        mad = np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = np.abs(residual) <= max(3.0 * 1.4826 * mad, 1e-9)
        if keep.sum() < 3:
            return None
    tilt_deg = float(np.degrees(np.arccos(np.clip(normal[2], -1.0, 1.0))))
    if tilt_deg > max_tilt_deg:
        return None
    distance = float(-(centre @ normal))  # camera (origin) above the plane: plane points have n.p = n.centre < 0
    return distance if distance > 0 else None


def ground_scale(depth: np.ndarray, semantic: np.ndarray, camera_height_m: float, **kwargs) -> float | None:
    """Factor s so that s * depth puts the labelled ground at camera_height_m below the camera, or None.

    depth: (H, W) float radial distance in any (unknown) scale, NaN or <= 0 invalid; semantic: (H, W) ADE20K ids;
    camera_height_m > 0: the camera's height above the ground in metres. s = camera_height_m / ground_height(...);
    None when :func:`ground_height` finds too few ground pixels or ground that is not level (kwargs go to it).
    """
    if not camera_height_m > 0:
        raise ValueError(f"camera_height_m must be > 0 metres, got {camera_height_m}")
    measured = ground_height(depth, semantic, **kwargs)
    return None if measured is None else float(camera_height_m / measured)


class ScaleSmoother:
    """Smooths per-frame ground scales over time: a running median of the last ``window`` accepted scales.

    update(scale) takes a frame's scale (None: no estimate this frame) and returns the smoothed scale, or None
    before the first accepted one. A frame whose scale is more than ``max_jump`` times (or less than 1/max_jump
    times) the current smoothed value is counted as an outlier and not used (after ``window`` such frames in a row
    the history restarts from them: the scene really changed).
    """

    def __init__(self, window: int = 15, max_jump: float = 1.5):
        self.window, self.max_jump = int(window), float(max_jump)
        self._history: list[float] = []
        self._outliers: list[float] = []
        self.value: float | None = None
        self.rejected = 0

    def update(self, scale: float | None) -> float | None:
        if scale is not None and np.isfinite(scale) and scale > 0:
            if self.value is not None and not 1.0 / self.max_jump <= scale / self.value <= self.max_jump:
                self.rejected += 1
                self._outliers.append(scale)
                if len(self._outliers) >= self.window:
                    self._history, self._outliers = self._outliers, []
            else:
                self._outliers = []
                self._history = (self._history + [scale])[-self.window:]
            if self._history:
                self.value = float(np.median(self._history))
        return self.value

"""MoGe-2 teacher (metric points, depth and normals) through the `moge` package.

Facts used (MoGe repository, `moge/model/v2.py`, `MoGeModel.infer` and README):
- `MoGeModel.from_pretrained(path_or_id)`; `model.infer(image, fov_x=deg)` takes a float tensor (B, 3, H, W) in
  [0, 1] and the HORIZONTAL field of view in degrees (the same FOV convention as our views).
- It returns `points` (B, H, W, 3) metric, OpenCV camera frame (x right, y down, z forward), `depth` (B, H, W)
  z-depth in metres with +inf where the mask is off, `mask` (B, H, W) bool, `intrinsics` (B, 3, 3) normalised,
  and for the `-normal` checkpoints `normal` (B, H, W, 3) unit vectors in the same camera frame (zeros where
  masked).
So the conversion is: zdepth = depth where mask & finite & > 0 else 0; normals flipped, if needed, to face the
camera; validity = mask.
"""

from __future__ import annotations

import numpy as np

from training.teachers.base import Teacher, camera_rays, check_views, normals_from_zdepth, orient_towards_camera


def convert_moge_output(out: dict, fov_deg: np.ndarray) -> dict:
    """MoGe-2 `infer` output (numpy or torch, batched (B, H, W[, 3])) -> our teacher dict (see base module).

    Normals come from the model's `normal` key when present, otherwise from the depth map.
    """
    def as_np(x):
        return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

    depth = as_np(out["depth"]).astype(np.float32)
    if depth.ndim == 2:
        depth = depth[None]
    mask = as_np(out["mask"]).astype(bool) if "mask" in out else np.ones(depth.shape, bool)
    if mask.ndim == 2:
        mask = mask[None]
    valid = mask & np.isfinite(depth) & (depth > 0)
    zdepth = np.where(valid, depth, 0.0).astype(np.float32)
    n_views, h, w = zdepth.shape
    fov = np.broadcast_to(np.asarray(fov_deg, dtype=np.float64), (n_views,))
    normals = np.zeros((n_views, h, w, 3), np.float32)
    raw_normal = as_np(out["normal"]).reshape(n_views, h, w, 3) if "normal" in out else None
    for i in range(n_views):
        if raw_normal is not None:
            n = raw_normal[i] / np.maximum(np.linalg.norm(raw_normal[i], axis=-1, keepdims=True), 1e-12)
            n = orient_towards_camera(n, camera_rays(h, w, fov[i]))
            normals[i] = np.where(valid[i][..., None], n, 0.0)
        else:
            normals[i] = normals_from_zdepth(zdepth[i], fov[i], valid[i])
    result = {"zdepth": zdepth, "normals": normals, "valid": valid}
    if "points" in out:
        pts = as_np(out["points"]).reshape(n_views, h, w, 3).astype(np.float32)
        result["points"] = np.where(valid[..., None], pts, 0.0).astype(np.float32)
    return result


class MoGe2Teacher(Teacher):
    """MoGe-2 (`moge.model.v2.MoGeModel`) from a local checkpoint directory/file or a hub id already cached."""

    name = "moge2"
    provides = frozenset({"depth", "normals"})
    depth_kind = "metric"

    def __init__(self, pretrained: str, device: str = "cpu", resolution_level: int = 9, use_fp16: bool = False,
                 batch_size: int = 4):
        try:
            from moge.model.v2 import MoGeModel
        except ImportError as e:
            raise ImportError("the moge2 teacher needs the `moge` package (pip install "
                              "git+https://github.com/microsoft/MoGe.git) and a MoGe-2 checkpoint") from e
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = MoGeModel.from_pretrained(pretrained).to(self.device).eval()
        self.pretrained = str(pretrained)
        self.resolution_level = resolution_level
        self.use_fp16 = use_fp16
        self.batch_size = batch_size

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        views, fov = check_views(views, fov_deg)
        parts = []
        for s in range(0, len(views), self.batch_size):
            batch = views[s:s + self.batch_size]
            img = self.torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            out = self.model.infer(img, fov_x=self.torch.as_tensor(fov[s:s + len(batch)], dtype=img.dtype,
                                                                    device=self.device),
                                   resolution_level=self.resolution_level, use_fp16=self.use_fp16)
            parts.append(convert_moge_output(out, fov[s:s + len(batch)]))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def describe(self) -> dict:
        return {**super().describe(), "pretrained": self.pretrained}

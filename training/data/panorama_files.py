"""Shared loader for labelled panorama datasets on disk (Structured3D, Stanford2D3D, Matterport3D).

Each dataset module lists records (paths of one panorama's files) and decodes its own formats; this base turns
a record into a sample of the dataset-sample contract at `out_hw`:
"image" (3,H,W) float32 [0,1]; "depth" (1,H,W) float32 radial metres (0 invalid); "depth_mask" (1,H,W) bool;
"normals" (3,H,W) float32 panorama frame (REP 103); "normals_mask" (1,H,W) bool; "semantic" (H,W) int64 ADE20K
(255 ignore). `self.records[i]["name"]` names sample i.

Normals: `normals="from_depth"` (default) derives them from the ground-truth depth with
mtpano_ros.geometry.normals_from_depth, which is exact in our frame whatever frame the dataset's normal images
use; `normals="file"` decodes the dataset's normal image ((n + 1) / 2 * 255, #808080 invalid) and maps it with
`normals_matrix` (3x3, file frame -> REP 103; required, since these files' frames are dataset-specific);
`normals="none"` leaves normals unsupervised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

IGNORE = 255

# NYU-Depth-v2 40 classes (1-based ids, 0 = unlabelled) -> ADE20K-150 ids; 255 where ADE20K has no counterpart.
NYU40_TO_ADE20K = {
    1: 0, 2: 3, 3: 10, 4: 7, 5: 19, 6: 23, 7: 15, 8: 14, 9: 8, 10: 62, 11: 22, 12: 45, 13: 63, 14: 33, 15: 24,
    16: 18, 17: 44, 18: 57, 19: 27, 20: 28, 21: 92, 22: 5, 23: 67, 24: 50, 25: 89, 26: IGNORE, 27: 81, 28: 18,
    29: 41, 30: IGNORE, 31: 12, 32: 44, 33: 65, 34: 47, 35: 36, 36: 37, 37: 115, 38: IGNORE, 39: IGNORE,
    40: IGNORE,
}
# Matterport3D mpcat40 (1-based, 0 = void) -> ADE20K-150.
MPCAT40_TO_ADE20K = {
    1: 0, 2: 3, 3: 19, 4: 14, 5: 15, 6: 22, 7: 10, 8: 39, 9: 8, 10: 23, 11: 7, 12: 18, 13: 44, 14: 17, 15: 47,
    16: 53, 17: 5, 18: 65, 19: 110, 20: 81, 21: 27, 22: 89, 23: 145, 24: 42, 25: 37, 26: 45, 27: 49, 28: 82,
    29: IGNORE, 30: 38, 31: 24, 32: 63, 33: IGNORE, 34: 31, 35: IGNORE, 36: IGNORE, 37: IGNORE, 38: 92,
    39: IGNORE, 40: IGNORE,
}


def lut_from_map(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """Lookup table (size,) uint8: id -> ADE20K id, IGNORE for ids not in mapping."""
    lut = np.full(size, IGNORE, np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(img[..., ::-1])


def read_raw(path: Path) -> np.ndarray:
    """An image file's stored values unchanged (16-bit depth, 8-bit labels; colour as RGB)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"cannot read {path}")
    if img.ndim == 3:
        img = np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB
    return img


def read_indexed(path: Path) -> np.ndarray:
    """A label PNG's indices (palette indices for mode-P PNGs, which OpenCV would expand to colours)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im)


def decode_normal_image(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H,W,3) uint8 (n+1)/2*255 -> (normals (H,W,3) float32 unit, valid (H,W) bool; #808080 = invalid)."""
    n = rgb.astype(np.float32) / 255.0 * 2.0 - 1.0
    valid = ~np.all(rgb == 128, axis=-1)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    valid &= norm[..., 0] > 0.5
    return np.where(valid[..., None], n / np.maximum(norm, 1e-6), 0.0).astype(np.float32), valid


class PanoramaFilesDataset(Dataset):
    """Base: subclasses fill `self.records` (list of dicts of paths + "name") and implement the decoders."""

    default_max_depth_m = 10.0

    def __init__(self, out_hw=(512, 1024), normals: str = "from_depth", normals_matrix=None,
                 max_depth_m: float | None = None, augment: bool = False):
        if normals not in ("from_depth", "file", "none"):
            raise ValueError(f"normals must be 'from_depth', 'file' or 'none', got {normals!r}")
        if normals == "file" and normals_matrix is None:
            raise ValueError("normals='file' needs normals_matrix (3x3, the files' frame -> REP 103); "
                             "or use normals='from_depth'")
        self.out_hw = tuple(out_hw)
        self.normals_mode = normals
        self.normals_matrix = None if normals_matrix is None else np.asarray(normals_matrix, np.float32)
        self.max_depth_m = self.default_max_depth_m if max_depth_m is None else float(max_depth_m)
        self.augment = augment
        self.records: list[dict] = []

    # subclasses implement these three (plus optionally read_normals)
    def read_image(self, rec: dict) -> np.ndarray:
        return read_rgb(rec["rgb"])

    def read_depth(self, rec: dict) -> np.ndarray:
        """(H, W) float32 radial metres, 0 invalid."""
        raise NotImplementedError

    def read_semantic(self, rec: dict) -> np.ndarray:
        """(H, W) uint8 ADE20K ids, 255 ignore."""
        raise NotImplementedError

    def read_normals(self, rec: dict) -> tuple[np.ndarray, np.ndarray]:
        return decode_normal_image(read_raw(rec["normal"])[..., :3])

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        import cv2

        from mtpano_ros.geometry import normals_from_depth
        from training.data.pseudo_labels import mirror, yaw_roll

        rec = self.records[index]
        H, W = self.out_hw

        def fit(x, nearest):
            if x.shape[:2] == (H, W):
                return x
            interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
            return cv2.resize(x, (W, H), interpolation=interp)

        rgb = fit(self.read_image(rec), nearest=False)
        depth = fit(self.read_depth(rec).astype(np.float32), nearest=True)
        depth = np.where(np.isfinite(depth) & (depth > 0) & (depth <= self.max_depth_m), depth, 0.0)
        sem = fit(self.read_semantic(rec) if rec.get("semantic") else np.full((H, W), IGNORE, np.uint8), True)
        d = torch.from_numpy(depth.astype(np.float32))[None]
        sample = {"image": torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0, "depth": d,
                  "depth_mask": d > 0, "semantic": torch.from_numpy(sem.astype(np.int64))}
        if self.normals_mode == "from_depth":
            n = normals_from_depth(d[None])[0]
            ok = (n.norm(dim=0, keepdim=True) > 0.5) & sample["depth_mask"]
            sample["normals"], sample["normals_mask"] = torch.where(ok, n, torch.zeros_like(n)), ok
        elif self.normals_mode == "file" and rec.get("normal"):
            n, ok = self.read_normals(rec)
            n, ok = fit(n, True) @ self.normals_matrix.T, fit(ok.astype(np.uint8), True).astype(bool)
            sample["normals"] = torch.from_numpy(np.where(ok[..., None], n, 0.0)).permute(2, 0, 1).float()
            sample["normals_mask"] = torch.from_numpy(ok)[None]
        else:
            sample["normals"] = torch.zeros(3, H, W)
            sample["normals_mask"] = torch.zeros(1, H, W, dtype=torch.bool)
        if self.augment:
            import random

            sample = yaw_roll(sample, random.randrange(W))
            if random.random() < 0.5:
                sample = mirror(sample)
        return sample


def common_kwargs(cfg: dict) -> dict:
    """The base-class keyword arguments found in a build_dataset config."""
    out = {}
    if cfg.get("size") or cfg.get("out_hw"):
        out["out_hw"] = tuple(cfg.get("size") or cfg.get("out_hw"))
    for k in ("normals", "normals_matrix", "max_depth_m", "augment"):
        if k in cfg:
            out[k] = cfg[k]
    return out

"""Shared loader for labelled panorama datasets on disk (Structured3D, Stanford2D3D, Matterport3D).

Each dataset module lists records (paths of one panorama's files) and decodes its own formats; this base turns
a record into a sample of the dataset-sample contract at `out_hw`:
"image" (3,H,W) float32 [0,1]; "depth" (1,H,W) float32 radial metres (0 invalid); "depth_mask" (1,H,W) bool;
"normals" (3,H,W) float32 panorama frame (REP 103); "normals_mask" (1,H,W) bool; "semantic" (H,W) int64 ADE20K
(255 ignore); "depth_affine" False (metric ground truth); with aux_targets "grad" and "edge_distance"
(training.data.targets). `self.records[i]["name"]` names sample i. Index keys wrap (key % len picks the record) and
seed the augmentation (random yaw roll and mirror, with aug_seed), so resumed runs and DDP ranks are reproducible.

Config keys shared by the three kinds: FilesConfig (each kind's Config adds its own).

Normals: `normals="from_depth"` (default) derives them from the ground-truth depth with
mtpano_ros.geometry.normals_from_depth, which is exact in our frame whatever frame the dataset's normal images
use; `normals="file"` decodes the dataset's normal image ((n + 1) / 2 * 255, #808080 invalid) and maps it with
`normals_matrix` (3x3, file frame -> REP 103; required, since these files' frames are dataset-specific);
`normals="none"` leaves normals unsupervised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


def label_ids(path: Path) -> np.ndarray:
    """(H, W) int64 class ids of a label PNG: palette indices, or grey values (also an RGB file whose three
    channels are equal). Colour-coded labels are not ids: refuse them."""
    ids = read_indexed(path)
    if ids.ndim == 3:
        if not (np.all(ids[..., 0] == ids[..., 1]) and np.all(ids[..., 0] == ids[..., 2])):
            raise ValueError(f"{path}: expected a palette or greyscale PNG of class ids, got colour-coded RGB")
        ids = ids[..., 0]
    return ids.astype(np.int64)


def decode_normal_image(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H,W,3) uint8 (n+1)/2*255 -> (normals (H,W,3) float32 unit, valid (H,W) bool; #808080 = invalid)."""
    n = rgb.astype(np.float32) / 255.0 * 2.0 - 1.0
    valid = ~np.all(rgb == 128, axis=-1)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    valid &= norm[..., 0] > 0.5
    return np.where(valid[..., None], n / np.maximum(norm, 1e-6), 0.0).astype(np.float32), valid


@dataclass(kw_only=True)
class FilesConfig:
    """Keys of every labelled-panorama kind (structured3d, stanford2d3d, matterport3d)."""

    root: str  # the dataset folder
    size: list[int] | None = None  # [H, W] of the samples; None = 512x1024 (train.py: the model's input size)
    normals: Literal["from_depth", "file", "none"] = "from_depth"
    normals_matrix: list[list[float]] | None = None  # 3x3, the normal files' frame -> REP 103 (normals: file)
    max_depth_m: float = 10.0  # ground truth beyond this is invalid
    augment: bool = False  # random yaw roll and mirror (exact for ERP ground truth)
    aug_seed: int = 0
    aux_targets: bool = True  # "grad" and "edge_distance" for the auxiliary heads


class PanoramaFilesDataset(Dataset):
    """Base: subclasses fill `self.records` (list of dicts of paths + "name") and implement the decoders.
    cfg: the kind's Config (a FilesConfig)."""

    def __init__(self, cfg: FilesConfig):
        if cfg.normals == "file" and cfg.normals_matrix is None:
            raise ValueError("normals='file' needs normals_matrix (3x3, the files' frame -> REP 103); "
                             "or use normals='from_depth'")
        self.cfg = cfg
        self.root = Path(cfg.root)
        self.out_hw = tuple(cfg.size) if cfg.size else (512, 1024)
        self.normals_mode = cfg.normals
        self.normals_matrix = None if cfg.normals_matrix is None else np.asarray(cfg.normals_matrix, np.float32)
        self.max_depth_m = float(cfg.max_depth_m)
        self.augment = cfg.augment
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

    def __getitem__(self, key: int) -> dict:
        import cv2

        from mtpano_ros.geometry import normals_from_depth
        from training.data.pseudo_labels import mirror, yaw_roll
        from training.data.targets import add_aux_targets

        key = int(key)
        rec = self.records[key % len(self.records)]
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
        sample["depth_affine"] = torch.tensor(False)
        if self.augment:
            rng = np.random.default_rng([self.cfg.aug_seed, key])
            sample = yaw_roll(sample, int(rng.integers(W)))
            if rng.random() < 0.5:
                sample = mirror(sample)
        if self.cfg.aux_targets:  # after augmentation, from the final image and labels
            sample = add_aux_targets(sample)
        return sample

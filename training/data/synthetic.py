"""Procedural panoramas with exact labels as a training dataset (kind "synthetic").

cfg keys (Config): root: folder written by `python -m training.synthetic` (samples/NNNNNN.npz), or
seed, count, size: render scenes seed..seed+count-1 on the fly at size [H, W] (cached in memory); size also resizes
stored samples (area for rgb, nearest for labels); augment: random yaw roll, mirror and colour jitter; aug_seed: seed
of the augmentation stream; aux_targets: "grad" and "edge_distance" targets for the auxiliary heads.

Samples follow the dataset-sample contract (see training.data). Index keys larger than len(dataset) are allowed:
key % len picks the panorama and key seeds its augmentation, so a sampler that enumerates a stream of keys makes
every epoch's augmentation different yet reproducible (used for exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from training.config import validate
from training.data.targets import edge_distance, image_gradient

__all__ = ["Config", "SyntheticPanoramas", "augment", "edge_distance", "from_config", "image_gradient", "to_sample"]


@dataclass(kw_only=True)
class Config:
    """Keys of kind "synthetic"."""

    kind: Literal["synthetic"] = "synthetic"
    root: str | None = None  # a folder of stored samples; None = render seed..seed+count-1 on the fly
    seed: int = 0
    count: int = 100
    size: list[int] | None = None  # [H, W]; needed without root (train.py: the model's input size)
    scene_kind: Literal["auto", "indoor", "outdoor"] = "auto"
    augment: bool = False
    aug_seed: int = 0
    aux_targets: bool = True
    domain_randomization: bool = False  # randomised appearance of the procedural scenes
    dr_strength: float = 1.0  # how strong the domain randomisation is (1 = the default range)


def to_sample(rgb: np.ndarray, depth: np.ndarray, normals: np.ndarray, semantic: np.ndarray,
              aux_targets: bool = True) -> dict[str, torch.Tensor]:
    """Numpy ERP ground truth (rgb (H,W,3) uint8, depth (H,W) m, normals (H,W,3), semantic (H,W)) -> sample dict."""
    img = rgb.astype(np.float32) / 255.0
    depth = depth.astype(np.float32)
    normals = normals.astype(np.float32)
    nmask = np.linalg.norm(normals, axis=-1) > 0.5
    out = {
        "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
        "depth": torch.from_numpy(depth[None].copy()),
        "depth_mask": torch.from_numpy((depth > 0)[None].copy()),
        "normals": torch.from_numpy(np.ascontiguousarray(normals.transpose(2, 0, 1))),
        "normals_mask": torch.from_numpy(nmask[None].copy()),
        "semantic": torch.from_numpy(semantic.astype(np.int64)),
    }
    out["depth_affine"] = torch.tensor(False)
    if aux_targets:
        out["grad"] = torch.from_numpy(image_gradient(img))
        out["edge_distance"] = torch.from_numpy(edge_distance(semantic, depth))
    return out


def augment(rgb: np.ndarray, depth: np.ndarray, normals: np.ndarray, semantic: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random yaw (column roll; normals rotated with it), mirror (y -> -y) and brightness/contrast/colour jitter.
    All exact for ERP ground truth."""
    H, W = depth.shape
    k = int(rng.integers(W))
    rgb, depth, semantic = np.roll(rgb, k, 1), np.roll(depth, k, 1), np.roll(semantic, k, 1)
    # rolling right by k shows the content of longitude lon + delta at lon: vectors rotate by Rz(-delta)
    delta = 2 * np.pi * k / W
    c, s = np.cos(delta), np.sin(delta)
    n = np.roll(normals, k, 1).astype(np.float32)
    n = np.stack([c * n[..., 0] + s * n[..., 1], -s * n[..., 0] + c * n[..., 1], n[..., 2]], -1)
    if rng.random() < 0.5:  # mirror: u -> W-1-u is lon -> -lon, i.e. y -> -y
        rgb, depth, semantic, n = rgb[:, ::-1], depth[:, ::-1], semantic[:, ::-1], n[:, ::-1] * np.float32([1, -1, 1])
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3)
    bias = rng.uniform(-0.06, 0.06)
    img = np.clip((rgb.astype(np.float32) / 255.0 - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + bias, 0, 1) * gain
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(depth), np.ascontiguousarray(n), np.ascontiguousarray(
        semantic)


def _resize(r: dict[str, np.ndarray], hw: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = hw
    if r["depth"].shape == (h, w):
        return r
    near = cv2.INTER_NEAREST
    n = cv2.resize(np.asarray(r["normals"], np.float32), (w, h), interpolation=near)
    return {"rgb": cv2.resize(r["rgb"], (w, h), interpolation=cv2.INTER_AREA),
            "depth": cv2.resize(r["depth"], (w, h), interpolation=near),
            "normals": n, "semantic": cv2.resize(r["semantic"], (w, h), interpolation=near)}


class SyntheticPanoramas(Dataset):
    """Procedural ERP panoramas with exact depth, normals and ADE20K labels. cfg: Config or its dict."""

    def __init__(self, cfg: dict | Config):
        cfg = validate(Config, cfg, "synthetic")
        self.cfg = cfg
        self.size = tuple(cfg.size) if cfg.size else None
        self.augment = cfg.augment
        self.aug_seed = cfg.aug_seed
        self.aux_targets = cfg.aux_targets
        self.kind = cfg.scene_kind
        if cfg.root:
            root = Path(cfg.root)
            self.files = sorted((root / "samples").glob("*.npz"))
            self.files = [f for f in self.files if not f.name.endswith(".tmp.npz")]
            if not self.files:
                raise FileNotFoundError(f"no samples/*.npz under {root}; write some with "
                                        f"`python -m training.synthetic --out {root} --count N`")
            self.seeds = None
        else:
            if self.size is None:
                raise ValueError("synthetic dataset without 'root' needs 'size': [H, W] (and 'seed', 'count')")
            self.files = None
            self.seeds = list(range(cfg.seed, cfg.seed + cfg.count))
            self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.seeds)

    def raw(self, index: int) -> dict[str, np.ndarray]:
        """Panorama `index` as numpy: rgb (H,W,3) uint8, depth (H,W) m, normals (H,W,3), semantic (H,W) uint8."""
        if self.files is not None:
            with np.load(self.files[index]) as z:
                r = {k: z[k] for k in ("rgb", "depth", "normals", "semantic")}
        else:
            if index not in self._cache:
                from training.synthetic import make_scene, render_erp

                self._cache[index] = render_erp(make_scene(self.seeds[index], self.kind), *self.size)
            r = self._cache[index]
        return _resize(r, self.size) if self.size is not None else r

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        key = int(key)
        r = self.raw(key % len(self))
        rgb, depth, normals, semantic = r["rgb"], r["depth"], np.asarray(r["normals"], np.float32), r["semantic"]
        if self.augment:
            rgb, depth, normals, semantic = augment(rgb, depth, normals, semantic,
                                                    np.random.default_rng([self.aug_seed, key]))
        if self.cfg.domain_randomization:
            from training.synthetic.appearance import randomize_appearance

            rgb = randomize_appearance(rgb, semantic, np.random.default_rng([self.aug_seed, key, 1]),
                                       self.cfg.dr_strength)
        return to_sample(rgb, depth, normals, semantic, self.aux_targets)


def from_config(cfg: dict | Config) -> SyntheticPanoramas:
    """build_dataset factory: cfg = {"kind": "synthetic", ...} (keys: Config)."""
    return SyntheticPanoramas(cfg)

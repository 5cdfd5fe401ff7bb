"""Stanford 2D-3D-S equirectangular panoramas (the official release layout).

    ROOT/area_<1|2|3|4|5a|5b|6>/pano/
        rgb/camera_<uuid>_<room>_frame_equirectangular_domain_rgb.png
        depth/..._domain_depth.png        uint16, 1/512 m per unit, 65535 = missing; radial distance for panoramas
        semantic/..._domain_semantic.png  RGB = 24-bit index into assets/semantic_labels.json; #0D0D0D = missing
        normal/..._domain_normals.png     (n + 1) / 2 * 255 in the global frame, #808080 = missing
    ROOT/assets/semantic_labels.json      ["<UNK>_0_<UNK>_0_0", "ceiling_1_hallway_1_1", ...] (class = text before
                                          the first underscore)

Facts from the dataset README (github alexsax/2D-3D-Semantics). The 13 classes map to ADE20K-150 where it has
them (ceiling, floor, wall, column, windowpane, door, table, chair, sofa, bookcase); beam, board, clutter and
unknown are ignored. Folds: the common fold 1 (train areas 1,2,3,4,6; val 5a,5b) or pass `areas`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.config import validate
from training.data.panorama_files import IGNORE, FilesConfig, PanoramaFilesDataset, read_raw

CLASS_TO_ADE20K = {"ceiling": 5, "floor": 3, "wall": 0, "column": 42, "window": 8, "door": 14, "table": 15,
                   "chair": 19, "sofa": 23, "bookcase": 62}
FOLDS = {"train": ("area_1", "area_2", "area_3", "area_4", "area_6"), "val": ("area_5a", "area_5b")}
DEPTH_UNITS_PER_M = 512.0
DEPTH_MISSING = 65535


def decode_semantic_rgb(rgb: np.ndarray, index_to_ade: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 RGB-encoded label index -> (H,W) uint8 ADE20K ids (missing / unknown -> 255)."""
    idx = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2].astype(np.int64)
    ok = idx < len(index_to_ade)
    return np.where(ok, index_to_ade[np.where(ok, idx, 0)], IGNORE).astype(np.uint8)


@dataclass(kw_only=True)
class Config(FilesConfig):
    """Keys of kind "stanford2d3d" (plus FilesConfig's)."""

    kind: Literal["stanford2d3d"] = "stanford2d3d"
    split: Literal["train", "val"] = "train"  # fold 1, see FOLDS
    areas: list[str] | None = None  # e.g. ["area_1", "area_5a"] (instead of split)


class Stanford2D3DDataset(PanoramaFilesDataset):
    """Stanford 2D-3D-S panoramas. cfg: a Config, its dict or the root folder, plus keyword options
    (see training.data.as_config)."""

    def __init__(self, cfg: Config | dict | str | Path, **options):
        from training.data import as_config

        cfg = as_config(Config, cfg, options, "stanford2d3d")
        super().__init__(cfg)
        areas = list(cfg.areas) if cfg.areas is not None else list(FOLDS[cfg.split])
        labels_path = self.root / "assets" / "semantic_labels.json"
        names = json.loads(labels_path.read_text()) if labels_path.is_file() else []
        self.index_to_ade = np.array([CLASS_TO_ADE20K.get(n.split("_")[0], IGNORE) for n in names] or [IGNORE],
                                     np.uint8)
        for area in areas:
            for rgb in sorted((self.root / area / "pano" / "rgb").glob("*_rgb.png")):
                stem = rgb.name[: -len("_rgb.png")]
                rec = {"rgb": rgb, "depth": self.root / area / "pano" / "depth" / f"{stem}_depth.png",
                       "semantic": self.root / area / "pano" / "semantic" / f"{stem}_semantic.png",
                       "normal": self.root / area / "pano" / "normal" / f"{stem}_normals.png",
                       "name": f"{area}/{stem}"}
                if not rec["depth"].is_file():
                    continue
                if not rec["semantic"].is_file() or not names:
                    rec["semantic"] = None
                self.records.append(rec)
        if not self.records:
            raise FileNotFoundError(f"no Stanford2D3D panoramas under {self.root} for areas {areas}; expected "
                                    "area_N/pano/rgb/*_rgb.png with depth/ beside it")

    def read_depth(self, rec: dict) -> np.ndarray:
        raw = read_raw(rec["depth"])
        return np.where(raw == DEPTH_MISSING, 0.0, raw.astype(np.float32) / DEPTH_UNITS_PER_M).astype(np.float32)

    def read_semantic(self, rec: dict) -> np.ndarray:
        return decode_semantic_rgb(read_raw(rec["semantic"])[..., :3], self.index_to_ade)


def from_config(cfg: dict | Config) -> Stanford2D3DDataset:
    """build_dataset factory: cfg = {"kind": "stanford2d3d", "root": DIR, ...} (keys: Config)."""
    return Stanford2D3DDataset(validate(Config, cfg, "stanford2d3d"))

"""Structured3D panoramas (the official release layout).

    ROOT/scene_XXXXX/2D_rendering/<roomID>/panorama/<full|simple|empty>/
        rgb_rawlight.png | rgb_coldlight.png | rgb_warmlight.png   RGB, 512x1024
        depth.png       uint16 millimetres, 0 = invalid (distance from the panorama centre)
        semantic.png    NYU-40 ids (1..40, 0 = unlabelled), palette PNG
        normal.png      (n + 1) / 2 * 255 (world frame of the scene; see panorama_files for how normals are used)

Facts from the dataset's data_organization.md and the MTPano loader (depth / 1000 -> metres; semantic id - 1,
0 -> ignore, i.e. NYU-40). Semantics are mapped NYU-40 -> ADE20K-150 (panorama_files.NYU40_TO_ADE20K).
Splits: the usual scene ranges (train 0-2999, val 3000-3249, test 3250-3499), or pass `scenes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.config import validate
from training.data.panorama_files import (
    NYU40_TO_ADE20K,
    FilesConfig,
    PanoramaFilesDataset,
    label_ids,
    lut_from_map,
    read_raw,
)

SPLITS = {"train": (0, 3000), "val": (3000, 3250), "test": (3250, 3500), "all": (0, 10**6)}


@dataclass(kw_only=True)
class Config(FilesConfig):
    """Keys of kind "structured3d" (plus FilesConfig's)."""

    kind: Literal["structured3d"] = "structured3d"
    split: Literal["train", "val", "test", "all"] = "train"  # scene ranges, see SPLITS
    config: Literal["full", "simple", "empty"] = "full"  # furniture configuration
    light: Literal["raw", "cold", "warm"] = "raw"
    scenes: list[int] | None = None  # scene ids to keep (instead of split)


class Structured3DDataset(PanoramaFilesDataset):
    """Structured3D panoramas. cfg: a Config, its dict or the root folder, plus keyword options
    (see training.data.as_config)."""

    def __init__(self, cfg: Config | dict | str | Path, **options):
        from training.data import as_config

        cfg = as_config(Config, cfg, options, "structured3d")
        super().__init__(cfg)
        split, config, light, scenes = cfg.split, cfg.config, cfg.light, cfg.scenes
        lo, hi = SPLITS[split]
        self.lut = lut_from_map(NYU40_TO_ADE20K)
        for scene_dir in sorted(self.root.glob("scene_*")):
            try:
                sid = int(scene_dir.name.split("_")[1])
            except (IndexError, ValueError):
                continue
            if (scenes is not None and sid not in scenes) or (scenes is None and not lo <= sid < hi):
                continue
            for pano in sorted(scene_dir.glob(f"2D_rendering/*/panorama/{config}")):
                rgb = pano / f"rgb_{light}light.png"
                if rgb.is_file() and (pano / "depth.png").is_file():
                    self.records.append({"rgb": rgb, "depth": pano / "depth.png",
                                         "semantic": pano / "semantic.png" if (pano / "semantic.png").is_file()
                                         else None, "normal": pano / "normal.png",
                                         "name": f"{scene_dir.name}/{pano.parent.parent.name}"})
        if not self.records:
            raise FileNotFoundError(f"no Structured3D panoramas under {self.root} (split {split}, config {config}); "
                                    "expected scene_XXXXX/2D_rendering/<room>/panorama/<config>/rgb_<light>light.png")

    def read_depth(self, rec: dict) -> np.ndarray:
        return read_raw(rec["depth"]).astype(np.float32) / 1000.0

    def read_semantic(self, rec: dict) -> np.ndarray:
        return self.lut[label_ids(rec["semantic"]).clip(0, 255)]


def from_config(cfg: dict | Config) -> Structured3DDataset:
    """build_dataset factory: cfg = {"kind": "structured3d", "root": DIR, ...} (keys: Config)."""
    return Structured3DDataset(validate(Config, cfg, "structured3d"))

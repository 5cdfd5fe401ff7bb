"""Matterport3D panoramas, in the two layouts panorama work uses.

layout "mtpano" (MTPano's processed release; facts from its data/matterport3d.py):
    ROOT/mp3d_results_panoramas/<scan>/<viewpoint>_panorama.jpg
    ROOT/mp3d_aligned_labels/<scan>/depth/<viewpoint>_depth.png        uint16 millimetres (depth > 10 m invalid)
    ROOT/mp3d_aligned_labels/<scan>/semantic/<viewpoint>_semantic.png  class id + 1 (0 = unlabelled)
    ROOT/mp3d_aligned_labels/<scan>/normal/<viewpoint>_normal.png      (n + 1) / 2 * 255, #808080 invalid
layout "list" (the 360 depth benchmarks' stitched panoramas, e.g. UniFuse/BiFuse): a text file of
    "<rgb path> <depth path>" lines relative to ROOT; depth uint16 in 1/4000 m units (what those loaders divide by).

Semantic ids are read as Matterport's mpcat40 (1..40) and mapped to ADE20K-150 (`label_set="nyu40"` for
NYU-40 labelled copies). `depth_units_per_m` overrides the layout's default scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.config import validate
from training.data.panorama_files import (
    MPCAT40_TO_ADE20K,
    NYU40_TO_ADE20K,
    FilesConfig,
    PanoramaFilesDataset,
    label_ids,
    lut_from_map,
    read_raw,
)

DEFAULT_UNITS = {"mtpano": 1000.0, "list": 4000.0}


@dataclass(kw_only=True)
class Config(FilesConfig):
    """Keys of kind "matterport3d" (plus FilesConfig's)."""

    kind: Literal["matterport3d"] = "matterport3d"
    layout: Literal["mtpano", "list"] = "mtpano"
    list_file: str | None = None  # layout "list": lines "<rgb> <depth>" relative to root
    scans: list[str] | None = None  # scan ids to keep (splits are per scan)
    label_set: Literal["mpcat40", "nyu40"] = "mpcat40"
    depth_units_per_m: float | None = None  # None: the layout's default (DEFAULT_UNITS)


class Matterport3DDataset(PanoramaFilesDataset):
    """Matterport3D panoramas. cfg: a Config, its dict or the root folder, plus keyword options
    (see training.data.as_config)."""

    def __init__(self, cfg: Config | dict | str | Path, **options):
        from training.data import as_config

        cfg = as_config(Config, cfg, options, "matterport3d")
        super().__init__(cfg)
        layout, list_file, scans = cfg.layout, cfg.list_file, cfg.scans
        label_set, depth_units_per_m = cfg.label_set, cfg.depth_units_per_m
        self.units = float(depth_units_per_m or DEFAULT_UNITS[layout])
        self.lut = lut_from_map(MPCAT40_TO_ADE20K if label_set == "mpcat40" else NYU40_TO_ADE20K)
        if layout == "mtpano":
            labels = self.root / "mp3d_aligned_labels"
            for img in sorted((self.root / "mp3d_results_panoramas").glob("*/*_panorama.jpg")):
                scan, vp = img.parent.name, img.name[: -len("_panorama.jpg")]
                if scans is not None and scan not in scans:
                    continue
                rec = {"rgb": img, "depth": labels / scan / "depth" / f"{vp}_depth.png",
                       "semantic": labels / scan / "semantic" / f"{vp}_semantic.png",
                       "normal": labels / scan / "normal" / f"{vp}_normal.png", "name": f"{scan}/{vp}"}
                if not rec["depth"].is_file():
                    continue
                rec["semantic"] = rec["semantic"] if rec["semantic"].is_file() else None
                self.records.append(rec)
        else:
            if list_file is None:
                raise ValueError("layout='list' needs list_file (lines '<rgb> <depth>' relative to root)")
            for line in Path(list_file).read_text().splitlines():
                parts = line.split()
                if len(parts) < 2:
                    continue
                rgb, dep = self.root / parts[0], self.root / parts[1]
                if scans is not None and not any(s in parts[0] for s in scans):
                    continue
                self.records.append({"rgb": rgb, "depth": dep, "semantic": None, "normal": None,
                                     "name": Path(parts[0]).stem})
        if not self.records:
            raise FileNotFoundError(f"no Matterport3D panoramas found under {self.root} (layout {layout})")

    def read_depth(self, rec: dict) -> np.ndarray:
        return read_raw(rec["depth"]).astype(np.float32) / self.units

    def read_semantic(self, rec: dict) -> np.ndarray:
        return self.lut[label_ids(rec["semantic"]).clip(0, 255)]


def from_config(cfg: dict | Config) -> Matterport3DDataset:
    """build_dataset factory: cfg = {"kind": "matterport3d", "root": DIR, ...} (keys: Config)."""
    return Matterport3DDataset(validate(Config, cfg, "matterport3d"))

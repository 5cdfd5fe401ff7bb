"""Priors that hold on real photographs because gravity does (for samples without geometric ground truth).

For a level camera (panorama z up, REP 103) and per-pixel ADE20K labels (from a teacher):
- ground classes (floor, road, grass, ...; ``mtpano_ros.geometry.ground.GROUND_CLASSES``) can only be seen below
  the horizon and ceilings only above it: labels on the wrong side are set to ignore;
- ground surfaces face up: normal (0, 0, 1); ceilings face down: (0, 0, -1) (normals point towards the camera);
- walls, buildings, doors and windows are vertical: their normal has no z component ("vertical_mask", used by
  the ``loss.gravity`` term). Seen more than POLAR_LAT_DEG above or below the horizon they are implausible (a
  wall that close to the camera's vertical axis would have to be within arm's reach): perspective teachers call
  plain ceilings and floors seen straight on "wall", so such labels become ignore and get no vertical mask;
- sky is never below the horizon: sky labels there become ignore;
- straight down (more than NADIR_LAT_DEG below the horizon) a camera on a robot or tripod sees the floor or
  ground under it: normal (0, 0, 1) where no normal target exists;
- with a known camera height h (metres above the floor), a ground pixel at latitude lat < 0 lies at radial depth
  h / sin(-lat).
"""

from __future__ import annotations

import math

import torch

from mtpano_ros.geometry import pixel_to_lonlat
from mtpano_ros.geometry.ground import GROUND_CLASSES
from mtpano_ros.labels import SKY_ID

CEILING = 5
VERTICAL_CLASSES = (0, 1, 8, 14, 25, 42)  # wall, building, windowpane, door, house, column
HORIZON_MARGIN_DEG = 3.0  # labels this close to the horizon are left alone
POLAR_LAT_DEG = 50.0  # vertical-class labels beyond this latitude (either pole) are dropped
NADIR_LAT_DEG = 65.0  # below this latitude the surface under the camera faces up
MIN_DEPTH_LAT_DEG = 8.0  # ground depth from the camera height only this far below the horizon (grazing rays)


def _isin(sem: torch.Tensor, ids: tuple[int, ...]) -> torch.Tensor:
    return torch.isin(sem, torch.tensor(ids, dtype=sem.dtype))


def apply_gravity_priors(sample: dict, camera_height_m: float | None = None) -> dict:
    """Gravity priors on one sample (see the module doc); returns a new dict.

    sample: "semantic" (H, W) int64 (255 ignore), "normals" (3, H, W), "normals_mask" (1, H, W) bool, "depth"
    (1, H, W) radial metres, "depth_mask" (1, H, W) bool (all in the panorama frame, level camera). Existing normal
    and depth targets are kept; priors fill only where those masks are False. Adds "vertical_mask" (1, H, W) bool.
    """
    out = dict(sample)
    sem = sample["semantic"].clone()
    h, w = sem.shape
    rows = torch.arange(h, dtype=torch.float32)
    lat = pixel_to_lonlat(torch.zeros_like(rows), rows, h, w)[1]  # (H,) row-centre latitudes
    lat_hw = lat[:, None].expand(h, w)
    margin = math.radians(HORIZON_MARGIN_DEG)
    ground = _isin(sem, GROUND_CLASSES)
    ceiling = sem == CEILING
    sem[ground & (lat_hw > -margin)] = 255
    sem[ceiling & (lat_hw < margin)] = 255
    sem[(sem == SKY_ID) & (lat_hw < -margin)] = 255
    sem[_isin(sem, VERTICAL_CLASSES) & (lat_hw.abs() > math.radians(POLAR_LAT_DEG))] = 255
    ground = ground & (lat_hw <= -margin)
    ceiling = ceiling & (lat_hw >= margin)
    out["semantic"] = sem
    nmask = sample["normals_mask"][0]
    normals = sample["normals"].clone()
    up = ground | ((lat_hw < -math.radians(NADIR_LAT_DEG)) & ~ceiling)
    fill_g, fill_c = up & ~nmask, ceiling & ~nmask
    normals[:, fill_g] = torch.tensor([0.0, 0.0, 1.0])[:, None]
    normals[:, fill_c] = torch.tensor([0.0, 0.0, -1.0])[:, None]
    out["normals"] = normals
    out["normals_mask"] = (nmask | fill_g | fill_c)[None]
    out["vertical_mask"] = _isin(sem, VERTICAL_CLASSES)[None]
    if camera_height_m is not None and camera_height_m > 0:
        dmask = sample["depth_mask"][0]
        far = lat_hw < -math.radians(MIN_DEPTH_LAT_DEG)
        fill_d = ground & far & ~dmask
        depth = sample["depth"].clone()
        depth[0][fill_d] = (float(camera_height_m) / torch.sin(-lat_hw))[fill_d]
        out["depth"] = depth
        out["depth_mask"] = (dmask | fill_d)[None]
    return out

"""Targets of the auxiliary heads, computed from a sample's image and labels (every dataset kind adds them).

"grad" (2,H,W): central differences of the grey image along x (wrapping, ERP) and y; "edge_distance" (1,H,W) in
[0, 1]: distance in pixels to the nearest label boundary or depth jump, divided by EDGE_DISTANCE_MAX_PX.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

EDGE_DISTANCE_MAX_PX = 16.0


def image_gradient(rgb: np.ndarray) -> np.ndarray:
    """(H,W,3) float [0,1] -> (2,H,W) float32 central differences of the grey image along x (wrapping) and y."""
    g = rgb.mean(-1)
    gx = 0.5 * (np.roll(g, -1, 1) - np.roll(g, 1, 1))
    gy = np.zeros_like(g)
    gy[1:-1] = 0.5 * (g[2:] - g[:-2])
    return np.stack([gx, gy]).astype(np.float32)


def edge_distance(semantic: np.ndarray, depth: np.ndarray, max_px: float = EDGE_DISTANCE_MAX_PX) -> np.ndarray:
    """(H,W) ids and (H,W) depth in metres -> (1,H,W) float32 in [0,1]: distance in pixels to the nearest label
    boundary or depth jump (> 5 %), / max_px. Horizontal neighbours wrap (ERP)."""
    edge = np.zeros(semantic.shape, bool)
    for ax in (0, 1):
        s1 = np.roll(semantic, -1, ax)
        d1 = np.roll(depth, -1, ax)
        jump = (semantic != s1) | (np.abs(depth - d1) > 0.05 * np.maximum(np.minimum(depth, d1), 1e-3))
        if ax == 0:
            jump[-1] = False
        edge |= jump
    if not edge.any():
        return np.ones((1,) + semantic.shape, np.float32)
    dist = distance_transform_edt(~edge)
    return (np.minimum(dist, max_px) / max_px).astype(np.float32)[None]


def add_aux_targets(sample: dict, depth_key: str = "depth") -> dict:
    """Sample dict with "grad" and "edge_distance" added, from its (final, augmented) "image" (3,H,W), "semantic"
    (H,W) and sample[depth_key] (1,H,W) metres."""
    sample["grad"] = torch.from_numpy(image_gradient(sample["image"].permute(1, 2, 0).numpy()))
    sample["edge_distance"] = torch.from_numpy(edge_distance(sample["semantic"].numpy(),
                                                             sample[depth_key][0].numpy()))
    return sample

"""Training datasets. `build_dataset(cfg)` dispatches on cfg["kind"]; every dataset returns samples with the keys
of the dataset-sample contract: "image" (3,H,W) float32 [0,1]; "depth" (1,H,W) float32 radial metres (0 invalid);
"depth_mask" (1,H,W) bool; "normals" (3,H,W) float32 panorama frame; "normals_mask" (1,H,W) bool; "semantic" (H,W)
int64 ADE20K ids (255 ignore). Extra keys are allowed.
"""

from __future__ import annotations

import importlib

from torch.utils.data import Dataset

# kind -> "module:factory"; the factory takes the cfg dict (imported lazily so optional dependencies stay optional)
DATASETS: dict[str, str] = {
    "synthetic": "training.data.synthetic:SyntheticPanoramas",
    "pseudo_labels": "training.data.pseudo_labels:from_config",
    "structured3d": "training.data.structured3d:from_config",
    "stanford2d3d": "training.data.stanford2d3d:from_config",
    "matterport3d": "training.data.matterport3d:from_config",
}


def build_dataset(cfg: dict) -> Dataset:
    """Dataset for cfg = {"kind": <name>, ...kind-specific keys}. Known kinds: see DATASETS."""
    kind = cfg.get("kind") if isinstance(cfg, dict) else None
    if kind not in DATASETS:
        raise ValueError(f"dataset config needs 'kind' in {sorted(DATASETS)}; got {kind!r} (cfg={cfg!r})")
    module, name = DATASETS[kind].split(":")
    return getattr(importlib.import_module(module), name)(cfg)

"""Training samples from a pseudo-label store (made by training/pseudo_label.py), MTPano's released recipe.

Each sample is one panorama. Depth is supervised on ONE randomly chosen view's spherical patch only (the
teacher's z-depth pasted onto the ERP grid as radial depth, masked to the patch); semantics and normals come
from the merged (fused) labels, masked where their fusion confidence is below a threshold. `depth="merged"`
uses the fused depth instead (MTPano does so for its first 1000 iterations and during warm-up).

Sample keys (the dataset-sample contract): "image" (3,H,W) float32 [0,1]; "depth" (1,H,W) float32 radial m, 0
where unsupervised; "depth_mask" (1,H,W) bool; "normals" (3,H,W) float32 panorama frame; "normals_mask" (1,H,W)
bool; "semantic" (H,W) int64 (255 ignore). Extra: "semantic_conf" (H,W) float32, "view_index" int64,
"depth_affine" bool (True when the teacher's depth is only affine-invariant: use the SSI depth loss).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mtpano_ros.geometry import perspective_depth_to_erp
from training.config import validate

CAM_KEYS = ("yaw_deg", "pitch_deg", "roll_deg", "fov_deg")


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read {path}")
    return np.ascontiguousarray(img[..., ::-1])


def yaw_roll(sample: dict, shift: int) -> dict:
    """Rotate a sample about the vertical axis by rolling its columns by `shift` (wrap-around).

    new[:, u] = old[:, u - shift], i.e. the scene turns by -shift * 360/W degrees of longitude; normals rotate
    with it (about +z). Applies to every (.., H, W) tensor in the sample.
    """
    if shift == 0:
        return sample
    out = {}
    for k, v in sample.items():
        out[k] = torch.roll(v, shifts=shift, dims=-1) if isinstance(v, torch.Tensor) and v.dim() >= 2 else v
    W = sample["image"].shape[-1]
    a = -2.0 * math.pi * shift / W
    c, s = math.cos(a), math.sin(a)
    n = out["normals"]
    out["normals"] = torch.stack((c * n[0] - s * n[1], s * n[0] + c * n[1], n[2]))
    return out


def mirror(sample: dict) -> dict:
    """Left-right mirror of a panorama sample: new[:, u] = old[:, W-1-u]; normals' y component flips (REP 103)."""
    out = {k: (torch.flip(v, dims=(-1,)) if isinstance(v, torch.Tensor) and v.dim() >= 2 else v)
           for k, v in sample.items()}
    n = out["normals"].clone()
    n[1] = -n[1]
    out["normals"] = n
    return out


@dataclass(kw_only=True)
class Config:
    """Keys of kind "pseudo_labels"."""

    kind: Literal["pseudo_labels"] = "pseudo_labels"
    root: str  # the store directory
    size: list[int] | None = None  # [H, W] of the samples; None = the store's erp_hw (train.py: the model's)
    depth: Literal["patch", "merged"] = "patch"  # one random view's patch, or the fused depth
    min_semantic_conf: float = 0.3  # fused labels below these confidences are ignored
    min_normals_conf: float = 0.5
    augment: bool = True  # random yaw rotation, mirroring and colour jitter
    aug_seed: int = 0
    items: list[str] | None = None  # item ids to use (e.g. a split); None = all finished items
    aux_targets: bool = True  # "grad" and "edge_distance" (from the fused labels) for the auxiliary heads
    # > 0: re-list the store's finished items at most this often (seconds), so training can start while
    # pseudo_label.py still fills the store (the sample stream then depends on timing: no exact resume)
    rescan_s: float = 0.0
    # gravity priors (training.data.gravity): ground/ceiling labels only below/above the horizon, their normals
    # +z/-z, "vertical_mask" for walls, ground depth from item.json's camera_height_m when it has one
    gravity_prior: bool = False


class PseudoLabelDataset(Dataset):
    """Samples from a pseudo-label store (cfg: a Config, its dict, or the store folder, plus keyword options; see
    training.data.as_config). See the module doc.

    Index keys may exceed len(dataset): key % len picks the panorama and key (with aug_seed) seeds the view choice
    and the augmentation, so a stream of keys is reproducible (exact resume). "depth_affine" comes from the
    store's meta.json ("depth_kind" other than "metric"): the loss then aligns scale and shift first.
    """

    def __init__(self, cfg: Config | dict | str | Path, **options):
        from training.data import as_config

        cfg = as_config(Config, cfg, options, "pseudo_labels")
        self.cfg = cfg
        root, out_hw, depth, items = cfg.root, cfg.size, cfg.depth, cfg.items
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a pseudo-label store (no meta.json); make one with "
                                    "`python -m training.pseudo_label --out DIR ...`")
        self.meta = json.loads(meta_path.read_text())
        self.depth_mode = depth
        self.erp_hw = tuple(self.meta["erp_hw"])
        self.out_hw = tuple(out_hw) if out_hw else self.erp_hw
        self.min_semantic_conf = cfg.min_semantic_conf
        self.min_normals_conf = cfg.min_normals_conf
        self.augment = cfg.augment
        self.aux_targets = cfg.aux_targets
        self.aug_seed = cfg.aug_seed
        self.depth_affine = self.meta.get("depth_kind", "metric") != "metric"
        self.fixed_items = items is not None
        self.rescan_s = cfg.rescan_s
        self._scanned = time.monotonic()
        self.items = list(items) if items is not None else self._scan()
        if not self.items:
            raise RuntimeError(f"{self.root} holds no finished items")

    def _scan(self) -> list[str]:
        return sorted(p.parent.name for p in (self.root / "items").glob("*/item.json"))

    def __len__(self) -> int:
        return len(self.items)

    def _resize(self, x: np.ndarray, nearest: bool) -> np.ndarray:
        import cv2

        H, W = self.out_hw
        if x.shape[:2] == (H, W):
            return x
        if nearest:
            return cv2.resize(x, (W, H), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(x, (W, H), interpolation=cv2.INTER_AREA if x.shape[1] > W else cv2.INTER_LINEAR)

    def __getitem__(self, key: int) -> dict:
        key = int(key)
        if self.rescan_s > 0 and not self.fixed_items and time.monotonic() - self._scanned > self.rescan_s:
            self.items, self._scanned = self._scan(), time.monotonic()
        rng = np.random.default_rng([self.aug_seed, key])
        d = self.root / "items" / self.items[key % len(self.items)]
        rgb = self._resize(_read_rgb(d / "image.png"), nearest=False)
        if self.augment:  # brightness / contrast / colour jitter
            img = (rgb.astype(np.float32) / 255.0 - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.06, 0.06)
            img = np.clip(img, 0, 1) * (rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3))
            rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        with np.load(d / "merged.npz") as m:
            merged = {k: m[k] for k in m.files}
        H, W = self.out_hw
        sample = {"image": torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0}
        if "semantic" in merged:
            sem = self._resize(merged["semantic"], nearest=True).astype(np.int64)
            conf = self._resize(merged["semantic_conf"].astype(np.float32), nearest=True)
            sem = np.where(conf >= self.min_semantic_conf, sem, 255)
            sample["semantic"] = torch.from_numpy(sem)
            sample["semantic_conf"] = torch.from_numpy(conf.astype(np.float32))
        else:
            sample["semantic"] = torch.full((H, W), 255, dtype=torch.int64)
            sample["semantic_conf"] = torch.zeros(H, W)
        if "normals" in merged:
            n = self._resize(merged["normals"].astype(np.float32), nearest=True)
            nconf = self._resize(merged["normals_conf"].astype(np.float32), nearest=True)
            nmask = (nconf >= self.min_normals_conf) & (np.abs(n).sum(-1) > 0)
            sample["normals"] = torch.from_numpy(np.where(nmask[..., None], n, 0.0)).permute(2, 0, 1).float()
            sample["normals_mask"] = torch.from_numpy(nmask)[None]
        else:
            sample["normals"] = torch.zeros(3, H, W)
            sample["normals_mask"] = torch.zeros(1, H, W, dtype=torch.bool)
        view_index = -1
        if "depth" in merged:
            dep = torch.from_numpy(self._resize(merged["depth"].astype(np.float32), nearest=True))[None]
        else:
            dep = torch.zeros(1, H, W)
        sample["merged_depth"], sample["merged_depth_mask"] = dep, dep > 0
        if self.depth_mode == "merged":
            sample["depth"], sample["depth_mask"] = dep.clone(), dep > 0
        else:
            with np.load(d / "views.npz") as v:
                if "zdepth" not in v.files:
                    sample["depth"] = torch.zeros(1, H, W)
                    sample["depth_mask"] = torch.zeros(1, H, W, dtype=torch.bool)
                else:
                    view_index = int(rng.integers(len(v["fov_deg"])))
                    z = torch.from_numpy(v["zdepth"][view_index].astype(np.float32))[None, None, None]
                    cam = [float(v[k][view_index]) for k in CAM_KEYS]
                    r, mask = perspective_depth_to_erp(z, *cam, erp_hw=(H, W))
                    sample["depth"] = r[0, 0]
                    sample["depth_mask"] = mask[0, 0]
        sample["view_index"] = torch.tensor(view_index)
        sample["depth_affine"] = torch.tensor(self.depth_affine)
        if self.augment:
            sample = yaw_roll(sample, int(rng.integers(W)))
            if rng.random() < 0.5:
                sample = mirror(sample)
        if self.cfg.gravity_prior:  # yaw and mirror keep gravity: applied after augmentation
            from training.data.gravity import apply_gravity_priors

            item = json.loads((d / "item.json").read_text())
            sample = apply_gravity_priors(sample, item.get("camera_height_m"))
        if self.aux_targets:  # after augmentation, from the final image and labels
            from training.data.targets import add_aux_targets

            sample = add_aux_targets(sample, depth_key="merged_depth")
        return sample


def from_config(cfg: dict | Config) -> PseudoLabelDataset:
    """build_dataset factory: cfg = {"kind": "pseudo_labels", "root": STORE, ...} (keys: Config)."""
    return PseudoLabelDataset(validate(Config, cfg, "pseudo_labels"))

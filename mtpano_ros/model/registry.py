"""Model registry: ``list_models()``, ``create_model(name, **overrides)``.

Every variant is the same PD-BridgeNet (mtpano_ros.model.pdbridge); they differ in backbone size, widths and
two conventions:
- ``mtpano-vitl`` reproduces the official MTPano network exactly (DINOv3 ViT-L/16, DPT-large necks with
  BatchNorm, zero padding, the official geometry buffers and normal frame) so the released weights load and
  compute the same function. Its normals are converted to REP 103 at the output.
- ``mtpano-vits`` and ``mtpano-tiny`` are ours: horizontal wrap everywhere, REP 103 rays at token centres,
  heads trained directly in the REP 103 frame. ``mtpano-tiny`` (CPU, bundled default) uses spherical
  (360-degree periodic) RoPE and lighter necks/heads ending at a quarter of the input size before the final
  wrap-aware upsampling.
- ``mtpano-lite`` (ours, the bundled default's architecture): an ImageNet-pretrainable EfficientNet-Lite0 backbone
  (mtpano_ros.model.efficientnet, every kxk conv wrapping) whose stride-4/8/16/32 maps are projected onto the
  stride-16 grid for the same refiners, bridge, necks and heads; the native maps join the necks as skips.
  ``depth``/``num_heads``/``rope_mode`` are unused by it.
"""

from __future__ import annotations

import copy

import torch.nn as nn

import mtpano_ros

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_COMMON = {
    "num_classes": 150, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "output_frame": "rep103",
    "label_set": "ade20k-150", "patch_size": 16, "num_register_tokens": 4, "mlp_ratio": 4.0,
    "layer_norm_eps": 1e-5, "rope_theta": 100.0, "key_bias": False, "bridge_heads": 4, "semseg_head_upsample": True,
    "backbone": "dinov3",
}

_VARIANTS = {
    "mtpano-tiny": {
        "input_hw": (256, 512), "embed_dim": 96, "depth": 6, "num_heads": 3, "out_indices": (1, 2, 4, 5),
        "rope_mode": "spherical", "wrap": True, "geometry": "rep103", "head_frame": "rep103",
        "bridge_dim": 64, "neck_hidden_sizes": (24, 48, 64, 96), "reassemble_factors": (2, 1, 0.5, 0.25),
        "fusion_ch": 24, "neck_batch_norm": False, "head_hidden": 16, "semseg_head_upsample": False,
    },
    "mtpano-lite": {
        # EfficientNet-Lite's ImageNet weights expect (255 x - 127) / 128 (TF-Lite convention), not ImageNet mean/std
        "mean": (127 / 255, 127 / 255, 127 / 255), "std": (128 / 255, 128 / 255, 128 / 255),
        "input_hw": (256, 512), "backbone": "efficientnet-lite0", "embed_dim": 96, "depth": 0, "num_heads": 1,
        "out_indices": (0, 1, 2, 3), "rope_mode": "none", "wrap": True, "geometry": "rep103", "head_frame": "rep103",
        "bridge_dim": 64, "neck_hidden_sizes": (24, 48, 64, 96), "reassemble_factors": (2, 1, 0.5, 0.25),
        "fusion_ch": 24, "neck_batch_norm": False, "head_hidden": 16, "semseg_head_upsample": False,
    },
    "mtpano-vits": {
        "input_hw": (512, 1024), "embed_dim": 384, "depth": 12, "num_heads": 6, "out_indices": (2, 5, 8, 11),
        "rope_mode": "dinov3", "wrap": True, "geometry": "rep103", "head_frame": "rep103",
        "bridge_dim": 256, "neck_hidden_sizes": (48, 96, 192, 384), "reassemble_factors": (4, 2, 1, 0.5),
        "fusion_ch": 128, "neck_batch_norm": True, "head_hidden": 32,
    },
    "mtpano-vitl": {
        "input_hw": (512, 1024), "embed_dim": 1024, "depth": 24, "num_heads": 16, "out_indices": (5, 11, 17, 23),
        "rope_mode": "dinov3", "wrap": False, "geometry": "official", "head_frame": "official",
        "bridge_dim": 256, "neck_hidden_sizes": (256, 512, 1024, 1024), "reassemble_factors": (4, 2, 1, 0.5),
        "fusion_ch": 256, "neck_batch_norm": True, "head_hidden": 32,
    },
}


def list_models() -> list[str]:
    """Registered variant names, e.g. ["mtpano-tiny", "mtpano-vits", "mtpano-vitl"]."""
    return list(_VARIANTS)


def model_config(name: str, **overrides) -> dict:
    """The full config dict of variant ``name`` with ``overrides`` applied (JSON-serialisable)."""
    if name not in _VARIANTS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    cfg = {**_COMMON, **copy.deepcopy(_VARIANTS[name]), "variant": name, "version": mtpano_ros.__version__}
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise KeyError(f"unknown config keys {sorted(unknown)} for {name}; valid keys: {sorted(cfg)}")
    cfg.update(overrides)
    for k in ("input_hw", "mean", "std", "out_indices", "neck_hidden_sizes", "reassemble_factors"):
        cfg[k] = list(cfg[k])
    h, w = cfg["input_hw"]
    if h % cfg["patch_size"] or w % cfg["patch_size"]:
        raise ValueError(f"input_hw {cfg['input_hw']} must be multiples of patch_size {cfg['patch_size']}")
    return cfg


def create_model(name: str, **overrides) -> nn.Module:
    """Build variant ``name`` with fresh weights (zero-initialised injectors/modulation); ``.config`` holds the
    config (variant, input_hw, num_classes, mean, std, output_frame, version and the architecture)."""
    from mtpano_ros.model.pdbridge import PDBridgeNet

    return PDBridgeNet(model_config(name, **overrides))

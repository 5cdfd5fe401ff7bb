"""Self-describing checkpoints: ``model.safetensors`` + ``config.json`` (``save_checkpoint``) and the readers
of every checkpoint format (``load_model`` in mtpano_ros.model.resolve picks the reader for a path).

``config.json`` holds the full model config (variant, input_hw, label set, mean/std, output frame, version and
the architecture) plus any ``extra`` the caller records (e.g. training provenance). Weights may be stored as
float16 (``fp16=True``) and are always loaded as float32.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn as nn

from mtpano_ros.model.registry import list_models, model_config

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # bundled checkpoints: WEIGHTS_DIR/<name>/
BUNDLED = ("default", "tiny-labelfree", "tiny-synthetic")


def save_checkpoint(model: nn.Module, out_dir: str | Path, extra: dict | None = None, fp16: bool = False) -> Path:
    """Write ``out_dir/model.safetensors`` (float32, or float16 with ``fp16``) and ``out_dir/config.json``.

    Returns ``out_dir``. The config is ``model.config`` plus ``{"extra": extra, "weights_dtype": ...}``.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        sd[k] = v.contiguous()
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = dict(model.config)
    cfg["weights_dtype"] = "float16" if fp16 else "float32"
    if extra:
        cfg["extra"] = extra
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return out


def _build(cfg: dict) -> nn.Module:
    """Model skeleton for ``cfg`` on the meta device (no init cost); ``_load_state`` assigns real tensors."""
    from mtpano_ros.model.pdbridge import PDBridgeNet

    name = cfg.get("variant")
    if name not in list_models():
        raise ValueError(f"checkpoint config names variant {name!r}; known variants: {', '.join(list_models())}")
    arch = {k: v for k, v in cfg.items() if k not in ("extra", "weights_dtype")}
    base = model_config(name)
    unknown = set(arch) - set(base)
    if unknown:
        log.warning("ignoring unknown config keys %s in checkpoint", sorted(unknown))
    base.update({k: v for k, v in arch.items() if k in base})
    with torch.device("meta"):
        return PDBridgeNet(base)


def _load_state(model: nn.Module, sd: dict, source: str) -> None:
    """Strictly load ``sd`` (float tensors as float32) into ``model`` by assignment (works on meta skeletons)."""
    sd = {k: (v.float().contiguous() if v.is_floating_point() else v) for k, v in sd.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shape = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or shape:
        def head(x):
            return ", ".join(x[:10]) + (f" ... (+{len(x) - 10})" if len(x) > 10 else "")
        raise ValueError(
            f"{source} does not match {model.config['variant']}: {len(missing)} missing [{head(missing)}], "
            f"{len(unexpected)} unexpected [{head(unexpected)}], {len(shape)} shape mismatches [{head(shape)}]. "
            "Check that config.json names the variant the weights were trained as.")
    model.load_state_dict(sd, strict=True, assign=True)


def model_config_of(config) -> dict:
    """The model config from what a checkpoint stores under ``config``.

    Accepts a model config dict (has ``variant``: ``save_checkpoint``'s config.json), a training config dict (has
    ``model: {name, overrides}``: training/train.py) or either as YAML/JSON text (train.py stores YAML text).
    Returns a full model config (``model_config(variant, **overrides)`` for a training config).
    """
    if isinstance(config, (str, bytes)):
        import yaml

        config = yaml.safe_load(config)
    if not isinstance(config, dict):
        raise ValueError(f"checkpoint config is a {type(config).__name__}, expected a mapping (a model config with "
                         "'variant', or a training config with 'model: {name, overrides}')")
    if "variant" in config:
        return config
    mcfg = config.get("model")
    if isinstance(mcfg, dict) and "name" in mcfg:
        return model_config(mcfg["name"], **(mcfg.get("overrides") or {}))
    raise ValueError(f"checkpoint config has neither 'variant' (model config) nor 'model.name' (training config); "
                     f"its keys are {sorted(config)}")


def load_safetensors(weights_file: str | Path, config: dict) -> nn.Module:
    """Model from a ``model.safetensors`` file and its config dict (float16 weights load as float32); CPU."""
    from safetensors.torch import load_file

    model = _build(model_config_of(config))
    _load_state(model, load_file(str(weights_file)), str(weights_file))
    return model


def load_state_dict_checkpoint(obj, config: dict, source: str) -> nn.Module:
    """Model from a ``torch.load``-ed checkpoint: weights under ``model`` / ``state_dict`` or the whole dict
    (a DataParallel ``module.`` prefix is removed), architecture from ``config`` (see ``model_config_of``); CPU."""
    sd = obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                sd = obj[key]
                break
    if not isinstance(sd, dict):
        raise ValueError(f"{source} holds a {type(sd).__name__}, expected a state dict (or a dict with 'model')")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()
          if hasattr(v, "is_floating_point")}
    model = _build(model_config_of(config))
    _load_state(model, sd, source)
    return model

"""Self-describing checkpoints: ``model.safetensors`` + ``config.json``; ``load_model(name_or_path)``.

``config.json`` holds the full model config (variant, input_hw, label set, mean/std, output frame, version and
the architecture) plus any ``extra`` the caller records (e.g. training provenance). Weights may be stored as
float16 (``fp16=True``) and are always loaded as float32.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from mtpano_ros.model.registry import list_models, model_config

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
BUNDLED = ("default", "tiny-labelfree")
RANDOM_INIT_SEED = 0


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


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no config.json at {path}: a checkpoint directory needs model.safetensors and "
                                "config.json (written by mtpano_ros.model.save_checkpoint)")
    return json.loads(path.read_text())


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model in eval mode on ``device``.

    ``name_or_path`` may be:
    - a registry name ("mtpano-tiny", ...): randomly initialised with a fixed seed (a warning says so; useful
      for tests and smoke runs, not for predictions);
    - a bundled name ("default", "tiny-labelfree"): ``mtpano_ros/weights/<name>/{model.safetensors,config.json}``;
    - a checkpoint directory, a ``.safetensors`` file with ``config.json`` beside it, or a ``.pth``/``.pth.tar``
      (read with ``torch.load(weights_only=True)``; a dict with the weights under ``model``/``state_dict`` and an
      optional ``config``; a file without a config is treated as the official MTPano checkpoint).
    """
    s = str(name_or_path)
    if s in list_models():
        msg = f"load_model({s!r}): no weights loaded, random initialisation with seed {RANDOM_INIT_SEED}"
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
        from mtpano_ros.model.registry import create_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = create_model(s)
        return model.to(device).eval()
    path = Path(s)
    if s in BUNDLED:
        path = WEIGHTS_DIR / s
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"bundled weights {s!r} not found at {path}/model.safetensors. They are produced by the training "
                f"pipeline (training/train.py, then save_checkpoint into {path}); until then use a registry name "
                f"({', '.join(list_models())}) for random weights or pass a checkpoint path.")
    if path.is_dir():
        cfg = _read_config(path / "config.json")
        wfile = path / "model.safetensors"
    elif path.suffix == ".safetensors":
        cfg = _read_config(path.with_name("config.json"))
        wfile = path
    elif path.name.endswith((".pth", ".pth.tar", ".pt", ".ckpt")):
        return _load_torch_file(path).to(device).eval()
    else:
        raise FileNotFoundError(f"cannot load {s!r}: not a registered model ({', '.join(list_models())}), not a "
                                f"bundled name ({', '.join(BUNDLED)}), and not an existing directory, .safetensors "
                                "or .pth/.pth.tar file")
    from safetensors.torch import load_file

    if not wfile.is_file():
        raise FileNotFoundError(f"weights file {wfile} is missing")
    model = _build(cfg)
    _load_state(model, load_file(str(wfile)), str(wfile))
    return model.to(device).eval()


def _load_torch_file(path: Path) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    cfg = obj.get("config") if isinstance(obj, dict) else None
    if cfg is None and (path.parent / "config.json").is_file():
        cfg = _read_config(path.parent / "config.json")
    if cfg is None:
        from mtpano_ros.model.official import convert_official_state_dict

        model = _build(model_config("mtpano-vitl"))
        _load_state(model, convert_official_state_dict(obj), str(path))
        return model
    sd = obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                sd = obj[key]
                break
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    model = _build(cfg)
    _load_state(model, sd, str(path))
    return model

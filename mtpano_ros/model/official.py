"""Import the released MTPano weights (``mtpano_model_408k.pth.tar`` / ``..._140k``) as an ``mtpano-vitl`` checkpoint.

    mtpano-import-official PATH.pth.tar -o OUT_DIR [--fp16]

Key mapping official -> ours (documented, everything else is identical):
- a leading ``module.`` (DataParallel) is removed;
- ``backbone.model.layer.N.*`` (transformers 5.x naming) -> ``backbone.layer.N.*`` (transformers 4.5x naming,
  which ``mtpano-vitl`` uses).
The file is read with ``torch.load(weights_only=True)``; the weights are the dict under key ``model`` or, when
there is none, the whole object. Conversion is strict: every key must be used and every shape must match, or the
error lists the missing, unexpected and mismatched keys.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mtpano_ros.model.checkpoint import _build, _load_state, save_checkpoint
from mtpano_ros.model.registry import create_model, model_config


def convert_official_state_dict(obj) -> dict[str, torch.Tensor]:
    """Official checkpoint object (dict with ``model`` or a plain state dict) -> our ``mtpano-vitl`` key names,
    checked strictly against ``mtpano-vitl``'s state dict (names and shapes). Tensors are returned as stored."""

    if not isinstance(obj, dict):
        raise TypeError(f"expected a dict (a state dict, or a checkpoint with key 'model'), got {type(obj).__name__}")
    sd = obj["model"] if isinstance(obj.get("model"), dict) else obj
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"entry {k!r} is a {type(v).__name__}, not a tensor: is this an MTPano state dict?")
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith("backbone.model.layer."):
            k = "backbone.layer." + k[len("backbone.model.layer."):]
        if k in out:
            raise ValueError(f"duplicate key after renaming: {k!r} (both naming schemes present?)")
        out[k] = v
    with torch.device("meta"):
        ref = create_model("mtpano-vitl").state_dict()
    missing = sorted(set(ref) - set(out))
    unexpected = sorted(set(out) - set(ref))
    mism = sorted(f"{k} {tuple(out[k].shape)} != {tuple(ref[k].shape)}"
                  for k in set(ref) & set(out) if tuple(out[k].shape) != tuple(ref[k].shape))
    if missing or unexpected or mism:
        lines = [f"the checkpoint does not match mtpano-vitl (expected {len(ref)} entries, got {len(out)}):"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mism)):
            if items:
                lines.append(f"  {len(items)} {title}:")
                lines += [f"    {x}" for x in items[:40]]
                if len(items) > 40:
                    lines.append(f"    ... and {len(items) - 40} more")
        lines.append("Expected the official MTPano 408k/140k checkpoint (TransformerBaselineBFE, DINOv3 ViT-L/16).")
        raise ValueError("\n".join(lines))
    return out


def load_official(obj, source: str) -> torch.nn.Module:
    """``mtpano-vitl`` (CPU) with the weights of a ``torch.load``-ed official checkpoint object (see
    ``convert_official_state_dict``); ``source`` names the file in errors."""
    model = _build(model_config("mtpano-vitl"))
    _load_state(model, convert_official_state_dict(obj), source)
    return model


def import_official(src: str | Path, out_dir: str | Path, fp16: bool = False) -> Path:
    """Convert the official checkpoint file ``src`` to our checkpoint directory ``out_dir`` (mtpano-vitl)."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist (expected e.g. mtpano_model_408k.pth.tar)")
    try:  # memory-map the 2.4 GB file where the format allows it
        obj = torch.load(str(src), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        obj = torch.load(str(src), map_location="cpu", weights_only=True)
    model = load_official(obj, str(src))
    return save_checkpoint(model, out_dir, extra={"source": src.name, "converted_from": "official MTPano"},
                           fp16=fp16)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mtpano-import-official", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="official .pth.tar (e.g. mtpano_model_408k.pth.tar)")
    ap.add_argument("-o", "--out", required=True, help="output checkpoint directory")
    ap.add_argument("--fp16", action="store_true", help="store the weights as float16 (loaded back as float32)")
    args = ap.parse_args(argv)
    try:
        out = import_official(args.checkpoint, args.out, fp16=args.fp16)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"mtpano-import-official: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}/model.safetensors and {out}/config.json (variant mtpano-vitl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

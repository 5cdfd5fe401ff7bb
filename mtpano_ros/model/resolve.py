"""What a model string means: ``resolve(name_or_path) -> ModelSpec``, and ``load_model`` for the torch kinds.

This is the only code that classifies a model string; loading, export and every runtime backend take the spec.

    spec = resolve("default")               # ModelSpec(kind="bundled", name="default", path=.../weights/default)
    spec = resolve("runs/x/checkpoint.pt")  # kind="training_checkpoint"
    model = load_model(spec)                # eval-mode nn.Module on CPU

Kinds (checked in this order):

====================== ==================================================================================
``registry``           a registered variant name (``mtpano-tiny``, ...): deterministic random weights (warned)
``bundled``            ``default`` / ``tiny-labelfree`` / ``tiny-synthetic``: ``mtpano_ros/weights/<name>/``
``engine``             a ``.engine`` / ``.plan`` TensorRT engine (the tensorrt backend only)
``onnx``               an ``.onnx`` graph made by ``mtpano-export`` (onnxruntime / tensorrt)
``checkpoint_dir``     a folder with ``model.safetensors`` + ``config.json`` (``save_checkpoint``)
``safetensors``        a ``.safetensors`` file with ``config.json`` beside it
``training_checkpoint`` a ``.pt`` / ``.ckpt`` from ``training/train.py`` (weights under ``model``, the training
                       config as YAML text under ``config``)
``pth``                a ``.pth`` / ``.pth.tar``: weights (under ``model`` / ``state_dict`` or the whole dict) with
                       a ``config`` entry, a ``config.json`` beside it, or neither (then the official MTPano file)
====================== ==================================================================================

Every torch file is read with ``torch.load(weights_only=True)``. The package exports the function as
``mtpano_ros.model.resolve`` (it shadows this module's name there), so import from this module with
``from mtpano_ros.model.resolve import ...``.
"""

from __future__ import annotations

import difflib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from mtpano_ros.model import checkpoint as ck
from mtpano_ros.model.checkpoint import BUNDLED
from mtpano_ros.model.registry import list_models

log = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0
TORCH_KINDS = ("registry", "bundled", "checkpoint_dir", "safetensors", "training_checkpoint", "pth")
KINDS = (*TORCH_KINDS, "onnx", "engine")
_TORCH_SUFFIXES = {".pt": "training_checkpoint", ".ckpt": "training_checkpoint", ".pth": "pth", ".pth.tar": "pth"}


@dataclass(frozen=True)
class ModelSpec:
    """A classified model: ``kind`` (one of KINDS), ``name`` (a short label for logs and file names), ``path``
    (the file or folder; None for registry names) and ``source`` (the string as given)."""

    kind: str
    name: str
    path: Path | None
    source: str

    @property
    def has_weights(self) -> bool:
        """True when the spec can be loaded as a torch model (``load_model``); False for .onnx / .engine."""
        return self.kind in TORCH_KINDS

    @property
    def weights_file(self) -> Path | None:
        """The file holding the weights (for torch kinds other than ``registry``)."""
        if self.kind in ("bundled", "checkpoint_dir"):
            return self.path / "model.safetensors"
        return self.path if self.kind != "registry" else None

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}{', ' + str(self.path) if self.path else ''})"


def _unknown(s: str) -> FileNotFoundError:
    names = [*BUNDLED, *list_models()]
    near = difflib.get_close_matches(s, names, n=1, cutoff=0.6)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return FileNotFoundError(
        f"cannot load model '{s}': not a registered model ({', '.join(list_models())}), not a bundled name "
        f"({', '.join(BUNDLED)}) and no such file or folder.{hint} Pass one of those names, a checkpoint folder "
        "(model.safetensors + config.json), a .safetensors, a training checkpoint.pt, a .pth, an .onnx or an "
        ".engine file.")


def resolve(name_or_path) -> ModelSpec:
    """Classify a model name or path (see the module docstring); a ModelSpec is returned unchanged.

    Raises FileNotFoundError (what was looked for, what is accepted, the nearest known name) when nothing matches
    or a needed file is missing.
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    s = str(name_or_path)
    if s in list_models():
        return ModelSpec("registry", s, None, s)
    if s in BUNDLED:
        path = ck.WEIGHTS_DIR / s  # read at call time (tests point it elsewhere)
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"bundled weights '{s}' not found at {path}/model.safetensors: reinstall "
                                    f"mtpano_ros, or use a registry name ({', '.join(list_models())}) for random "
                                    "weights")
        return ModelSpec("bundled", s, path, s)
    path = Path(s).expanduser()
    suffix = ".pth.tar" if path.name.lower().endswith(".pth.tar") else path.suffix.lower()
    if suffix in (".engine", ".plan", ".onnx"):
        if not path.is_file():
            hint = ("build it with `mtpano-export MODEL -o model.onnx --engine " + s + "`" if suffix != ".onnx"
                    else "create it with `mtpano-export MODEL -o " + s + "`")
            raise FileNotFoundError(f"{suffix[1:].upper()} file '{s}' does not exist; {hint}, or pass a model name")
        return ModelSpec("onnx" if suffix == ".onnx" else "engine", path.stem, path, s)
    if path.is_dir():
        missing = [n for n in ("model.safetensors", "config.json") if not (path / n).is_file()]
        if missing:
            extra = " (a training run folder: pass its checkpoint.pt or final/)" if (path / "checkpoint.pt").is_file() \
                else ""
            raise FileNotFoundError(f"checkpoint folder '{s}' lacks {' and '.join(missing)}{extra}; expected "
                                    "model.safetensors + config.json as written by mtpano_ros.model.save_checkpoint")
        return ModelSpec("checkpoint_dir", _label(path), path, s)
    if suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"weights file '{s}' does not exist")
        if not path.with_name("config.json").is_file():
            raise FileNotFoundError(f"'{s}' needs a config.json beside it (written by save_checkpoint) that names "
                                    "the variant and input size")
        return ModelSpec("safetensors", _label(path), path, s)
    if suffix in _TORCH_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint '{s}' does not exist")
        return ModelSpec(_TORCH_SUFFIXES[suffix], _label(path), path, s)
    raise _unknown(s)


def _label(path: Path) -> str:
    """Short name for logs and cache files: the file stem, or parent/stem for generic names like checkpoint.pt."""
    stem = path.name if path.is_dir() else path.name.split(".")[0]
    if stem in ("model", "checkpoint", "final", "weights") and path.parent.name:
        return f"{path.parent.name}-{stem}"
    return stem


# ----------------------------------------------------------------------------------------------------------------
# Loading (torch kinds)
# ----------------------------------------------------------------------------------------------------------------


def load_model(name_or_path, device="cpu"):
    """Load a model in eval mode on ``device``; ``name_or_path`` is anything ``resolve`` accepts (torch kinds).

    A registry name is randomly initialised with seed RANDOM_INIT_SEED (the global RNG is left alone; a warning
    says so): every backend built from the same name computes the same function. ``.onnx`` / ``.engine`` raise
    ValueError (they hold no torch weights). Returns an ``nn.Module`` whose ``.config`` is its full model config.
    """
    import torch

    spec = resolve(name_or_path)
    if not spec.has_weights:
        raise ValueError(f"{spec} is an {spec.kind} file, not torch weights; load_model needs a model name or a "
                         "checkpoint (the onnxruntime / tensorrt backends run .onnx / .engine files)")
    if spec.kind == "registry":
        msg = f"load_model({spec.name!r}): no weights loaded, random initialisation with seed {RANDOM_INIT_SEED}"
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
        from mtpano_ros.model.registry import create_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = create_model(spec.name)
    elif spec.kind in ("bundled", "checkpoint_dir", "safetensors"):
        config_file = spec.path / "config.json" if spec.path.is_dir() else spec.path.with_name("config.json")
        model = ck.load_safetensors(spec.weights_file, json.loads(config_file.read_text()))
    else:
        model = _load_torch_file(spec)
    return model.to(device).eval()


def _load_torch_file(spec: ModelSpec):
    """A .pt/.ckpt/.pth file: our checkpoint (with a config), or the official MTPano weights (no config at all)."""
    import torch

    try:  # memory-mapped where the file format allows it (the official file is 2.4 GB)
        obj = torch.load(str(spec.path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        obj = torch.load(str(spec.path), map_location="cpu", weights_only=True)
    cfg = ck.model_config_of(obj.get("config")) if isinstance(obj, dict) and "config" in obj else None
    if cfg is None and spec.path.with_name("config.json").is_file():
        cfg = ck.model_config_of(json.loads(spec.path.with_name("config.json").read_text()))
    if cfg is None:
        if spec.kind == "training_checkpoint":
            raise ValueError(f"{spec.path} has no 'config' entry and no config.json beside it: a checkpoint.pt from "
                             "training/train.py stores both 'model' and 'config'; is this file from another tool?")
        from mtpano_ros.model.official import load_official

        return load_official(obj, str(spec.path))
    return ck.load_state_dict_checkpoint(obj, cfg, str(spec.path))

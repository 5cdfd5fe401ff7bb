"""The training config: one schema, one place for every default.

    cfg = load_config("training/configs/tiny_synthetic.yaml", ["train.steps=100", "out_dir=runs/x"])
    cfg.train.steps, cfg.model.name, cfg.data.train["kind"], to_dict(cfg)

A config is YAML with the sections of `Config`: `out_dir`, `model` (ModelConfig), `data` (DataConfig),
`loss` (LossConfig) and `train` (TrainConfig); a section or key left out takes the default written here.
Overrides are dotted keys with YAML values (`train.steps=2000`, `data.train={kind: synthetic, size: [64, 128]}`).

Validation: an unknown key or a value of the wrong type stops with a ConfigError that names the key, what was
expected and the nearest valid key (difflib). Float keys also take numeric strings (YAML 1.1 reads `1e-3` as a
string). Dataset configs (`data.train`) are validated per kind, by the schema the kind's module declares (see
`training.data`); the validated config holds every default, and `train.py` writes it to `out_dir/config.yaml`.

`validate(cls, data, where)` checks a dict against any dataclass schema; dataset kinds use it for their own keys.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config key that does not exist, is missing, or holds a value of the wrong type."""


# ------------------------------------------------------------------------------------------------ schema
@dataclass(kw_only=True)
class ModelConfig:
    name: str = "mtpano-tiny"  # registry variant (mtpano_ros.model.list_models())
    overrides: dict[str, Any] = field(default_factory=dict)  # create_model(name, **overrides), e.g. input_hw
    # learned weights to start from: None (fresh), "imagenet" (the backbone's ImageNet weights, through
    # model.backbone.load_imagenet()), a bundled name ("default", ...) or a checkpoint path
    init: str | None = None
    # with init "imagenet" or None: a bundled name or checkpoint whose non-backbone tensors of the same name and
    # shape initialise the rest of the network (train.init_decoder), e.g. the refiners/necks/heads of "default"
    init_decoder: str | None = None


@dataclass(kw_only=True)
class DataConfig:
    # a dataset config {"kind": ..., kind's keys}; see training.data. "size" left out = the model's input size.
    train: dict[str, Any] = field(default_factory=lambda: {"kind": "synthetic", "seed": 0, "count": 64,
                                                           "augment": True})


@dataclass(kw_only=True)
class LossConfig:
    """Weights and switches of training.losses.compute_losses."""

    semantic: float = 1.0  # cross-entropy (+ dice * Dice)
    depth: float = 1.0
    normals: float = 1.0
    dice: float = 1.0
    edge: float = 0.5  # edge-aware term of the depth and normal losses
    freq: float = 0.1  # frequency (FFT amplitude) term
    intermediate: float = 0.3  # the same task losses on the intermediate predictions
    aux: float = 0.003  # auxiliary tasks: image gradient, edge distance, point map
    # "auto": scale-and-shift-invariant for samples whose depth_affine flag is set (stores of affine teachers),
    # metric L1 otherwise; "l1": metric for all; "ssi": aligned for all
    depth_loss: Literal["auto", "l1", "ssi"] = "auto"
    depth_log: float = 0.0  # extra L1 on log depth (relative error), 0 = off
    gravity: float = 0.0  # weight of the gravity (up-direction) term, 0 = off
    facing: float = 0.0  # weight of the "normals face the camera" term (training.losses.facing_loss), 0 = off
    # samples without a depth target (real photographs): scale-free geometry from gravity and from the normals
    level_planes: float = 0.0  # ground and ceiling pixels lie on level planes (training.losses.level_plane_loss)
    depth_normal: float = 0.0  # normals of the depth map agree with the predicted normals (depth_normal_loss)
    sky_below: float = 0.0  # no sky predicted below the horizon on those samples (training.losses.sky_below_loss)


@dataclass(kw_only=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 4  # per rank
    lr: float = 2e-4
    weight_decay: float = 0.0
    poly_power: float = 0.9  # lr = base * (1 - step / steps) ** poly_power after the warm-up stage
    warmup_steps: int = 0  # first stage: only the aggregators and auxiliary heads train
    warmup_lr: float = 1e-3
    num_workers: int = 0  # DataLoader workers per rank
    amp: bool = True  # float16 autocast (CUDA only)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0  # model init, sample order and augmentation (with the dataset's aug_seed)
    log_every: int = 10
    image_every: int = 200  # TensorBoard image grid every N steps (0 = never)
    ckpt_every: int = 100  # checkpoint.pt and latest/ every N steps
    threads: int = 0  # torch threads (0 = torch's default)
    resume: bool = True  # continue from out_dir/checkpoint.pt when it exists
    fp16_weights: bool = True  # latest/ and final/ weights stored as float16
    grad_clip: float | None = 1.0  # max gradient norm (None or 0 = off)
    stop_at: int | None = None  # checkpoint and exit at this step, as if killed; rerun without it to resume
    # pseudo-label stores: supervise depth with the fused "merged_depth" before this step (MTPano uses 1000)
    merged_depth_steps: int = 0

    def __post_init__(self):
        for key in ("batch_size", "log_every", "ckpt_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be at least 1, got {getattr(self, key)}")
        for key in ("steps", "warmup_steps", "num_workers", "image_every", "threads", "merged_depth_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must not be negative, got {getattr(self, key)}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


@dataclass(kw_only=True)
class Config:
    out_dir: str = "runs/train"  # checkpoint.pt, config.yaml, tb/, latest/, final/
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ------------------------------------------------------------------------------------------------ validation
def nearest(key: str, valid: list[str], where: str = "") -> str:
    """'did you mean 'where.k'? ' for the valid key k closest to `key` (difflib), or '' when none is close."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"did you mean {_join(where, close[0])!r}? " if close else ""


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_name(tp) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def check_value(tp, value, where: str):
    """`value` checked against the type annotation `tp` (bool, int, float, str, None, Literal, list[...],
    dict[...], unions, Any, dataclasses); returns the value (floats as float, lists copied). where: the key path
    used in errors."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(a, value, where)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = nearest(value, [str(c) for c in choices]) if isinstance(value, str) else ""
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}. {hint}".rstrip())
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(tp)}), got {type(value).__name__} {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [check_value(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return copy.deepcopy(value)
    if dataclasses.is_dataclass(tp):
        return validate(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"{where}: the schema uses an unsupported type {tp!r}")


def validate(cls, data, where: str = ""):
    """Instance of dataclass `cls` from the mapping `data`: every key must be a field of `cls` and hold a value
    of the field's type; missing keys take the field's default (fields without one are required). An instance of
    `cls` is re-validated as its dict. Raises ConfigError naming the key (`where.key`) and the nearest valid key."""
    if isinstance(data, cls):
        data = dataclasses.asdict(data)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of {cls.__name__} keys, got "
                          f"{type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown config key {_join(where, str(key))!r}; {nearest(str(key), list(fields), where)}"
                              f"valid keys{' in ' + where if where else ''}: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = check_value(hints[name], data[name], _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"config key {_join(where, name)!r} is required ({_type_name(hints[name])})")
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """Plain nested dict of a config dataclass (what config.yaml and checkpoints hold)."""
    return dataclasses.asdict(cfg)


def check_config(raw: dict | Config) -> Config:
    """Validated Config from a raw nested dict: the sections' keys, the model name and its overrides, and the
    dataset config (per kind, see training.data.check_dataset_config). A dataset config without "size" gets the
    model's input size."""
    from mtpano_ros.model.registry import list_models, model_config
    from training.data import check_dataset_config, fill_size

    cfg = validate(Config, raw)
    names = list_models()
    if cfg.model.name not in names:
        raise ConfigError(f"model.name: unknown model {cfg.model.name!r}; {nearest(cfg.model.name, names)}"
                          f"registered: {', '.join(names)}")
    arch = model_config(cfg.model.name)
    for key in cfg.model.overrides:
        if key not in arch:
            raise ConfigError(f"unknown config key 'model.overrides.{key}' for {cfg.model.name}; "
                              f"{nearest(key, list(arch), 'model.overrides')}valid keys: {', '.join(sorted(arch))}")
    try:
        arch = model_config(cfg.model.name, **cfg.model.overrides)
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"model.overrides: {e}") from None
    input_hw = list(arch["input_hw"])
    cfg.data.train = fill_size(check_dataset_config(cfg.data.train, "data.train"), input_hw)
    return cfg


# ------------------------------------------------------------------------------------------------ loading
def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings (value parsed as YAML) to a raw nested dict (a new one is returned). Keys are
    checked later, by check_config."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value, e.g. train.steps=100")
        key, val = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])!r} is a value, not a section")
        node[parts[-1]] = yaml.safe_load(val)
    return raw


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Validated Config from an optional YAML file plus dotted overrides (see the module docstring)."""
    raw: dict = {}
    if path:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a config file must hold a mapping of sections, got {type(raw).__name__}")
    return check_config(apply_overrides(raw, list(overrides)))


def parse_size(text: str) -> tuple[int, int]:
    """'256x512' -> (256, 512); '384' -> (384, 384). Errors explain the expected form."""
    try:
        parts = [int(s) for s in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ValueError(f"size must look like HEIGHTxWIDTH (or one number), e.g. 256x512; got {text!r}")
    h, w = parts if len(parts) == 2 else parts * 2
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return h, w

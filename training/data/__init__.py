"""Training datasets. `build_dataset(cfg)` dispatches on cfg["kind"]; every dataset returns samples with the keys
of the dataset-sample contract: "image" (3,H,W) float32 [0,1]; "depth" (1,H,W) float32 radial metres (0 invalid);
"depth_mask" (1,H,W) bool; "normals" (3,H,W) float32 panorama frame; "normals_mask" (1,H,W) bool; "semantic" (H,W)
int64 ADE20K ids (255 ignore); "depth_affine" () bool (True: the depth is known only up to scale and shift, the loss
aligns it first); with aux_targets (default on) "grad" (2,H,W) and "edge_distance" (1,H,W) for the auxiliary
heads. Extra keys are allowed. Every dataset takes index keys of any size: key % len picks the sample and the key
seeds its augmentation (with the dataset's aug_seed), so an endless stream of keys gives reproducible epochs.

Adding a kind: a module with `from_config(cfg: dict) -> Dataset`, listed in DATASETS. Its keys are validated by a
schema the module declares: a dataclass named `Config` (kw_only; a `kind` field, one field per key with its type
and default). `check_dataset_config` validates a config against it, fills the defaults and fails on unknown keys
or wrong types naming the nearest valid key. A module without `Config` validates its config in its own
`from_config` (training.config.validate does the work). A key `sources` holding a list of dataset configs (the
`mix` kind) has each of them validated as its own kind.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from torch.utils.data import Dataset

from training.config import ConfigError, nearest, to_dict, validate

# kind -> "module:factory"; the factory takes the cfg dict (imported lazily so optional dependencies stay optional)
DATASETS: dict[str, str] = {
    "synthetic": "training.data.synthetic:from_config",
    "pseudo_labels": "training.data.pseudo_labels:from_config",
    "structured3d": "training.data.structured3d:from_config",
    "stanford2d3d": "training.data.stanford2d3d:from_config",
    "matterport3d": "training.data.matterport3d:from_config",
    "mix": "training.data.mix:from_config",
}


def _module(cfg, where: str) -> tuple[str, ModuleType]:
    kind = cfg.get("kind") if isinstance(cfg, dict) else None
    if kind not in DATASETS:
        hint = nearest(kind, list(DATASETS)) if isinstance(kind, str) else ""
        raise ConfigError(f"{where}: a dataset config needs 'kind', one of {sorted(DATASETS)}; got {kind!r}. {hint}"
                          f"(a partial override such as {where}.root=DIR needs {where}.kind too)")
    return kind, importlib.import_module(DATASETS[kind].split(":")[0])


# older names of dataset keys, still read (renamed before validation)
ALIASES = {"out_hw": "size"}


def check_dataset_config(cfg: dict, where: str = "data.train") -> dict:
    """The dataset config `cfg` validated by its kind's schema, with every default filled in (a new dict).
    Raises ConfigError naming the key (`where.key`) for unknown keys, wrong types and missing required keys."""
    kind, module = _module(cfg, where)
    for old, new in ALIASES.items():
        if old in cfg:
            if new in cfg:
                raise ConfigError(f"{where}: give {new!r} or its older name {old!r}, not both")
            cfg = {(new if k == old else k): v for k, v in cfg.items()}
    schema = getattr(module, "Config", None)
    out = to_dict(validate(schema, cfg, where)) if schema is not None else dict(cfg)
    if isinstance(out.get("sources"), list):
        out["sources"] = [check_dataset_config(s, f"{where}.sources[{i}]") for i, s in enumerate(out["sources"])]
    return out


def as_config(schema, cfg, options: dict, where: str):
    """A kind's constructor arguments as its validated `schema` instance: `cfg` may be a schema instance, a dict,
    or the dataset root (a path), with keyword `options` on top (older names in ALIASES accepted, numpy arrays
    taken as lists). E.g. Structured3DDataset("data/s3d", split="val", size=[256, 512])."""
    if isinstance(cfg, schema) and not options:
        return cfg
    if isinstance(cfg, schema):
        cfg = to_dict(cfg)
    data = {**cfg} if isinstance(cfg, dict) else {"root": cfg}
    data.update({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in options.items()})
    for old, new in ALIASES.items():
        if old in data and new not in data:
            data[new] = data.pop(old)
    return validate(schema, data, where)


def fill_size(cfg: dict, size: list[int]) -> dict:
    """A validated dataset config with "size" set to `size` ([H, W]) where its kind has a size key left unset
    (None), also in its `sources`. train.py passes the model's input size."""
    out = dict(cfg)
    if "size" in out and out["size"] is None:
        out["size"] = list(size)
    if isinstance(out.get("sources"), list):
        out["sources"] = [fill_size(s, size) for s in out["sources"]]
    return out


def build_dataset(cfg: dict) -> Dataset:
    """Dataset for cfg = {"kind": <name>, ...kind-specific keys}, validated first (see check_dataset_config).
    Known kinds: see DATASETS."""
    cfg = check_dataset_config(cfg, "dataset")
    module, name = DATASETS[cfg["kind"]].split(":")
    return getattr(importlib.import_module(module), name)(cfg)

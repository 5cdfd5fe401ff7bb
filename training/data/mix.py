"""A weighted mixture of datasets (kind "mix"): one run that learns from several sources at once.

cfg: {"kind": "mix", "sources": [<dataset cfg>, ...], "weights": [w, ...], "seed": 0}. Sample `key` comes from
source i with probability weights[i] / sum(weights), drawn from a generator seeded by (seed, key), and that
source receives the same key (so its own `key % len` index and key-seeded augmentation apply): a stream of keys
stays reproducible, which exact resume relies on.

Samples from different sources carry different extra keys; a batch needs one key set. A mixed sample keeps the
keys every source produces and adds "vertical_mask" (1, H, W) bool (False where a source has none); all other
extras are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from training.config import validate

FILLED = ("vertical_mask",)


@dataclass(kw_only=True)
class Config:
    """Keys of kind "mix"."""

    kind: Literal["mix"] = "mix"
    sources: list[dict] = field(default_factory=list)  # dataset configs (each validated as its own kind)
    weights: list[float] | None = None  # sampling weights, one per source; None = equal
    seed: int = 0  # seeds the choice of source per key


class MixedDataset(Dataset):
    """See the module doc. len = the sum of the sources' lengths (an epoch of the sampler)."""

    def __init__(self, cfg: dict | Config):
        from training.data import build_dataset

        cfg = validate(Config, cfg, "mix")
        if not cfg.sources:
            raise ValueError("mix needs 'sources': a list of dataset configs, e.g. [{kind: synthetic, ...}, "
                             "{kind: pseudo_labels, root: STORE}]")
        weights = cfg.weights if cfg.weights is not None else [1.0] * len(cfg.sources)
        if len(weights) != len(cfg.sources) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"mix: 'weights' must be {len(cfg.sources)} non-negative numbers with a positive sum, "
                             f"got {weights}")
        self.sources = [build_dataset(s) for s in cfg.sources]
        self.probs = np.asarray(weights, np.float64) / float(sum(weights))
        self.seed = int(cfg.seed)
        key_sets = [set(src[0]) for src in self.sources]
        self.keys = set.intersection(*key_sets)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def source_of(self, key: int) -> int:
        """Index of the source that serves `key`."""
        return int(np.random.default_rng([self.seed, int(key)]).choice(len(self.sources), p=self.probs))

    def __getitem__(self, key: int) -> dict:
        key = int(key)
        sample = self.sources[self.source_of(key)][key]
        out = {k: v for k, v in sample.items() if k in self.keys}
        h, w = sample["image"].shape[-2:]
        for k in FILLED:
            out[k] = sample[k] if k in sample else torch.zeros(1, h, w, dtype=torch.bool)
        return out


def from_config(cfg: dict | Config) -> MixedDataset:
    """build_dataset factory: cfg = {"kind": "mix", "sources": [...], "weights": [...]}."""
    return MixedDataset(cfg)

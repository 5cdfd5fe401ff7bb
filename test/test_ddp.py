"""`torchrun --nproc_per_node 2 training/train.py` (gloo on CPU) for a few steps on a tiny pseudo-label store, and
what the two ranks see: different samples, different augmentations, their own RNG streams (saved per rank)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_two_ranks_augment_the_same_panorama_differently():
    from training.config import TrainConfig
    from training.data import build_dataset
    from training.train import make_loader

    ds = build_dataset({"kind": "synthetic", "seed": 3, "count": 1, "size": [16, 32], "augment": True})
    tc = TrainConfig(batch_size=2, seed=0)
    batches = [next(iter(make_loader(ds, tc, step=5, rank=r, world=2))) for r in (0, 1)]
    plain = build_dataset({"kind": "synthetic", "seed": 3, "count": 1, "size": [16, 32]})[0]
    for b in batches:  # every sample is the one panorama, augmented (rolled, maybe mirrored, colour-jittered)
        assert torch.equal(b["semantic"].flatten(1).sort(1).values[0], plain["semantic"].flatten().sort().values)
    assert not torch.equal(batches[0]["image"], batches[1]["image"])
    assert not torch.equal(batches[0]["image"][0], batches[0]["image"][1])
    again = next(iter(make_loader(ds, tc, step=5, rank=1, world=2)))
    assert torch.equal(again["image"], batches[1]["image"])  # reproducible: a resumed rank sees the same


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    from training import pseudo_label

    store = tmp_path / "store"
    pseudo_label.main(["--synthetic", "0:2", "--out", str(store), "--teacher", "oracle", "--views", "4",
                       "--view-size", "32", "--erp-size", "32x64"])
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "training" / "train.py"), f"out_dir={out}", "model.name=mtpano-tiny",
           "model.overrides.input_hw=[32,64]", "data.train.kind=pseudo_labels", f"data.train.root={store}",
           "data.train.augment=true", "train.steps=3", "train.batch_size=1", "train.num_workers=0",
           "train.device=cpu", "train.ckpt_every=3", "train.log_every=1", "train.image_every=0", "train.threads=1"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (out / "final" / "model.safetensors").is_file() and (out / "final" / "config.json").is_file()
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 3
    assert "step 3 " in r.stdout  # rank 0 logged the last step
    keys = dict(re.findall(r"^rank (\d)/2: sample stream from position \d+, first key (\d+)", r.stdout, re.M))
    assert set(keys) == {"0", "1"} and keys["0"] != keys["1"]  # each rank its own samples (and augmentation)
    assert len(state["rng_ranks"]) == 2
    assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])

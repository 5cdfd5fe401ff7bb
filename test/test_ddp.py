"""`torchrun --nproc_per_node 2 training/train.py` (gloo on CPU) for a few steps on a tiny pseudo-label store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    pytest.importorskip("training.synthetic")
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    from training import pseudo_label

    store = tmp_path / "store"
    pseudo_label.main(["--synthetic", "0:2", "--out", str(store), "--teacher", "oracle", "--views", "4",
                       "--view-size", "32", "--erp-size", "32x64"])
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
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

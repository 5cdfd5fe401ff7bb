"""End to end, label-free: procedural panoramas -> oracle teacher (corrupted) -> pseudo-label store -> training ->
training/evaluate.py on held-out scenes. The loss must fall and the metrics must beat the untrained model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _evaluate(model: str, cwd: Path, env: dict) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "training" / "evaluate.py"), "--model", model, "--synthetic",
                        "--seed", "500", "--count", "4", "--size", "32x64", "--json", "--threads", "1"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_labelfree_pipeline_learns(tmp_path):
    pytest.importorskip("training.synthetic")
    from training import pseudo_label

    store = tmp_path / "store"
    pseudo_label.main(["--synthetic", "0:8", "--out", str(store), "--teacher", "oracle", "--views", "12",
                       "--view-size", "48", "--erp-size", "32x64"])
    meta = json.loads((store / "meta.json").read_text())
    assert meta["teacher"]["corruption"]["scale_sigma"] > 0  # the corrupted oracle, not ground truth
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "training" / "train.py"), f"out_dir={out}", "model.name=mtpano-tiny",
           "model.overrides.input_hw=[32,64]", "data.train.kind=pseudo_labels", f"data.train.root={store}",
           "data.train.depth=merged", "data.train.augment=true", "train.steps=60", "train.batch_size=2",
           "train.lr=0.002", "train.num_workers=0", "train.device=cpu", "train.ckpt_every=60", "train.log_every=5",
           "train.image_every=0", "train.threads=1", "loss.depth_log=1.0"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    totals = [float(m) for m in re.findall(r"^step \d+ .*?total=([0-9.]+)", r.stdout, flags=re.M)]
    assert len(totals) == 12
    assert sum(totals[-3:]) / 3 < 0.8 * sum(totals[:2]) / 2, totals
    trained = _evaluate(str(out / "final"), tmp_path, env)
    untrained = _evaluate("mtpano-tiny", tmp_path, env)
    assert trained["depth_absrel"] < untrained["depth_absrel"], (trained, untrained)
    assert trained["miou"] > untrained["miou"], (trained, untrained)

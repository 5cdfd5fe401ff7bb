"""A very short supervised run on procedural panoramas: train, kill + resume (same result as uninterrupted),
then evaluate (API and the command line)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mtpano_ros.model import load_model
from training.evaluate import evaluate, synthetic_samples
from training.train import load_config, train

ROOT = Path(__file__).resolve().parents[1]


def _cfg(out_dir: Path, *extra: str) -> dict:
    return load_config(None, [
        f"out_dir={out_dir}", "model.name=mtpano-tiny", "model.overrides.input_hw=[32,64]",
        "data.train={kind: synthetic, seed: 0, count: 3, size: [32, 64], augment: true}",
        "train.steps=4", "train.batch_size=2", "train.num_workers=0", "train.device=cpu", "train.ckpt_every=2",
        "train.log_every=1", "train.image_every=2", "train.threads=1", "train.fp16_weights=false", *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("train")
    straight = train(_cfg(base / "a"))
    partial = train(_cfg(base / "b", "train.stop_at=2"))
    resumed = train(_cfg(base / "b"))
    return base, straight, partial, resumed


def test_resume_continues_the_same_run(runs):
    base, straight, partial, resumed = runs
    assert partial == base / "b" / "latest"
    a = torch.load(base / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(base / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert not list((base / "b").glob("*.tmp"))
    assert list((base / "b" / "tb").glob("events.*"))
    assert (resumed / "model.safetensors").exists() and (resumed / "config.json").exists()


def test_trained_weights_change_and_evaluate(runs):
    base, straight, _, _ = runs
    model = load_model(straight)
    assert tuple(model.config["input_hw"]) == (32, 64)
    res = evaluate(model, synthetic_samples(2_000_000, 2, (32, 64)), batch_size=2)
    assert res["count"] == 2
    for k in ("depth_abs_rel", "depth_delta1", "normal_mean_deg", "miou", "seam"):
        assert np.isfinite(res[k]), k
    assert 0 <= res["miou"] <= 100 and 0 <= res["depth_delta1"] <= 1


def test_evaluate_command_line(runs):
    _, straight, _, _ = runs
    out = subprocess.run([sys.executable, str(ROOT / "training" / "evaluate.py"), "--model", str(straight),
                          "--synthetic", "--seed", "2000000", "--count", "1", "--size", "32x64", "--json",
                          "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"depth_absrel", "depth_delta1", "normal_mean_deg", "miou", "seam"}
    assert "depth AbsRel" in out.stdout

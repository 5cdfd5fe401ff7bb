"""A very short supervised run on procedural panoramas: train; a run killed (SIGKILL) after a checkpoint and resumed
ends bit-identical to an uninterrupted one (CPU, one thread); then evaluate (API and the command line)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtpano_ros.model import load_model
from training.config import load_config, to_dict
from training.evaluate import evaluate, synthetic_samples
from training.train import train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _args(out_dir: Path, *extra: str) -> list[str]:
    return [f"out_dir={out_dir}", "model.name=mtpano-tiny", "model.overrides.input_hw=[32,64]",
            "data.train={kind: synthetic, seed: 0, count: 3, size: [32, 64], augment: true}",
            "train.steps=6", "train.batch_size=2", "train.num_workers=0", "train.device=cpu", "train.ckpt_every=2",
            "train.log_every=1", "train.image_every=2", "train.threads=1", "train.fp16_weights=false", *extra]


def _cfg(out_dir: Path, *extra: str):
    return load_config(None, _args(out_dir, *extra))


def _kill_after_first_checkpoint(out_dir: Path, cwd: Path) -> int:
    """Run train.py in a process and SIGKILL it once checkpoint.pt exists; returns the checkpoint's step."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "training" / "train.py"), *_args(out_dir)], cwd=cwd,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = out_dir / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not ckpt.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("train")
    straight = train(_cfg(base / "a"))
    killed_at = _kill_after_first_checkpoint(base / "b", base)
    resumed = train(_cfg(base / "b"))
    return base, straight, killed_at, resumed


def test_killed_and_resumed_run_is_bit_identical(runs):
    base, straight, killed_at, resumed = runs
    assert 2 <= killed_at < 6  # killed mid-run, after a checkpoint
    a = torch.load(base / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(base / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    assert a["model"].keys() == b["model"].keys()
    for k, v in a["model"].items():
        assert torch.equal(b["model"][k], v), k
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        for k in pa:
            assert torch.equal(torch.as_tensor(pa[k]), torch.as_tensor(pb[k])), k
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert (straight / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes()
    assert not list((base / "b").glob("*.tmp")) and not list((base / "b").glob("*.old"))
    assert list((base / "b" / "tb").glob("events.*"))
    assert (resumed / "config.json").exists() and (base / "b" / "latest" / "model.safetensors").exists()


def test_effective_config_is_written_and_reloads(runs):
    base, *_ = runs
    written = yaml.safe_load((base / "a" / "config.yaml").read_text())
    cfg = _cfg(base / "a")
    assert written == to_dict(cfg)
    assert to_dict(load_config(base / "a" / "config.yaml")) == written  # the file is a valid config itself
    state = torch.load(base / "a" / "checkpoint.pt", weights_only=True)
    assert yaml.safe_load(state["config"]) == written and "model" in state
    assert written["loss"]["depth_loss"] == "auto" and written["train"]["grad_clip"] == 1.0  # defaults filled in


def test_stop_at_checkpoints_and_returns_latest(tmp_path):
    torch.set_num_threads(1)
    latest = train(_cfg(tmp_path / "c", "train.steps=2", "train.stop_at=1"))
    assert latest == tmp_path / "c" / "latest" and (latest / "model.safetensors").is_file()
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["step"] == 1


def test_trained_weights_change_and_evaluate(runs):
    base, straight, _, _ = runs
    model = load_model(straight)
    assert tuple(model.config["input_hw"]) == (32, 64)
    res = evaluate(model, synthetic_samples(2_000_000, 2, (32, 64)), batch_size=2)
    assert res["count"] == 2
    for k in ("depth_abs_rel", "depth_delta1", "normal_mean_deg", "miou", "seam"):
        assert np.isfinite(res[k]), k
    assert 0 <= res["miou"] <= 100 and 0 <= res["depth_delta1"] <= 1


def test_evaluate_command_line(runs, tmp_path):
    _, straight, _, _ = runs
    out = subprocess.run([sys.executable, str(ROOT / "training" / "evaluate.py"), "--model", str(straight),
                          "--synthetic", "--seed", "2000000", "--count", "1", "--size", "32x64", "--json",
                          "--threads", "1"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"depth_absrel", "depth_delta1", "normal_mean_deg", "miou", "seam"}
    assert "depth AbsRel" in out.stdout


def test_weights_folder_is_replaced_whole(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous latest/ complete; the next save clears the debris."""
    from mtpano_ros.model import create_model
    from training import train as train_module

    model = create_model("mtpano-tiny", input_hw=[32, 64])
    latest = train_module.save_weights(model, tmp_path / "latest", {"step": 1}, fp16=False)
    before = (latest / "model.safetensors").read_bytes()

    def dies_half_way(model, out_dir, extra=None, fp16=False):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "model.safetensors").write_bytes(b"torn")
        raise OSError("disk full")

    monkeypatch.setattr(train_module, "save_checkpoint", dies_half_way)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        train_module.save_weights(model, latest, {"step": 2}, fp16=False)
    assert (latest / "model.safetensors").read_bytes() == before
    load_model(latest)
    monkeypatch.undo()
    train_module.save_weights(model, latest, {"step": 2}, fp16=False)
    assert (latest / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]

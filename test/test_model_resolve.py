"""mtpano_ros.model.resolve: every kind of model string, its errors, and load_model for each torch kind
(including the checkpoint.pt that training/train.py writes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mtpano_ros.model import ModelSpec, create_model, load_model, resolve, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
HW = (64, 128)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(3)
    m = create_model("mtpano-tiny", input_hw=list(HW)).eval()
    with torch.no_grad():
        for p in m.parameters():  # non-zero everywhere, so a wrong load shows in the outputs
            p.add_(torch.randn_like(p) * 0.01)
    x = torch.rand(1, 3, *HW, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = m(x)
    return m, x, ref


def _same(model, tiny_fixture):
    _, x, ref = tiny_fixture
    with torch.no_grad():
        out = model(x)
    return torch.equal(out["depth"], ref["depth"]) and torch.equal(out["semantic_logits"], ref["semantic_logits"])


def test_names():
    assert resolve("mtpano-tiny") == ModelSpec("registry", "mtpano-tiny", None, "mtpano-tiny")
    spec = resolve("default")
    assert spec.kind == "bundled" and spec.has_weights and spec.weights_file.name == "model.safetensors"
    assert resolve(spec) is spec


def test_unknown_name_suggests_the_nearest(tmp_path):
    with pytest.raises(FileNotFoundError, match="Did you mean 'mtpano-tiny'"):
        resolve("mtpano-tinny")
    with pytest.raises(FileNotFoundError, match="not a registered model"):
        resolve(tmp_path / "nothing_here")


def test_files_by_kind(tmp_path, tiny):
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.engine").write_bytes(b"x")
    (tmp_path / "m.plan").write_bytes(b"x")
    assert resolve(tmp_path / "m.onnx").kind == "onnx" and not resolve(tmp_path / "m.onnx").has_weights
    assert resolve(tmp_path / "m.engine").kind == "engine" and resolve(tmp_path / "m.plan").kind == "engine"
    save_checkpoint(tiny[0], tmp_path / "ck")
    assert resolve(tmp_path / "ck").kind == "checkpoint_dir" and resolve(tmp_path / "ck").name == "ck"
    assert resolve(tmp_path / "ck" / "model.safetensors").kind == "safetensors"
    for name, kind in (("run.pt", "training_checkpoint"), ("x.ckpt", "training_checkpoint"), ("w.pth", "pth"),
                       ("mtpano_model_408k.pth.tar", "pth")):
        (tmp_path / name).write_bytes(b"x")
        assert resolve(tmp_path / name).kind == kind, name


def test_missing_files_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="mtpano-export"):
        resolve(tmp_path / "model.onnx")
    with pytest.raises(FileNotFoundError, match="--engine"):
        resolve(tmp_path / "robot.engine")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="lacks config.json"):
        resolve(tmp_path / "half")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="training run folder"):
        resolve(run)
    with pytest.raises(FileNotFoundError, match="config.json beside it"):
        resolve(tmp_path / "half" / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve(tmp_path / "gone.pt")


def test_load_model_from_a_training_checkpoint(tmp_path, tiny):
    """The file training/train.py writes: {"model": state dict, "config": YAML text of the training config, ...}."""
    cfg = yaml.safe_load((REPO / "training" / "configs" / "tiny_synthetic.yaml").read_text())
    cfg["model"]["overrides"] = {"input_hw": list(HW)}
    state = {"model": tiny[0].state_dict(), "optimizer": {"state": {}, "param_groups": []}, "step": 7,
             "config": yaml.safe_dump(cfg)}
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save(state, path)
    spec = resolve(path)
    assert spec.kind == "training_checkpoint" and spec.name == "run-checkpoint"
    model = load_model(path)
    assert model.config["variant"] == "mtpano-tiny" and model.config["input_hw"] == list(HW)
    assert not model.training and _same(model, tiny)


def test_load_model_from_pth_variants(tmp_path, tiny):
    m = tiny[0]
    torch.save({"state_dict": {"module." + k: v for k, v in m.state_dict().items()}, "config": m.config},
               tmp_path / "a.pth")
    assert _same(load_model(tmp_path / "a.pth"), tiny)
    save_checkpoint(m, tmp_path / "ck")
    torch.save(m.state_dict(), tmp_path / "ck" / "plain.pth")  # config.json beside it
    assert _same(load_model(tmp_path / "ck" / "plain.pth"), tiny)
    assert _same(load_model(tmp_path / "ck"), tiny) and _same(load_model(resolve(tmp_path / "ck")), tiny)


def test_headerless_pth_is_read_as_the_official_checkpoint(tmp_path, tiny):
    torch.save({"model": tiny[0].state_dict()}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not match mtpano-vitl"):
        load_model(tmp_path / "other.pth")


def test_training_checkpoint_without_config_is_a_clear_error(tmp_path, tiny):
    torch.save({"model": tiny[0].state_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="no 'config' entry"):
        load_model(tmp_path / "checkpoint.pt")


def test_onnx_and_engine_are_not_torch_weights(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="not torch weights"):
        load_model(tmp_path / "m.onnx")


def test_checkpoint_pt_written_by_train_py_loads(tmp_path):
    """One real training step through `python training/train.py`; its checkpoint.pt loads with load_model and
    computes the same function as the final weights saved beside it."""
    import subprocess
    import sys

    run = tmp_path / "run"
    args = [f"out_dir={run}", "model.name=mtpano-tiny", "model.overrides.input_hw=[32,64]",
            "data.train={kind: synthetic, seed: 0, count: 2, size: [32, 64], augment: false}", "train.steps=1",
            "train.batch_size=1", "train.num_workers=0", "train.device=cpu", "train.threads=1",
            "train.fp16_weights=false", "train.ckpt_every=1"]
    res = subprocess.run([sys.executable, str(REPO / "training" / "train.py"), *args], capture_output=True,
                         text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert isinstance(torch.load(run / "checkpoint.pt", weights_only=True)["config"], str)  # YAML text
    spec = resolve(run / "checkpoint.pt")
    assert spec.kind == "training_checkpoint"
    from_ckpt, final = load_model(spec), load_model(run / "final")
    assert from_ckpt.config["input_hw"] == [32, 64]
    sd_a, sd_b = from_ckpt.state_dict(), final.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    x = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = from_ckpt(x), final(x)
    # same weights and config; tensors in other storage may take other SIMD paths (last-bit differences)
    torch.testing.assert_close(a["depth"], b["depth"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a["semantic_logits"], b["semantic_logits"], rtol=1e-5, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="training run folder"):
        resolve(run)

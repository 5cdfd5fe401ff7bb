"""The training config schema (training/config.py): typos and wrong types fail naming the key and the nearest valid
one, defaults come from one place, dataset kinds validate their own keys; the entry points run from any folder
without re-executing themselves or editing sys.path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from training.config import Config, ConfigError, LossConfig, ModelConfig, load_config, to_dict

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("override, named, suggestion", [
    ("train.step=100", "train.step", "train.steps"),
    ("out_dirr=x", "out_dirr", "out_dir"),
    ("model.nme=mtpano-tiny", "model.nme", "model.name"),
    ("model.overrides.input_hww=[32,64]", "model.overrides.input_hww", "model.overrides.input_hw"),
    ("loss.depht=1.0", "loss.depht", "loss.depth"),
    ("data.train={kind: synthetic, cont: 3}", "data.train.cont", "data.train.count"),
    ("data.train={kind: structured3d, root: x, splt: val}", "data.train.splt", "data.train.split"),
    ("data.train={kind: pseudo_labels, root: x, gravity_priors: true}", "data.train.gravity_priors",
     "data.train.gravity_prior"),
])
def test_typo_fails_naming_the_key_and_the_nearest(override, named, suggestion):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert repr(named) in str(e.value) and f"did you mean {suggestion!r}" in str(e.value)


@pytest.mark.parametrize("override, message", [
    ("train.steps=abc", "train.steps: expected an integer"),
    ("train.steps=1.5", "train.steps: expected an integer"),
    ("train.amp=1", "train.amp: expected true or false"),
    ("train.grad_clip=[1]", "train.grad_clip: expected"),
    ("model.overrides=3", "model.overrides: expected a mapping"),
    ("loss.depth_loss=ssl", "did you mean 'ssi'"),
    ("data.train={kind: synthetic, size: 64}", "data.train.size: expected"),
    ("data.train={kind: synthetc}", "did you mean 'synthetic'"),
    ("data.train.root=/x", "needs 'kind'"),
    ("data.train={kind: structured3d}", "'data.train.root' is required"),
    ("model.name=mtpano-tinyy", "did you mean 'mtpano-tiny'"),
    ("train", "must look like key.sub=value"),
    ("train.batch_size=0", "train.batch_size must be at least 1"),
    ("train.device=cpuu", "train.device must be auto, cpu, cuda"),
    ("model.overrides.input_hw=[30,64]", "model.overrides: input_hw [30, 64] must be multiples of patch_size"),
])
def test_wrong_values_fail_clearly(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_defaults_live_in_the_schema_and_yaml_quirks_are_handled(tmp_path):
    cfg = load_config(None, ["train.lr=1e-3", "train.stop_at=null"])
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)  # YAML 1.1 reads 1e-3 as a string
    assert to_dict(cfg)["loss"] == to_dict(LossConfig()) and cfg.model == ModelConfig()
    assert cfg.data.train["size"] == [256, 512]  # no size given: the model's input size
    assert cfg.data.train["augment"] is True and cfg.data.train["aux_targets"] is True
    # the lead-in keys other parts rely on exist with neutral defaults
    assert cfg.loss.gravity == 0.0 and cfg.data.train["domain_randomization"] is False
    assert cfg.data.train["dr_strength"] == 1.0
    assert load_config(None, ["model.init=imagenet"]).model.init == "imagenet"
    assert load_config(None, ["data.train={kind: synthetic, out_hw: [16, 32]}"]).data.train["size"] == [16, 32]
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 5\n  batchsize: 2\n")
    with pytest.raises(ConfigError, match="'train.batchsize'; did you mean 'train.batch_size'"):
        load_config(f)
    f.write_text("model:\n  overrides: {input_hw: [32, 64]}\ndata:\n  train: {kind: synthetic, count: 2}\n")
    assert load_config(f, ["train.steps=7"]).data.train["size"] == [32, 64]
    for shipped in sorted((ROOT / "training" / "configs").glob("*.yaml")):
        assert isinstance(load_config(shipped), Config), shipped


def test_kinds_validate_with_their_own_schema(monkeypatch):
    from training import data

    @dataclass(kw_only=True)
    class Blend:
        kind: Literal["t13_blend"] = "t13_blend"
        sources: list[dict]
        weights: list[float] | None = None

    mod = types.ModuleType("t13_blend_kind")
    mod.Config = Blend
    free = types.ModuleType("t13_free_kind")  # no schema: its from_config validates
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(sys.modules, free.__name__, free)
    monkeypatch.setitem(data.DATASETS, "t13_blend", "t13_blend_kind:from_config")
    monkeypatch.setitem(data.DATASETS, "t13_free", "t13_free_kind:from_config")
    ok = data.check_dataset_config({"kind": "t13_blend", "weights": [1, 2], "sources": [
        {"kind": "synthetic", "count": 2}, {"kind": "t13_free", "anything": 1}]})
    assert ok["weights"] == [1.0, 2.0] and ok["sources"][0]["aug_seed"] == 0  # each source filled as its kind
    assert ok["sources"][1] == {"kind": "t13_free", "anything": 1}
    with pytest.raises(ConfigError, match=re.escape("'data.train.sources[1].cont'; did you mean "
                                                    "'data.train.sources[1].count'")):
        data.check_dataset_config({"kind": "t13_blend", "sources": [{"kind": "synthetic"},
                                                                     {"kind": "synthetic", "cont": 2}]})
    with pytest.raises(ConfigError, match="data.train.weights"):
        data.check_dataset_config({"kind": "t13_blend", "sources": [], "weights": "equal"})
    filled = data.fill_size(ok, [32, 64])
    assert filled["sources"][0]["size"] == [32, 64] and "size" not in filled["sources"][1]


def test_model_init_imagenet_uses_the_backbone_loader(monkeypatch):
    from mtpano_ros.model.vit import DINOv3ViT
    from training.train import build_model

    with pytest.raises(ValueError, match="load_imagenet"):
        build_model(ModelConfig(name="mtpano-tiny", overrides={"input_hw": [32, 64]}, init="imagenet"))
    calls = []
    monkeypatch.setattr(DINOv3ViT, "load_imagenet", lambda self: calls.append(type(self).__name__), raising=False)
    build_model(ModelConfig(name="mtpano-tiny", overrides={"input_hw": [32, 64]}, init="imagenet"))
    assert calls == ["DINOv3ViT"]


def test_command_line_typo_stops_the_run(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "training" / "train.py"), "train.step=100",
                        f"out_dir={tmp_path / 'run'}"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "unknown config key 'train.step'; did you mean 'train.steps'" in r.stderr
    assert not (tmp_path / "run").exists()  # stopped before anything was written


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "pseudo_label.py"])
def test_entry_points_run_from_another_folder(script, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "training" / script), "--help"], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:")


def test_console_scripts_are_installed(tmp_path):
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("mtpano-train") == "training.train:main", "reinstall the package (make setup)"
    assert scripts.get("mtpano-evaluate") == "training.evaluate:main"
    assert scripts.get("mtpano-pseudo-label") == "training.pseudo_label:main"
    r = subprocess.run([str(Path(sys.executable).parent / "mtpano-train"), "--help"], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage:"), r.stderr[-2000:]


def test_no_reexec_path_edits_or_main_imports():
    bad = re.compile(r"os\.exec[lv]p?e?\(|sys\.path\.(insert|append|extend)\(|sys\.path\s*(\+)?=|"
                     r"from\s+[\w.]*__main__\s+import|import\s+[\w.]*__main__")
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
             for folder in ("training", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert not found, found

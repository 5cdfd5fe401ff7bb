"""RuntimeOptions: the one schema of runtime options (names, defaults, descriptions, validation)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from mtpano_ros.runtime.options import (
    RuntimeOptions,
    UnknownOptionError,
    option_choices,
    option_range,
    runtime_parameters,
    unknown_option_message,
)


def test_unknown_key_names_it_and_the_nearest_valid_key():
    with pytest.raises(UnknownOptionError) as err:
        RuntimeOptions.from_dict({"backend": "torch", "pecision": "fp16"})
    assert "'pecision'" in str(err.value) and "did you mean 'precision'" in str(err.value)
    with pytest.raises(KeyError, match="force_engine_rebuild"):  # also a KeyError / ValueError for callers
        RuntimeOptions.from_dict({"force_rebuild": True})
    with pytest.raises(ValueError, match="engine_cache_dir"):
        RuntimeOptions().replace(cache_dir="/tmp")
    assert "Valid options: backend, model" in unknown_option_message("xyz")


def test_values_are_checked():
    with pytest.raises(ValueError, match="backend='openvino'.*auto, tensorrt, onnxruntime, torch"):
        RuntimeOptions(backend="openvino")
    with pytest.raises(ValueError, match="device='tpu'"):
        RuntimeOptions(device="tpu")
    with pytest.raises(ValueError, match="precision"):
        RuntimeOptions(precision="fp8")
    with pytest.raises(ValueError, match="multiples of 16"):
        RuntimeOptions(input_height=100, input_width=200)
    with pytest.raises(ValueError, match="set both"):
        RuntimeOptions(input_height=128)
    with pytest.raises(ValueError, match="out of range"):
        RuntimeOptions(max_batch=0)
    with pytest.raises(TypeError, match="threads='2' is a str, expected int"):
        RuntimeOptions(threads="2")
    assert RuntimeOptions(precision="int8").precision == "int8"  # calibration is checked when an engine is built
    assert RuntimeOptions(device="cuda:1").device == "cuda:1"
    assert RuntimeOptions(workspace_gib=2).workspace_gib == 2.0 and isinstance(RuntimeOptions(workspace_gib=2)
                                                                                 .workspace_gib, float)


def test_derived_values(tmp_path, monkeypatch):
    opts = RuntimeOptions(input_height=128, input_width=256, precision="auto")
    assert opts.input_hw == (128, 256) and RuntimeOptions().input_hw is None
    assert opts.precision_or_none is None and RuntimeOptions(precision="fp32").precision_or_none == "fp32"
    monkeypatch.setenv("MTPANO_CACHE_DIR", str(tmp_path / "c"))
    assert RuntimeOptions().cache_dir == tmp_path / "c"
    assert RuntimeOptions(engine_cache_dir=str(tmp_path / "e")).cache_dir == tmp_path / "e"


def test_runtime_parameters_come_from_the_dataclass():
    params = runtime_parameters()
    assert [p[0] for p in params] == [f.name for f in fields(RuntimeOptions)]
    for (name, default, description), f in zip(params, fields(RuntimeOptions)):
        assert default == f.default and type(default) in (str, int, float, bool), name
        assert len(description) > 20, name
    names = {p[0] for p in params}
    assert {"backend", "model", "device", "precision", "input_height", "input_width", "threads", "onnx_path",
            "engine_path", "engine_cache_dir", "force_engine_rebuild", "fp32_attention", "strongly_typed",
            "int8_calibration_dir"} <= names
    assert option_choices("backend") == ("auto", "tensorrt", "onnxruntime", "torch")
    assert option_choices("model") == () and option_range("threads") == (0, 1024) and option_range("model") is None
    assert RuntimeOptions.from_dict({n: d for n, d, _ in params}) == RuntimeOptions()
    assert RuntimeOptions.from_dict(RuntimeOptions(backend="torch").to_dict()).backend == "torch"


def test_readme_documents_every_option():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Runtimes"):text.index("**One model resolver.**")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for name, default, _ in runtime_parameters():
        row = next((r for r in rows if f"`{name}`" in r.split("|")[1]), None)
        assert row is not None, f"README's option table lacks {name}"
        shown = f"`{str(default).lower()}`" if isinstance(default, bool) else ('`""`' if default == "" else
                                                                              f"`{default}`")
        assert shown in row, (name, default, row)

"""Backend construction errors, the engine cache key and the mtpano-export command line (no model export here)."""

import importlib.util

import pytest
import torch

from mtpano_ros.runtime import OnnxRuntimeBackend, TorchBackend, select_backend
from mtpano_ros.runtime import export as ex
from mtpano_ros.runtime.backends import BackendError, default_cache_dir
from mtpano_ros.runtime.tensorrt_backend import engine_cache_path

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_missing_onnx_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="mtpano-export"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")


def test_corrupt_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(Exception, match="re-export|corrupt|protobuf|parse"):
        OnnxRuntimeBackend(bad)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="registry name"):
        TorchBackend(str(tmp_path / "weights" / "model.safetensors"))


def test_torch_backend_precision_and_device_errors():
    with pytest.raises(BackendError, match="fp16 with the torch backend needs CUDA"):
        TorchBackend("mtpano-tiny", device="cpu", precision="fp16")
    with pytest.raises(BackendError, match="int8"):
        TorchBackend("mtpano-tiny", precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA device"):
            TorchBackend("mtpano-tiny", device="cuda")


def test_onnxruntime_precision_and_provider_errors():
    with pytest.raises(BackendError, match="fp32 only"):
        OnnxRuntimeBackend._providers("cpu", "fp16", ["CPUExecutionProvider"], True, default_cache_dir())
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        OnnxRuntimeBackend._providers("cuda", "fp32", ["CPUExecutionProvider"], True, default_cache_dir())
    with pytest.raises(BackendError, match="TensorRT execution provider"):
        OnnxRuntimeBackend._providers("cuda", "fp16", ["CUDAExecutionProvider"], True, default_cache_dir())
    chain = OnnxRuntimeBackend._providers("cuda:1", "fp16", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                               "CPUExecutionProvider"], True, default_cache_dir())
    assert [c[0] if isinstance(c, tuple) else c for c in chain] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert chain[0][1]["trt_fp16_enable"] and chain[0][1]["device_id"] == 1


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_tensorrt_absent_is_a_clear_error():
    from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend

    with pytest.raises(BackendError, match="TensorRT is not installed"):
        TensorRTBackend("mtpano-tiny")
    with pytest.raises(BackendError, match="cannot run"):
        select_backend("tensorrt")


def test_engine_cache_key_covers_onnx_version_gpu_and_precision(tmp_path):
    base = dict(cache_dir=tmp_path, onnx_sha256="ab" * 32, trt_version="10.3.0", gpu_name="Orin (nvgpu)",
                precision="fp16")
    p = engine_cache_path(**base)
    assert p.parent == tmp_path / "engines" and p.suffix == ".engine"
    assert "/" not in p.name and " " not in p.name and "(" not in p.name
    for key, other in (("onnx_sha256", "cd" * 32), ("trt_version", "10.7.0"), ("gpu_name", "NVIDIA H100"),
                       ("precision", "fp32")):
        assert engine_cache_path(**{**base, key: other}) != p
    assert engine_cache_path(**base, max_batch=4) != p


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MTPANO_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"


def test_export_cli_errors_exit_nonzero(tmp_path, capsys):
    assert ex.main([str(tmp_path / "missing.pth"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert ex.main(["mtpano-tiny", "-o", str(tmp_path / "m.onnx"), "--height", "64"]) == 2
    if not HAS_TRT:
        assert ex.main(["mtpano-tiny", "-o", str(tmp_path / "m.onnx"), "--engine", str(tmp_path / "m.engine")]) == 1
        assert "TensorRT is not installed" in capsys.readouterr().err
        assert not (tmp_path / "m.onnx").exists()  # failed before exporting
    with pytest.raises(SystemExit):
        ex.main(["mtpano-tiny", "-o", str(tmp_path / "m.onnx"), "--opset", "23"])

"""Backend construction errors and the mtpano-export command line (no model export here)."""

import importlib.util

import pytest
import torch

from mtpano_ros.runtime import OnnxRuntimeBackend, TorchBackend, cli, select_backend
from mtpano_ros.runtime.backends import BackendError
from mtpano_ros.runtime.cache import default_cache_dir

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
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TorchBackend(str(tmp_path / "weights" / "model.safetensors"))


def test_backends_refuse_the_wrong_file_kind(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(BackendError, match="use backend onnxruntime or tensorrt"):
        TorchBackend(str(tmp_path / "m.onnx"))
    with pytest.raises(BackendError, match="only the tensorrt backend runs it"):
        OnnxRuntimeBackend(str(tmp_path / "m.engine"))
    with pytest.raises(FileNotFoundError, match="onnx_path"):
        OnnxRuntimeBackend("mtpano-tiny", onnx_path=tmp_path / "missing.onnx")


def test_backends_take_no_unknown_options():
    with pytest.raises(TypeError, match="unexpected keyword"):
        TorchBackend("mtpano-tiny", cache_dir="/tmp")  # not a torch option: an error, not a silent no-op


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
        select_backend(backend="tensorrt")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MTPANO_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"


def test_export_cli_errors_exit_nonzero(tmp_path, capsys):
    assert cli.main([str(tmp_path / "missing.pth"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["mtpano-tiny", "-o", str(tmp_path / "m.onnx"), "--height", "64"]) == 2
    if not HAS_TRT:
        assert cli.main(["mtpano-tiny", "-o", str(tmp_path / "m.onnx"), "--engine", str(tmp_path / "m.engine")]) == 1
        assert "TensorRT is not installed" in capsys.readouterr().err
        assert not (tmp_path / "m.onnx").exists()  # failed before exporting
    with pytest.raises(SystemExit):
        cli.main(["mtpano-tiny", "-o", str(tmp_path / "m.onnx"), "--opset", "23"])

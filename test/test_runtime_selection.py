"""Backend selection logic: every branch of select_backend, with the availability probes monkeypatched.

The probes are our own functions (is CUDA / tensorrt / an onnxruntime provider there?); replacing them tests our
decision logic, not a stand-in for a missing package. ``_construct`` is replaced by a recorder so no model is built.
"""

import logging

import pytest

from mtpano_ros.runtime import selection as sel
from mtpano_ros.runtime.backends import BackendError


class Made:
    def __init__(self, kind, device, precision, model, options):
        self.name, self.device, self.precision, self.model, self.options = kind, device, precision, model, options


@pytest.fixture
def env(monkeypatch):
    """Set availability with env.set(cuda=..., trt=..., ort_cpu=..., ort_cuda=..., ort_trt_ep=...)."""

    class Env:
        calls: list = []
        fail: set = set()

        def set(self, cuda=True, trt=True, ort_cpu=True, ort_cuda=True, ort_trt_ep=False):
            monkeypatch.setattr(sel, "probe_cuda", lambda: None if cuda else "no CUDA GPU (test)")
            monkeypatch.setattr(sel, "probe_tensorrt", lambda: None if trt else "tensorrt missing (test)")

            def ort(device):
                ok = ort_cuda if device == "cuda" else ort_cpu
                return None if ok else f"no onnxruntime {device} provider (test)"

            monkeypatch.setattr(sel, "probe_onnxruntime", ort)
            monkeypatch.setattr(sel, "_onnxruntime_has_tensorrt_ep", lambda: ort_trt_ep)

    e = Env()
    e.calls = []

    def construct(kind, device, precision, model, options):
        e.calls.append((kind, device))
        if kind in e.fail:
            raise BackendError(f"{kind} build failed (test)")
        return Made(kind, device, precision, model, options)

    monkeypatch.setattr(sel, "_construct", construct)
    e.set()
    return e


def _skipped(backend):
    return dict(backend.selection_log)


def test_auto_prefers_tensorrt_when_everything_is_there(env):
    b = sel.select_backend("auto")
    assert (b.name, b.device) == ("tensorrt", "cuda")
    assert b.selection_log == []


def test_auto_without_tensorrt_takes_onnxruntime_cuda_and_logs_why(env, caplog):
    env.set(trt=False)
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.selection"):
        b = sel.select_backend("auto")
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "tensorrt missing" in _skipped(b)["tensorrt/cuda"]
    assert any("skipping tensorrt/cuda" in r.message and "tensorrt missing" in r.message for r in caplog.records)


def test_auto_without_tensorrt_and_ort_cuda_takes_torch_cuda(env):
    env.set(trt=False, ort_cuda=False)
    b = sel.select_backend("auto")
    assert (b.name, b.device) == ("torch", "cuda")
    assert "onnxruntime cuda provider" in _skipped(b)["onnxruntime/cuda"]


def test_onnxruntime_cuda_does_not_need_torch_cuda(env):
    env.set(cuda=False, trt=False)
    b = sel.select_backend("auto")
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "no CUDA GPU" in _skipped(b)["tensorrt/cuda"]


def test_auto_without_cuda_takes_onnxruntime_cpu(env, caplog):
    env.set(cuda=False, ort_cuda=False)
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.selection"):
        b = sel.select_backend("auto")
    assert (b.name, b.device) == ("onnxruntime", "cpu")
    skipped = _skipped(b)
    assert set(skipped) == {"tensorrt/cuda", "onnxruntime/cuda", "torch/cuda"}
    assert "no CUDA GPU" in skipped["tensorrt/cuda"] and "no CUDA GPU" in skipped["torch/cuda"]
    assert "onnxruntime cuda provider" in skipped["onnxruntime/cuda"]
    assert sum("skipping" in r.message for r in caplog.records) == 3


def test_auto_without_cuda_and_onnxruntime_takes_torch_cpu(env):
    env.set(cuda=False, ort_cpu=False, ort_cuda=False)
    b = sel.select_backend("auto")
    assert (b.name, b.device) == ("torch", "cpu")
    assert "onnxruntime cpu provider" in _skipped(b)["onnxruntime/cpu"]


def test_auto_with_device_cpu_skips_gpu_candidates(env):
    b = sel.select_backend("auto", device="cpu")
    assert (b.name, b.device) == ("onnxruntime", "cpu")
    assert all("device 'cpu' requested" in _skipped(b)[k] for k in ("tensorrt/cuda", "onnxruntime/cuda",
                                                                      "torch/cuda"))


def test_auto_with_device_cuda_and_no_gpu_is_an_error_listing_every_reason(env):
    env.set(cuda=False, ort_cuda=False)
    with pytest.raises(BackendError) as err:
        sel.select_backend("auto", device="cuda")
    msg = str(err.value)
    for cand in ("tensorrt/cuda", "onnxruntime/cuda", "torch/cuda", "onnxruntime/cpu", "torch/cpu"):
        assert cand in msg
    assert env.calls == []


def test_auto_keeps_the_cuda_index(env):
    b = sel.select_backend("auto", device="cuda:1")
    assert b.device == "cuda:1"


def test_auto_falls_through_when_a_backend_fails_to_start(env):
    env.fail = {"tensorrt"}
    b = sel.select_backend("auto")
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "failed to start" in _skipped(b)["tensorrt/cuda"]
    assert env.calls == [("tensorrt", "cuda"), ("onnxruntime", "cuda")]


def test_auto_int8_needs_tensorrt(env):
    b = sel.select_backend("auto", precision="int8")
    assert b.name == "tensorrt" and b.precision == "int8"
    env.set(trt=False)
    with pytest.raises(BackendError, match="int8 needs TensorRT"):
        sel.select_backend("auto", precision="int8")


def test_auto_fp16_without_gpu_is_an_error(env):
    env.set(cuda=False)
    with pytest.raises(BackendError) as err:
        sel.select_backend("auto", precision="fp16")
    assert "fp32 only" in str(err.value) and "torch fp16 needs CUDA" in str(err.value)


def test_auto_fp16_onnxruntime_cuda_needs_its_tensorrt_provider(env):
    env.set(trt=False)
    b = sel.select_backend("auto", precision="fp16")
    assert (b.name, b.device) == ("torch", "cuda")
    assert "TensorRT execution provider" in _skipped(b)["onnxruntime/cuda"]
    env.set(trt=False, ort_trt_ep=True)
    assert sel.select_backend("auto", precision="fp16").name == "onnxruntime"


def test_auto_engine_file_only_runs_on_tensorrt(env):
    b = sel.select_backend("auto", model="model.engine")
    assert b.name == "tensorrt"
    env.set(trt=False)
    with pytest.raises(BackendError, match="only the tensorrt backend runs it"):
        sel.select_backend("auto", model="model.engine")


def test_auto_onnx_file_skips_torch(env):
    env.set(cuda=False, ort_cpu=False, ort_cuda=False)
    with pytest.raises(BackendError, match="torch backend needs a model name"):
        sel.select_backend("auto", model="m.onnx")


def test_options_reach_the_backend(env):
    b = sel.select_backend("auto", model="mtpano-tiny", cache_dir="/tmp/x", threads=2)
    assert b.model == "mtpano-tiny" and b.options == {"cache_dir": "/tmp/x", "threads": 2}


def test_explicit_tensorrt_without_package_is_an_error_not_a_fallback(env):
    env.set(trt=False)
    with pytest.raises(BackendError, match="backend 'tensorrt' on cuda cannot run: tensorrt missing"):
        sel.select_backend("tensorrt")
    assert env.calls == []


def test_explicit_tensorrt_without_cuda_is_an_error(env):
    env.set(cuda=False)
    with pytest.raises(BackendError, match="no CUDA GPU"):
        sel.select_backend("tensorrt")


def test_explicit_tensorrt_on_cpu_is_an_error(env):
    with pytest.raises(BackendError, match="needs device 'cuda'"):
        sel.select_backend("tensorrt", device="cpu")


def test_explicit_backend_with_device_auto_uses_cuda_when_present(env):
    assert sel.select_backend("onnxruntime").device == "cuda"
    assert sel.select_backend("torch").device == "cuda"
    env.set(cuda=False)
    assert sel.select_backend("onnxruntime").device == "cpu"
    assert sel.select_backend("torch").device == "cpu"


def test_explicit_torch_cuda_without_gpu_is_an_error(env):
    env.set(cuda=False)
    with pytest.raises(BackendError, match="backend 'torch' on cuda cannot run"):
        sel.select_backend("torch", device="cuda")


def test_explicit_onnxruntime_without_package_or_provider_is_an_error(env):
    env.set(ort_cpu=False)
    with pytest.raises(BackendError, match="onnxruntime cpu provider"):
        sel.select_backend("onnxruntime", device="cpu")
    env.set(ort_cuda=False)
    with pytest.raises(BackendError, match="onnxruntime cuda provider"):
        sel.select_backend("onnxruntime", device="cuda")


def test_explicit_precision_mismatches_are_errors(env):
    with pytest.raises(BackendError, match="int8 needs TensorRT"):
        sel.select_backend("onnxruntime", precision="int8")
    with pytest.raises(BackendError, match="fp32 only"):
        sel.select_backend("onnxruntime", device="cpu", precision="fp16")
    with pytest.raises(BackendError, match="torch fp16 needs CUDA"):
        sel.select_backend("torch", device="cpu", precision="fp16")
    assert env.calls == []


def test_bad_arguments_are_value_errors(env):
    with pytest.raises(ValueError, match="kind"):
        sel.select_backend("openvino")
    with pytest.raises(ValueError, match="device"):
        sel.select_backend("auto", device="tpu")
    with pytest.raises(ValueError, match="precision"):
        sel.select_backend("auto", precision="fp8")


def test_real_probes_on_this_machine():
    """The unpatched probes give a reason string or None, and onnxruntime's CPU provider is always present here."""
    assert sel.probe_onnxruntime("cpu") is None
    for reason in (sel.probe_cuda(), sel.probe_tensorrt(), sel.probe_onnxruntime("cuda")):
        assert reason is None or (isinstance(reason, str) and reason)

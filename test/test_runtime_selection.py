"""Backend selection logic: every branch of select_backend, with the availability probes monkeypatched.

The probes are our own functions (is CUDA / tensorrt / an onnxruntime provider there?); replacing them tests our
decision logic, not a stand-in for a missing package. ``_construct`` is replaced by a recorder so no model is built
(test_runtime_fallbacks.py makes real backends fail for real).
"""

import logging

import pytest

from mtpano_ros.runtime import selection as sel
from mtpano_ros.runtime.backends import BackendError
from mtpano_ros.runtime.options import RuntimeOptions, UnknownOptionError


class Made:
    def __init__(self, kind, device, opts, spec, fail_warmup=None):
        self.name, self.device, self.opts, self.spec = kind, device, opts, spec
        self.precision = opts.precision_or_none or ("fp16" if kind == "tensorrt" else "fp32")
        self.fail_warmup = fail_warmup
        self.warmed = 0

    def warmup(self):
        if self.fail_warmup is not None:
            raise self.fail_warmup
        self.warmed += 1


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
    e.fail = {}  # "kind" or "kind/device" -> exception raised by its construction
    e.fail_warmup = {}  # "kind" or "kind/device" -> exception raised by its first forward pass

    def construct(kind, device, opts, spec):
        e.calls.append((kind, device))
        fail = e.fail.get(f"{kind}/{device}", e.fail.get(kind))
        if fail is not None:
            raise fail
        return Made(kind, device, opts, spec, e.fail_warmup.get(f"{kind}/{device}", e.fail_warmup.get(kind)))

    monkeypatch.setattr(sel, "_construct", construct)
    e.set()
    return e


def _skipped(backend):
    return dict(backend.selection_log)


def test_auto_prefers_tensorrt_when_everything_is_there(env):
    b = sel.select_backend()
    assert (b.name, b.device) == ("tensorrt", "cuda")
    assert b.selection_log == []


def test_auto_without_tensorrt_takes_onnxruntime_cuda_and_logs_why(env, caplog):
    env.set(trt=False)
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.selection"):
        b = sel.select_backend()
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "tensorrt missing" in _skipped(b)["tensorrt/cuda"]
    assert any("skipping tensorrt/cuda" in r.message and "tensorrt missing" in r.message for r in caplog.records)


def test_auto_without_tensorrt_and_ort_cuda_takes_torch_cuda(env):
    env.set(trt=False, ort_cuda=False)
    b = sel.select_backend()
    assert (b.name, b.device) == ("torch", "cuda")
    assert "onnxruntime cuda provider" in _skipped(b)["onnxruntime/cuda"]


def test_onnxruntime_cuda_does_not_need_torch_cuda(env):
    env.set(cuda=False, trt=False)
    b = sel.select_backend()
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "no CUDA GPU" in _skipped(b)["tensorrt/cuda"]


def test_auto_without_cuda_takes_onnxruntime_cpu(env, caplog):
    env.set(cuda=False, ort_cuda=False)
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.selection"):
        b = sel.select_backend()
    assert (b.name, b.device) == ("onnxruntime", "cpu")
    skipped = _skipped(b)
    assert set(skipped) == {"tensorrt/cuda", "onnxruntime/cuda", "torch/cuda"}
    assert "no CUDA GPU" in skipped["tensorrt/cuda"] and "no CUDA GPU" in skipped["torch/cuda"]
    assert "onnxruntime cuda provider" in skipped["onnxruntime/cuda"]
    assert sum("skipping" in r.message for r in caplog.records) == 3


def test_auto_without_cuda_and_onnxruntime_takes_torch_cpu(env):
    env.set(cuda=False, ort_cpu=False, ort_cuda=False)
    b = sel.select_backend()
    assert (b.name, b.device) == ("torch", "cpu")
    assert "onnxruntime cpu provider" in _skipped(b)["onnxruntime/cpu"]


def test_auto_with_device_cpu_skips_gpu_candidates(env):
    b = sel.select_backend(device="cpu")
    assert (b.name, b.device) == ("onnxruntime", "cpu")
    assert all("device 'cpu' requested" in _skipped(b)[k] for k in ("tensorrt/cuda", "onnxruntime/cuda",
                                                                      "torch/cuda"))


def test_auto_with_device_cuda_and_no_gpu_is_an_error_listing_every_reason(env):
    env.set(cuda=False, ort_cuda=False)
    with pytest.raises(BackendError) as err:
        sel.select_backend(device="cuda")
    msg = str(err.value)
    for cand in ("tensorrt/cuda", "onnxruntime/cuda", "torch/cuda", "onnxruntime/cpu", "torch/cpu"):
        assert cand in msg
    assert env.calls == []


def test_auto_keeps_the_cuda_index(env):
    b = sel.select_backend(device="cuda:1")
    assert b.device == "cuda:1"


def test_auto_falls_through_when_a_backend_fails_to_start(env):
    env.fail = {"tensorrt": BackendError("tensorrt build failed (test)")}
    b = sel.select_backend()
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "failed to start" in _skipped(b)["tensorrt/cuda"]
    assert env.calls == [("tensorrt", "cuda"), ("onnxruntime", "cuda")]
    assert b.warmed == 1  # the chosen backend ran its first forward pass inside select_backend


def test_auto_moves_on_after_any_exception_and_logs_each(env, caplog):
    env.fail = {"tensorrt": FileNotFoundError("no such engine (test)"),
                "onnxruntime": ImportError("No module named 'onnxscript' (test)")}
    env.fail_warmup = {"torch/cuda": RuntimeError("CUDA error: out of memory (test)")}
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.selection"):
        b = sel.select_backend()
    assert (b.name, b.device) == ("torch", "cpu")
    skipped = _skipped(b)
    assert "FileNotFoundError: no such engine" in skipped["tensorrt/cuda"]
    assert "ImportError: No module named 'onnxscript'" in skipped["onnxruntime/cuda"]
    assert "ImportError" in skipped["onnxruntime/cpu"]
    assert "RuntimeError: CUDA error: out of memory" in skipped["torch/cuda"]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all("failed to start" in w and "trying the next backend" in w for w in warnings)


def test_auto_survives_a_probe_that_raises(env, monkeypatch):
    def broken():
        raise OSError("libcudart.so.12: cannot open shared object file (test)")

    monkeypatch.setattr(sel, "probe_cuda", broken)
    b = sel.select_backend()
    assert (b.name, b.device) == ("onnxruntime", "cuda")
    assert "availability check failed: OSError" in _skipped(b)["tensorrt/cuda"]


def test_explicit_backend_that_fails_raises_its_own_error(env):
    env.fail = {"onnxruntime": FileNotFoundError("ONNX file 'x.onnx' does not exist (test)")}
    with pytest.raises(FileNotFoundError, match="x.onnx"):
        sel.select_backend(backend="onnxruntime")
    env.fail, env.fail_warmup = {}, {"torch": RuntimeError("bad kernel (test)")}
    with pytest.raises(RuntimeError, match="bad kernel"):
        sel.select_backend(backend="torch")


def test_unknown_options_are_errors_naming_the_nearest(env):
    with pytest.raises(UnknownOptionError, match="did you mean 'engine_cache_dir'"):
        sel.select_backend(cache_dir="/tmp/x")
    with pytest.raises(TypeError, match="RuntimeOptions"):
        sel.select_backend({"backend": "torch"})


def test_auto_int8_needs_tensorrt(env):
    b = sel.select_backend(precision="int8", int8_calibration_dir="calib")
    assert b.name == "tensorrt" and b.precision == "int8"
    env.set(trt=False)
    with pytest.raises(BackendError, match="int8 needs TensorRT"):
        sel.select_backend(precision="int8", int8_calibration_dir="calib")


def test_auto_fp16_without_gpu_is_an_error(env):
    env.set(cuda=False)
    with pytest.raises(BackendError) as err:
        sel.select_backend(precision="fp16")
    assert "fp32 only" in str(err.value) and "torch fp16 needs CUDA" in str(err.value)


def test_auto_fp16_onnxruntime_cuda_needs_its_tensorrt_provider(env):
    env.set(trt=False)
    b = sel.select_backend(precision="fp16")
    assert (b.name, b.device) == ("torch", "cuda")
    assert "TensorRT execution provider" in _skipped(b)["onnxruntime/cuda"]
    env.set(trt=False, ort_trt_ep=True)
    assert sel.select_backend(precision="fp16").name == "onnxruntime"


def test_auto_engine_file_only_runs_on_tensorrt(env, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    b = sel.select_backend(model=str(engine))
    assert b.name == "tensorrt" and b.spec.kind == "engine"
    env.set(trt=False)
    with pytest.raises(BackendError, match="only the tensorrt backend runs it"):
        sel.select_backend(model=str(engine))


def test_auto_onnx_file_skips_torch(env, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    env.set(cuda=False, ort_cpu=False, ort_cuda=False)
    with pytest.raises(BackendError, match="torch backend needs a model name"):
        sel.select_backend(model=str(tmp_path / "m.onnx"))


def test_unknown_model_fails_before_any_backend(env):
    with pytest.raises(FileNotFoundError, match="Did you mean 'default'"):
        sel.select_backend(model="defualt")
    assert env.calls == []


def test_conflicting_model_and_path_options(env, tmp_path):
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ValueError, match="set only one"):
        sel.select_backend(model=str(tmp_path / "a.onnx"), onnx_path=str(tmp_path / "b.onnx"))


def test_options_reach_the_backend(env):
    opts = RuntimeOptions(model="mtpano-tiny", engine_cache_dir="/tmp/x", threads=2)
    b = sel.select_backend(opts)
    assert b.spec.kind == "registry" and b.opts is opts
    assert sel.select_backend(opts, threads=3).opts.threads == 3


def test_explicit_tensorrt_without_package_is_an_error_not_a_fallback(env):
    env.set(trt=False)
    with pytest.raises(BackendError, match="backend 'tensorrt' on cuda cannot run: tensorrt missing"):
        sel.select_backend(backend="tensorrt")
    assert env.calls == []


def test_explicit_tensorrt_without_cuda_is_an_error(env):
    env.set(cuda=False)
    with pytest.raises(BackendError, match="no CUDA GPU"):
        sel.select_backend(backend="tensorrt")


def test_explicit_tensorrt_on_cpu_is_an_error(env):
    with pytest.raises(BackendError, match="needs device 'cuda'"):
        sel.select_backend(backend="tensorrt", device="cpu")


def test_explicit_backend_with_device_auto_uses_cuda_when_present(env):
    assert sel.select_backend(backend="onnxruntime").device == "cuda"
    assert sel.select_backend(backend="torch").device == "cuda"
    env.set(cuda=False)
    assert sel.select_backend(backend="onnxruntime").device == "cpu"
    assert sel.select_backend(backend="torch").device == "cpu"


def test_explicit_torch_cuda_without_gpu_is_an_error(env):
    env.set(cuda=False)
    with pytest.raises(BackendError, match="backend 'torch' on cuda cannot run"):
        sel.select_backend(backend="torch", device="cuda")


def test_explicit_onnxruntime_without_package_or_provider_is_an_error(env):
    env.set(ort_cpu=False)
    with pytest.raises(BackendError, match="onnxruntime cpu provider"):
        sel.select_backend(backend="onnxruntime", device="cpu")
    env.set(ort_cuda=False)
    with pytest.raises(BackendError, match="onnxruntime cuda provider"):
        sel.select_backend(backend="onnxruntime", device="cuda")


def test_explicit_precision_mismatches_are_errors(env):
    with pytest.raises(BackendError, match="int8 needs TensorRT"):
        sel.select_backend(backend="onnxruntime", precision="int8", int8_calibration_dir="calib")
    with pytest.raises(BackendError, match="fp32 only"):
        sel.select_backend(backend="onnxruntime", device="cpu", precision="fp16")
    with pytest.raises(BackendError, match="torch fp16 needs CUDA"):
        sel.select_backend(backend="torch", device="cpu", precision="fp16")
    assert env.calls == []


def test_bad_arguments_are_value_errors(env):
    with pytest.raises(ValueError, match="backend='openvino'"):
        sel.select_backend(backend="openvino")
    with pytest.raises(ValueError, match="device"):
        sel.select_backend(device="tpu")
    with pytest.raises(ValueError, match="precision"):
        sel.select_backend(precision="fp8")


def test_real_probes_on_this_machine():
    """The unpatched probes give a reason string or None, and onnxruntime's CPU provider is always present here."""
    assert sel.probe_onnxruntime("cpu") is None
    for reason in (sel.probe_cuda(), sel.probe_tensorrt(), sel.probe_onnxruntime("cuda")):
        assert reason is None or (isinstance(reason, str) and reason)

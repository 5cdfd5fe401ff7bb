"""Backend selection: ``select_backend(RuntimeOptions(...))`` or ``select_backend(backend="auto", model=...)``.

``auto`` tries, in order, TensorRT (CUDA) -> ONNX Runtime CUDA -> torch CUDA -> ONNX Runtime CPU -> torch CPU. A
candidate is skipped when a probe says it cannot run here, and left behind when building it or its first forward
pass raises anything at all (a missing package, a failed export, a corrupt file, a CUDA error); every reason is
logged and kept in ``backend.selection_log``. A backend named explicitly that cannot run raises: BackendError with
the reason and what to do, or the original error of its construction; it never falls back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mtpano_ros.model.resolve import ModelSpec, resolve
from mtpano_ros.runtime.backends import Backend, BackendError, OnnxRuntimeBackend, TorchBackend
from mtpano_ros.runtime.options import RuntimeOptions

LOG = logging.getLogger("mtpano_ros.runtime.selection")

AUTO_ORDER = (("tensorrt", "cuda"), ("onnxruntime", "cuda"), ("torch", "cuda"), ("onnxruntime", "cpu"),
              ("torch", "cpu"))


# ----------------------------------------------------------------------------------------------------------------
# Availability probes: each returns None when usable, else the reason it is not (tests monkeypatch these)
# ----------------------------------------------------------------------------------------------------------------


def probe_cuda() -> str | None:
    """None if torch sees a CUDA GPU, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (CUDA build: {torch.version.cuda})"
    return None


def probe_tensorrt() -> str | None:
    """None if the ``tensorrt`` Python package imports, else why not."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from a missing libnvinfer
        return f"the tensorrt Python package is not importable ({type(exc).__name__}: {exc})"
    return None


def probe_onnxruntime(device: str) -> str | None:
    """None if onnxruntime can run on ``device`` ('cpu' or 'cuda'), else why not."""
    try:
        import onnxruntime as ort
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from a missing CUDA library
        return f"onnxruntime is not importable ({type(exc).__name__}: {exc})"
    providers = ort.get_available_providers()
    wanted = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if wanted not in providers:
        return f"onnxruntime has no {wanted} (available: {', '.join(providers)})"
    return None


def _onnxruntime_has_tensorrt_ep() -> bool:
    try:
        import onnxruntime as ort
    except Exception:  # noqa: BLE001 - not importable: no TensorRT EP either
        return False
    return "TensorrtExecutionProvider" in ort.get_available_providers()


# ----------------------------------------------------------------------------------------------------------------
# Selection
# ----------------------------------------------------------------------------------------------------------------


def why_not(kind: str, device: str, precision: str | None, spec: ModelSpec) -> str | None:
    """None if backend ``kind`` can run ``spec`` on ``device`` ('cpu' / 'cuda') at ``precision`` here, else why."""
    if spec.kind == "engine" and kind != "tensorrt":
        return f"{spec.source} is a TensorRT engine; only the tensorrt backend runs it"
    if spec.kind == "onnx" and kind == "torch":
        return f"{spec.source} is an ONNX file; the torch backend needs a model name or checkpoint"
    if precision == "int8" and kind != "tensorrt":
        return "precision int8 needs TensorRT"
    if kind == "tensorrt" or (kind == "torch" and device == "cuda"):  # both use torch CUDA tensors
        cuda = probe_cuda()
        if cuda is not None:
            return cuda
    if kind == "tensorrt":
        return probe_tensorrt()
    if kind == "onnxruntime":
        reason = probe_onnxruntime(device)
        if reason is not None:
            return reason
        if device == "cpu" and precision == "fp16":
            return "onnxruntime on CPU runs fp32 only"
        if device == "cuda" and precision == "fp16" and not _onnxruntime_has_tensorrt_ep():
            return "onnxruntime fp16 needs its TensorRT execution provider, which is not installed"
        return None
    if kind == "torch" and device == "cpu" and precision == "fp16":
        return "torch fp16 needs CUDA (CPU runs fp32)"
    return None


def _construct(kind: str, device: str, opts: RuntimeOptions, spec: ModelSpec) -> Backend:
    """Create the backend object from the options it uses (tests replace this to check the selection alone)."""
    precision = opts.precision_or_none
    if kind == "tensorrt":
        from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(spec, device=device, precision=precision or "fp16", input_hw=opts.input_hw,
                               engine_path=opts.engine_path or None, onnx_path=opts.onnx_path or None,
                               cache_dir=opts.cache_dir, force_rebuild=opts.force_engine_rebuild,
                               calibration_dir=opts.int8_calibration_dir or None, max_batch=opts.max_batch,
                               workspace_gib=opts.workspace_gib or None, strongly_typed=opts.strongly_typed,
                               fp32_attention=opts.fp32_attention)
    if kind == "onnxruntime":
        return OnnxRuntimeBackend(spec, device=device, precision=precision or "fp32", input_hw=opts.input_hw,
                                  threads=opts.threads or None, cache_dir=opts.cache_dir,
                                  onnx_path=opts.onnx_path or None)
    return TorchBackend(spec, device=device, precision=precision or "fp32", input_hw=opts.input_hw,
                        threads=opts.threads or None)


def _start(kind: str, device: str, opts: RuntimeOptions, spec: ModelSpec) -> Backend:
    """Construct a backend and run its first forward pass (so a backend that cannot run fails here, not later)."""
    backend = _construct(kind, device, opts, spec)
    backend.warmup()
    return backend


def _check_paths(opts: RuntimeOptions, spec: ModelSpec) -> None:
    for kind, option in (("onnx", "onnx_path"), ("engine", "engine_path")):
        value = getattr(opts, option)
        if spec.kind == kind and value and Path(value).expanduser().resolve() != spec.path.resolve():
            raise ValueError(f"model={opts.model!r} is an {kind} file but {option}={value!r} names another one; "
                             f"set only one of them")


def select_backend(options: RuntimeOptions | None = None, /, **changes) -> Backend:
    """Create, warm up and return the inference backend described by ``options`` (RuntimeOptions).

    ``changes``: RuntimeOptions fields that override ``options`` (``select_backend(backend="torch",
    model="mtpano-tiny")``); an unknown name raises UnknownOptionError naming the nearest valid one.
    ``options.backend``: "auto" (TensorRT -> ONNX Runtime CUDA -> torch CUDA -> ONNX Runtime CPU -> torch CPU,
    the first that starts and runs one forward pass), or "tensorrt" / "onnxruntime" / "torch" (an error if it
    cannot run, never a fallback). ``options.model`` is resolved once (mtpano_ros.model.resolve): an unknown model
    is an error before any backend is tried.
    Returns a Backend; ``backend.selection_log`` lists ``(candidate, reason it was skipped)`` (auto only).
    """
    opts = options if options is not None else RuntimeOptions()
    if not isinstance(opts, RuntimeOptions):
        raise TypeError(f"select_backend takes a RuntimeOptions, got {type(opts).__name__}; pass keyword arguments "
                        "or RuntimeOptions.from_dict(...)")
    if changes:
        opts = opts.replace(**changes)
    spec = resolve(opts.model)
    _check_paths(opts, spec)
    kind, device, precision = opts.backend, opts.device, opts.precision_or_none
    dev_family = device.split(":")[0]

    if kind != "auto":
        if dev_family == "auto":
            dev_family = "cuda" if kind == "tensorrt" or probe_cuda() is None else "cpu"
            LOG.info("backend %s: device auto -> %s", kind, dev_family)
        if kind == "tensorrt" and dev_family == "cpu":
            raise BackendError("the tensorrt backend needs device 'cuda'; use onnxruntime or torch for CPU")
        reason = why_not(kind, dev_family, precision, spec)
        if reason is not None:
            raise BackendError(f"backend '{kind}' on {dev_family} cannot run: {reason}. Install what is missing, "
                               f"or choose another backend (auto picks the first that works).")
        dev = device if device.startswith(dev_family) else dev_family  # keeps "cuda:1"
        backend = _start(kind, dev, opts, spec)
        backend.selection_log = []
        LOG.info("selected backend %s on %s (requested explicitly)", kind, backend.device)
        return backend

    skipped: list[tuple[str, str]] = []
    for cand_kind, cand_dev in AUTO_ORDER:
        label = f"{cand_kind}/{cand_dev}"
        if dev_family != "auto" and cand_dev != dev_family:
            reason = f"device '{device}' requested"
        else:
            try:
                reason = why_not(cand_kind, cand_dev, precision, spec)
            except Exception as exc:  # noqa: BLE001 - a probe that breaks rules its candidate out, nothing more
                reason = f"availability check failed: {type(exc).__name__}: {exc}"
        if reason is None:
            dev = device if device.startswith(cand_dev) else cand_dev
            try:
                backend = _start(cand_kind, dev, opts, spec)
            except Exception as exc:  # noqa: BLE001 - auto moves on after ANY failure of a candidate
                reason = f"failed to start: {type(exc).__name__}: {str(exc).strip()[:800]}"
                LOG.warning("auto: %s %s; trying the next backend", label, reason)
            else:
                backend.selection_log = skipped
                done = "; ".join(f"{k}: {r}" for k, r in skipped)
                LOG.info("selected backend %s on %s%s", cand_kind, backend.device,
                         f" (skipped {done})" if skipped else "")
                return backend
        else:
            LOG.info("skipping %s: %s", label, reason)
        skipped.append((label, reason))
    details = "; ".join(f"{k}: {r}" for k, r in skipped)
    raise BackendError(f"no backend can run model={opts.model!r} device={device!r} precision={opts.precision!r}: "
                       f"{details}")

"""Backend selection: ``select_backend("auto" | "tensorrt" | "onnxruntime" | "torch", ...)``.

``auto`` tries, in order, TensorRT (CUDA) -> ONNX Runtime CUDA -> torch CUDA -> ONNX Runtime CPU -> torch CPU and
logs why each candidate before the chosen one was skipped. A backend named explicitly that cannot run raises
BackendError with the reason and what to do; it never falls back silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mtpano_ros.runtime.backends import PRECISIONS, BackendError, OnnxRuntimeBackend, TorchBackend

LOG = logging.getLogger("mtpano_ros.runtime.selection")

KINDS = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICES = ("auto", "cpu", "cuda")
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
    except ImportError as exc:
        return f"the tensorrt Python package is not installed ({exc})"
    return None


def probe_onnxruntime(device: str) -> str | None:
    """None if onnxruntime can run on ``device`` ('cpu' or 'cuda'), else why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    providers = ort.get_available_providers()
    wanted = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if wanted not in providers:
        return f"onnxruntime has no {wanted} (available: {', '.join(providers)})"
    return None


def _onnxruntime_has_tensorrt_ep() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "TensorrtExecutionProvider" in ort.get_available_providers()


# ----------------------------------------------------------------------------------------------------------------
# Selection
# ----------------------------------------------------------------------------------------------------------------


def _model_kind(model) -> str:
    text = str(model) if isinstance(model, (str, Path)) else ""
    if text.endswith((".engine", ".plan")):
        return "engine"
    if text.endswith(".onnx"):
        return "onnx"
    return "torch"


def why_not(kind: str, device: str, precision: str | None, model="default") -> str | None:
    """None if backend ``kind`` can run ``model`` on ``device`` at ``precision`` here, else the reason."""
    mkind = _model_kind(model)
    if mkind == "engine" and kind != "tensorrt":
        return f"{model} is a TensorRT engine; only the tensorrt backend runs it"
    if mkind == "onnx" and kind == "torch":
        return f"{model} is an ONNX file; the torch backend needs a model name or checkpoint"
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


def _construct(kind: str, device: str, precision: str | None, model, options: dict):
    """Create the backend object (tests monkeypatch this to check the selection logic alone)."""
    if kind == "tensorrt":
        from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model, device=device, precision=precision or "fp16", **options)
    if kind == "onnxruntime":
        return OnnxRuntimeBackend(model, device=device, precision=precision or "fp32", **options)
    return TorchBackend(model, device=device, precision=precision or "fp32", **options)


def select_backend(kind: str = "auto", model="default", device: str = "auto", precision: str | None = None,
                   **options):
    """Create the inference backend.

    Args:
        kind: "auto" (TensorRT -> ONNX Runtime CUDA -> torch CUDA -> ONNX Runtime CPU -> torch CPU, first that
            works), or "tensorrt" / "onnxruntime" / "torch" (an error if it cannot run, never a fallback).
        model: registry name (mtpano-tiny/vits/vitl), bundled name ("default", "tiny-labelfree"), checkpoint path,
            ``.onnx`` file or (tensorrt only) ``.engine`` file.
        device: "auto", "cpu" or "cuda" (or "cuda:N").
        precision: "fp32", "fp16", "int8" or None (backend default: fp16 for TensorRT, fp32 otherwise).
        **options: passed to the backend: input_hw, cache_dir, threads / intra_op_threads / inter_op_threads,
            engine, onnx, force_rebuild, calibration_dir, max_batch, workspace_gib, strongly_typed, ...
    Returns a Backend; ``backend.selection_log`` lists ``(candidate, reason skipped)`` pairs (auto only).
    """
    from mtpano_ros.runtime.options import RuntimeOptions

    if isinstance(kind, RuntimeOptions):
        opts = kind
        kind, model, device, precision = opts.backend, opts.model, opts.device, opts.precision_or_none
        options = {k: v for k, v in (("input_hw", opts.input_hw), ("threads", opts.threads or None),
                                     ("onnx", opts.onnx_path), ("engine", opts.engine_path),
                                     ("cache_dir", opts.engine_cache_dir), ("force_rebuild", opts.force_engine_rebuild),
                                     ("calibration_dir", opts.int8_calibration_dir),
                                     ("strongly_typed", opts.strongly_typed), ("max_batch", opts.max_batch),
                                     ("workspace_gib", opts.workspace_gib or None)) if v}
    if kind not in KINDS:
        raise ValueError(f"backend kind '{kind}' is not one of {KINDS}")
    dev_family = device.split(":")[0] if device else "auto"
    if dev_family not in DEVICES:
        raise ValueError(f"device '{device}' is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is not one of {PRECISIONS}")

    if kind != "auto":
        if dev_family == "auto":
            dev_family = "cuda" if kind == "tensorrt" or probe_cuda() is None else "cpu"
            LOG.info("backend %s: device auto -> %s", kind, dev_family)
        if kind == "tensorrt" and dev_family == "cpu":
            raise BackendError("the tensorrt backend needs device 'cuda'; use onnxruntime or torch for CPU")
        reason = why_not(kind, dev_family, precision, model)
        if reason is not None:
            raise BackendError(f"backend '{kind}' on {dev_family} cannot run: {reason}. Install what is missing, "
                               f"or choose another backend (auto picks the first that works).")
        dev = device if device.startswith(dev_family) else dev_family  # keeps "cuda:1"
        backend = _construct(kind, dev, precision, model, options)
        backend.selection_log = []
        LOG.info("selected backend %s on %s (requested explicitly)", kind, backend.device)
        return backend

    skipped: list[tuple[str, str]] = []
    for cand_kind, cand_dev in AUTO_ORDER:
        label = f"{cand_kind}/{cand_dev}"
        if dev_family != "auto" and cand_dev != dev_family:
            reason = f"device '{device}' requested"
        else:
            reason = why_not(cand_kind, cand_dev, precision, model)
        if reason is None:
            dev = device if device.startswith(cand_dev) else cand_dev
            try:
                backend = _construct(cand_kind, dev, precision, model, options)
            except BackendError as exc:
                reason = f"failed to start: {exc}"
            else:
                backend.selection_log = skipped
                LOG.info("selected backend %s on %s", cand_kind, backend.device)
                return backend
        LOG.info("skipping %s: %s", label, reason)
        skipped.append((label, reason))
    details = "; ".join(f"{k}: {r}" for k, r in skipped)
    raise BackendError(f"no backend can run model={model!r} device={device!r} precision={precision!r}: {details}")

"""Inference backends behind one interface: PyTorch and ONNX Runtime (TensorRT lives in tensorrt_backend.py).

Every backend takes RGB panoramas (uint8 (H, W, 3) / (B, H, W, 3) numpy, or float (3, H, W) / (B, 3, H, W) tensors in
[0, 1]) and returns exactly what ``mtpano_ros.model.infer`` returns: a dict of batched numpy arrays
``semantic`` (B, h, w) uint8 ADE20K ids (255 unknown), ``depth`` (B, h, w) float32 radial metres (NaN invalid),
``normals`` (B, h, w, 3) float32 unit vectors in the panorama frame (REP 103, NaN invalid); (h, w) is ``out_hw`` or
the model's input size.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from mtpano_ros.model.resolve import ModelSpec, load_model, resolve
from mtpano_ros.runtime.cache import default_cache_dir
from mtpano_ros.runtime.export import cached_onnx, onnx_input_hw

LOG = logging.getLogger("mtpano_ros.runtime")

PRECISIONS = ("fp32", "fp16", "int8")


class BackendError(RuntimeError):
    """A backend cannot run here (missing package, device or file); the message says what to do."""


class Backend:
    """Common part of every backend: preprocessing, postprocessing and the public attributes.

    Attributes: ``name`` ("torch", "onnxruntime", "tensorrt"), ``device`` ("cpu" / "cuda[:i]"), ``input_size``
    (h, w) the network runs at, ``model_name``, ``precision``.
    Subclasses implement ``forward(images (B, 3, h, w) float32 CPU tensor in [0, 1]) -> dict of torch tensors``
    with ``semantic`` (B, h, w) integer ids or ``semantic_logits`` (B, 150, h, w), ``depth`` (B, 1, h, w) and
    ``normals`` (B, 3, h, w).
    """

    name = "base"

    def __init__(self, model_name: str, device: str, input_size: tuple[int, int], precision: str):
        self.model_name = model_name
        self.device = device
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.precision = precision
        self.warmup_s: float | None = None  # seconds of the first warm-up, once it ran
        self.selection_log: list[tuple[str, str]] = []  # (candidate, why skipped), filled by select_backend

    def forward(self, images):  # pragma: no cover - abstract
        raise NotImplementedError

    def infer(self, images, out_hw: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Run the network on RGB panoramas; returns batched numpy ``semantic``, ``depth``, ``normals``.

        ``images``: uint8 RGB numpy (H, W, 3) or (B, H, W, 3) (resized with cv2 INTER_AREA to ``input_size``), or
        float tensors (3, H, W) / (B, 3, H, W) in [0, 1]. ``out_hw``: output size (default ``input_size``).
        """
        import torch

        from mtpano_ros.model import postprocess, preprocess

        x = preprocess(images, self.input_size)
        with torch.no_grad():
            out = self.forward(x)
        return postprocess(out, out_hw)

    def warmup(self, runs: int = 1) -> float:
        """Run the network ``runs`` times on a zero image (first-call allocation, autotuning); returns seconds.

        ``select_backend`` already ran one warm-up (to prove the backend works); a later ``warmup()`` with
        ``runs=1`` then returns that time without running again.
        """
        import torch

        if runs <= 1 and self.warmup_s is not None:
            return self.warmup_s
        t0 = time.perf_counter()
        x = torch.zeros(1, 3, *self.input_size, dtype=torch.float32)
        with torch.no_grad():
            for _ in range(max(1, runs)):
                self.forward(x)
        elapsed = time.perf_counter() - t0
        if self.warmup_s is None:
            self.warmup_s = elapsed
        return elapsed

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self.model_name!r}, device={self.device!r}, "
                f"input_size={self.input_size}, precision={self.precision!r})")


# ----------------------------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------------------------


class TorchBackend(Backend):
    """PyTorch eager inference on CPU (fp32) or CUDA (fp32, or fp16 through autocast).

    ``model``: an ``nn.Module``, a ModelSpec or anything ``mtpano_ros.model.resolve`` accepts that holds weights
    (a registry name gives deterministic random weights). ``threads``: torch intra-op threads (process-wide
    ``torch.set_num_threads``); None or 0 leaves it alone.
    """

    name = "torch"

    def __init__(self, model="default", device: str = "cpu", precision: str = "fp32",
                 input_hw: tuple[int, int] | None = None, threads: int | None = None):
        import torch

        device = _resolve_torch_device(device)
        if precision not in ("fp32", "fp16"):
            raise BackendError(f"torch backend supports precision fp32 or fp16 (CUDA), not '{precision}'; int8 "
                               f"needs the tensorrt backend")
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendError("fp16 with the torch backend needs CUDA (CPU float16 is slow and unsupported "
                               "by many kernels); use precision='fp32' on CPU")
        if threads:
            torch.set_num_threads(int(threads))
        if isinstance(model, torch.nn.Module):
            net, label = model.eval(), model.config.get("variant", "module") if hasattr(model, "config") else "module"
        else:
            spec = resolve(model)
            if not spec.has_weights:
                raise BackendError(f"the torch backend needs weights (a model name or checkpoint), but "
                                   f"'{spec.source}' is an {spec.kind} file: use backend onnxruntime"
                                   f"{' or tensorrt' if spec.kind == 'onnx' else ''} for it")
            net, label = load_model(spec), spec.name
        self.model = net.to(device)
        cfg = getattr(net, "config", {})
        hw = input_hw or tuple(cfg.get("input_hw", (512, 1024)))
        super().__init__(label, device, hw, precision)

    def forward(self, images):
        """(B, 3, h, w) float images -> CPU tensors ``semantic`` (B, h, w) int64 ids, ``depth``, ``normals``.

        The arg-max over the 150 logits runs on the model's device, like the ArgMax inside the exported graphs,
        so only class ids (not (B, 150, h, w) logits) travel back to the host.
        """
        import torch

        x = images.to(self.device, non_blocking=True)
        if self.precision == "fp16":
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                out = self.model(x)
        else:
            out = self.model(x)
        return {"semantic": out["semantic_logits"].argmax(dim=1).cpu(), "depth": out["depth"].float().cpu(),
                "normals": out["normals"].float().cpu()}


def _resolve_torch_device(device: str) -> str:
    import torch

    if device in ("auto", None):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device '{device}' requested but torch sees no CUDA device (torch {torch.__version__}, "
                           f"CUDA build: {torch.version.cuda}); install a CUDA build of torch or use device='cpu'")
    if device != "cpu" and not device.startswith("cuda"):
        raise BackendError(f"unknown device '{device}'; use 'cpu', 'cuda' or 'cuda:N'")
    return device


# ----------------------------------------------------------------------------------------------------------------
# ONNX Runtime
# ----------------------------------------------------------------------------------------------------------------


def onnxruntime_providers() -> list[str]:
    """Execution providers of the installed onnxruntime ([] when onnxruntime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime inference: CPU EP; on ``device='cuda'`` the TensorRT EP (when installed) and the CUDA EP.

    ``model``: an ``.onnx`` file made by ``mtpano-export``, or a model / ModelSpec / ``nn.Module`` (exported once
    into ``cache_dir`` and reused). ``onnx_path``: run this ``.onnx`` file instead of exporting ``model``.
    ``threads``: threads inside one operator (default: all cores); ``inter_op_threads``: parallel operators
    (default 1, the graph is a chain). Graph optimisation level: ORT_ENABLE_ALL. fp16 is only available through
    the TensorRT EP.
    """

    name = "onnxruntime"

    def __init__(self, model="default", device: str = "cpu", precision: str = "fp32",
                 input_hw: tuple[int, int] | None = None, threads: int | None = None,
                 inter_op_threads: int | None = None, cache_dir: str | Path | None = None,
                 onnx_path: str | Path | None = None, opset: int | None = None, providers: list | None = None,
                 use_tensorrt_ep: bool = True):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f"onnxruntime is not importable ({exc}); `pip install onnxruntime` (CPU) or "
                               "`onnxruntime-gpu` (CUDA), or use the torch backend") from exc
        if device in ("auto", None):
            device = "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
        available = ort.get_available_providers()
        cache = Path(cache_dir or default_cache_dir())
        if providers is None:
            providers = self._providers(device, precision, available, use_tensorrt_ep, cache)
        if onnx_path:
            onnx_path, label = Path(onnx_path), Path(onnx_path).stem
            if not onnx_path.is_file():
                raise FileNotFoundError(f"ONNX file '{onnx_path}' (onnx_path) does not exist; create it with "
                                        "`mtpano-export MODEL -o FILE.onnx` or leave onnx_path empty to export the "
                                        "model automatically")
        else:
            if isinstance(model, ModelSpec | str | Path) and resolve(model).kind == "engine":
                raise BackendError(f"'{model}' is a TensorRT engine; only the tensorrt backend runs it")
            onnx_path, label = cached_onnx(model, input_hw, cache, opset)
        hw = onnx_input_hw(onnx_path)
        if input_hw is not None and tuple(input_hw) != hw:
            raise BackendError(f"{onnx_path} was exported for {hw[0]}x{hw[1]} but input_hw={tuple(input_hw)}; "
                               f"re-export with --height {input_hw[0]} --width {input_hw[1]}")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        so.inter_op_num_threads = int(inter_op_threads or 1)
        self.intra_op_threads = so.intra_op_num_threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime could not load '{onnx_path}': {exc}. If the file is truncated or "
                               f"corrupt, delete it and re-export with mtpano-export") from exc
        self.onnx_path = onnx_path
        self.providers = self.session.get_providers()
        if device.startswith("cuda") and not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(
                self.providers):
            raise BackendError(f"onnxruntime could not start a GPU provider (session runs {self.providers}); check "
                               f"the CUDA/cuDNN libraries onnxruntime-gpu needs, or use device='cpu'")
        self.output_names = [o.name for o in self.session.get_outputs()]
        LOG.info("onnxruntime session on %s, providers %s, %d intra-op threads", onnx_path.name, self.providers,
                 so.intra_op_num_threads)
        super().__init__(label, device, hw, precision)

    @staticmethod
    def _providers(device, precision, available, use_tensorrt_ep, cache: Path) -> list:
        if device == "cpu" or device is None:
            if precision != "fp32":
                raise BackendError(f"onnxruntime on CPU runs fp32 only, not '{precision}'")
            return ["CPUExecutionProvider"]
        if not device.startswith("cuda"):
            raise BackendError(f"unknown device '{device}'; use 'cpu' or 'cuda[:N]'")
        dev_id = int(device.split(":")[1]) if ":" in device else 0
        chain = []
        if use_tensorrt_ep and "TensorrtExecutionProvider" in available:
            chain.append(("TensorrtExecutionProvider", {
                "device_id": dev_id, "trt_fp16_enable": precision in ("fp16", "int8"),
                "trt_int8_enable": precision == "int8", "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache / "ort_trt"), "trt_timing_cache_enable": True}))
        elif precision != "fp32":
            raise BackendError(f"onnxruntime precision '{precision}' needs the TensorRT execution provider "
                               f"(available: {available}); use precision='fp32' or the tensorrt backend")
        if "CUDAExecutionProvider" not in available:
            raise BackendError(f"onnxruntime has no CUDAExecutionProvider (available: {available}); install "
                               f"onnxruntime-gpu matching your CUDA, or use device='cpu'")
        chain.append(("CUDAExecutionProvider", {"device_id": dev_id}))
        chain.append("CPUExecutionProvider")
        return chain

    def forward(self, images):
        import torch

        feed = {"images": np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)}
        outs = self.session.run(None, feed)
        return {name: torch.from_numpy(arr) for name, arr in zip(self.output_names, outs)}

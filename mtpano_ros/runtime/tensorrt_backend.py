"""TensorRT backend (TensorRT 8.6 on JetPack 6.0, 10.x on JetPack 6.1+ and desktops): engine build from our ONNX
graph, engine cache, and execution on a dedicated torch CUDA stream.

Written against the documented TensorRT Python API (``tensorrt`` package): ``trt.Builder``,
``Builder.create_network(flags)`` (``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` on 8.x, where a network made
without it is implicit-batch and the ONNX parser rejects it; ignored and deprecated from 10.0, so it is set only
before 10; ``STRONGLY_TYPED`` from 9/10), ``trt.OnnxParser``, ``IBuilderConfig`` (``set_flag(BuilderFlag.FP16 /
INT8 / PREFER_PRECISION_CONSTRAINTS)``, ``set_memory_pool_limit``, timing cache, ``progress_monitor`` where the
release has ``IProgressMonitor``, ``int8_calibrator``), ``Builder.build_serialized_network``,
``Runtime.deserialize_cuda_engine`` and ``IExecutionContext`` ``set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3`` (8.5+). Buffers are torch CUDA tensors; no pycuda.

TensorRT treats its logger as a process-wide singleton (the first logger given to a Builder/Runtime is used for
all of them), so this module makes exactly one (``trt_logger``) and every Builder, parser and Runtime shares it.

Engines load only on the TensorRT version and GPU that built them; the cache key (mtpano_ros.runtime.cache.
EngineKey) also covers precision, strongly typed mode, the FP32 layer rule, the INT8 calibration set and the
profile. An engine that does not load is rebuilt when it lives in the cache; an engine the user pointed at gives
the rebuild hint instead (its ONNX may not be the one it came from).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path

from mtpano_ros.model.resolve import resolve
from mtpano_ros.runtime.backends import Backend, BackendError
from mtpano_ros.runtime.cache import (
    GpuInfo,
    atomic_write_bytes,
    atomic_write_text,
    calibration_files,
    calibration_set_sha256,
    default_cache_dir,
    engine_cache_path,
    engine_key,
    exclusive,
    file_sha256,
    is_inside,
    slug,
)
from mtpano_ros.runtime.export import cached_onnx, onnx_input_hw

LOG = logging.getLogger("mtpano_ros.runtime.tensorrt")


def import_tensorrt():
    """Import the ``tensorrt`` Python package or raise BackendError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError("TensorRT is not installed (no `tensorrt` Python package). On Jetson it comes with "
                           "JetPack (python3-libnvinfer); on x86 `pip install tensorrt` matching your CUDA. "
                           "Otherwise use backend 'onnxruntime' or 'torch'.") from exc
    return trt


def _require_cuda(device: str):
    import torch

    if not torch.cuda.is_available():
        raise BackendError(f"TensorRT needs a CUDA GPU but torch sees none (torch {torch.__version__}, CUDA build "
                           f"{torch.version.cuda}); install a CUDA build of torch, or use backend 'onnxruntime' "
                           f"or 'torch' on CPU")
    return torch.device(device if device.startswith("cuda") else "cuda")


# ----------------------------------------------------------------------------------------------------------------
# Version rules (pure: tested without TensorRT)
# ----------------------------------------------------------------------------------------------------------------


def version_tuple(version: str) -> tuple[int, int]:
    """'8.6.2.3' -> (8, 6)."""
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in str(version).split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def network_flags(creation_flags, trt_version: str, strongly_typed: bool = False) -> int:
    """The ``flags`` for ``Builder.create_network``.

    ``creation_flags`` is ``trt.NetworkDefinitionCreationFlag`` (any object with its members as attributes).
    Before TensorRT 10 the EXPLICIT_BATCH bit is required (without it the network is implicit-batch, which the ONNX
    parser rejects); from 10.0 every network is explicit-batch and the member is deprecated, so it is left out.
    STRONGLY_TYPED is feature-detected: a release without it raises BackendError.
    """
    flags = 0
    if version_tuple(trt_version) < (10, 0):
        explicit = getattr(creation_flags, "EXPLICIT_BATCH", None)
        if explicit is None:
            raise BackendError(f"TensorRT {trt_version} has no NetworkDefinitionCreationFlag.EXPLICIT_BATCH; "
                               "TensorRT 8.5 or newer is needed")
        flags |= 1 << int(explicit)
    if strongly_typed:
        typed = getattr(creation_flags, "STRONGLY_TYPED", None)
        if typed is None:
            raise BackendError(f"TensorRT {trt_version} has no strongly typed networks (they arrived in 9.x/10.0); "
                               "set strongly_typed false")
        flags |= 1 << int(typed)
    return flags


def onnx_opset_for(trt_version: str) -> int:
    """ONNX opset to export for this TensorRT: 17 before 10.0 (TensorRT 8.6 parses opsets up to 17), else 18."""
    return 17 if version_tuple(trt_version) < (10, 0) else 18


def sidecar_mismatch(meta: dict, tensorrt_version: str, gpu: GpuInfo) -> str | None:
    """Why an engine whose sidecar says ``meta`` cannot load here (other TensorRT or GPU), or None."""
    if not meta:
        return None
    if meta.get("tensorrt_version") not in (None, tensorrt_version):
        return f"it was built with TensorRT {meta['tensorrt_version']}, this is TensorRT {tensorrt_version}"
    built_gpu = meta.get("gpu")
    if isinstance(built_gpu, dict) and GpuInfo(built_gpu["name"], tuple(built_gpu["compute_capability"]),
                                               int(built_gpu["total_memory_bytes"])) != gpu:
        return (f"it was built on {built_gpu['name']} (sm {built_gpu['compute_capability']}, "
                f"{built_gpu['total_memory_bytes'] / 2**30:.0f} GiB), this is {gpu.name} (sm {gpu.compute_capability}, "
                f"{gpu.total_memory_bytes / 2**30:.0f} GiB)")
    return None


def stale_engine_action(engine: Path, cache_dir: Path, can_build: bool) -> str:
    """What to do with an engine that does not load: "rebuild" when it lives in the cache (ours to replace) and
    there is an ONNX graph or model to build from; "error" (with the rebuild hint) otherwise."""
    return "rebuild" if can_build and is_inside(engine, cache_dir) else "error"


class LogBuffer:
    """Thread-safe record of the latest error messages and their running count (TensorRT logs from its own
    threads). ``mark()`` then ``since(mark)`` gives the errors of one build."""

    def __init__(self, keep: int = 50):
        self._lock = threading.Lock()
        self._recent: collections.deque = collections.deque(maxlen=keep)
        self.count = 0

    def add(self, msg: str) -> None:
        with self._lock:
            self.count += 1
            self._recent.append((self.count, msg))

    def mark(self) -> int:
        with self._lock:
            return self.count

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return [m for i, m in self._recent if i > mark]


class BuildHeartbeat:
    """Logs "engine build running: N s elapsed" every ``every_s`` seconds while a build runs (on every TensorRT
    version, with or without IProgressMonitor), plus the current phase when a progress monitor reports one.

        with BuildHeartbeat(30.0, "fp16 engine for model.onnx") as hb: ...build...; hb.phase = "..."
    """

    def __init__(self, every_s: float, what: str, log=None):
        self.every_s, self.what = float(every_s), what
        self.phase = ""
        self._log = log or LOG.info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trt_build_heartbeat", daemon=True)
        self.t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            phase = f", phase: {self.phase}" if self.phase else ""
            self._log(f"building {self.what}: {self.elapsed_s():.0f} s elapsed{phase}")

    def __enter__(self) -> BuildHeartbeat:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


# ----------------------------------------------------------------------------------------------------------------
# The one logger, progress during builds, GPU identity
# ----------------------------------------------------------------------------------------------------------------

_LOGGER = None
_LOGGER_LOCK = threading.Lock()


def trt_logger(trt):
    """The process-wide trt.ILogger (made on first use) that forwards TensorRT messages to Python logging and
    records errors in ``.errors`` (a LogBuffer). Every Builder, OnnxParser and Runtime here uses it."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            levels = {trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL, trt.ILogger.Severity.ERROR: logging.ERROR,
                      trt.ILogger.Severity.WARNING: logging.WARNING, trt.ILogger.Severity.INFO: logging.DEBUG,
                      trt.ILogger.Severity.VERBOSE: logging.DEBUG}

            class _Logger(trt.ILogger):
                def __init__(self):
                    trt.ILogger.__init__(self)
                    self.errors = LogBuffer()

                def log(self, severity, msg):
                    level = levels.get(severity, logging.INFO)
                    if level >= logging.ERROR:
                        self.errors.add(str(msg))
                    LOG.log(level, "TensorRT: %s", msg)

            _LOGGER = _Logger()
    return _LOGGER


def _make_progress_monitor(trt, heartbeat: BuildHeartbeat, every_s: float = 10.0):
    """A trt.IProgressMonitor (TensorRT 10+) logging top-level phases and, at most every ``every_s`` s, step
    progress, each with the elapsed time; None on releases without IProgressMonitor."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._steps: dict[str, int] = {}
            self._last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                self._steps[phase_name] = num_steps
                heartbeat.phase = phase_name
                if parent_phase is None:
                    LOG.info("engine build: %s (%d steps) at %.0f s", phase_name, num_steps, heartbeat.elapsed_s())

        def step_complete(self, phase_name, step):
            now = time.monotonic()
            with self._lock:
                if now - self._last >= every_s:
                    self._last = now
                    LOG.info("engine build: %s step %d/%d, %.0f s elapsed", phase_name, step + 1,
                             self._steps.get(phase_name, 0), heartbeat.elapsed_s())
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                self._steps.pop(phase_name, None)

    return _Progress()


def gpu_info(device) -> GpuInfo:
    """Name, compute capability and total memory of a CUDA device (torch.cuda.get_device_properties)."""
    import torch

    props = torch.cuda.get_device_properties(device)
    return GpuInfo(name=str(props.name), compute_capability=(int(props.major), int(props.minor)),
                   total_memory_bytes=int(props.total_memory))


# ----------------------------------------------------------------------------------------------------------------
# INT8 calibration from a folder of panoramas
# ----------------------------------------------------------------------------------------------------------------


def _make_calibrator(trt, folder: str | Path, input_hw: tuple[int, int], cache_file: Path, batch_size: int = 1):
    """A trt.IInt8EntropyCalibrator2 that feeds panoramas from ``folder`` (resized to ``input_hw``, RGB [0, 1])."""
    import cv2
    import torch

    from mtpano_ros.model import preprocess

    files = calibration_files(folder)
    if not files:
        raise BackendError(f"INT8 calibration folder '{folder}' has no images (jpg/png/bmp/webp); put ~100 "
                           "representative panoramas there or use precision fp16")

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.buffer = None  # keeps the current batch alive on the GPU while TensorRT reads it

        def get_batch_size(self):
            return batch_size

        def get_batch(self, names):
            if self.index >= len(files):
                return None
            batch = []
            for p in files[self.index:self.index + batch_size]:
                bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise BackendError(f"cannot decode calibration image '{p}'")
                batch.append(bgr[:, :, ::-1].copy())
            self.index += batch_size
            x = torch.cat([preprocess(img, input_hw) for img in batch])
            self.buffer = x.to("cuda", dtype=torch.float32).contiguous()
            LOG.info("INT8 calibration batch %d/%d", min(self.index, len(files)), len(files))
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.exists() else None

        def write_calibration_cache(self, cache):
            atomic_write_bytes(cache_file, bytes(cache))

    return _Calibrator()


# ----------------------------------------------------------------------------------------------------------------
# Engine build
# ----------------------------------------------------------------------------------------------------------------


def fp32_layer_names(trt, network) -> list[str]:
    """Pin normalisation, softmax and the attention score MatMul (Q K^T) feeding a softmax to FP32; returns the
    names of the pinned layers (the rule is cache.FP32_ATTENTION_RULE: bump it when this changes).

    ViT attention scores can pass FP16's 65504 (DESIGN §5b); with ``PREFER_PRECISION_CONSTRAINTS`` TensorRT keeps
    these layers in FP32 and the rest in FP16.
    """
    producer = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    pinned = []
    norm = getattr(trt.LayerType, "NORMALIZATION", None)  # INormalizationLayer: TensorRT 8.6+
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (norm, trt.LayerType.SOFTMAX):
            pinned.append(layer)
        if layer.type == trt.LayerType.SOFTMAX:  # walk back over the scale to the Q K^T MatMul
            inp = layer.get_input(0)
            src = producer.get(inp.name) if inp is not None else None
            for _ in range(3):
                if src is None:
                    break
                pinned.append(src)
                if src.type == trt.LayerType.MATRIX_MULTIPLY:
                    break
                inp = src.get_input(0)
                src = producer.get(inp.name) if inp is not None else None
    for layer in pinned:
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in (trt.float32, trt.float16):
                layer.set_output_type(j, trt.float32)
    return sorted({layer.name for layer in pinned})


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str = "fp16", max_batch: int = 1,
                 calibration_dir: str | Path | None = None, workspace_gib: float | None = None,
                 timing_cache: str | Path | None = None, strongly_typed: bool = False,
                 fp32_attention: bool = True, key=None, heartbeat_s: float = 30.0) -> Path:
    """Build a serialized TensorRT engine from an ``mtpano-export`` ONNX file and write it to ``engine_path``.

    Args:
        onnx_path: graph with input ``images`` (B, 3, H, W) float32, static H, W, dynamic B.
        engine_path: output file, written atomically; a JSON sidecar ``<engine>.json`` records the cache key
            (TensorRT version, GPU, precision, ...) and the FP32-pinned layers.
        precision: "fp32", "fp16" (default) or "int8" (needs ``calibration_dir``; INT8 also enables FP16).
        max_batch: the optimisation profile covers batch 1..max_batch (optimum 1).
        calibration_dir: folder of panoramas for the IInt8EntropyCalibrator2 (INT8 only).
        workspace_gib: builder workspace memory pool limit (default: TensorRT's, the whole GPU).
        timing_cache: file that keeps layer timings between builds (created if missing, written atomically).
        strongly_typed: build a strongly typed network (types come from the ONNX graph; no FP16/INT8 flags, so an
            fp32 graph gives an fp32 engine). TensorRT 11 only builds strongly typed networks.
        fp32_attention: with fp16/int8, keep normalisation, softmax and Q K^T in FP32 (see fp32_layer_names).
        key: the EngineKey the caller computed (stored in the sidecar); computed here when None.
        heartbeat_s: period of the "N s elapsed" log lines while the builder runs.
    Logs progress with the elapsed time while building: minutes on desktop GPUs, over an hour on Jetson.
    """
    trt = import_tensorrt()
    device = _require_cuda("cuda")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.exists():
        raise FileNotFoundError(f"ONNX file '{onnx_path}' does not exist; create it with mtpano-export")
    if precision not in ("fp32", "fp16", "int8"):
        raise BackendError(f"precision '{precision}' must be fp32, fp16 or int8")
    if precision == "int8" and not calibration_dir:
        raise BackendError("precision int8 needs int8_calibration_dir (a folder of representative panoramas)")
    if strongly_typed and precision != "fp32":
        raise BackendError("strongly typed networks take their precision from the ONNX graph and ours is fp32; "
                           "set strongly_typed false for fp16/int8 (or precision fp32)")
    logger = trt_logger(trt)
    mark = logger.errors.mark()
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt.NetworkDefinitionCreationFlag, trt.__version__,
                                                   strongly_typed))
    parser = trt.OnnxParser(network, logger)
    LOG.info("parsing %s with TensorRT %s", onnx_path, trt.__version__)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT {trt.__version__} could not parse '{onnx_path}': {errors}. If the file is "
                           f"corrupt, re-export it; if an op is unsupported, see `mtpano-export --trt-target`")
    inp = network.get_input(0)
    _, c, h, w = tuple(inp.shape)
    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (1, c, h, w), (1, c, h, w), (max(1, max_batch), c, h, w))
    config.add_optimization_profile(profile)
    pinned: list[str] = []
    if precision in ("fp16", "int8"):
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise BackendError(f"TensorRT {trt.__version__} has no FP16 builder flag (weak typing was removed); "
                               f"build fp32 or export an fp16 graph")
        config.set_flag(trt.BuilderFlag.FP16)
        if fp32_attention and hasattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS"):
            pinned = fp32_layer_names(trt, network)
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            LOG.info("keeping %d normalisation/softmax/attention-score layers in FP32", len(pinned))
    gpu = gpu_info(device)
    calib_sha = calibration_set_sha256(calibration_dir) if precision == "int8" else ""
    if key is None:
        key = engine_key(file_sha256(onnx_path), trt.__version__, gpu, precision, strongly_typed, fp32_attention,
                         calib_sha, max_batch, int((workspace_gib or 0) * (1 << 30)))
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        calib_cache = engine_path.with_name(f"{engine_path.name}.{calib_sha[:12]}.calib")
        config.int8_calibrator = _make_calibrator(trt, calibration_dir, (h, w), calib_cache)
        config.set_calibration_profile(profile)
    cache_bytes = b""
    if timing_cache is not None and Path(timing_cache).exists():
        cache_bytes = Path(timing_cache).read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    what = f"{precision} TensorRT engine for {onnx_path.name} on {gpu.name}"
    LOG.info("building %s at %dx%d, batch 1..%d: this takes minutes (over an hour on Jetson); progress follows",
             what, h, w, max_batch)
    with BuildHeartbeat(heartbeat_s, what) as heartbeat:
        progress = _make_progress_monitor(trt, heartbeat)
        if progress is not None:
            config.progress_monitor = progress
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT engine build failed for '{onnx_path}' after {heartbeat.elapsed_s():.0f} s: "
                           f"{'; '.join(logger.errors.since(mark)[-5:]) or 'see the TensorRT errors above'}")
    atomic_write_bytes(engine_path, bytes(serialized))
    sidecar = {**asdict(key), "onnx": str(onnx_path), "input_hw": [h, w], "fp32_layer_count": len(pinned),
               "fp32_layers_sha256": hashlib.sha256("\n".join(pinned).encode()).hexdigest(),
               "fp32_layer_names": pinned,
               "build_s": round(heartbeat.elapsed_s(), 1), "built_unix_s": int(time.time())}
    atomic_write_text(Path(str(engine_path) + ".json"), json.dumps(sidecar, indent=1))
    if timing_cache is not None:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    LOG.info("engine built in %.0f s -> %s (%.1f MB)", heartbeat.elapsed_s(), engine_path,
             engine_path.stat().st_size / 1e6)
    return engine_path


def read_sidecar(engine: Path) -> dict:
    """The JSON sidecar ``<engine>.json`` written by build_engine ({} when absent or unreadable)."""
    try:
        return json.loads(Path(str(engine) + ".json").read_text())
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------------------------------------------
# Backend
# ----------------------------------------------------------------------------------------------------------------


def _torch_dtype(trt, dt):
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.int8: torch.int8, trt.bool: torch.bool}
    for name, tdt in (("int64", torch.int64), ("bfloat16", torch.bfloat16), ("uint8", torch.uint8)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = tdt
    if dt not in table:
        raise BackendError(f"engine tensor type {dt} has no torch equivalent")
    return table[dt]


class TensorRTBackend(Backend):
    """TensorRT engine on one CUDA GPU, run with ``execute_async_v3`` on a dedicated ``torch.cuda.Stream``.

    ``model``: ``.engine``/``.plan`` file, ``.onnx`` file (engine built and cached), or a model / ModelSpec /
    ``nn.Module`` (exported to ONNX at the opset this TensorRT parses, then built; both cached).
    ``engine_path``: where the engine lives (built there if missing); default: the cache, named by the full key.
    ``onnx_path``: build from this ONNX instead of exporting ``model``. ``precision``: fp16 (default), fp32, int8
    (+ ``calibration_dir``). ``force_rebuild``: build even when the engine exists.
    An engine that does not load (other TensorRT / GPU, corrupt) is rebuilt when it lives in ``cache_dir``;
    elsewhere it is an error that says how to rebuild it.
    """

    name = "tensorrt"

    def __init__(self, model="default", device: str = "cuda", precision: str | None = "fp16",
                 input_hw: tuple[int, int] | None = None, engine_path: str | Path | None = None,
                 onnx_path: str | Path | None = None, cache_dir: str | Path | None = None,
                 force_rebuild: bool = False, calibration_dir: str | Path | None = None, max_batch: int = 1,
                 workspace_gib: float | None = None, strongly_typed: bool = False, fp32_attention: bool = True):
        import torch

        precision = precision or "fp16"
        trt = import_tensorrt()
        self._trt = trt
        self.torch_device = _require_cuda(device)
        torch.cuda.set_device(self.torch_device)
        cache = Path(cache_dir or default_cache_dir())
        spec = None if isinstance(model, torch.nn.Module) else resolve(model)
        if spec is not None and spec.kind == "engine":
            engine_path = engine_path or spec.path
        if precision == "int8" and not calibration_dir and not (engine_path and Path(engine_path).exists()):
            raise BackendError("precision int8 needs int8_calibration_dir (a folder of representative panoramas) to "
                               "build the engine, or engine_path / model of an int8 engine built before")
        onnx = Path(onnx_path) if onnx_path else (spec.path if spec is not None and spec.kind == "onnx" else None)
        if onnx is not None and not onnx.is_file():
            raise FileNotFoundError(f"ONNX file '{onnx}' does not exist; create it with mtpano-export")
        can_export = spec is None or spec.has_weights
        label = onnx.stem if onnx is not None else (spec.name if spec is not None else "module")

        def get_onnx() -> Path | None:
            nonlocal onnx, label
            if onnx is None and can_export:
                onnx, label = cached_onnx(model if spec is None else spec, input_hw, cache,
                                          onnx_opset_for(trt.__version__))
            return onnx

        gpu = gpu_info(self.torch_device)
        build = dict(precision=precision, max_batch=max_batch, calibration_dir=calibration_dir,
                     workspace_gib=workspace_gib, strongly_typed=strongly_typed, fp32_attention=fp32_attention,
                     timing_cache=cache / "timing" / f"trt{slug(trt.__version__)}_{gpu.slug()}.cache")
        if engine_path is None:  # in the cache, named by the full key
            if get_onnx() is None:
                raise BackendError(f"no engine, ONNX file or model to build from ('{model}')")
            key = engine_key(file_sha256(onnx), trt.__version__, gpu, precision, strongly_typed, fp32_attention,
                             calibration_set_sha256(calibration_dir) if precision == "int8" else "", max_batch,
                             int((workspace_gib or 0) * (1 << 30)))
            engine = engine_cache_path(cache, key)
        else:
            engine = Path(engine_path)
        if force_rebuild or not engine.exists():
            if get_onnx() is None:
                raise FileNotFoundError(f"engine '{engine}' does not exist and there is no ONNX file or model to "
                                        f"build it from; set onnx_path, or build it with `mtpano-export MODEL -o "
                                        f"m.onnx --engine {engine}`")
            with exclusive(engine, f"building {engine.name}"):
                if force_rebuild or not engine.exists():  # else another process built it while this one waited
                    LOG.info("no usable engine at %s%s", engine, " (force_engine_rebuild)" if force_rebuild else "")
                    build_engine(onnx, engine, **build)
        self.runtime = trt.Runtime(trt_logger(trt))
        reason = sidecar_mismatch(read_sidecar(engine), trt.__version__, gpu)
        self.engine = None if reason else self._deserialize(engine)
        if self.engine is None:
            reason = reason or "it does not deserialize (corrupt, truncated, or built by another TensorRT / GPU)"
            text = (f"engine '{engine}' cannot be used with TensorRT {trt.__version__} on {gpu.name}: {reason}; "
                    "engines only load on the TensorRT version and GPU that built them")
            if stale_engine_action(engine, cache, can_build=onnx is not None or can_export) == "error":
                raise BackendError(text + ". Rebuild it: set force_engine_rebuild true (with onnx_path or a model "
                                   f"to build from), run `mtpano-export MODEL -o m.onnx --engine {engine}`, or "
                                   "delete it and leave engine_path empty to use the cache")
            LOG.warning("%s: rebuilding it from %s", text, get_onnx())
            with exclusive(engine, f"rebuilding {engine.name}"):
                build_engine(onnx, engine, **build)
            self.engine = self._deserialize(engine)
            if self.engine is None:
                raise BackendError(f"freshly built engine '{engine}' failed to deserialize; see TensorRT errors above")
        self.engine_path = engine
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = torch.cuda.Stream(device=self.torch_device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self.input_names != ["images"]:
            raise BackendError(f"engine '{engine}' has inputs {self.input_names}, expected ['images']; build it "
                               f"from an mtpano-export ONNX file")
        shape = tuple(self.engine.get_tensor_shape("images"))
        hw = (int(shape[2]), int(shape[3]))
        if onnx is not None and hw != onnx_input_hw(onnx):
            raise BackendError(f"engine {engine} is {hw} but {onnx} is {onnx_input_hw(onnx)}")
        if input_hw is not None and tuple(input_hw) != hw:
            raise BackendError(f"engine '{engine}' runs at {hw[0]}x{hw[1]}, not input_hw={tuple(input_hw)}; "
                               f"re-export and rebuild at the size you need")
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype("images"))
        self.max_batch = int(self.engine.get_tensor_profile_shape("images", 0)[2][0])
        super().__init__(label if onnx is not None else engine.stem, str(self.torch_device), hw, precision)

    def _deserialize(self, engine: Path):
        try:
            data = engine.read_bytes()
        except OSError as exc:
            raise BackendError(f"cannot read engine '{engine}': {exc}") from exc
        if not data:
            return None
        try:
            return self.runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # noqa: BLE001 - some TensorRT versions raise instead of returning None
            LOG.warning("deserializing %s raised %s", engine, exc)
            return None

    def forward(self, images):
        """Run the engine on (B, 3, h, w) float images; outputs come back as CPU tensors."""
        import torch

        outs = {}
        for start in range(0, images.shape[0], self.max_batch):
            part = self._run(images[start:start + self.max_batch])
            for k, v in part.items():
                outs.setdefault(k, []).append(v)
        return {k: torch.cat(v) for k, v in outs.items()}

    def _run(self, images):
        import torch

        trt = self._trt
        with torch.cuda.stream(self.stream):
            x = images.to(self.torch_device, dtype=self.input_dtype, non_blocking=True).contiguous()
            if not self.context.set_input_shape("images", tuple(x.shape)):
                raise BackendError(f"engine rejected input shape {tuple(x.shape)}")
            self.context.set_tensor_address("images", int(x.data_ptr()))
            outs = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                outs[name] = torch.empty(shape, dtype=dtype, device=self.torch_device)
                self.context.set_tensor_address(name, int(outs[name].data_ptr()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("TensorRT execute_async_v3 failed; see the TensorRT errors logged above")
            host = {k: v.to("cpu", non_blocking=False) for k, v in outs.items()}
        self.stream.synchronize()
        return {k: (v.float() if v.dtype in (torch.float16, torch.bfloat16) else v) for k, v in host.items()}

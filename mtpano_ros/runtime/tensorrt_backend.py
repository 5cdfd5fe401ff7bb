"""TensorRT 10.x backend: engine build from our ONNX graph, engine cache, and execution on a torch CUDA stream.

Written against the documented TensorRT 10 Python API (``tensorrt`` package): ``trt.Builder``,
``Builder.create_network`` (optionally ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``), ``trt.OnnxParser``,
``IBuilderConfig`` (``set_flag(BuilderFlag.FP16/INT8)``, timing cache, ``progress_monitor``, ``int8_calibrator``),
``Builder.build_serialized_network``, ``Runtime.deserialize_cuda_engine``, and ``IExecutionContext``
``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``. Buffers are torch CUDA tensors; no pycuda.

Engines only load on the TensorRT version and GPU that built them, so the cache key is
(ONNX sha256, TensorRT version, GPU name, precision, max batch); an engine that fails to deserialize is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from mtpano_ros.runtime.backends import Backend, BackendError, _log_unused, default_cache_dir, resolve_onnx

LOG = logging.getLogger("mtpano_ros.runtime.tensorrt")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


# ----------------------------------------------------------------------------------------------------------------
# Logging and progress during builds
# ----------------------------------------------------------------------------------------------------------------


def _make_logger(trt):
    """A trt.ILogger that forwards TensorRT messages to Python logging."""
    levels = {trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL, trt.ILogger.Severity.ERROR: logging.ERROR,
              trt.ILogger.Severity.WARNING: logging.WARNING, trt.ILogger.Severity.INFO: logging.DEBUG,
              trt.ILogger.Severity.VERBOSE: logging.DEBUG}

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            level = levels.get(severity, logging.INFO)
            if level >= logging.ERROR:
                self.errors.append(msg)
            LOG.log(level, "TensorRT: %s", msg)

    return _Logger()


def _make_progress_monitor(trt, every_s: float = 10.0):
    """A trt.IProgressMonitor that logs phase starts/ends and, at most every ``every_s`` s, step progress."""

    class _Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._steps: dict[str, int] = {}
            self._t0 = time.monotonic()
            self._last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                self._steps[phase_name] = num_steps
                if parent_phase is None:
                    LOG.info("engine build: %s (%d steps) at %.0f s", phase_name, num_steps,
                             time.monotonic() - self._t0)

        def step_complete(self, phase_name, step):
            now = time.monotonic()
            with self._lock:
                if now - self._last >= every_s:
                    self._last = now
                    LOG.info("engine build: %s step %d/%d, %.0f s elapsed", phase_name, step + 1,
                             self._steps.get(phase_name, 0), now - self._t0)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                self._steps.pop(phase_name, None)

    return _Progress()


# ----------------------------------------------------------------------------------------------------------------
# INT8 calibration from a folder of panoramas
# ----------------------------------------------------------------------------------------------------------------


def _make_calibrator(trt, folder: str | Path, input_hw: tuple[int, int], cache_file: Path, batch_size: int = 1,
                     max_images: int = 256):
    """A trt.IInt8EntropyCalibrator2 that feeds panoramas from ``folder`` (resized to ``input_hw``, RGB [0, 1])."""
    import cv2
    import torch

    from mtpano_ros.model import preprocess

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)[:max_images]
    if not files:
        raise BackendError(f"INT8 calibration folder '{folder}' has no images ({', '.join(_IMAGE_SUFFIXES)}); "
                           f"put ~100 representative panoramas there or use precision fp16")

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
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()


# ----------------------------------------------------------------------------------------------------------------
# Engine build
# ----------------------------------------------------------------------------------------------------------------


def _keep_fp32_islands(trt, network) -> int:
    """Pin normalisation, softmax and the attention score MatMul (Q K^T) feeding a softmax to FP32.

    ViT attention scores can pass FP16's 65504 (DESIGN §5b); with ``PREFER_PRECISION_CONSTRAINTS`` TensorRT keeps
    these layers in FP32 and the rest in FP16. Returns the number of pinned layers.
    """
    producer = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX):
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
    return len(pinned)


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str = "fp16", max_batch: int = 1,
                 calibration_dir: str | Path | None = None, workspace_gib: float | None = None,
                 timing_cache: str | Path | None = None, strongly_typed: bool = False,
                 fp32_attention: bool = True) -> Path:
    """Build a serialized TensorRT engine from an ``mtpano-export`` ONNX file and write it to ``engine_path``.

    Args:
        onnx_path: graph with input ``images`` (B, 3, H, W) float32, static H, W, dynamic B.
        engine_path: output file; a JSON sidecar ``<engine>.json`` records TensorRT version, GPU and precision.
        precision: "fp32", "fp16" (default) or "int8" (needs ``calibration_dir``; INT8 also enables FP16).
        max_batch: the optimisation profile covers batch 1..max_batch (optimum 1).
        calibration_dir: folder of panoramas for the IInt8EntropyCalibrator2 (INT8 only).
        workspace_gib: builder workspace memory pool limit (default: TensorRT's, the whole GPU).
        timing_cache: file that keeps layer timings between builds (created if missing).
        strongly_typed: build a strongly typed network (types come from the ONNX graph; no FP16/INT8 flags, so an
            fp32 graph gives an fp32 engine). TensorRT 11 only builds strongly typed networks.
        fp32_attention: with fp16/int8, keep normalisation, softmax and Q K^T in FP32 (see _keep_fp32_islands).
    Logs progress (phases, steps) while building: minutes on desktop GPUs, over an hour on Jetson.
    """
    import torch

    trt = import_tensorrt()
    _require_cuda("cuda")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.exists():
        raise FileNotFoundError(f"ONNX file '{onnx_path}' does not exist; create it with mtpano-export")
    if precision not in ("fp32", "fp16", "int8"):
        raise BackendError(f"precision '{precision}' must be fp32, fp16 or int8")
    if precision == "int8" and calibration_dir is None:
        raise BackendError("precision int8 needs calibration_dir (a folder of representative panoramas)")
    if strongly_typed and precision != "fp32":
        raise BackendError("strongly typed networks take their precision from the ONNX graph and ours is fp32; "
                           "use strongly_typed=False for fp16/int8 (or precision fp32)")
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
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
    if precision in ("fp16", "int8"):
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise BackendError(f"TensorRT {trt.__version__} has no FP16 builder flag (weak typing was removed); "
                               f"build fp32 or export an fp16 graph")
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated attribute: absent in newer releases
            LOG.warning("this GPU reports no fast FP16; the fp16 engine may be slower than fp32")
        config.set_flag(trt.BuilderFlag.FP16)
        if fp32_attention and hasattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS"):
            n = _keep_fp32_islands(trt, network)
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            LOG.info("keeping %d normalisation/softmax/attention-score layers in FP32", n)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        calib_cache = engine_path.with_suffix(".calib")
        config.int8_calibrator = _make_calibrator(trt, calibration_dir, (h, w), calib_cache)
        config.set_calibration_profile(profile)
    cache_bytes = b""
    if timing_cache is not None and Path(timing_cache).exists():
        cache_bytes = Path(timing_cache).read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    progress = _make_progress_monitor(trt)
    config.progress_monitor = progress
    gpu = torch.cuda.get_device_name()
    LOG.info("building %s TensorRT engine for %s at %dx%d, batch 1..%d: this takes minutes (over an hour on "
             "Jetson); progress follows", precision, gpu, h, w, max_batch)
    t0 = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT engine build failed for '{onnx_path}': {'; '.join(logger.errors[-5:])}")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine_path)
    sidecar = {"tensorrt": trt.__version__, "gpu": gpu, "precision": precision, "max_batch": max_batch,
               "onnx": str(onnx_path), "input_hw": [h, w], "strongly_typed": strongly_typed}
    Path(str(engine_path) + ".json").write_text(json.dumps(sidecar, indent=1))
    if timing_cache is not None:
        Path(timing_cache).parent.mkdir(parents=True, exist_ok=True)
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    LOG.info("engine built in %.0f s -> %s (%.1f MB)", time.monotonic() - t0, engine_path,
             engine_path.stat().st_size / 1e6)
    return engine_path


def engine_cache_path(cache_dir: str | Path, onnx_sha256: str, trt_version: str, gpu_name: str, precision: str,
                      max_batch: int = 1) -> Path:
    """Cache file for an engine: one per (ONNX sha256, TensorRT version, GPU name, precision, max batch)."""
    name = f"{onnx_sha256[:16]}_trt{_slug(trt_version)}_{_slug(gpu_name)}_{precision}_b{max_batch}.engine"
    return Path(cache_dir) / "engines" / name


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

    ``model``: ``.engine``/``.plan`` file, ``.onnx`` file (engine built and cached), or a model name/checkpoint
    (exported to ONNX and built, both cached). ``engine``: explicit engine path (built there if missing or stale).
    ``precision``: fp16 (default), fp32, int8 (+ ``calibration_dir``). ``force_rebuild``: ignore cached engines.
    An engine that fails to deserialize (other TensorRT version or GPU) is rebuilt from the ONNX file when known.
    """

    name = "tensorrt"

    def __init__(self, model="default", device: str = "cuda", precision: str | None = "fp16",
                 input_hw: tuple[int, int] | None = None, engine: str | Path | None = None,
                 onnx: str | Path | None = None, cache_dir: str | Path | None = None, force_rebuild: bool = False,
                 calibration_dir: str | Path | None = None, max_batch: int = 1, workspace_gib: float | None = None,
                 strongly_typed: bool = False, **unused):
        import torch

        from mtpano_ros.runtime.export import file_sha256, onnx_input_hw

        _log_unused(self.name, unused)
        precision = precision or "fp16"
        trt = import_tensorrt()
        self._trt = trt
        self.torch_device = _require_cuda(device)
        torch.cuda.set_device(self.torch_device)
        cache = Path(cache_dir or default_cache_dir())
        model_str = str(model) if isinstance(model, (str, Path)) else None
        if model_str and model_str.endswith((".engine", ".plan")):
            engine = engine or model_str
        elif model_str and model_str.endswith(".onnx"):
            onnx = onnx or model_str
        onnx_path, label = (Path(onnx), Path(onnx).stem) if onnx else (None, None)
        if onnx_path is not None and not onnx_path.exists():
            raise FileNotFoundError(f"ONNX file '{onnx_path}' does not exist; create it with mtpano-export")
        if engine is None or not Path(engine).exists():
            if onnx_path is None:
                if model_str and model_str.endswith((".engine", ".plan")):
                    raise FileNotFoundError(f"engine '{model_str}' does not exist and no ONNX file was given to "
                                            f"build it; pass onnx=... or build with `mtpano-export MODEL -o m.onnx "
                                            f"--engine {model_str}`")
                onnx_path, label = resolve_onnx(model, input_hw, cache)
        gpu = torch.cuda.get_device_name(self.torch_device)
        timing_cache = cache / "timing" / f"trt{_slug(trt.__version__)}_{_slug(gpu)}.cache"
        if engine is None:
            engine = engine_cache_path(cache, file_sha256(onnx_path), trt.__version__, gpu, precision, max_batch)
        engine = Path(engine)
        build = dict(precision=precision, max_batch=max_batch, calibration_dir=calibration_dir,
                     workspace_gib=workspace_gib, timing_cache=timing_cache, strongly_typed=strongly_typed)
        if force_rebuild or not engine.exists():
            if onnx_path is None:
                raise FileNotFoundError(f"engine '{engine}' does not exist; pass the ONNX file to build it")
            LOG.info("no usable engine at %s%s", engine, " (force_rebuild)" if force_rebuild else "")
            build_engine(onnx_path, engine, **build)
        self.runtime = trt.Runtime(_make_logger(trt))
        self.engine = self._deserialize(engine)
        if self.engine is None:
            meta = _read_sidecar(engine)
            reason = (f"engine '{engine}' does not load with TensorRT {trt.__version__} on {gpu}"
                      + (f" (built with TensorRT {meta.get('tensorrt')} on {meta.get('gpu')})" if meta else "")
                      + "; engines only load on the TensorRT version and GPU that built them")
            if onnx_path is None:
                raise BackendError(reason + ". Pass the ONNX file (onnx=...) so it can be rebuilt, or delete it.")
            LOG.warning("%s: rebuilding from %s", reason, onnx_path)
            build_engine(onnx_path, engine, **build)
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
        if onnx_path is not None and hw != onnx_input_hw(onnx_path):
            raise BackendError(f"engine {engine} is {hw} but {onnx_path} is {onnx_input_hw(onnx_path)}")
        if input_hw is not None and tuple(input_hw) != hw:
            raise BackendError(f"engine '{engine}' runs at {hw[0]}x{hw[1]}, not input_hw={tuple(input_hw)}; "
                               f"re-export and rebuild at the size you need")
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype("images"))
        self.max_batch = int(self.engine.get_tensor_profile_shape("images", 0)[2][0])
        super().__init__(label or engine.stem, str(self.torch_device), hw, precision)

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


def _read_sidecar(engine: Path) -> dict:
    try:
        return json.loads(Path(str(engine) + ".json").read_text())
    except (OSError, ValueError):
        return {}

"""The on-disk cache of exported ONNX graphs and TensorRT engines: where it is, how files are named, how they are
written (atomically), and the engine cache key.

Pure Python (hashlib, json, os): the TensorRT-specific values (version, GPU, layer sets) are passed in as plain
values, so every rule here is testable without a GPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

LOG = logging.getLogger("mtpano_ros.runtime.cache")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Bump when the rule that picks the FP32 layers (tensorrt_backend.fp32_layer_names) changes.
FP32_ATTENTION_RULE = "norm+softmax+qk/v1"


def default_cache_dir() -> Path:
    """Where exported ONNX files and TensorRT engines are cached: $MTPANO_CACHE_DIR or ~/.cache/mtpano_ros
    ($XDG_CACHE_HOME/mtpano_ros when that is set)."""
    env = os.environ.get("MTPANO_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mtpano_ros"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a part.

    A temporary file in the same folder is written, flushed to disk, then renamed over ``path`` (``os.replace``
    is atomic within a file system). The folder is created if needed. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def exclusive(path: str | Path, what: str):
    """Hold an exclusive lock on ``<path>.lock`` (``fcntl.flock``) for the block; waits, saying so, while another
    process holds it. Two nodes starting together on one robot then export / build a cache entry once: the second
    waits, and finds the file the first one wrote (check for it again inside the block)."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOG.info("another process is %s (%s); waiting for it", what, lock)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``atomic_write_bytes`` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode())


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (and of its external-data file ``<path>.data`` when present), hex."""
    h = hashlib.sha256()
    for p in (Path(path), Path(str(path) + ".data")):
        if p.exists():
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def calibration_files(folder: str | Path, max_images: int = 256) -> list[Path]:
    """The images an INT8 calibration uses: files in ``folder`` with an image suffix, sorted by name, at most
    ``max_images``. Raises FileNotFoundError when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"INT8 calibration folder '{folder}' does not exist; point int8_calibration_dir at "
                                f"a folder of representative panoramas ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:max_images]


def calibration_set_sha256(folder: str | Path | None, max_images: int = 256) -> str:
    """sha256 over the names and bytes of the calibration images (``calibration_files``); "" without a folder.

    Changing, adding or removing an image changes the hash, so the engine cache never reuses an INT8 engine
    calibrated on other data.
    """
    if not folder:
        return ""
    h = hashlib.sha256()
    for p in calibration_files(folder, max_images):
        h.update(p.name.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class GpuInfo:
    """What identifies a GPU for TensorRT engines: its name, compute capability and total memory.

    The name alone is not enough (every Jetson Orin reports "Orin"; AGX Orin 64 GB, Orin NX and Orin Nano differ
    in memory and SM count, and an engine tuned on one is not valid or not good on the other).
    """

    name: str
    compute_capability: tuple[int, int]
    total_memory_bytes: int

    def slug(self) -> str:
        """Short file-name part, e.g. ``Orin_sm87_61GiB``."""
        gib = self.total_memory_bytes / (1 << 30)
        return f"{slug(self.name)}_sm{self.compute_capability[0]}{self.compute_capability[1]}_{gib:.0f}GiB"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT engine depends on. Two builds with equal keys make interchangeable engines;
    any difference gives another cache file."""

    onnx_sha256: str
    tensorrt_version: str
    gpu: GpuInfo
    precision: str
    strongly_typed: bool
    fp32_layers: str  # "" when nothing is pinned, else FP32_ATTENTION_RULE (the layer set follows from the ONNX)
    calibration_sha256: str  # "" unless int8
    max_batch: int = 1
    workspace_bytes: int = 0

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON of every field."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def file_name(self) -> str:
        """``<onnx sha[:12]>_trt<version>_<gpu>_<precision>_<digest[:16]>.engine`` (readable prefix, full key)."""
        return (f"{self.onnx_sha256[:12]}_trt{slug(self.tensorrt_version)}_{self.gpu.slug()}_{self.precision}_"
                f"{self.digest()[:16]}.engine")


def engine_key(onnx_sha256: str, tensorrt_version: str, gpu: GpuInfo, precision: str, strongly_typed: bool = False,
               fp32_attention: bool = True, calibration_sha256: str = "", max_batch: int = 1,
               workspace_bytes: int = 0) -> EngineKey:
    """The cache key of an engine build (see EngineKey). ``fp32_attention`` only counts for fp16/int8 weakly typed
    builds (fp32 and strongly typed builds pin nothing); ``calibration_sha256`` only for int8."""
    pinned = fp32_attention and precision in ("fp16", "int8") and not strongly_typed
    return EngineKey(onnx_sha256=onnx_sha256, tensorrt_version=tensorrt_version, gpu=gpu, precision=precision,
                     strongly_typed=bool(strongly_typed), fp32_layers=FP32_ATTENTION_RULE if pinned else "",
                     calibration_sha256=calibration_sha256 if precision == "int8" else "",
                     max_batch=int(max_batch), workspace_bytes=int(workspace_bytes))


def engine_cache_path(cache_dir: str | Path, key: EngineKey) -> Path:
    """Where the engine of ``key`` lives in the cache: ``<cache_dir>/engines/<key.file_name()>``."""
    return Path(cache_dir) / "engines" / key.file_name()


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` lies inside ``folder`` (after resolving symlinks and ``..``)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def slug(text: str) -> str:
    """``text`` with everything but letters, digits, '-' and '.' replaced by '_' (safe in file names)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in str(text)).strip("_")

"""The one schema of runtime options: ``RuntimeOptions`` (backend, model, device, precision, sizes, TensorRT ...).

Every default and description lives here once. The node declares its runtime parameters from it, the launch file
its arguments, ``config/perception.yaml`` lists the same keys, and ``select_backend`` takes it:

    opts = RuntimeOptions.from_dict({"backend": "auto", "model": "default", "precision": "fp16"})
    backend = select_backend(opts)
    for name, default, description in runtime_parameters(): ...

Values are ROS-parameter friendly: text, int, float or bool only. "Not set" is ``""`` for paths and ``0`` for sizes
and counts (ROS parameters have no None). Importing this module is cheap (no torch, no numpy).
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from mtpano_ros.runtime.cache import default_cache_dir

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "int8")


class UnknownOptionError(KeyError, ValueError):
    """A runtime option name that RuntimeOptions does not have; the message names the nearest valid one."""

    def __str__(self) -> str:
        return str(self.args[0])


def _opt(default, description: str, choices: tuple[str, ...] = (), value_range: tuple | None = None):
    """A dataclass field whose metadata carries the description and the allowed values."""
    return field(default=default, metadata={"description": description, "choices": choices,
                                            "range": value_range})


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run the network: which backend, model, device and precision, and the TensorRT engine settings.

    Sizes are pixels; ``workspace_gib`` is GiB. Paths are plain strings, "" meaning "not set".
    """

    backend: str = _opt("auto", "inference backend: auto (TensorRT -> ONNX Runtime CUDA -> torch CUDA -> ONNX "
                                "Runtime CPU -> torch CPU, the first that starts), tensorrt, onnxruntime or torch",
                        BACKENDS)
    model: str = _opt("default", "bundled model name (default, tiny-labelfree), registry name (random weights), "
                                 "checkpoint folder, .safetensors, training checkpoint.pt, .pth, .onnx or .engine")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _opt("auto", "auto (fp16 for TensorRT, fp32 elsewhere), fp32, fp16 or int8 (TensorRT only)",
                          PRECISIONS)
    input_height: int = _opt(0, "network input height in pixels, a multiple of 16; 0 = the model's own",
                             value_range=(0, 8192))
    input_width: int = _opt(0, "network input width in pixels, a multiple of 16; 0 = the model's own",
                            value_range=(0, 16384))
    threads: int = _opt(0, "CPU threads for inference (torch intra-op / ONNX Runtime intra-op); 0 = the "
                           "library default", value_range=(0, 1024))
    onnx_path: str = _opt("", "ONNX file for the tensorrt/onnxruntime backends; empty = export the model once "
                              "into engine_cache_dir and reuse it")
    engine_path: str = _opt("", "TensorRT engine file (built there when missing); empty = a file in "
                                "engine_cache_dir named by the full cache key")
    engine_cache_dir: str = _opt("", "folder for exported ONNX files, TensorRT engines and timing caches; empty = "
                                     "$MTPANO_CACHE_DIR or ~/.cache/mtpano_ros")
    force_engine_rebuild: bool = _opt(False, "true: rebuild the TensorRT engine even when a cached one exists "
                                             "(minutes; over an hour on Jetson)")
    fp32_attention: bool = _opt(True, "TensorRT fp16/int8: keep normalisation, softmax and the attention scores "
                                      "(Q K^T) in FP32 (ViT attention can overflow FP16)")
    strongly_typed: bool = _opt(False, "TensorRT: build a strongly typed network (types from the ONNX graph, so "
                                       "fp32 only for our graphs; the only mode of TensorRT 11)")
    int8_calibration_dir: str = _opt("", "TensorRT int8: folder of representative panoramas (jpg/png) for "
                                         "entropy calibration; required for precision int8")
    max_batch: int = _opt(1, "TensorRT: largest batch the engine accepts (its optimisation profile is 1..N)",
                          value_range=(1, 64))
    workspace_gib: float = _opt(0.0, "TensorRT builder workspace limit in GiB; 0 = TensorRT's default (the whole "
                                     "GPU)", value_range=(0.0, 1024.0))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            want = type(f.default)
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                value = float(value)
            if type(value) is not want:
                raise TypeError(f"runtime option {f.name}={value!r} is a {type(value).__name__}, expected "
                                f"{want.__name__} (e.g. {f.default!r})")
            choices, rng = f.metadata["choices"], f.metadata["range"]
            if choices and value not in choices:
                raise ValueError(f"runtime option {f.name}={value!r} is not valid: expected one of "
                                 f"{', '.join(choices)}")
            if rng is not None and not rng[0] <= value <= rng[1]:
                raise ValueError(f"runtime option {f.name}={value!r} is out of range: expected {rng[0]}..{rng[1]}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"runtime option device={dev!r} is not valid: expected auto, cpu, cuda or cuda:N")
        h, w = self.input_height, self.input_width
        if (h or w) and (not (h and w) or h % 16 or w % 16):
            raise ValueError(f"input_height={h}, input_width={w}: set both to multiples of 16 (e.g. 512 and 1024), "
                             "or both to 0 for the model's own size")

    # ---- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict) -> RuntimeOptions:
        """Options from a mapping (params file, launch arguments, keyword arguments); absent keys take defaults.

        Raises UnknownOptionError (a KeyError and ValueError) for an unknown key, naming it and the nearest valid
        key (``pecision`` -> ``precision``); TypeError / ValueError for a value of the wrong type or out of range.
        """
        names = [f.name for f in fields(cls)]
        for key in values:
            if key not in names:
                raise UnknownOptionError(unknown_option_message(key))
        return cls(**dict(values))

    def replace(self, **changes) -> RuntimeOptions:
        """A copy with ``changes`` applied (unknown keys raise like ``from_dict``)."""
        for key in changes:
            if key not in {f.name for f in fields(self)}:
                raise UnknownOptionError(unknown_option_message(key))
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    # ---- derived values ----------------------------------------------------------------------------------------
    @property
    def input_hw(self) -> tuple[int, int] | None:
        """(H, W) network input size in pixels, or None for the model's own."""
        return (self.input_height, self.input_width) if self.input_height else None

    @property
    def cache_dir(self) -> Path:
        """``engine_cache_dir``, or ``default_cache_dir()`` when it is empty."""
        return Path(self.engine_cache_dir).expanduser() if self.engine_cache_dir else default_cache_dir()

    @property
    def precision_or_none(self) -> str | None:
        """``precision`` with ``auto`` as None (each backend then picks its default)."""
        return None if self.precision == "auto" else self.precision


def unknown_option_message(key: str) -> str:
    """'unknown runtime option X; did you mean Y? Valid options: ...' for an unknown key."""
    names = [f.name for f in fields(RuntimeOptions)]
    near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.0)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return f"unknown runtime option '{key}'{hint} Valid options: {', '.join(names)}"


def runtime_parameters() -> list[tuple[str, object, str]]:
    """``[(name, default, description), ...]`` of every runtime option, in declaration order.

    For the node's ``declare_parameter`` calls, the launch file's arguments and the params file.
    """
    out = []
    for f in fields(RuntimeOptions):
        assert f.default is not MISSING
        out.append((f.name, f.default, f.metadata["description"]))
    return out


def option_choices(name: str) -> tuple[str, ...]:
    """Allowed values of a text option (empty: any text)."""
    return _field(name).metadata["choices"]


def option_range(name: str) -> tuple | None:
    """(lowest, highest) allowed value of a numeric option, or None."""
    return _field(name).metadata["range"]


def _field(name: str):
    for f in fields(RuntimeOptions):
        if f.name == name:
            return f
    raise UnknownOptionError(unknown_option_message(name))

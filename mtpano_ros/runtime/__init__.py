"""mtpano_ros.runtime: inference backends (TensorRT, ONNX Runtime, PyTorch), ONNX export, engine cache.

    from mtpano_ros.runtime import RuntimeOptions, select_backend
    backend = select_backend(RuntimeOptions(backend="auto", model="default"))
    result = backend.infer(rgb_uint8_hw3)    # the same dict as mtpano_ros.model.infer

Modules (imports point down the list, never up): ``options`` (the option schema; no torch), ``cache`` (cache folder,
atomic writes, engine cache key; no torch), ``export`` (ONNX export), ``backends`` (torch, onnxruntime),
``tensorrt_backend``, ``selection`` (``select_backend``), ``cli`` (``mtpano-export``). Importing this package is
cheap: the names below load their module (and torch) on first use; tensorrt and onnxruntime are imported only
by the backend that runs them.
"""

from mtpano_ros.runtime.options import RuntimeOptions

_LAZY = {
    "Backend": "backends", "BackendError": "backends", "OnnxRuntimeBackend": "backends", "TorchBackend": "backends",
    "TensorRTBackend": "tensorrt_backend", "select_backend": "selection", "default_cache_dir": "cache",
    "ExportError": "export", "export_onnx": "export",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"mtpano_ros.runtime.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mtpano_ros.runtime' has no attribute '{name}'")


__all__ = ["RuntimeOptions", *_LAZY]

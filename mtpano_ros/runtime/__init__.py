"""mtpano_ros.runtime: inference backends (TensorRT, ONNX Runtime, PyTorch), ONNX export, engine cache.

``select_backend(kind, model, device, precision, **options) -> Backend``; ``Backend.infer(images)`` returns the same
dict as ``mtpano_ros.model.infer``. TensorRT and ONNX Runtime are imported only when used.
"""

from mtpano_ros.runtime.backends import Backend, BackendError, OnnxRuntimeBackend, TorchBackend, default_cache_dir
from mtpano_ros.runtime.selection import select_backend


def __getattr__(name):
    if name == "TensorRTBackend":  # imported lazily: the module is light, but keep tensorrt out of plain imports
        from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend
    raise AttributeError(name)


__all__ = ["Backend", "BackendError", "OnnxRuntimeBackend", "TensorRTBackend", "TorchBackend", "default_cache_dir",
           "select_backend"]

"""PD-BridgeNet models: registry, checkpoints, inference (see DESIGN §4 and README "Model and official weights").

    from mtpano_ros.model import load_model, infer
    spec = resolve("runs/x/checkpoint.pt")   # what a model string means (bundled, registry, checkpoint, .onnx, ...)
    model = load_model("default")            # bundled weights; "mtpano-tiny" etc. give random weights
    result = infer(model, rgb_uint8_hw3)     # {"semantic", "depth", "normals"} batched numpy
"""

from mtpano_ros.model.checkpoint import save_checkpoint
from mtpano_ros.model.inference import infer, postprocess, preprocess
from mtpano_ros.model.registry import create_model, list_models, model_config
from mtpano_ros.model.resolve import ModelSpec, load_model, resolve

__all__ = ["ModelSpec", "create_model", "infer", "list_models", "load_model", "model_config", "postprocess",
           "preprocess", "resolve", "save_checkpoint"]

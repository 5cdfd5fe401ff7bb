"""TensorRT and CUDA backends against torch fp32 (run only where `tensorrt` and a CUDA GPU exist; skipped on CPU CI).

Tolerances: fp32 engines use the ONNX Runtime bars (depth max relative error <= 1e-3, normals <= 0.5 degrees,
semantic agreement >= 99.9 %). fp16 engines (and torch CUDA fp16 autocast): depth max relative error <= 3e-2 over
pixels with depth >= 1 cm, median <= 5e-3; normals 99th-percentile angle <= 2 degrees; semantic agreement >= 99 %
(fp16 flips the arg-max where two logits are within fp16 rounding of each other).
"""

import numpy as np
import pytest
import torch

trt = pytest.importorskip("tensorrt")
if not torch.cuda.is_available():
    pytest.skip("TensorRT tests need a CUDA GPU", allow_module_level=True)

from mtpano_ros.model import load_model  # noqa: E402
from mtpano_ros.runtime import TorchBackend, select_backend  # noqa: E402
from mtpano_ros.runtime import export as ex  # noqa: E402
from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend, onnx_opset_for, read_sidecar  # noqa: E402

pytestmark = pytest.mark.gpu
HW = (64, 128)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("trt_cache")
    net = load_model("mtpano-tiny")
    path, _ = ex.cached_onnx("mtpano-tiny", HW, cache, opset=onnx_opset_for(trt.__version__))
    x = torch.from_numpy(np.random.default_rng(5).random((2, 3, *HW), dtype=np.float32))
    with torch.no_grad():
        ref = net(x)
    return {"net": net, "onnx": path, "cache": cache, "x": x, "ref": ref}


def _compare(out, ref, fp16):
    sem_ref = ref["semantic_logits"].argmax(1).numpy()
    agree = (out["semantic"].numpy() == sem_ref).mean()
    d, dr = out["depth"].double().numpy(), ref["depth"].double().numpy()
    n, nr = out["normals"].double().numpy(), ref["normals"].double().numpy()
    cos = (n * nr).sum(1) / np.maximum(np.linalg.norm(n, axis=1) * np.linalg.norm(nr, axis=1), 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    if fp16:
        big = dr >= 0.01
        rel = np.abs(d - dr)[big] / dr[big]
        assert agree >= 0.99
        if rel.size:
            assert rel.max() <= 3e-2 and np.median(rel) <= 5e-3
        assert np.percentile(ang, 99) <= 2.0
    else:
        assert agree >= 0.999
        assert (np.abs(d - dr) / np.maximum(np.abs(dr), 1e-4)).max() <= 1e-3
        assert ang.max() <= 0.5


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_torch(tiny, precision):
    backend = TensorRTBackend(tiny["onnx"], precision=precision, cache_dir=tiny["cache"], max_batch=2)
    assert backend.input_size == HW and backend.device.startswith("cuda")
    out = backend.forward(tiny["x"])
    _compare(out, tiny["ref"], fp16=precision == "fp16")


def test_engine_cache_is_reused_and_a_stale_engine_is_rebuilt(tiny, caplog):
    first = TensorRTBackend(tiny["onnx"], precision="fp16", cache_dir=tiny["cache"])
    engine = first.engine_path
    meta = read_sidecar(engine)
    assert meta["tensorrt_version"] == trt.__version__ and meta["gpu"]["total_memory_bytes"] > 0
    assert meta["fp32_layers"] and meta["fp32_layer_count"] > 0
    mtime = engine.stat().st_mtime_ns
    again = TensorRTBackend(tiny["onnx"], precision="fp16", cache_dir=tiny["cache"])
    assert again.engine_path == engine and engine.stat().st_mtime_ns == mtime
    engine.write_bytes(b"an engine from another TensorRT version" * 100)
    rebuilt = TensorRTBackend(tiny["onnx"], precision="fp16", cache_dir=tiny["cache"])
    assert "rebuilding" in caplog.text
    _compare(rebuilt.forward(tiny["x"]), tiny["ref"], fp16=True)


def test_corrupt_engine_outside_the_cache_gives_the_rebuild_hint(tiny, tmp_path):
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(Exception, match="force_engine_rebuild"):
        TensorRTBackend(bad, onnx_path=tiny["onnx"], cache_dir=tiny["cache"])
    rebuilt = TensorRTBackend(bad, onnx_path=tiny["onnx"], cache_dir=tiny["cache"], force_rebuild=True)
    assert rebuilt.engine_path == bad


def test_auto_selection_picks_tensorrt_and_infer_matches_the_model(tiny):
    backend = select_backend(model=str(tiny["onnx"]), engine_cache_dir=str(tiny["cache"]))
    assert backend.name == "tensorrt"
    img = (np.random.default_rng(0).random((*HW, 3)) * 255).astype(np.uint8)
    out = backend.infer(img)
    assert out["semantic"].shape == (1, *HW) and out["normals"].shape == (1, *HW, 3)


def test_torch_cuda_backend_matches_cpu(tiny):
    for precision in ("fp32", "fp16"):
        backend = TorchBackend(tiny["net"], device="cuda", precision=precision, input_hw=HW)
        out = backend.forward(tiny["x"])
        _compare(out, tiny["ref"], fp16=precision == "fp16")
    tiny["net"].to("cpu")

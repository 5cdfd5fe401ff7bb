"""ONNX export of every registered variant: ONNX checker, TensorRT 10.3 operator check, ONNX Runtime vs torch parity.

Parity bars (issue 3): depth max relative error <= 1e-3 (denominator floored at 0.1 mm so that pixels whose depth
is ~0 do not divide by zero), normals max angle <= 0.5 degrees, semantic argmax agreement >= 99.9 % of pixels.
Variants run at 64x128 (the smallest size every variant supports: 4x8 tokens), with deterministic random weights
(registry names), on fresh random inputs and on real panoramas.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mtpano_ros.model import infer as model_infer
from mtpano_ros.model import load_model
from mtpano_ros.runtime import OnnxRuntimeBackend, TorchBackend, cli
from mtpano_ros.runtime import export as ex

HW = (64, 128)
PANOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panoramas"
DEPTH_REL, NORMAL_DEG, SEM_AGREE = 1e-3, 0.5, 0.999


def depth_rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return float((np.abs(a - b)[ok] / np.maximum(np.abs(b[ok]), 1e-4)).max())


def normal_angle_deg(a, b, axis):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(axis) / np.maximum(np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis), 1e-12)
    cos = cos[np.isfinite(cos)]
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max())


def assert_parity(onnx_out, torch_out, normals_axis):
    sem_a, sem_b = onnx_out["semantic"], torch_out["semantic"]
    assert sem_a.shape == sem_b.shape
    assert (sem_a == sem_b).mean() >= SEM_AGREE
    assert depth_rel_err(onnx_out["depth"], torch_out["depth"]) <= DEPTH_REL
    assert normal_angle_deg(onnx_out["normals"], torch_out["normals"], normals_axis) <= NORMAL_DEG


def load_panoramas(n=2):
    import cv2

    if not PANOS.is_dir():
        pytest.skip(f"no panoramas at {PANOS}")
    files = sorted(p for p in PANOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    files = sorted(files, key=lambda p: p.stat().st_size)[:n]  # the smallest: quick to decode
    return [cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for p in files]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """mtpano-tiny exported through the backend's ONNX cache (so the cache path is exercised too)."""
    cache = tmp_path_factory.mktemp("cache")
    net = load_model("mtpano-tiny")
    path, label = ex.cached_onnx("mtpano-tiny", HW, cache)
    return {"name": "mtpano-tiny", "net": net, "onnx": path, "cache": cache}


@pytest.fixture(scope="module")
def vits(tmp_path_factory):
    net = load_model("mtpano-vits")
    path = ex.export_onnx(net, tmp_path_factory.mktemp("vits") / "vits.onnx", input_hw=HW, label="mtpano-vits")
    return {"name": "mtpano-vits", "net": net, "onnx": path}


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    net = load_model("mtpano-lite")
    with torch.no_grad():  # at these random weights every depth is <= 0 (all invalid): lift it so depth is compared
        net.heads["depth"].head[-2].bias.fill_(1.0)
    path = ex.export_onnx(net, tmp_path_factory.mktemp("lite") / "lite.onnx", input_hw=HW, label="mtpano-lite")
    return {"name": "mtpano-lite", "net": net, "onnx": path}


@pytest.fixture(params=["tiny", "vits", "lite"])
def variant(request):
    return request.getfixturevalue(request.param)


def test_graph_is_valid_static_hw_dynamic_batch_and_tensorrt_compatible(variant):
    proto = onnx.load(str(variant["onnx"]))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} <= {17, 18}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value
    assert [d.dim_value for d in dims[1:]] == [3, *HW]
    res = ex.check_tensorrt_ops(proto, "10.3")
    assert res.ok, res.message()
    assert "BatchNormalization" not in res.ops and "If" not in res.ops


def test_raw_outputs_match_torch_on_fresh_random_inputs(variant):
    import onnxruntime as ort

    rng = np.random.default_rng(2024)
    x = rng.random((2, 3, *HW), dtype=np.float32)
    sess = ort.InferenceSession(str(variant["onnx"]), providers=["CPUExecutionProvider"])
    sem, depth, normals = sess.run(None, {"images": x})
    with torch.no_grad():
        ref = variant["net"](torch.from_numpy(x))
    assert sem.shape == (2, *HW) and depth.shape == (2, 1, *HW) and normals.shape == (2, 3, *HW)
    assert_parity({"semantic": sem, "depth": depth, "normals": normals},
                  {"semantic": ref["semantic_logits"].argmax(1).numpy(), "depth": ref["depth"].numpy(),
                   "normals": ref["normals"].numpy()}, normals_axis=1)


def test_backends_agree_on_real_panoramas(variant):
    images = load_panoramas()
    onnx_backend = OnnxRuntimeBackend(variant["onnx"], threads=1)
    torch_backend = TorchBackend(variant["net"], input_hw=HW)
    assert onnx_backend.input_size == torch_backend.input_size == HW
    for img in images:
        a, b = onnx_backend.infer(img), torch_backend.infer(img)
        assert a["semantic"].dtype == np.uint8 and a["depth"].dtype == np.float32
        assert a["normals"].shape == (1, *HW, 3)
        assert_parity(a, b, normals_axis=-1)
        # invalid pixels (sky, depth <= 0) are NaN in both wherever the classes agree
        same = a["semantic"] == b["semantic"]
        assert (np.isnan(a["depth"]) == np.isnan(b["depth"]))[same].all()


def test_dynamic_batch_gives_the_same_result_per_image(tiny):
    backend = OnnxRuntimeBackend(tiny["onnx"], threads=1)
    images = load_panoramas(2)
    batch = np.stack([cv_resize(im, (256, 512)) for im in images])
    together = backend.infer(batch)
    for i in range(len(images)):
        alone = backend.infer(batch[i])
        np.testing.assert_array_equal(alone["semantic"][0], together["semantic"][i])
        np.testing.assert_allclose(alone["depth"][0], together["depth"][i], rtol=1e-5, atol=1e-6)


def cv_resize(img, hw):
    import cv2

    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def test_torch_backend_equals_model_infer(tiny):
    img = load_panoramas(1)[0]
    net = tiny["net"]
    backend = TorchBackend(net)  # the model's own input size
    assert backend.input_size == tuple(net.config["input_hw"])
    a, b = backend.infer(img, out_hw=(96, 192)), model_infer(net, img, out_hw=(96, 192))
    assert set(a) == set(b) == {"semantic", "depth", "normals"}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_onnx_cache_is_reused(tiny, monkeypatch):
    def no_export(*args, **kwargs):
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(ex, "export_onnx", no_export)
    path, label = ex.cached_onnx("mtpano-tiny", HW, tiny["cache"])
    assert path == tiny["onnx"] and label == "mtpano-tiny"
    backend = OnnxRuntimeBackend("mtpano-tiny", input_hw=HW, cache_dir=tiny["cache"], threads=1)
    assert backend.onnx_path == tiny["onnx"] and backend.model_name == "mtpano-tiny"
    backend.warmup()


@pytest.mark.slow
def test_vitl_exports_through_the_cli_and_passes_the_tensorrt_op_check(tmp_path):
    """The official-size variant (590 M parameters) at 64x128: CLI export, ONNX checker, TensorRT 10.3 op check.

    ONNX Runtime parity for vitl is left out of the suite for size (a second 2.4 GB copy of the weights in an ORT
    session on top of the export's ~7.6 GB peak); it was measured by hand (see the runtime README section).
    """
    out = tmp_path / "vitl.onnx"
    assert cli.main(["mtpano-vitl", "-o", str(out), "--height", str(HW[0]), "--width", str(HW[1])]) == 0
    assert (tmp_path / "vitl.onnx.data").exists()  # over 2 GB of weights: stored beside the graph
    onnx.checker.check_model(str(out), full_check=True)
    proto = onnx.load(str(out), load_external_data=False)
    res = ex.check_tensorrt_ops(proto, "10.3")
    assert res.ok, res.message()
    assert "BatchNormalization" not in res.ops

"""ONNX graph passes of the exporter and the TensorRT operator check, on small hand-made graphs."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mtpano_ros.runtime import export as ex


def _conv_bn_graph(rng, extra_consumer=False):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.uniform(0.1, 3, 4).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w, "w"), (b, "b"), (gamma, "g"), (beta, "be"), (mean, "m"), (var, "v"))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], epsilon=1e-3, name="bn")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 16])]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 8, 16]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 16])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


def test_fold_batchnorm_is_exact_and_removes_the_bn():
    rng = np.random.default_rng(0)
    model = _conv_bn_graph(rng)
    x = rng.standard_normal((1, 3, 8, 16)).astype(np.float32)
    before = _run(model, x)[0]
    assert ex.fold_batchnorm(model) == 1
    assert ex.remove_unused_initializers(model) == 6  # old conv w/b and the four BN parameters
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    after = _run(model, x)[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_leaves_a_shared_conv_output_alone():
    model = _conv_bn_graph(np.random.default_rng(1), extra_consumer=True)
    assert ex.fold_batchnorm(model) == 0
    assert "BatchNormalization" in [n.op_type for n in model.graph.node]


def test_op_table_is_read_and_names_its_source():
    text = ex.OPS_FILE.read_text()
    assert "onnx-tensorrt" in text.splitlines()[1]
    table = ex.load_tensorrt_op_table()
    assert len(table) > 180
    assert table["Conv"][0] == "10.0" and table["Unique"][0] == "-" and table["Attention"][0] == "10.14"


def _graph_with(ops):
    nodes, last = [], "x"
    for i, (domain, op) in enumerate(ops):
        nodes.append(helper.make_node(op, [last], [f"t{i}"], domain=domain))
        last = f"t{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, [2])])
    return helper.make_model(graph)


def test_op_check_flags_unsupported_new_and_custom_domain_ops():
    model = _graph_with([("", "Relu"), ("", "Unique"), ("", "RotaryEmbedding"), ("com.microsoft", "Gelu"),
                         ("", "Pad"), ("", "MadeUpOp")])
    res = ex.check_tensorrt_ops(model, target="10.3")
    assert not res.ok
    assert set(res.unsupported) == {"Unique", "RotaryEmbedding", "Gelu", "MadeUpOp"}
    assert "10.15" in res.unsupported["RotaryEmbedding"]
    assert "custom domain" in res.unsupported["Gelu"]
    assert "Pad" in res.cautions and "Relu" not in res.unsupported
    assert "Unique" in res.message()
    newer = ex.check_tensorrt_ops(_graph_with([("", "RotaryEmbedding")]), target="10.15")
    assert newer.ok


def test_op_check_looks_inside_subgraphs():
    then_g = helper.make_graph([helper.make_node("Unique", ["x"], ["u"])], "then", [],
                               [helper.make_tensor_value_info("u", TensorProto.FLOAT, [2])])
    else_g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"])], "else", [],
                               [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    res = ex.check_tensorrt_ops(helper.make_model(graph))
    assert "Unique" in res.unsupported and "If" in res.cautions


class _Toy(torch.nn.Module):
    """A stand-in network with the model's output dict (tests the export wrapper, not the real model)."""

    def __init__(self):
        super().__init__()
        self.config = {"variant": "toy", "input_hw": [32, 64]}
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.sem = torch.nn.Conv2d(8, 150, 1)
        self.geo = torch.nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, images):
        f = torch.relu(self.bn(self.conv(images)))
        g = self.geo(f)
        return {"semantic_logits": self.sem(f), "depth": torch.relu(g[:, :1]),
                "normals": torch.nn.functional.normalize(g[:, 1:], dim=1)}


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_wrapper_gives_argmax_ids_dynamic_batch_and_metadata(tmp_path, exporter):
    torch.manual_seed(0)
    net = _Toy().eval()
    path = ex.export_onnx(net, tmp_path / "toy.onnx", exporter=exporter, opset=17)
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == list(ex.OUTPUT_NAMES)
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
    assert ex.onnx_input_hw(path) == (32, 64)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["mtpano_semantic"] == "argmax" and '"input_hw": [32, 64]' in meta["mtpano_config"]
    assert meta["mtpano_exporter"] == exporter
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 32, 64)
    sem, depth, normals = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref = net(x)
    assert sem.shape == (3, 32, 64) and sem.dtype == np.int32
    assert (sem == ref["semantic_logits"].argmax(1).numpy()).mean() > 0.999
    np.testing.assert_allclose(depth, ref["depth"].numpy(), rtol=1e-4, atol=1e-5)


def test_export_rejects_bad_opset_and_size(tmp_path):
    with pytest.raises(ex.ExportError, match="opset"):
        ex.export_onnx(_Toy(), tmp_path / "a.onnx", opset=23)
    with pytest.raises(ex.ExportError, match="multiples of 16"):
        ex.export_onnx(_Toy(), tmp_path / "a.onnx", input_hw=(30, 64))


def test_argmax_moves_in_front_of_a_spatial_crop_and_gives_the_same_ids():
    rng = np.random.default_rng(3)
    starts, ends = numpy_helper.from_array(np.array([2], np.int64), "s"), numpy_helper.from_array(
        np.array([18], np.int64), "e")
    axes = numpy_helper.from_array(np.array([3], np.int64), "a")
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a"], ["c"]),
             helper.make_node("ArgMax", ["c"], ["i"], axis=1, keepdims=0),
             helper.make_node("Cast", ["i"], ["y"], to=TensorProto.INT32)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 150, 8, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 8, 16])],
                              [starts, ends, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.standard_normal((1, 150, 8, 20)).astype(np.float32)
    before = _run(model, x)[0]
    assert ex.argmax_before_slice(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["ArgMax", "Slice", "Cast"]
    np.testing.assert_array_equal(_run(model, x)[0], before)
    np.testing.assert_array_equal(before, x[..., 2:18].argmax(1))


def test_argmax_stays_after_a_crop_of_the_class_axis():
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a"], ["c"]),
             helper.make_node("ArgMax", ["c"], ["y"], axis=1, keepdims=0)]
    inits = [numpy_helper.from_array(np.array([v], np.int64), n) for v, n in ((0, "s"), (10, "e"), (1, "a"))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 150, 8, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 8, 20])], inits)
    assert ex.argmax_before_slice(helper.make_model(graph)) == 0


def test_operator_table_covers_tensorrt_10_only():
    assert ex.op_table_covers("10.3") and ex.op_table_covers("10.15") and ex.op_table_covers("11.0")
    assert not ex.op_table_covers("8.6")


def test_the_export_cache_key_follows_the_model_code(tmp_path, monkeypatch):
    before = ex.code_sha256()
    assert before == ex.code_sha256() and len(before) == 64
    pkg = tmp_path / "mtpano_ros"
    for sub in ("model", "geometry"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(ex, "_PACKAGE", pkg)
    one = ex.code_sha256()
    (pkg / "model" / "a.py").write_text("x = 2\n")
    assert ex.code_sha256() != one

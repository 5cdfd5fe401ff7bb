"""ONNX export of PD-BridgeNet for ONNX Runtime and TensorRT, plus the TensorRT operator check.

The exported graph has one input and three outputs (names fixed, frames and units as in DESIGN §3):

- ``images``   (B, 3, H, W) float32 RGB in [0, 1]; ImageNet normalisation happens inside the graph.
  H and W are static (baked at export), B is dynamic.
- ``semantic`` (B, H, W) int32 ADE20K ids 0..149 (ArgMax over the 150 logits inside the graph, so the
  host never copies the (B, 150, H, W) logits).
- ``depth``    (B, 1, H, W) float32 radial metres >= 0.
- ``normals``  (B, 3, H, W) float32 unit vectors in the panorama frame (REP 103).

Exporters: ``exporter="auto"`` (default) tries the torch.export-based ("dynamo") exporter and falls back to the
TorchScript one, with a warning that says why, when dynamo is unavailable (onnxscript missing, an older torch
such as the 2.3-2.5 wheels on Jetson) or fails on the model; "dynamo" / "torchscript" use only that one.
Files are written atomically (a temporary folder beside the target, then ``os.replace``), so a crash never leaves
a truncated ``.onnx`` in the cache. ``cached_onnx`` exports once per (weights, size, opset) into the cache folder.

Command line: ``mtpano-export`` (mtpano_ros.runtime.cli).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtpano_ros.model.resolve import load_model, resolve
from mtpano_ros.runtime.cache import default_cache_dir, exclusive, file_sha256, slug

LOG = logging.getLogger("mtpano_ros.runtime.export")

INPUT_NAME = "images"
OUTPUT_NAMES = ("semantic", "depth", "normals")
LOGIT_OUTPUT_NAMES = ("semantic_logits", "depth", "normals")
DEFAULT_OPSET = 18  # the dynamo exporter's native opset; TensorRT 10.0+ parses opsets 9..20
SUPPORTED_OPSETS = (17, 18)  # TensorRT 8.6 (JetPack 6.0) parses opsets up to 17
EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_TRT_TARGET = "10.3"
# Bump when the exported graph changes for the same weights (invalidates cached exports).
EXPORT_VERSION = 3
OPS_FILE = Path(__file__).resolve().parent / "data" / "tensorrt10_onnx_ops.tsv"
# Saving with external data avoids protobuf's 2 GiB limit for the large variants.
_EXTERNAL_DATA_BYTES = 1_800_000_000


class ExportError(RuntimeError):
    """The model could not be exported to an ONNX graph that TensorRT and ONNX Runtime accept."""


# --------------------------------------------------------------------------------------------------------------
# Model loading and the export wrapper
# --------------------------------------------------------------------------------------------------------------


def model_and_label(model):
    """``(eval-mode CPU nn.Module, label)`` for an ``nn.Module``, a ModelSpec or anything ``resolve`` accepts.

    Raises ExportError for ``.onnx`` / ``.engine`` (nothing to export) and FileNotFoundError for unknown models.
    """
    import torch

    if isinstance(model, torch.nn.Module):
        return model.eval(), getattr(model, "config", {}).get("variant", type(model).__name__)
    spec = resolve(model)
    if not spec.has_weights:
        raise ExportError(f"'{spec.source}' is already an {spec.kind} file; export needs a model name or a torch "
                          f"checkpoint")
    return load_model(spec).eval(), spec.name


def state_dict_sha256(net) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a module's state dict (identifies weights)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        flat = t.detach().cpu().contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


def _export_wrapper(net, semantic: str):
    """Wrap a PD-BridgeNet so the exported forward returns a tuple in OUTPUT_NAMES order."""
    import torch

    class ExportWrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, images):
            out = self.inner(images)
            if semantic == "argmax":
                sem = torch.argmax(out["semantic_logits"], dim=1).to(torch.int32)
            else:
                sem = out["semantic_logits"]
            return sem, out["depth"], out["normals"]

    return ExportWrapper(net).eval()


# --------------------------------------------------------------------------------------------------------------
# Graph passes: inline functions, fold BatchNorm, drop unused initializers
# --------------------------------------------------------------------------------------------------------------


def _const_array(graph, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def fold_batchnorm(model_proto) -> int:
    """Fold every inference BatchNormalization whose input comes from a Conv used only by it into that Conv.

    Conv weights W (O, I/g, kh, kw) and bias b become W * s[:, None, None, None] and (b - mean) * s + beta with
    s = gamma / sqrt(var + eps). A Conv whose output has other consumers, or whose parameters are not constants,
    is left alone. Modifies ``model_proto`` in place; returns the number of folded pairs.
    """
    from onnx import helper, numpy_helper

    graph = model_proto.graph
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    graph_outputs = {o.name for o in graph.output}
    producer = {out: node for node in graph.node for out in node.output}
    init_names = {i.name for i in graph.initializer}
    folded, drop = 0, []
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or consumers.get(conv.output[0], 0) != 1:
            continue
        if conv.output[0] in graph_outputs:
            continue
        w = _const_array(graph, conv.input[1])
        params = [_const_array(graph, n) for n in bn.input[1:5]]
        if w is None or any(p is None for p in params):
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + eps)
        b = _const_array(graph, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        b = np.zeros_like(mean) if b is None else b.astype(np.float64)
        new_w = (w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        new_b = ((b - mean) * scale + beta).astype(w.dtype)
        w_name, b_name = f"{conv.name or conv.output[0]}_bnfold_w", f"{conv.name or conv.output[0]}_bnfold_b"
        graph.initializer.extend([numpy_helper.from_array(new_w, w_name), numpy_helper.from_array(new_b, b_name)])
        init_names.update((w_name, b_name))
        new_conv = helper.make_node("Conv", [conv.input[0], w_name, b_name], [bn.output[0]],
                                    name=(conv.name or "conv") + "_bnfold")
        new_conv.attribute.extend(conv.attribute)
        idx = list(graph.node).index(conv)
        graph.node.insert(idx, new_conv)
        drop.extend([conv, bn])
        folded += 1
    for node in drop:
        graph.node.remove(node)
    return folded


def argmax_before_slice(model_proto) -> int:
    """Rewrite ``ArgMax(Slice(x))`` as ``Slice(ArgMax(x))`` when the Slice leaves the ArgMax axis alone.

    Exact (the arg-max over channels commutes with cropping rows/columns) and much cheaper when ``x`` is the
    (B, 150, H, W + pad) logit map cropped after a wrap-aware upsampling: the crop then copies one int map instead
    of 150 float maps. Only applies when the Slice output feeds nothing but that ArgMax and its axes are constants.
    Modifies ``model_proto`` in place; returns the number of rewrites.
    """
    from onnx import helper, numpy_helper

    graph = model_proto.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    producer = {out: node for node in graph.node for out in node.output}
    done = 0
    for am in list(graph.node):
        if am.op_type != "ArgMax":
            continue
        sl = producer.get(am.input[0])
        if sl is None or sl.op_type != "Slice" or len(consumers.get(sl.output[0], [])) != 1:
            continue
        if sl.output[0] in graph_outputs or len(sl.input) < 4 or not sl.input[3]:
            continue
        axes = _const_array(graph, sl.input[3])
        attrs = {a.name: helper.get_attribute_value(a) for a in am.attribute}
        rank = len(graph.input[0].type.tensor_type.shape.dim)  # our graphs keep rank 4 to the end
        axis, keep = int(attrs.get("axis", 0)) % rank, int(attrs.get("keepdims", 1))
        if axes is None or attrs.get("select_last_index", 0):
            continue
        axes = [int(a) % rank for a in axes.reshape(-1)]
        if axis in axes:
            continue
        new_axes = np.array([a if (keep or a < axis) else a - 1 for a in axes], dtype=np.int64)
        axes_name = f"{sl.name or sl.output[0]}_after_argmax_axes"
        graph.initializer.append(numpy_helper.from_array(new_axes, axes_name))
        ids = f"{am.output[0]}_uncropped"
        new_am = helper.make_node("ArgMax", [sl.input[0]], [ids], name=(am.name or "argmax") + "_first")
        new_am.attribute.extend(am.attribute)
        new_sl_inputs = [ids, sl.input[1], sl.input[2], axes_name] + list(sl.input[4:])
        new_sl = helper.make_node("Slice", new_sl_inputs, [am.output[0]], name=(sl.name or "slice") + "_ids")
        i_sl, i_am = list(graph.node).index(sl), list(graph.node).index(am)
        graph.node.remove(am)
        graph.node.insert(i_am, new_sl)
        graph.node.remove(sl)
        graph.node.insert(i_sl, new_am)
        done += 1
    return done


def remove_unused_initializers(model_proto) -> int:
    """Drop initializers no node or graph output reads (e.g. BatchNorm parameters after folding)."""
    graph = model_proto.graph
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for node in graph.node:  # names referenced from subgraphs (If/Loop bodies)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                used.update(name for n in sub.node for name in n.input)
    keep = [i for i in graph.initializer if i.name in used]
    removed = len(graph.initializer) - len(keep)
    if removed:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


# --------------------------------------------------------------------------------------------------------------
# TensorRT operator check
# --------------------------------------------------------------------------------------------------------------


@dataclass
class OpCheck:
    """Result of checking a graph's operators against TensorRT's ONNX parser table."""

    target: str
    ops: dict[str, int] = field(default_factory=dict)          # op -> node count
    unsupported: dict[str, str] = field(default_factory=dict)  # op -> why
    cautions: dict[str, str] = field(default_factory=dict)     # op -> note

    @property
    def ok(self) -> bool:
        return not self.unsupported

    def message(self) -> str:
        lines = [f"{op} (x{self.ops.get(op, 0)}): {why}" for op, why in sorted(self.unsupported.items())]
        return "; ".join(lines)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".")[:2])


def load_tensorrt_op_table(path: Path = OPS_FILE) -> dict[str, tuple[str, str]]:
    """Read the TensorRT 10 ONNX-parser table: ``{op: (since_version or '-', caution)}``.

    Source of the data: onnx/onnx-tensorrt docs/operators.md and Changelog.md (see the file header).
    """
    if not path.exists():
        raise FileNotFoundError(f"TensorRT operator table '{path}' is missing; reinstall mtpano_ros "
                                f"(it ships as package data under mtpano_ros/runtime/data/)")
    table = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("op\t"):
            continue
        cols = line.split("\t")
        table[cols[0]] = (cols[1], cols[2] if len(cols) > 2 else "")
    return table


def graph_ops(model_proto) -> dict[tuple[str, str], int]:
    """Count ``(domain, op_type)`` of every node, including nodes inside If/Loop/Scan bodies and local functions."""
    counts: dict[tuple[str, str], int] = {}

    def visit(nodes):
        for node in nodes:
            key = (node.domain or "ai.onnx", node.op_type)
            counts[key] = counts.get(key, 0) + 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    visit(attr.g.node)
                for sub in attr.graphs:
                    visit(sub.node)

    visit(model_proto.graph.node)
    local = {(f.domain, f.name) for f in model_proto.functions}
    for f in model_proto.functions:
        visit(f.node)
    for key in local:  # calls of local functions are not operators of their own
        counts.pop((key[0] or "ai.onnx", key[1]), None)
    return counts


def op_table_covers(target: str) -> bool:
    """True when the operator table (TensorRT 10's ONNX parser) can check ``target`` (10.0 or newer)."""
    return _version_tuple(target) >= (10, 0)


def check_tensorrt_ops(model_proto, target: str = DEFAULT_TRT_TARGET, table: dict | None = None) -> OpCheck:
    """Check every node of an ONNX model against TensorRT 10's ONNX-parser operator table.

    An op fails when TensorRT never supports it, when it first appears in a TensorRT newer than ``target``
    (e.g. ``Attention`` needs 10.14, JetPack 6 ships 10.3), or when it lives in a custom domain (TensorRT would need
    a plugin). Ops with a caution note pass but the note is kept in ``OpCheck.cautions``.
    """
    table = load_tensorrt_op_table() if table is None else table
    res = OpCheck(target=target)
    for (domain, op), n in sorted(graph_ops(model_proto).items()):
        res.ops[op] = res.ops.get(op, 0) + n
        if domain not in ("ai.onnx", ""):
            res.unsupported[op] = f"custom domain '{domain}' (TensorRT has no parser for it without a plugin)"
            continue
        if op not in table:
            res.unsupported[op] = "not in TensorRT 10's ONNX operator table"
            continue
        since, caution = table[op]
        if since == "-":
            res.unsupported[op] = "not supported by TensorRT's ONNX parser"
        elif _version_tuple(since) > _version_tuple(target):
            res.unsupported[op] = f"needs TensorRT >= {since}, target is {target}"
        elif caution:
            res.cautions[op] = caution
    return res


# --------------------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------------------


def _fast_cleanup(model) -> None:
    """Constant folding and clean-up of a fresh dynamo export (an ``onnx_ir.Model``, in place).

    onnxscript's full optimizer spends minutes in pattern rewrites on a ViT graph; constant folding alone already
    removes the sequence ops (SplitToSequence/SequenceAt) TensorRT lacks, and ONNX Runtime / TensorRT apply their
    own fusions at load time.
    """
    import onnx_ir.passes.common as passes
    from onnxscript import optimizer

    passes.InlinePass()(model)
    optimizer.fold_constants_ir(model, onnx_shape_inference=False)
    passes.RemoveUnusedNodesPass()(model)
    passes.RemoveUnusedFunctionsPass()(model)
    passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    passes.DeduplicateInitializersPass()(model)
    passes.RemoveUnusedOpsetsPass()(model)


def _export_dynamo(wrapper, dummy, opset: int, output_names):
    """torch.onnx.export(dynamo=True) -> ModelProto (dynamic batch, static H x W).

    At opset 18 (the exporter's native opset) the graph is cleaned by ``_fast_cleanup``; at opset 17 the
    exporter's own optimizer runs first (slow) because ONNX's version converter has no Pad-18 -> 17 adapter for the
    unoptimised graph.
    """
    import torch

    with torch.no_grad():  # one eager call first: fills module-level caches with real (not traced) tensors
        wrapper(dummy)
    fast = opset == 18
    program = torch.onnx.export(
        wrapper, (dummy,), None, dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
        output_names=list(output_names), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
        optimize=not fast, verbose=False)
    if fast:
        _fast_cleanup(program.model)
    return program.model_proto


def _export_torchscript(wrapper, dummy, opset: int, output_names):
    """torch.onnx.export(dynamo=False) (the TorchScript tracer) -> ModelProto (dynamic batch, static H x W)."""
    import onnx
    import torch

    buf = io.BytesIO()
    # torch < 2.5 (e.g. NVIDIA's Jetson wheels) has no ``dynamo`` argument and exports with TorchScript anyway
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(
        wrapper, (dummy,), buf, **legacy, opset_version=opset, input_names=[INPUT_NAME],
        output_names=list(output_names), dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in
                                                                                     output_names}},
        do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


_EXPORTER_FUNCTIONS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def run_exporters(wrapper, dummy, opset: int, exporter: str, output_names, label: str):
    """Export with ``exporter`` ("auto": dynamo, then TorchScript when dynamo raises anything); returns
    ``(ModelProto, name of the exporter that worked)``. Raises ExportError with every exporter's failure."""
    import torch

    order = ("dynamo", "torchscript") if exporter == "auto" else (exporter,)
    failures = []
    for name in order:
        try:
            with torch.no_grad():
                return _EXPORTER_FUNCTIONS[name](wrapper, dummy, opset, output_names), name
        except Exception as exc:  # noqa: BLE001 - exporters raise many types (ImportError, torch._dynamo errors, ...)
            reason = f"{type(exc).__name__}: {str(exc).strip()[:1500]}"
            failures.append(f"{name}: {reason}")
            if name != order[-1]:
                LOG.warning("the dynamo ONNX exporter failed for %s (%s); falling back to the TorchScript exporter",
                            label, reason.splitlines()[0][:300])
    raise ExportError(f"ONNX export of {label} failed with every exporter tried ({', '.join(order)}): "
                      + " | ".join(failures) + ". With exporter 'auto' both were tried; check the torch/onnx/"
                      "onnxscript versions (requirements.txt) or export on a workstation and copy the .onnx file.")


def export_onnx(model, out_path: str | Path, input_hw: tuple[int, int] | None = None, opset: int = DEFAULT_OPSET,
                exporter: str = "auto", semantic: str = "argmax", trt_target: str | None = DEFAULT_TRT_TARGET,
                label: str | None = None) -> Path:
    """Export a PD-BridgeNet to ONNX and check it.

    Args:
        model: an ``nn.Module`` with ``.config``, a ModelSpec, or anything ``mtpano_ros.model.resolve`` accepts
            that holds weights (registry / bundled name, checkpoint folder or file).
        out_path: the ``.onnx`` file to write (weights go to ``<out>.data`` beside it when over ~1.8 GB); written
            atomically.
        input_hw: static (H, W) of the graph (multiples of 16); default the model's ``config["input_hw"]``.
        opset: ONNX opset, 17 or 18 (>= 23 would turn attention into an op TensorRT 10.3 lacks; TensorRT 8.6
            needs 17).
        exporter: "auto" (dynamo, falling back to TorchScript with a warning), "dynamo" or "torchscript".
        semantic: "argmax" (output ``semantic`` (B, H, W) int32 ids) or "logits" (``semantic_logits``).
        trt_target: TensorRT version whose ONNX parser must accept every op; None skips the op check.
        label: name stored in the graph metadata (defaults to ``model`` when it is a string).
    Returns the written path. Raises ExportError when the checker or the TensorRT op check fails.
    """
    import onnx
    import onnx.inliner
    import torch

    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset {opset} is not supported; use one of {SUPPORTED_OPSETS} (opset >= 23 exports "
                          f"attention as an ONNX Attention op that needs TensorRT >= 10.14)")
    if semantic not in ("argmax", "logits"):
        raise ExportError(f"semantic='{semantic}' must be 'argmax' or 'logits'")
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter='{exporter}' must be one of {', '.join(EXPORTERS)}")
    net, own_label = model_and_label(model)
    label = label or own_label
    config = dict(getattr(net, "config", {}))
    h, w = tuple(input_hw) if input_hw is not None else tuple(config.get("input_hw", (512, 1024)))
    if h % 16 or w % 16 or h <= 0 or w <= 0:
        raise ExportError(f"input size {h}x{w} must be positive multiples of 16 (the ViT patch size)")
    out_path = Path(out_path)
    names = OUTPUT_NAMES if semantic == "argmax" else LOGIT_OUTPUT_NAMES
    wrapper = _export_wrapper(net, semantic)
    dummy = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))  # batch 2: no 0/1 specialisation
    t0 = time.perf_counter()
    LOG.info("exporting %s at %dx%d, opset %d, exporter %s", label, h, w, opset, exporter)
    proto, used = run_exporters(wrapper, dummy, opset, exporter, names, label)
    if len(proto.functions):  # the dynamo path inlines already; the inliner serialises, which fails over 2 GiB
        proto = onnx.inliner.inline_local_functions(proto)
    n_bn = fold_batchnorm(proto)
    n_am = argmax_before_slice(proto) if semantic == "argmax" else 0
    n_init = remove_unused_initializers(proto)
    LOG.info("exported with the %s exporter in %.1f s (folded %d BatchNorm, moved %d ArgMax before a crop, dropped "
             "%d unused initializers)", used, time.perf_counter() - t0, n_bn, n_am, n_init)
    _set_batch_dim(proto)
    meta = {"mtpano_config": json.dumps({**config, "input_hw": [h, w]}, default=str),
            "mtpano_model": label, "mtpano_semantic": semantic, "mtpano_opset": str(opset), "mtpano_exporter": used}
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    _save_atomically(proto, out_path)
    if trt_target is not None and not op_table_covers(trt_target):
        LOG.warning("the TensorRT operator table covers TensorRT 10.x only: no operator check for TensorRT %s "
                    "(its ONNX parser reports unsupported operators when the engine is built)", trt_target)
    elif trt_target is not None:
        res = check_tensorrt_ops(proto, trt_target)
        for op, note in sorted(res.cautions.items()):
            LOG.info("TensorRT caution for %s: %s", op, note)
        if not res.ok:
            raise ExportError(f"{out_path} uses ONNX ops that TensorRT {trt_target} cannot parse: {res.message()}. "
                              f"Change the model so it avoids them (DESIGN §5b) or pass --trt-target for a newer "
                              f"TensorRT.")
    return out_path


def _save_atomically(proto, out_path: Path) -> None:
    """Check and save ``proto`` to ``out_path`` (+ ``<out>.data`` when the weights pass ~1.8 GB) atomically.

    Everything is written into a temporary folder beside ``out_path`` under the final names (the graph refers to
    its data file by name), then moved in with ``os.replace``: the data file first, the ``.onnx`` last, so a
    complete ``.onnx`` always has its data.
    """
    import onnx

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        tmp = tmp_dir / out_path.name
        data_name = out_path.name + ".data"
        big = sum(len(t.raw_data) + 4 * len(t.float_data) for t in proto.graph.initializer) > _EXTERNAL_DATA_BYTES
        if big:
            onnx.save_model(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
            onnx.checker.check_model(str(tmp), full_check=True)
            os.replace(tmp_dir / data_name, out_path.parent / data_name)
        else:
            onnx.checker.check_model(proto, full_check=True)
            onnx.save_model(proto, str(tmp))
            (out_path.parent / data_name).unlink(missing_ok=True)  # a stale one from an earlier big export
        os.replace(tmp, out_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _set_batch_dim(proto) -> None:
    """Name the leading dimension of the input and every output 'batch' (whichever exporter made it)."""
    for vi in list(proto.graph.input) + list(proto.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"


def onnx_input_hw(onnx_path: str | Path) -> tuple[int, int]:
    """Static (H, W) of an exported graph's ``images`` input."""
    import onnx

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError, OSError, ...
        raise ExportError(f"cannot read ONNX file '{onnx_path}' ({type(exc).__name__}: {exc}); it is truncated or "
                          "not an ONNX graph: delete it and re-export with mtpano-export") from exc
    for vi in proto.graph.input:
        if vi.name == INPUT_NAME:
            dims = vi.type.tensor_type.shape.dim
            return int(dims[2].dim_value), int(dims[3].dim_value)
    raise ExportError(f"{onnx_path} has no '{INPUT_NAME}' input; re-export it with mtpano-export")


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (``mtpano_config``, ``mtpano_model``, ``mtpano_exporter``, ...)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


_SAFETENSORS_KINDS = ("bundled", "checkpoint_dir", "safetensors")
_PACKAGE = Path(__file__).resolve().parents[1]


def code_sha256() -> str:
    """sha256 of the source that decides what an export computes (mtpano_ros/model, mtpano_ros/geometry and this
    file): after any change to it, cached exports are made again instead of serving a graph of the old code."""
    h = hashlib.sha256()
    files = sorted([*(_PACKAGE / "model").rglob("*.py"), *(_PACKAGE / "geometry").rglob("*.py"), Path(__file__)])
    for f in files:
        name = f.relative_to(_PACKAGE).as_posix() if f.is_relative_to(_PACKAGE) else f.name
        h.update(name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def cached_onnx(model, input_hw: tuple[int, int] | None = None, cache_dir: str | Path | None = None,
                opset: int | None = None, exporter: str = "auto") -> tuple[Path, str]:
    """``(onnx_path, label)`` for a model: an ``.onnx`` spec is used as is; anything else is exported once.

    Exports are cached under ``<cache_dir>/onnx/`` (default ``default_cache_dir()``) keyed by the weights, input
    size, opset, EXPORT_VERSION and the model code (``code_sha256``), so a second start loads in seconds.
    Safetensors checkpoints are keyed by the sha256 of their files (no model load when the export is cached);
    other models by their state dict.
    ``model``: an ``nn.Module`` or anything ``resolve`` accepts; an ``.engine`` raises ExportError.
    """
    import torch

    net = model if isinstance(model, torch.nn.Module) else None
    if net is None:
        spec = resolve(model)
        if spec.kind == "onnx":
            return spec.path, spec.name
        if spec.kind == "engine":
            raise ExportError(f"'{spec.source}' is a TensorRT engine; it cannot be turned back into ONNX")
        label = spec.name
        if spec.kind in _SAFETENSORS_KINDS:
            config_file = spec.weights_file.with_name("config.json")
            config = json.loads(config_file.read_text())
            weights = hashlib.sha256(f"{file_sha256(spec.weights_file)}|{file_sha256(config_file)}".encode())
            weights = weights.hexdigest()
        else:
            net = load_model(spec).eval()
    else:
        label = getattr(net, "config", {}).get("variant", type(net).__name__)
    if net is not None:
        config, weights = getattr(net, "config", {}), state_dict_sha256(net)
    opset = opset or DEFAULT_OPSET
    hw = tuple(int(x) for x in (input_hw or config.get("input_hw", (512, 1024))))
    key = hashlib.sha256(f"{weights}|{hw}|{opset}|argmax|v{EXPORT_VERSION}|{code_sha256()}".encode())
    key = key.hexdigest()[:20]
    path = Path(cache_dir or default_cache_dir()) / "onnx" / f"{slug(label)[-40:]}_{hw[0]}x{hw[1]}_op{opset}_{key}.onnx"
    if path.exists():
        LOG.info("using cached ONNX export %s", path)
        return path, label
    with exclusive(path, f"exporting {label} to {path.name}"):
        if path.exists():  # another process exported it while this one waited
            return path, label
        LOG.info("exporting %s to %s (first use; cached afterwards)", label, path)
        export_onnx(net if net is not None else spec, path, input_hw=hw, opset=opset, exporter=exporter,
                    label=label, trt_target=None)
    return path, label

"""Command line ``mtpano-export``: export a model to ONNX, check it against TensorRT's ONNX parser table, and
optionally build a TensorRT engine.

    mtpano-export default -o model.onnx
    mtpano-export default -o model.onnx --engine model.engine --precision fp16     # on the robot (TensorRT + GPU)
"""

from __future__ import annotations

import argparse
import logging
import sys

from mtpano_ros.runtime.export import (
    DEFAULT_OPSET,
    DEFAULT_TRT_TARGET,
    EXPORTERS,
    SUPPORTED_OPSETS,
    ExportError,
    check_tensorrt_ops,
    export_onnx,
    op_table_covers,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtpano-export", description=(
        "Export a PD-BridgeNet to ONNX (static HxW, dynamic batch), check it against TensorRT 10's ONNX operator "
        "list, and optionally build a TensorRT engine."))
    p.add_argument("model", help="bundled name (default, tiny-labelfree), registry name (mtpano-tiny, ...), "
                                 "checkpoint folder, .safetensors, training checkpoint.pt or .pth")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--height", type=int, default=None, help="input height in pixels (multiple of 16)")
    p.add_argument("--width", type=int, default=None, help="input width in pixels (multiple of 16)")
    p.add_argument("--opset", type=int, default=None, choices=SUPPORTED_OPSETS,
                   help=f"ONNX opset (default {DEFAULT_OPSET}; with --engine, the one the installed TensorRT parses: "
                        "17 for TensorRT 8.6)")
    p.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="auto (default): the dynamo exporter, falling back to the TorchScript one when it fails")
    p.add_argument("--semantic", choices=("argmax", "logits"), default="argmax",
                   help="emit class ids (ArgMax in the graph, default) or the 150 logits")
    p.add_argument("--trt-target", default=DEFAULT_TRT_TARGET,
                   help="TensorRT version the op check targets (default 10.3 = JetPack 6.1/6.2)")
    p.add_argument("--engine", default=None, help="also build a TensorRT engine to this path (needs tensorrt+CUDA)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="engine precision")
    p.add_argument("--calibration-dir", default=None, help="folder of panoramas for INT8 calibration")
    p.add_argument("--max-batch", type=int, default=1, help="largest batch the engine accepts")
    p.add_argument("--workspace-gib", type=float, default=None, help="TensorRT builder workspace limit")
    p.add_argument("--strongly-typed", action="store_true", help="build a strongly typed network (fp32 only)")
    p.add_argument("--no-fp32-attention", dest="fp32_attention", action="store_false",
                   help="do not pin normalisation/softmax/Q K^T to FP32 in fp16/int8 engines")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Console script ``mtpano-export``; returns the exit status (0 ok, 1 error, 2 bad arguments)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.height is None) != (args.width is None):
        print("mtpano-export: give both --height and --width, or neither", file=sys.stderr)
        return 2
    hw = (args.height, args.width) if args.height is not None else None
    opset = args.opset or DEFAULT_OPSET
    try:
        if args.engine:  # fail before a long export when the engine cannot be built here
            from mtpano_ros.runtime.tensorrt_backend import _require_cuda, import_tensorrt, onnx_opset_for

            trt = import_tensorrt()
            _require_cuda("cuda")
            opset = args.opset or onnx_opset_for(trt.__version__)
            if args.semantic != "argmax":
                raise ExportError("--engine needs --semantic argmax (the runtime backends read class ids)")
        path = export_onnx(args.model, args.output, input_hw=hw, opset=opset, exporter=args.exporter,
                           semantic=args.semantic, trt_target=args.trt_target)
        import onnx

        if op_table_covers(args.trt_target):
            res = check_tensorrt_ops(onnx.load(str(path), load_external_data=False), args.trt_target)
            print(f"wrote {path} ({len(res.ops)} op types, all accepted by TensorRT {args.trt_target}'s ONNX parser)")
        else:
            print(f"wrote {path} (no operator check for TensorRT {args.trt_target}: the table covers 10.x)")
        if args.engine:
            from mtpano_ros.runtime.tensorrt_backend import build_engine

            build_engine(path, args.engine, precision=args.precision, calibration_dir=args.calibration_dir,
                         max_batch=args.max_batch, workspace_gib=args.workspace_gib,
                         strongly_typed=args.strongly_typed, fp32_attention=args.fp32_attention)
            print(f"wrote {args.engine}")
    except (ExportError, FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"mtpano-export: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Forward time per inference backend available here: mtpano-tiny at 256x512 and mtpano-vitl at 512x1024.

    python benchmarks/runtime.py [--json] [--repeats 20] [--threads N] [--skip-vitl]

Times ``Backend.forward`` (the network call on a preprocessed (1, 3, H, W) batch, outputs back on the host;
pre/postprocessing excluded) after a warm-up run. CPU backends use the same thread count; their runs are
interleaved (torch, onnxruntime, torch, ...) so that load from other processes hits both alike. The median of
``--repeats`` runs is reported for mtpano-tiny and ``--vitl-repeats`` (default 1) for mtpano-vitl. Registry names
give deterministic random weights: speed does not depend on the weight values. The first run of a model exports
it to ONNX (cached under $MTPANO_CACHE_DIR or ~/.cache/mtpano_ros; not timed). With ``--json`` the last stdout
line is ``{"mtpano-tiny@256x512": {"torch_ms": ..., "onnxruntime_ms": ...}, "mtpano-vitl@512x1024": {...}}``
(plus ``torch_cuda_ms`` / ``tensorrt_ms`` where CUDA / TensorRT exist).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import time

import torch

from mtpano_ros.runtime import selection
from mtpano_ros.runtime.backends import OnnxRuntimeBackend, TorchBackend


def _time_ms(backend, x) -> float:
    t0 = time.perf_counter()
    backend.forward(x)
    if backend.device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def bench_model(name: str, hw: tuple[int, int], repeats: int, threads: int, cache_dir: str | None) -> dict:
    """Median forward ms per available backend for one model at one size."""
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    backends = {"torch_ms": TorchBackend(name, device="cpu", input_hw=hw, threads=threads)}
    if selection.probe_onnxruntime("cpu") is None:
        backends["onnxruntime_ms"] = OnnxRuntimeBackend(name, device="cpu", input_hw=hw, threads=threads,
                                                        cache_dir=cache_dir)
    if selection.probe_cuda() is None:
        backends["torch_cuda_ms"] = TorchBackend(name, device="cuda", input_hw=hw, precision="fp16")
        if selection.probe_tensorrt() is None:
            from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend

            backends["tensorrt_ms"] = TensorRTBackend(name, input_hw=hw, precision="fp16", cache_dir=cache_dir)
    times: dict[str, list[float]] = {k: [] for k in backends}
    for b in backends.values():
        b.warmup()
    for _ in range(repeats):
        for key, b in backends.items():
            times[key].append(_time_ms(b, x))
    result = {k: round(statistics.median(v), 2) for k, v in times.items()}
    result["threads"] = threads
    result["repeats"] = repeats
    del backends
    gc.collect()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="last stdout line is a JSON object")
    p.add_argument("--repeats", type=int, default=20, help="timed runs for mtpano-tiny (median)")
    p.add_argument("--vitl-repeats", type=int, default=1, help="timed runs for mtpano-vitl (median)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for torch and ORT")
    p.add_argument("--skip-vitl", action="store_true", help="only mtpano-tiny")
    p.add_argument("--cache-dir", default=None, help="ONNX/engine cache (default $MTPANO_CACHE_DIR or ~/.cache)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cases = [("mtpano-tiny", (256, 512), args.repeats)]
    if not args.skip_vitl:
        cases.append(("mtpano-vitl", (512, 1024), args.vitl_repeats))
    out = {}
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.2f}")
    print(f"{'model@size':24s} {'backend':16s} {'forward ms':>12s}")
    for name, hw, reps in cases:
        key = f"{name}@{hw[0]}x{hw[1]}"
        res = bench_model(name, hw, reps, args.threads, args.cache_dir)
        out[key] = res
        for k, v in res.items():
            if k.endswith("_ms"):
                print(f"{key:24s} {k[:-3]:16s} {v:12.1f}")
        if "onnxruntime_ms" in res:
            print(f"{key:24s} {'ORT speed-up':16s} {res['torch_ms'] / res['onnxruntime_ms']:11.2f}x")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Forward time per inference backend available here: mtpano-tiny at 256x512 and mtpano-vitl at 512x1024.

    python benchmarks/runtime.py [--json] [--repeats 20] [--threads N] [--skip-vitl]

Times ``Backend.forward`` (the network call on a preprocessed (1, 3, H, W) batch, outputs back on the host;
pre/postprocessing excluded) after a warm-up run. CPU backends use the same thread count; for mtpano-tiny
their runs are interleaved (torch, onnxruntime, torch, ...) so that load from other processes hits both alike;
mtpano-vitl backends are built, timed and freed one at a time (memory). The median of
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


def _make_backends(name: str, hw: tuple[int, int], threads: int, cache_dir: str | None):
    """Yield (key, factory) for every backend available here."""
    yield "torch_ms", lambda: TorchBackend(name, device="cpu", input_hw=hw, threads=threads)
    if selection.probe_onnxruntime("cpu") is None:
        yield "onnxruntime_ms", lambda: OnnxRuntimeBackend(name, device="cpu", input_hw=hw, threads=threads,
                                                           cache_dir=cache_dir)
    if selection.probe_cuda() is None:
        yield "torch_cuda_ms", lambda: TorchBackend(name, device="cuda", input_hw=hw, precision="fp16")
        if selection.probe_tensorrt() is None:
            from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend

            yield "tensorrt_ms", lambda: TensorRTBackend(name, input_hw=hw, precision="fp16", cache_dir=cache_dir)


def bench_model(name: str, hw: tuple[int, int], repeats: int, threads: int, cache_dir: str | None,
                one_at_a_time: bool = False) -> dict:
    """Median forward ms per available backend for one model at one size.

    ``one_at_a_time`` builds, times and frees each backend in turn (for mtpano-vitl: two 2.4 GB copies of the
    weights at once would crowd a small machine); otherwise all backends are built and their runs interleaved.
    """
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    factories = dict(_make_backends(name, hw, threads, cache_dir))
    times: dict[str, list[float]] = {k: [] for k in factories}
    if one_at_a_time:
        for key, make in factories.items():
            backend = make()
            backend.warmup()
            times[key] = [_time_ms(backend, x) for _ in range(repeats)]
            del backend
            gc.collect()
    else:
        backends = {k: make() for k, make in factories.items()}
        for b in backends.values():
            b.warmup()
        for _ in range(repeats):
            for key, b in backends.items():
                times[key].append(_time_ms(b, x))
        del backends
        gc.collect()
    result = {k: round(statistics.median(v), 2) for k, v in times.items()}
    result["threads"] = threads
    result["repeats"] = repeats
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="last stdout line is a JSON object")
    p.add_argument("--repeats", type=int, default=20, help="timed runs for mtpano-tiny (median)")
    p.add_argument("--vitl-repeats", type=int, default=1, help="timed runs for mtpano-vitl (median)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for torch and ORT")
    p.add_argument("--skip-vitl", action="store_true", help="only mtpano-tiny")
    p.add_argument("--skip-tiny", action="store_true", help="only mtpano-vitl")
    p.add_argument("--cache-dir", default=None, help="ONNX/engine cache (default $MTPANO_CACHE_DIR or ~/.cache)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cases = [] if args.skip_tiny else [("mtpano-tiny", (256, 512), args.repeats)]
    if not args.skip_vitl:
        cases.append(("mtpano-vitl", (512, 1024), args.vitl_repeats))
    out = {}
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.2f}")
    print(f"{'model@size':24s} {'backend':16s} {'forward ms':>12s}")
    for name, hw, reps in cases:
        key = f"{name}@{hw[0]}x{hw[1]}"
        res = bench_model(name, hw, reps, args.threads, args.cache_dir, one_at_a_time=name == "mtpano-vitl")
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

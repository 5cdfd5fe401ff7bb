"""Parameters, FLOPs and CPU forward time of every model variant at its native input size.

    python benchmarks/model.py [--variants mtpano-tiny mtpano-vits] [--threads 2] [--repeats 5] [--json]

Forward time: eval mode, ``torch.inference_mode``, batch 1, float32, ``torch.set_num_threads(threads)``; the
minimum and median over ``repeats`` timed runs after one warm-up (the minimum is the least disturbed by other
load on a shared machine; it is what ``cpu_ms`` reports). ``cpu_time_ms`` is the process CPU time of the
fastest run summed over threads: on a busy machine it stays meaningful when wall time does not.
FLOPs: ``torch.utils.flop_counter`` (2 per multiply-add) of one forward.
Weights are random: speed does not depend on them.
With ``--json`` the last stdout line is {"mtpano-tiny": {"params", "gflops", "cpu_ms", ...}, ...}.

``--onnxruntime``: instead, each variant (default: mtpano-tiny and mtpano-lite) exported through the project's
exporter at ``--size`` (default 256x512) and timed in ONNX Runtime (CPU, ``--threads`` intra-op threads), runs
interleaved across variants so other load hits all alike; the table gives the median and minimum and the ratio of
each median to mtpano-tiny's (the bundled default's bar: mtpano-lite <= 1.5x mtpano-tiny).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mtpano_ros.model import create_model, list_models


def bench(name: str, repeats: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name).eval()
    h, w = model.config["input_hw"]
    x = torch.rand(1, 3, h, w)
    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)  # also the warm-up
        times, cpu_times = [], []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
            cpu_times.append((time.process_time() - c0) * 1e3)
    return {"params": params, "gflops": round(counter.get_total_flops() / 1e9, 3), "cpu_ms": round(min(times), 1),
            "cpu_ms_median": round(statistics.median(times), 1), "cpu_time_ms": round(min(cpu_times), 1),
            "input_hw": [h, w],
            "threads": torch.get_num_threads(), "repeats": repeats}


def bench_onnxruntime(names: list[str], hw: tuple[int, int], threads: int, repeats: int) -> dict:
    """{name: {"ort_ms", "ort_ms_min", "ratio_to_tiny"}} of ONNX Runtime CPU forwards at hw, interleaved."""
    import tempfile
    from pathlib import Path

    import numpy as np
    import onnxruntime as ort

    from mtpano_ros.runtime.export import export_onnx

    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            torch.manual_seed(0)
            path = export_onnx(create_model(name).eval(), Path(tmp) / f"{name}.onnx", input_hw=hw, label=name)
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            sessions[name] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    times = {n: [] for n in names}
    for s in sessions.values():  # warm-up
        s.run(None, {s.get_inputs()[0].name: x})
    for _ in range(repeats):
        for n, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, {s.get_inputs()[0].name: x})
            times[n].append((time.perf_counter() - t0) * 1e3)
    ref = statistics.median(times[names[0]])
    return {n: {"ort_ms": round(statistics.median(t), 1), "ort_ms_min": round(min(t), 1),
                "ratio_to_tiny": round(statistics.median(t) / ref, 3), "input_hw": list(hw), "threads": threads}
            for n, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=None, choices=list_models(),
                    help="default: all (with --onnxruntime: mtpano-tiny mtpano-lite)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per variant (mtpano-vitl: at most 2)")
    ap.add_argument("--json", action="store_true", help="print a JSON object as the last stdout line")
    ap.add_argument("--onnxruntime", action="store_true", help="time ONNX Runtime forwards (see the module doc)")
    ap.add_argument("--size", default="256x512", help="HEIGHTxWIDTH for --onnxruntime")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.onnxruntime:
        names = args.variants or ["mtpano-tiny", "mtpano-lite"]
        if names[0] != "mtpano-tiny":
            names = ["mtpano-tiny", *[n for n in names if n != "mtpano-tiny"]]
        hw = tuple(int(v) for v in args.size.lower().split("x"))
        res = bench_onnxruntime(names, hw, args.threads, max(args.repeats, 10))
        print(f"{'variant':<14} {'input':>9} {'ORT median ms':>14} {'ORT min ms':>11} {'ratio to tiny':>14}")
        for n, r in res.items():
            print(f"{n:<14} {args.size:>9} {r['ort_ms']:>14.1f} {r['ort_ms_min']:>11.1f} {r['ratio_to_tiny']:>14.3f}")
        if args.json:
            print(json.dumps(res))
        return 0
    results = {}
    print(f"{'variant':<14} {'input':>9} {'params':>13} {'GFLOPs':>9} {'min ms':>9} {'median ms':>10} "
          f"{'CPU time ms':>12}")
    for name in args.variants or list_models():
        r = bench(name, min(args.repeats, 2) if name == "mtpano-vitl" else args.repeats)
        results[name] = r
        hw = f"{r['input_hw'][0]}x{r['input_hw'][1]}"
        print(f"{name:<14} {hw:>9} {r['params']:>13,} {r['gflops']:>9.2f} {r['cpu_ms']:>9.1f} "
              f"{r['cpu_ms_median']:>10.1f} {r['cpu_time_ms']:>12.1f}", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Parameters, FLOPs and CPU forward time of every model variant at its native input size.

    python benchmarks/model.py [--variants mtpano-tiny mtpano-vits] [--threads 2] [--repeats 5] [--json]

Forward time: eval mode, ``torch.inference_mode``, batch 1, float32, ``torch.set_num_threads(threads)``; the
minimum and median over ``repeats`` timed runs after one warm-up (the minimum is the least disturbed by other
load on a shared machine; it is what ``cpu_ms`` reports). ``cpu_time_ms`` is the process CPU time of the
fastest run summed over threads: on a busy machine it stays meaningful when wall time does not.
FLOPs: ``torch.utils.flop_counter`` (2 per multiply-add) of one forward.
Weights are random: speed does not depend on them.
With ``--json`` the last stdout line is {"mtpano-tiny": {"params", "gflops", "cpu_ms", ...}, ...}.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list_models(), choices=list_models())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per variant (mtpano-vitl: at most 2)")
    ap.add_argument("--json", action="store_true", help="print a JSON object as the last stdout line")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    print(f"{'variant':<14} {'input':>9} {'params':>13} {'GFLOPs':>9} {'min ms':>9} {'median ms':>10} "
          f"{'CPU time ms':>12}")
    for name in args.variants:
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

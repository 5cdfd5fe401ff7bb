"""Throughput of the procedural panorama generator (scene build + ERP render with labels, one process).

    python benchmarks/bench_synthetic.py [--size 256x512] [--count 40] [--seed 2000000] [--json]

Prints a table; with --json the last stdout line is {"size": ..., "count": ..., "panoramas_per_s": ...,
"indoor_per_s": ..., "outdoor_per_s": ..., "panoramas_per_cpu_s": ...}. On a shared machine the wall-clock
rate reflects the CPU share the process got; panoramas per CPU-second is what one idle core delivers.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from training.config import parse_size
from training.synthetic import make_scene, render_erp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256x512")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2000000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    h, w = parse_size(args.size)
    render_erp(make_scene(args.seed), h, w)  # warm the ray-grid cache
    times = {"indoor": [], "outdoor": []}
    t_all = time.perf_counter()
    cpu0 = time.process_time()
    for s in range(args.seed, args.seed + args.count):
        t0 = time.perf_counter()
        scene = make_scene(s)
        render_erp(scene, h, w)
        times[scene.kind].append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    cpu = time.process_time() - cpu0
    rate = {k: (len(v) / sum(v) if v else float("nan")) for k, v in times.items()}
    print(f"{'size':<10}{'kind':<10}{'count':>7}{'panoramas/s':>14}")
    for k, v in times.items():
        print(f"{args.size:<10}{k:<10}{len(v):>7}{rate[k]:>14.2f}")
    print(f"{args.size:<10}{'all':<10}{args.count:>7}{args.count / total:>14.2f}")
    print(f"per CPU-second of this process: {args.count / cpu:.2f} panoramas "
          f"(wall-clock rate on an idle core); load average (1 min): {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps({"size": args.size, "count": args.count, "panoramas_per_s": args.count / total,
                          "indoor_per_s": rate["indoor"], "outdoor_per_s": rate["outdoor"],
                          "panoramas_per_cpu_s": args.count / cpu, "load_avg_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()

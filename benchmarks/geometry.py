"""Cutting perspective views from a panorama: ours vs py360convert.e2p, same data, same run.

The job: 32 views of 512x512, horizontal FOV 100°, arbitrary yaw/pitch (seeded), from a 1024x2048 RGB uint8
panorama (a real one from ../shared/data/panoramas, resized; a synthetic one if that is missing).

Rows:
  ours                  mtpano_ros.geometry.erp_to_perspective_np, sampling grid cached (the view set repeats,
                        as with a fixed layout in the node or the distillation views of an epoch)
  ours, cold grid       the same with the grid cache cleared before every call (grid built from scratch)
  ours, torch           erp_to_perspective (grid_sample, float32, batched, differentiable), cached grid
  py360convert          py360convert.e2p once per view (its sampler cache holds 8 views, so 32 distinct views
                        rebuild their grids on every call, as they would in use)
  py360convert, cached  py360convert.e2p with one view repeated 32 times (its best case, for reference)

    .venv/bin/python benchmarks/geometry.py [--repeats 5] [--json]

Timings are medians over --repeats calls after one warm-up call; ours and py360convert alternate within each
repeat so both see the same machine load. --json makes the last stdout line
{"ours_ms": ..., "py360convert_ms": ..., "speedup": ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mtpano_ros.geometry import clear_grid_cache, erp_to_perspective, erp_to_perspective_np

PANO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panoramas" / "outdoor_park_4096x2048.jpg"
ERP_HW = (1024, 2048)
OUT_HW = (512, 512)
FOV_DEG = 100.0
N_VIEWS = 32


def load_panorama() -> tuple[np.ndarray, str]:
    import cv2

    if PANO.exists():
        img = cv2.cvtColor(cv2.imread(str(PANO), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (ERP_HW[1], ERP_HW[0]), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img), f"{PANO.name} resized to {ERP_HW[1]}x{ERP_HW[0]}"
    rng = np.random.default_rng(0)
    small = (rng.random((ERP_HW[0] // 16, ERP_HW[1] // 16, 3)) * 255).astype(np.uint8)
    img = cv2.resize(small, (ERP_HW[1], ERP_HW[0]), interpolation=cv2.INTER_CUBIC)
    return img, f"synthetic {ERP_HW[1]}x{ERP_HW[0]} ({PANO} not found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per method (median reported)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the view directions")
    ap.add_argument("--json", action="store_true", help="last stdout line: JSON with ours_ms, py360convert_ms, speedup")
    args = ap.parse_args()

    import py360convert

    img, source = load_panorama()
    rng = np.random.default_rng(args.seed)
    yaw = rng.uniform(-180.0, 180.0, N_VIEWS)
    pitch = rng.uniform(-90.0, 90.0, N_VIEWS)
    erp_t = torch.from_numpy(img).permute(2, 0, 1)[None].float()

    def ours():
        return erp_to_perspective_np(img, yaw, pitch, 0.0, FOV_DEG, OUT_HW)

    def ours_cold():
        clear_grid_cache()
        return erp_to_perspective_np(img, yaw, pitch, 0.0, FOV_DEG, OUT_HW)

    def ours_torch():
        return erp_to_perspective(erp_t, yaw, pitch, 0.0, FOV_DEG, OUT_HW)

    # py360convert: u_deg > 0 turns right (ours: yaw > 0 turns left); its pixel grid spans the fov with the outer
    # pixel CENTRES (ours: pixel EDGES), so it gets the (h, v) fov that makes both grids identical
    t = math.tan(math.radians(FOV_DEG) / 2.0)
    fov360 = (math.degrees(2 * math.atan((OUT_HW[1] - 1) / OUT_HW[1] * t)),
              math.degrees(2 * math.atan((OUT_HW[0] - 1) / OUT_HW[1] * t)))

    def py360():
        return [py360convert.e2p(img, fov360, -y, p, OUT_HW) for y, p in zip(yaw, pitch)]

    def py360_cached():
        return [py360convert.e2p(img, fov360, -yaw[0], pitch[0], OUT_HW) for _ in range(N_VIEWS)]

    methods = {"ours": ours, "ours, cold grid": ours_cold, "ours, torch": ours_torch, "py360convert": py360,
               "py360convert, cached": py360_cached}
    times: dict[str, list[float]] = {k: [] for k in methods}
    results = {k: f() for k, f in methods.items()}  # warm-up (and outputs to compare)
    for _ in range(args.repeats):
        for k, f in methods.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) * 1000.0)
    med = {k: statistics.median(v) for k, v in times.items()}

    ref = np.stack(results["py360convert"]).astype(np.float64)
    diff = {k: np.abs(np.asarray(results[k] if k != "ours, torch" else
                                 results[k][0].permute(0, 2, 3, 1).numpy()).astype(np.float64) - ref).mean()
            for k in ("ours", "ours, torch")}

    print(f"panorama: {source}; {N_VIEWS} views of {OUT_HW[1]}x{OUT_HW[0]}, fov {FOV_DEG:.0f} deg, "
          f"yaw/pitch uniform (seed {args.seed}); torch threads {torch.get_num_threads()}; "
          f"median of {args.repeats}")
    print(f"{'method':<22} {'ms / 32 views':>14} {'vs py360convert':>16} {'mean |diff| (grey)':>19}")
    for k in methods:
        d = f"{diff[k]:.2f}" if k in diff else ""
        print(f"{k:<22} {med[k]:>14.1f} {med['py360convert'] / med[k]:>15.1f}x {d:>19}")
    speedup = med["py360convert"] / med["ours"]
    if args.json:
        print(json.dumps({"ours_ms": round(med["ours"], 2), "py360convert_ms": round(med["py360convert"], 2),
                          "speedup": round(speedup, 2)}))


if __name__ == "__main__":
    main()

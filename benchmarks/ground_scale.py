"""Metric depth with and without the ground scale (mtpano_ros.geometry.ground), on held-out procedural scenes.

Each scene's camera height is known (the ground is z = 0 in its world frame). For every bundled model: metric
AbsRel / delta1 of the network's depth as it comes ("as is"), and after ground_scale(depth, semantic,
camera_height_m) from the network's own semantics ("ground"), plus the anchor "oracle" (the one scale factor that
minimises that frame's error, median(gt / pred) over valid pixels: the best any single-scale correction can do).
A model given a wrong scale (depth * 0.6, a camera the network has never seen) shows what the rescaling rescues.

    .venv/bin/python benchmarks/ground_scale.py [--count 30] [--size 256x512] [--models default tiny-labelfree]

The last stdout line is a JSON summary (mean over scenes). Frames where ground_scale gives None stay as is.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from mtpano_ros.geometry.ground import ground_scale
from mtpano_ros.runtime import select_backend
from mtpano_ros.runtime.options import RuntimeOptions
from training.metrics import depth_metrics
from training.synthetic import make_scene, render_erp


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="scenes (seeds from --seed on)")
    parser.add_argument("--seed", type=int, default=2000000, help="first held-out scene seed")
    parser.add_argument("--size", default="256x512", help="render size HxW")
    parser.add_argument("--models", nargs="+", default=["default", "tiny-labelfree"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    hw = tuple(int(x) for x in args.size.split("x"))
    scenes = []
    for seed in range(args.seed, args.seed + args.count):
        scene = make_scene(seed)
        sample = render_erp(scene, *hw)
        scenes.append((float(scene.cam_pos[2]), sample))
    summary = {}
    print(f"{args.count} held-out procedural scenes at {hw[0]}x{hw[1]} (HxW); AbsRel (lower is better), delta1 in ()")
    print(f"{'model':<28}{'as is':>16}{'ground':>16}{'oracle':>16}{'no estimate':>13}")
    for name in args.models:
        backend = select_backend(RuntimeOptions(model=name, backend="torch", device="cpu", threads=args.threads))
        for label, factor in ((name, 1.0), (f"{name} x0.6", 0.6)):
            rows = {"as_is": [], "ground": [], "oracle": []}
            missing = 0
            for camera_height_m, sample in scenes:
                out = backend.infer(sample["rgb"], out_hw=hw)
                depth, semantic = out["depth"][0] * factor, out["semantic"][0]
                scale = ground_scale(depth, semantic, camera_height_m)
                missing += scale is None
                gt = sample["depth"]
                ok = np.isfinite(gt) & np.isfinite(depth) & (gt > 0) & (depth > 0)
                oracle = float(np.median(gt[ok] / depth[ok]))
                for key, s in (("as_is", 1.0), ("ground", 1.0 if scale is None else scale), ("oracle", oracle)):
                    m = depth_metrics(depth * s, gt, max_depth_m=80.0)
                    rows[key].append((m["abs_rel"], m["delta1"]))
            means = {k: np.mean(v, axis=0) for k, v in rows.items()}
            print(f"{label:<28}" + "".join(f"{means[k][0]:>9.3f} ({means[k][1]:.2f})" for k in rows) +
                  f"{missing:>10d}/{len(scenes)}")
            summary[label] = {**{f"abs_rel_{k}": round(float(v[0]), 4) for k, v in means.items()},
                              **{f"delta1_{k}": round(float(v[1]), 4) for k, v in means.items()},
                              "no_estimate": int(missing)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

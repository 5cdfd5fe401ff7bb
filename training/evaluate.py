"""Evaluate a model on procedural panoramas (generated on the fly) or on a dataset folder.

    python training/evaluate.py --model default --synthetic --seed 2000000 --count 40 --size 256x512 --json
    python training/evaluate.py --model runs/tiny_synthetic/final --data runs/data/val --json

--model: a registered/bundled name ("default", "tiny-labelfree", "mtpano-tiny" = random weights) or a checkpoint
path (folder with model.safetensors + config.json, a .safetensors, a .pth). The model sees each panorama resized to
its own input size; predictions are resized back to the evaluation size and compared with the exact ground truth.
Prints a table; with --json the last stdout line is a JSON object with depth_absrel, depth_delta1,
normal_mean_deg, miou (percent) and seam (+ more keys). `python training/evaluate.py` re-executes itself as
`python -m training.evaluate` with the repository root on PYTHONPATH, so it runs from any folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    _root = str(Path(__file__).resolve().parents[1])
    _env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_root, os.environ.get("PYTHONPATH")) if p)}
    os.execve(sys.executable, [sys.executable, "-m", "training.evaluate", *sys.argv[1:]], _env)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.metrics import (  # noqa: E402
    confusion_matrix,
    depth_metrics,
    normal_metrics,
    seam_score,
    segmentation_metrics,
)


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(model: torch.nn.Module, samples, max_depth_m: float | None = None, lat_weighted: bool = False,
             batch_size: int = 4, classes: list[int] | None = None) -> dict:
    """Metrics of `model` over `samples` (an iterable of numpy dicts rgb (H,W,3) uint8, depth (H,W) m, normals
    (H,W,3) panorama frame, semantic (H,W) uint8). Depth and normal metrics are averaged over images, the
    segmentation metrics come from one confusion matrix over all pixels. Returns a flat dict (see main)."""
    from mtpano_ros.model import infer

    num_classes = int(model.config.get("num_classes", 150))
    conf = np.zeros((num_classes, num_classes + 1), np.int64)
    dm, da, nm, seams = [], [], [], []
    batch: list[dict] = []

    def flush():
        rgb = np.stack([b["rgb"] for b in batch])
        pred = infer(model, rgb, out_hw=rgb.shape[1:3])
        for i, b in enumerate(batch):
            dm.append(depth_metrics(pred["depth"][i], b["depth"], max_depth_m=max_depth_m, lat_weighted=lat_weighted))
            da.append(depth_metrics(pred["depth"][i], b["depth"], max_depth_m=max_depth_m, align="median",
                                    lat_weighted=lat_weighted))
            nm.append(normal_metrics(pred["normals"][i], np.asarray(b["normals"], np.float32),
                                     lat_weighted=lat_weighted))
            conf[:] += confusion_matrix(pred["semantic"][i], b["semantic"], num_classes)
            seams.append(seam_score(pred["depth"][i]))
        batch.clear()

    for s in samples:
        batch.append(s)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    seg = segmentation_metrics(conf, classes)
    out = {"count": len(dm)}
    for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"):
        out[f"depth_{k}"] = _mean(dm, k)
        out[f"depth_{k}_median_aligned"] = _mean(da, k)
    for k in ("mean", "median", "rmse"):
        out[f"normal_{k}_deg"] = _mean(nm, k)
    for k in ("pct_11_25", "pct_22_5", "pct_30"):
        out[f"normal_{k}"] = _mean(nm, k)
    out["miou"] = seg["miou"]
    out["pixel_acc"] = seg["pixel_acc"]
    out["per_class_iou"] = {int(c): float(v) for c, v in enumerate(seg["per_class_iou"]) if np.isfinite(v)}
    out["seam"] = float(np.nanmean(seams)) if np.isfinite(seams).any() else float("nan")
    return out


def synthetic_samples(seed: int, count: int, hw: tuple[int, int], kind: str = "auto"):
    """Yield rendered procedural panoramas for scene seeds seed..seed+count-1."""
    from training.synthetic import make_scene, render_erp

    for s in range(seed, seed + count):
        yield render_erp(make_scene(s, kind), *hw)


def folder_samples(root: Path, hw: tuple[int, int] | None = None, count: int | None = None):
    """Yield the samples of a dataset folder written by `python -m training.synthetic` (resized to hw if given)."""
    from training.data.synthetic import SyntheticPanoramas

    ds = SyntheticPanoramas({"root": str(root), "size": list(hw) if hw else None})
    n = len(ds) if count is None else min(count, len(ds))
    for i in range(n):
        yield ds.raw(i)


def format_table(res: dict, model_name: str) -> str:
    from mtpano_ros.labels import ADE20K_CLASSES

    lines = [f"model: {model_name}   panoramas: {res['count']}", "",
             f"{'metric':<28}{'metric depth':>14}{'median-aligned':>16}"]
    for k, label in (("abs_rel", "depth AbsRel"), ("sq_rel", "depth SqRel"), ("rmse", "depth RMSE (m)"),
                     ("rmse_log", "depth RMSElog"), ("delta1", "depth delta<1.25"), ("delta2", "depth delta<1.25^2"),
                     ("delta3", "depth delta<1.25^3")):
        lines.append(f"{label:<28}{res[f'depth_{k}']:>14.4f}{res[f'depth_{k}_median_aligned']:>16.4f}")
    lines.append("")
    for k, label in (("normal_mean_deg", "normal mean (deg)"), ("normal_median_deg", "normal median (deg)"),
                     ("normal_rmse_deg", "normal RMSE (deg)"), ("normal_pct_11_25", "normal < 11.25 deg (%)"),
                     ("normal_pct_22_5", "normal < 22.5 deg (%)"), ("normal_pct_30", "normal < 30 deg (%)"),
                     ("miou", "mIoU (%)"), ("pixel_acc", "pixel accuracy (%)"), ("seam", "seam score (1 = none)")):
        lines.append(f"{label:<28}{res[k]:>14.3f}")
    lines.append("")
    lines.append("per-class IoU (%): " + ", ".join(f"{ADE20K_CLASSES[c]} {v:.1f}"
                                                   for c, v in sorted(res["per_class_iou"].items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="bundled/registered name or checkpoint path")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="render procedural panoramas on the fly")
    src.add_argument("--data", type=Path, help="dataset folder written by `python -m training.synthetic`")
    ap.add_argument("--seed", type=int, default=2000000, help="first scene seed (--synthetic)")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--size", default=None, help="HEIGHTxWIDTH evaluation size (default 256x512 for --synthetic,"
                    " the stored size for --data)")
    ap.add_argument("--kind", default="auto", choices=["auto", "indoor", "outdoor"])
    ap.add_argument("--max-depth", type=float, default=None, help="ignore ground truth beyond this depth (m)")
    ap.add_argument("--lat-weighted", action="store_true", help="weight pixels by cos(latitude)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--json", action="store_true", help="last stdout line: JSON summary")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mtpano_ros.model import load_model
    from training.synthetic.__main__ import parse_size

    model = load_model(args.model)
    t0 = time.perf_counter()
    if args.synthetic:
        hw = parse_size(args.size or "256x512")
        samples = synthetic_samples(args.seed, args.count, hw, args.kind)
    else:
        samples = folder_samples(args.data, parse_size(args.size) if args.size else None, args.count)
    res = evaluate(model, samples, max_depth_m=args.max_depth, lat_weighted=args.lat_weighted,
                   batch_size=args.batch)
    res["seconds"] = time.perf_counter() - t0
    print(format_table(res, str(args.model)))
    if args.json:
        summary = {"depth_absrel": res["depth_abs_rel"], "depth_delta1": res["depth_delta1"],
                   "normal_mean_deg": res["normal_mean_deg"], "miou": res["miou"], "seam": res["seam"],
                   "depth_absrel_median_aligned": res["depth_abs_rel_median_aligned"],
                   "normal_median_deg": res["normal_median_deg"], "pixel_acc": res["pixel_acc"],
                   "count": res["count"], "model": str(args.model)}
        print(json.dumps(summary))
    return res


if __name__ == "__main__":
    main()

"""Evaluate a model on procedural panoramas (generated on the fly) or on a dataset folder.

    python training/evaluate.py --model default --synthetic --seed 2000000 --count 40 --size 256x512 --json
    python training/evaluate.py --model runs/tiny_synthetic/final --data runs/data/val --json
    python training/evaluate.py --model default --data ../shared/data/real_gt --prior --json   # real photographs

--model: a registered/bundled name ("default", "tiny-labelfree", "mtpano-tiny" = random weights) or a checkpoint
path (folder with model.safetensors + config.json, a .safetensors, a .pth). The model sees each panorama resized to
its own input size; predictions are resized back to the evaluation size and compared with the exact ground truth.
Prints a table; with --json the last stdout line is a JSON object with depth_absrel, depth_delta1,
normal_mean_deg, miou (percent) and seam (+ more keys).
--data DIR in the real-photograph layout (`../shared/data/real_gt/`: one folder per panorama with rgb.png, gt.npz,
meta.json) follows that README's protocol instead (training.metrics.real_gt_metrics: cos-latitude weighted
AbsRel metric and median-aligned, 10 m cap, normal mean angle, wall/floor/ceiling IoU and their mean, averaged
over panoramas); --prior puts the trivial latitude priors beside the model (`--model none`: the priors alone).
`training` is installed with the package, so `python training/evaluate.py` (or `mtpano-evaluate`) runs from any
folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from training.metrics import (
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


REAL_KEYS = (("depth_abs_rel", "depth AbsRel (metric)"),
             ("depth_abs_rel_median_aligned", "depth AbsRel (median-al.)"),
             ("depth_delta1", "depth delta<1.25 (metric)"),
             ("depth_delta1_median_aligned", "depth delta<1.25 (m.-al.)"),
             ("normal_mean_deg", "normal mean (deg)"), ("normal_median_deg", "normal median (deg)"),
             ("iou_wall", "IoU wall"), ("iou_floor", "IoU floor"), ("iou_ceiling", "IoU ceiling"),
             ("structural_miou", "structural mIoU"))


def is_real_gt_dir(root: Path) -> bool:
    """True when root is one panorama folder with gt.npz or holds such folders (the real_gt layout)."""
    root = Path(root)
    return (root / "gt.npz").is_file() or any(p.is_file() for p in root.glob("*/gt.npz"))


def real_gt_samples(root: Path):
    """Yield the panoramas of a real_gt folder in name order: {"name", "rgb" (H,W,3) uint8 RGB, "depth" (H,W)
    radial m (0 none), "normals" (H,W,3) panorama frame (NaN none), "labels" (H,W) uint8 (255 none), "meta"}."""
    import cv2

    root = Path(root)
    dirs = [root] if (root / "gt.npz").is_file() else sorted(p.parent for p in root.glob("*/gt.npz"))
    for d in dirs:
        bgr = cv2.imread(str(d / "rgb.png"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{d / 'rgb.png'} is missing or unreadable; each panorama folder needs rgb.png, "
                                    "gt.npz and meta.json")
        with np.load(d / "gt.npz") as g:
            missing = {"depth", "normals", "labels"} - set(g.files)
            if missing:
                raise KeyError(f"{d / 'gt.npz'} lacks {sorted(missing)}; expected depth, normals and labels")
            gt = {k: g[k] for k in ("depth", "normals", "labels")}
        if gt["depth"].shape != bgr.shape[:2]:
            raise ValueError(f"{d}: gt depth is {gt['depth'].shape}, rgb.png is {bgr.shape[:2]}; they must match")
        meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else {}
        yield {"name": d.name, "rgb": np.ascontiguousarray(bgr[..., ::-1]), **gt, "meta": meta}


def model_predictor(model: torch.nn.Module):
    """rgb (H,W,3) uint8 -> {"depth", "normals", "semantic"} at (H, W) from `model` (mtpano_ros.model.infer)."""
    from mtpano_ros.model import infer

    def predict(rgb: np.ndarray) -> dict:
        out = infer(model, rgb, out_hw=rgb.shape[:2])
        return {k: out[k][0] for k in ("depth", "normals", "semantic")}

    return predict


def prior_predictor(rgb: np.ndarray) -> dict:
    """The trivial priors (training.metrics.latitude_priors) at the size of rgb (H, W, 3); ignores its pixels."""
    from training.metrics import latitude_priors

    return latitude_priors(*rgb.shape[:2])


def evaluate_real(predict, samples) -> dict:
    """The real_gt protocol over `samples` (real_gt_samples): per-panorama real_gt_metrics, then their means.
    predict: rgb (H,W,3) uint8 -> {"depth" (H,W) m, "normals" (H,W,3), "semantic" (H,W)}. Returns the means
    (REAL_KEYS), "count" and "per_panorama" {name: metrics}."""
    from training.metrics import real_gt_metrics

    rows = {}
    for s in samples:
        p = predict(s["rgb"])
        rows[s["name"]] = real_gt_metrics(p["depth"], p["normals"], p["semantic"], s["depth"], s["normals"],
                                          s["labels"])
    out = {k: _mean(list(rows.values()), k) for k, _ in REAL_KEYS}
    out["count"] = len(rows)
    out["per_panorama"] = rows
    return out


def format_real_table(columns: dict[str, dict]) -> str:
    """Side-by-side table of evaluate_real results {column name: result}."""
    names = list(columns)
    n = next(iter(columns.values()))["count"] if columns else 0
    lines = [f"real photographs: {n} panoramas", "", f"{'metric':<28}" + "".join(f"{c:>16}" for c in names)]
    for k, label in REAL_KEYS:
        lines.append(f"{label:<28}" + "".join(f"{columns[c][k]:>16.3f}" for c in names))
    return "\n".join(lines)


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
    ap.add_argument("--prior", action="store_true", help="real_gt layout: evaluate the trivial latitude priors "
                    "beside the model (--model none: the priors alone)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data is not None and is_real_gt_dir(args.data):
        return main_real(args)
    if args.prior:
        ap.error("--prior needs --data DIR in the real_gt layout (folders with rgb.png, gt.npz, meta.json)")
    from mtpano_ros.model import load_model
    from training.config import parse_size

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


def main_real(args) -> dict:
    """--data DIR in the real_gt layout: the README protocol for the model and/or the priors (see module doc)."""
    from mtpano_ros.model import load_model

    t0 = time.perf_counter()
    columns: dict[str, dict] = {}
    if str(args.model) != "none":
        columns[str(args.model)] = evaluate_real(model_predictor(load_model(args.model)), real_gt_samples(args.data))
    if args.prior:
        columns["prior"] = evaluate_real(prior_predictor, real_gt_samples(args.data))
    if not columns:
        raise SystemExit("nothing to evaluate: --model none needs --prior")
    if columns[next(iter(columns))]["count"] == 0:
        raise SystemExit(f"{args.data}: no panorama folders (rgb.png + gt.npz) found")
    print(format_real_table(columns))
    first = next(iter(columns))
    res = {**columns[first], "model": first, "seconds": time.perf_counter() - t0}
    if "prior" in columns and first != "prior":
        res["prior"] = columns["prior"]
    if args.json:
        def flat(r: dict) -> dict:
            return {"depth_absrel": r["depth_abs_rel"], "depth_absrel_median_aligned":
                    r["depth_abs_rel_median_aligned"], **{k: r[k] for k, _ in REAL_KEYS}, "count": r["count"]}

        summary = {**flat(res), "model": first}
        if "prior" in res:
            summary["prior"] = flat(res["prior"])
        print(json.dumps(summary))
    return res


if __name__ == "__main__":
    main()

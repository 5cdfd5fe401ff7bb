"""Evaluation metrics for panoramic depth, normals and semantics (numpy; one image per call unless stated).

Depth: AbsRel, SqRel, RMSE, RMSElog, delta<1.25^k (k = 1, 2, 3) on metric or median-aligned predictions, with an
optional cos-latitude area weighting and a maximum-depth cap. Normals: mean / median / RMSE angle (degrees) and the
percentage of pixels under 11.25, 22.5 and 30 degrees. Semantics: confusion matrices -> mIoU, pixel accuracy and
per-class IoU (percent), optionally over a class subset. Seam: how much larger the jump across the column 0 / W-1
border is than the typical jump between neighbouring inner columns.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def cos_latitude_weights(height: int, width: int) -> np.ndarray:
    """(H, W) float64 ERP pixel area weights cos(latitude) at pixel centres (DESIGN §3 latitude)."""
    lat = (0.5 - (np.arange(height) + 0.5) / height) * np.pi
    return np.repeat(np.cos(lat)[:, None], width, 1)


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float((x * w).sum() / w.sum())


def _wmedian(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, max_depth_m: float | None = None,
                  align: str = "none", lat_weighted: bool = False, min_depth_m: float = 1e-3) -> dict[str, float]:
    """Depth errors of one image.

    pred, gt: (H, W) metres (radial for ERP). Valid pixels: gt finite, gt > 0, gt <= max_depth_m (if given) and
    `mask` (H, W) bool (if given). Non-finite or non-positive predictions on valid pixels count as min_depth_m
    (they are errors, not skipped). align: "none" (metric) or "median" (pred scaled by median(gt)/median(pred),
    weighted medians when lat_weighted). Predictions are clipped to [min_depth_m, max_depth_m].
    lat_weighted: weight pixels by cos(latitude) (the ERP rows' solid angle).
    Returns abs_rel, sq_rel, rmse (m), rmse_log, delta1, delta2, delta3 (fractions in [0, 1]) and n_valid;
    NaN metrics when there is no valid pixel.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must both be (H, W) depth maps; got {pred.shape} and {gt.shape}")
    valid = np.isfinite(gt) & (gt > 0)
    if max_depth_m is not None:
        valid &= gt <= max_depth_m
    if mask is not None:
        valid &= np.asarray(mask, bool)
    keys = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
    if not valid.any():
        return {**dict.fromkeys(keys, float("nan")), "n_valid": 0}
    w = cos_latitude_weights(*gt.shape)[valid] if lat_weighted else np.ones(int(valid.sum()))
    g = gt[valid]
    p = pred[valid]
    p = np.where(np.isfinite(p) & (p > 0), p, min_depth_m)
    if align == "median":
        med_p = _wmedian(p, w)
        p = p * (_wmedian(g, w) / max(med_p, 1e-12))
    elif align != "none":
        raise ValueError(f"align must be 'none' or 'median', got {align!r}")
    p = np.clip(p, min_depth_m, max_depth_m if max_depth_m is not None else np.inf)
    ratio = np.maximum(p / g, g / p)
    out = {
        "abs_rel": _wmean(np.abs(p - g) / g, w),
        "sq_rel": _wmean((p - g) ** 2 / g, w),
        "rmse": float(np.sqrt(_wmean((p - g) ** 2, w))),
        "rmse_log": float(np.sqrt(_wmean((np.log(p) - np.log(g)) ** 2, w))),
        "delta1": _wmean(ratio < 1.25, w),
        "delta2": _wmean(ratio < 1.25 ** 2, w),
        "delta3": _wmean(ratio < 1.25 ** 3, w),
    }
    out["n_valid"] = int(valid.sum())
    return out


def normal_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                   lat_weighted: bool = False) -> dict[str, float]:
    """Angular errors (degrees) of one normal map.

    pred, gt: (H, W, 3) vectors in the same frame (need not be unit). Valid pixels: |gt| > 0.5 and `mask`.
    A non-finite or zero prediction on a valid pixel counts as 180 degrees. Returns mean, median, rmse (degrees),
    pct_11_25, pct_22_5, pct_30 (percent of valid pixels under the threshold) and n_valid.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (H, W, 3) normal maps; got {pred.shape} and {gt.shape}")
    gn = np.linalg.norm(gt, axis=-1)
    valid = np.isfinite(gn) & (gn > 0.5)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    keys = ("mean", "median", "rmse", "pct_11_25", "pct_22_5", "pct_30")
    if not valid.any():
        return {**dict.fromkeys(keys, float("nan")), "n_valid": 0}
    w = cos_latitude_weights(*gt.shape[:2])[valid] if lat_weighted else np.ones(int(valid.sum()))
    p, g = pred[valid], gt[valid] / gn[valid, None]
    pn = np.linalg.norm(p, axis=-1)
    ok = np.isfinite(pn) & (pn > 1e-6)
    cos = np.full(len(p), -1.0)
    cos[ok] = (p[ok] * g[ok]).sum(-1) / pn[ok]
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return {
        "mean": _wmean(ang, w),
        "median": _wmedian(ang, w),
        "rmse": float(np.sqrt(_wmean(ang ** 2, w))),
        "pct_11_25": 100 * _wmean(ang < 11.25, w),
        "pct_22_5": 100 * _wmean(ang < 22.5, w),
        "pct_30": 100 * _wmean(ang < 30.0, w),
        "n_valid": int(valid.sum()),
    }


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int = 150,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(C, C + 1) int64 counts, rows = ground truth, columns = prediction; C = num_classes.

    pred, gt: integer class ids of the same shape. Pixels whose gt is ignore_index (or outside [0, C)) are skipped.
    The last column counts predictions outside [0, C) (e.g. 255 unknown): misses for their gt row.
    """
    pred = np.asarray(pred).astype(np.int64).reshape(-1)
    gt = np.asarray(gt).astype(np.int64).reshape(-1)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape; got {pred.size} and {gt.size} elements")
    keep = (gt != ignore_index) & (gt >= 0) & (gt < num_classes)
    g, p = gt[keep], pred[keep]
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)  # extra column for "no valid class"
    cm = np.bincount(g * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return cm.reshape(num_classes, num_classes + 1)


def segmentation_metrics(conf: np.ndarray, classes: list[int] | None = None) -> dict:
    """mIoU, pixel accuracy and per-class IoU (percent) from a confusion matrix (rows gt, columns pred), (C, C)
    or (C, C + 1) as confusion_matrix returns it (last column: predictions of no valid class).

    IoU_c = TP / (TP + FP + FN). mIoU averages the classes that occur in the ground truth (row sum > 0), or exactly
    `classes` when given (absent ones then count as NaN and are skipped). Pixel accuracy = trace / total gt pixels
    (pixels predicted as an invalid class count as wrong: they are in the row sums, not the diagonal).
    Returns {"miou", "pixel_acc", "per_class_iou": (C,) float64 with NaN where the class is absent from gt}.
    """
    conf = np.asarray(conf, np.float64)
    c = conf.shape[0]
    tp = np.diag(conf[:, :c])
    gt_count = conf.sum(1)
    pred_count = conf[:, :c].sum(0)
    union = gt_count + pred_count - tp
    iou = np.where(gt_count > 0, tp / np.maximum(union, 1), np.nan) * 100
    sel = iou if classes is None else iou[list(classes)]
    miou = float(np.nanmean(sel)) if np.isfinite(sel).any() else float("nan")
    total = gt_count.sum()
    return {"miou": miou, "pixel_acc": float(100 * tp.sum() / total) if total > 0 else float("nan"),
            "per_class_iou": iou}


def seam_score(x: np.ndarray, mask: np.ndarray | None = None, near: int = 2) -> float:
    """Discontinuity across the ERP border, relative to the inside.

    x: (H, W) or (H, W, C) values (e.g. predicted depth or normals); mask (H, W) optional validity.
    Returns mean |x[:, 0] - x[:, W-1]| divided by the mean |x[:, j] - x[:, j+1]| over the `near` column pairs on
    each side of the border (j = 0..near-1 and W-1-near..W-2; both means over rows where both pixels are valid
    and finite; channels summed). 1 means the border is as smooth as its neighbourhood; a visible seam gives
    values well above 1. NaN if undefined.
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[1] < 2 * near + 2:
        raise ValueError(f"x must be (H, W) or (H, W, C) with W >= {2 * near + 2}; got {x.shape}")
    ok = np.isfinite(x).all(-1)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    cols = np.r_[0:near, x.shape[1] - 1 - near:x.shape[1] - 1]
    d_inner = np.abs(x[:, cols + 1] - x[:, cols]).sum(-1)
    ok_inner = ok[:, cols + 1] & ok[:, cols]
    d_seam = np.abs(x[:, 0] - x[:, -1]).sum(-1)
    ok_seam = ok[:, 0] & ok[:, -1]
    if not ok_seam.any() or not ok_inner.any():
        return float("nan")
    inner = d_inner[ok_inner].mean()
    seam = d_seam[ok_seam].mean()
    if inner <= 0:
        return float("nan") if seam <= 0 else float("inf")
    return float(seam / inner)


# ------------------------------------------------------------------------------------------------ real photographs
STRUCTURAL_CLASSES = {"wall": 0, "floor": 3, "ceiling": 5}  # ADE20K-150 ids
REAL_GT_MAX_DEPTH_M = 10.0
PRIOR_BAND_DEG = 25.0


def structural_iou(pred: np.ndarray, gt: np.ndarray, ignore_index: int = IGNORE_INDEX) -> dict[str, float]:
    """IoU (fractions in [0, 1]) of wall, floor and ceiling over the pixels that have a label, and their mean.

    pred, gt: (H, W) ADE20K ids; gt == ignore_index has no label and is skipped. IoU_c = |pred=c & gt=c| /
    |pred=c | gt=c| over labelled pixels, so pixels of other labelled classes (doors, windows) predicted as c
    count against c. Returns {"iou_wall", "iou_floor", "iou_ceiling", "structural_miou"}; a class absent from
    both pred and gt is NaN and left out of the mean.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape; got {pred.shape} and {gt.shape}")
    lab = gt != ignore_index
    out = {}
    for name, c in STRUCTURAL_CLASSES.items():
        p, g = (pred == c) & lab, gt == c
        union = int((p | g).sum())
        out[f"iou_{name}"] = float((p & g).sum() / union) if union else float("nan")
    vals = [out[f"iou_{n}"] for n in STRUCTURAL_CLASSES if np.isfinite(out[f"iou_{n}"])]
    out["structural_miou"] = float(np.mean(vals)) if vals else float("nan")
    return out


def real_gt_metrics(pred_depth: np.ndarray, pred_normals: np.ndarray, pred_semantic: np.ndarray,
                    gt_depth: np.ndarray, gt_normals: np.ndarray, gt_labels: np.ndarray,
                    max_depth_m: float = REAL_GT_MAX_DEPTH_M) -> dict[str, float]:
    """The protocol of `../shared/data/real_gt/README.md` on one panorama (all maps at the ground truth's size).

    pred_depth (H, W) radial metres; pred_normals (H, W, 3) panorama frame (REP 103); pred_semantic (H, W) ADE20K
    ids. gt_depth (H, W) radial metres, 0 = none; gt_normals (H, W, 3) unit, NaN = none; gt_labels (H, W) uint8,
    255 = none.
    Depth: AbsRel, metric and median-aligned (scale = median(gt) / median(pred) over the valid pixels, plain
    medians), each pixel weighted by cos(latitude). The 10 m cap: ground truth beyond max_depth_m is excluded
    and predictions are clipped to [1 mm, max_depth_m] after the alignment. Normals: mean angle (degrees) over
    the pixels with a ground-truth normal, weighted by cos(latitude) too. Semantics: structural_iou (pixel
    counts, unweighted). These choices reproduce the README's reference numbers of the trivial priors.
    Returns depth_abs_rel, depth_abs_rel_median_aligned, depth_delta1(_median_aligned), normal_mean_deg,
    normal_median_deg, iou_wall, iou_floor, iou_ceiling, structural_miou.
    """
    gd = np.asarray(gt_depth, np.float64)
    gn = np.nan_to_num(np.asarray(gt_normals, np.float64), nan=0.0)
    metric = depth_metrics(pred_depth, gd, max_depth_m=max_depth_m, lat_weighted=True)
    valid = np.isfinite(gd) & (gd > 0) & (gd <= max_depth_m)
    aligned = np.asarray(pred_depth, np.float64)
    if valid.any():
        p = aligned[valid]
        p = np.where(np.isfinite(p) & (p > 0), p, 1e-3)
        aligned = aligned * (np.median(gd[valid]) / max(float(np.median(p)), 1e-12))
    med = depth_metrics(aligned, gd, max_depth_m=max_depth_m, lat_weighted=True)
    nm = normal_metrics(pred_normals, gn, lat_weighted=True)
    out = {"depth_abs_rel": metric["abs_rel"], "depth_abs_rel_median_aligned": med["abs_rel"],
           "depth_delta1": metric["delta1"], "depth_delta1_median_aligned": med["delta1"],
           "normal_mean_deg": nm["mean"], "normal_median_deg": nm["median"]}
    out.update(structural_iou(pred_semantic, gt_labels))
    return out


def latitude_priors(height: int, width: int, band_deg: float = PRIOR_BAND_DEG,
                    depth_m: float = 1.0) -> dict[str, np.ndarray]:
    """The trivial priors the real-photo numbers are compared with, on an (H, W) ERP grid (DESIGN §3 angles).

    "depth" (H, W) float32: depth_m everywhere (a constant: only its median-aligned score means anything);
    "normals" (H, W, 3) float32 panorama frame: +z (floor) below -band_deg latitude, -z (ceiling) above
    +band_deg, and between them a vertical wall facing the camera, -(cos lon, sin lon, 0);
    "semantic" (H, W) uint8: ceiling (5) above +band_deg, floor (3) below -band_deg, wall (0) between.
    """
    lat = (0.5 - (np.arange(height) + 0.5) / height) * np.pi
    lon = (0.5 - (np.arange(width) + 0.5) / width) * 2 * np.pi
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    b = np.radians(band_deg)
    up, down = lat2 > b, lat2 < -b
    normals = np.stack((-np.cos(lon2), -np.sin(lon2), np.zeros_like(lon2)), -1)
    normals[up] = (0.0, 0.0, -1.0)
    normals[down] = (0.0, 0.0, 1.0)
    sem = np.full((height, width), STRUCTURAL_CLASSES["wall"], np.uint8)
    sem[up] = STRUCTURAL_CLASSES["ceiling"]
    sem[down] = STRUCTURAL_CLASSES["floor"]
    return {"depth": np.full((height, width), depth_m, np.float32), "normals": normals.astype(np.float32),
            "semantic": sem}

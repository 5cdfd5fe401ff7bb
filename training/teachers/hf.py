"""Hugging Face `transformers` teachers, loaded from a local directory (never downloaded at run time).

`hf-depth`: any `AutoModelForDepthEstimation` checkpoint (Depth Anything V2 metric/relative, DPT, ZoeDepth...).
`outputs.predicted_depth` is (B, h, w) at the processor's resolution; we resize it bilinearly to the view.
Depth Anything configs carry `depth_estimation_type` ("metric" -> metres of z-depth, "relative" -> disparity
up to an unknown scale and shift) and `max_depth`; ZoeDepth is metric; DPT and other models are relative.
Relative outputs become `zdepth = 1 / disparity` normalised to median 1 with `depth_kind = "affine"`, so the
trainer must use the scale-and-shift-invariant loss. Normals come from the depth and the view's intrinsics.

`hf-seg`: ADE20K-150 semantic models. `AutoModelForSemanticSegmentation` (SegFormer, UperNet, BEiT, DPT...)
give `logits` (B, C, h, w); `AutoModelForUniversalSegmentation` (Mask2Former, OneFormer) give
`class_queries_logits` (B, Q, C+1, last = "no object") and `masks_queries_logits` (B, Q, h, w), combined as
sum_q softmax(class)[:C] * sigmoid(mask) (the semantic inference of Mask2Former). Confidence = the winning
class's share of the per-pixel class scores. The checkpoint must have 150 labels in ADE20K order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.teachers.base import Teacher, check_views, normals_from_zdepth


def _check_dir(path) -> Path:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p} is not a local transformers checkpoint directory (no config.json); "
                                "download it once with `huggingface-cli download <id> --local-dir DIR` and pass DIR")
    return p


def _pixel_values(processor, views: np.ndarray):
    return processor(images=list(views), return_tensors="pt")["pixel_values"]


class HFDepthTeacher(Teacher):
    """Depth (and normals derived from it) from a transformers depth-estimation model in a local directory."""

    name = "hf-depth"
    provides = frozenset({"depth", "normals"})

    def __init__(self, model_dir: str, device: str = "cpu", batch_size: int = 4, max_depth_m: float | None = None):
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.torch = torch
        self.model_dir = _check_dir(model_dir)
        self.device = torch.device(device)
        self.processor = AutoImageProcessor.from_pretrained(self.model_dir)
        self.model = AutoModelForDepthEstimation.from_pretrained(self.model_dir).to(self.device).eval()
        cfg = self.model.config
        kind = getattr(cfg, "depth_estimation_type", None)
        metric = kind == "metric" or cfg.model_type == "zoedepth"
        self.depth_kind = "metric" if metric else "affine"
        self.max_depth_m = max_depth_m if max_depth_m is not None else float(getattr(cfg, "max_depth", None) or 80.0)
        self.batch_size = batch_size

    def raw_depth(self, views: np.ndarray) -> np.ndarray:
        """Model output resized to the views: (N, H, W) float32 (metres, or disparity for relative models)."""
        torch = self.torch
        n, h, w, _ = views.shape
        out = []
        with torch.no_grad():
            for s in range(0, n, self.batch_size):
                px = _pixel_values(self.processor, views[s:s + self.batch_size]).to(self.device)
                pred = self.model(pixel_values=px).predicted_depth
                if pred.ndim == 3:
                    pred = pred[:, None]
                pred = torch.nn.functional.interpolate(pred.float(), size=(h, w), mode="bilinear", align_corners=False)
                out.append(pred[:, 0].cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        views, fov = check_views(views, fov_deg)
        raw = self.raw_depth(views)
        if self.depth_kind == "metric":
            valid = np.isfinite(raw) & (raw > 0) & (raw < self.max_depth_m)
            zdepth = np.where(valid, raw, 0.0)
        else:
            valid = np.isfinite(raw) & (raw > 0)
            zdepth = np.zeros_like(raw)
            for i in range(len(raw)):
                if valid[i].any():
                    inv = 1.0 / np.maximum(raw[i], 1e-6)
                    zdepth[i] = np.where(valid[i], inv / np.median(inv[valid[i]]), 0.0)
        zdepth = zdepth.astype(np.float32)
        normals = np.stack([normals_from_zdepth(zdepth[i], fov[i], valid[i]) for i in range(len(views))])
        return {"zdepth": zdepth, "normals": normals, "valid": valid}

    def describe(self) -> dict:
        return {**super().describe(), "model_dir": str(self.model_dir), "model_type": self.model.config.model_type}


class HFSegTeacher(Teacher):
    """ADE20K-150 semantics from a transformers segmentation model in a local directory."""

    name = "hf-seg"
    provides = frozenset({"semantic"})

    def __init__(self, model_dir: str, device: str = "cpu", batch_size: int = 4):
        import torch
        from transformers import AutoConfig, AutoImageProcessor

        self.torch = torch
        self.model_dir = _check_dir(model_dir)
        self.device = torch.device(device)
        cfg = AutoConfig.from_pretrained(self.model_dir)
        self.universal = cfg.model_type in ("mask2former", "oneformer", "maskformer")
        if self.universal:
            from transformers import AutoModelForUniversalSegmentation as Auto
        else:
            from transformers import AutoModelForSemanticSegmentation as Auto
        self.processor = AutoImageProcessor.from_pretrained(self.model_dir)
        self.model = Auto.from_pretrained(self.model_dir).to(self.device).eval()
        n = len(self.model.config.id2label)
        if n != 150:
            raise ValueError(f"{self.model_dir} predicts {n} classes; the hf-seg teacher needs an ADE20K-150 "
                             "checkpoint (e.g. a SegFormer/UperNet/Mask2Former fine-tuned on ADE20K)")
        self.batch_size = batch_size

    def class_scores(self, views: np.ndarray) -> np.ndarray:
        """(N, 150, H, W) float32 non-negative per-class scores at the views' resolution."""
        torch = self.torch
        n, h, w, _ = views.shape
        out = []
        with torch.no_grad():
            for s in range(0, n, self.batch_size):
                px = _pixel_values(self.processor, views[s:s + self.batch_size]).to(self.device)
                o = self.model(pixel_values=px)
                if self.universal:
                    cls = o.class_queries_logits.float().softmax(-1)[..., :-1]
                    masks = torch.nn.functional.interpolate(o.masks_queries_logits.float(), size=(h, w),
                                                            mode="bilinear", align_corners=False).sigmoid()
                    scores = torch.einsum("bqc,bqhw->bchw", cls, masks)
                else:
                    logits = torch.nn.functional.interpolate(o.logits.float(), size=(h, w), mode="bilinear",
                                                             align_corners=False)
                    scores = logits.softmax(1)
                out.append(scores.cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        views, _ = check_views(views, fov_deg)
        scores = self.class_scores(views)
        total = np.maximum(scores.sum(1), 1e-12)
        return {"semantic": scores.argmax(1).astype(np.uint8), "confidence": (scores.max(1) / total).astype(np.float32)}

    def describe(self) -> dict:
        return {**super().describe(), "model_dir": str(self.model_dir), "model_type": self.model.config.model_type}

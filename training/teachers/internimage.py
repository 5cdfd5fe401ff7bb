"""InternImage (ADE20K-150 semantics) through mmsegmentation.

Facts used (OpenGVLab/InternImage `segmentation/README.md` and its image demo; mmsegmentation docs):
- InternImage's segmentation code is built on MMSegmentation 0.27 (mmcv-full 1.5): import `mmcv_custom` and
  `mmseg_custom` from InternImage's `segmentation/` folder (they register the backbone and its DCNv3 op), then
  `init_segmentor(config, checkpoint=None, device=...)`, `mmcv.runner.load_checkpoint(model, ckpt)`,
  `inference_segmentor(model, img)` -> list with one (H, W) int array of ADE20K ids 0..149 per image. An ndarray
  image is taken as BGR (mmcv's loading convention; the ADE20K configs convert to RGB with `to_rgb=True`).
- MMSegmentation 1.x renamed these to `init_model` / `inference_model`, which return `SegDataSample`s with
  `pred_sem_seg.data` (1, H, W) and `seg_logits.data` (C, H, W).
The 0.x API gives no scores, so its confidence is 1 everywhere; the 1.x path uses the softmax maximum.
Checkpoints: `upernet_internimage_h_896_160k_ade20k.py` / `.pth` (InternImage-H, the teacher MTPano names).
"""

from __future__ import annotations

import sys

import numpy as np

from training.teachers.base import Teacher, check_views, softmax_confidence


def convert_mmseg_result(result, num_classes: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """One mmseg result -> (semantic (H, W) uint8 with 255 unknown, confidence (H, W) float32).

    Accepts the 0.x form (an (H, W) int array, or a list holding one), or the 1.x `SegDataSample`-like object
    with `pred_sem_seg.data` (1, H, W) and optionally `seg_logits.data` (C, H, W).
    """
    def as_np(x):
        return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

    if isinstance(result, (list, tuple)):
        result = result[0]
    if hasattr(result, "pred_sem_seg"):
        if hasattr(result, "seg_logits"):
            ids, conf = softmax_confidence(as_np(result.seg_logits.data), axis=0)
        else:
            ids = as_np(result.pred_sem_seg.data)[0]
            conf = np.ones(ids.shape, np.float32)
    else:
        ids = as_np(result)
        if ids.ndim == 3:
            ids = ids[0]
        conf = np.ones(ids.shape, np.float32)
    ids = ids.astype(np.int64)
    bad = (ids < 0) | (ids >= num_classes)
    sem = np.where(bad, 255, ids).astype(np.uint8)
    return sem, np.where(bad, 0.0, conf).astype(np.float32)


class InternImageTeacher(Teacher):
    """ADE20K semantics from an mmsegmentation model (InternImage-H by default, any mmseg ADE20K model works)."""

    name = "internimage"
    provides = frozenset({"semantic"})

    def __init__(self, config: str, checkpoint: str, device: str = "cpu", internimage_root: str | None = None):
        if internimage_root:
            sys.path.insert(0, str(internimage_root))  # InternImage's segmentation/ folder (mmcv_custom, ...)
        try:
            import mmseg  # noqa: F401
        except ImportError as e:
            raise ImportError("the internimage teacher needs mmsegmentation (InternImage pins mmseg 0.27 + "
                              "mmcv-full 1.5) and InternImage's segmentation/ folder (pass internimage_root)") from e
        try:  # registers InternImage's backbone; absent for plain mmseg models
            import mmcv_custom  # noqa: F401
            import mmseg_custom  # noqa: F401
        except ImportError:
            pass
        self.config, self.checkpoint = str(config), str(checkpoint)
        try:
            from mmseg.apis import inference_segmentor, init_segmentor  # mmseg 0.x

            self.model = init_segmentor(self.config, checkpoint=self.checkpoint, device=device)
            self._infer = lambda img: inference_segmentor(self.model, img)
        except ImportError:
            from mmseg.apis import inference_model, init_model  # mmseg 1.x

            self.model = init_model(self.config, checkpoint=self.checkpoint, device=device)
            self._infer = lambda img: inference_model(self.model, img)

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        views, _ = check_views(views, fov_deg)
        sems, confs = [], []
        for v in views:
            sem, conf = convert_mmseg_result(self._infer(np.ascontiguousarray(v[..., ::-1])))  # RGB -> BGR
            sems.append(sem)
            confs.append(conf)
        return {"semantic": np.stack(sems), "confidence": np.stack(confs)}

    def describe(self) -> dict:
        return {**super().describe(), "config": self.config, "checkpoint": self.checkpoint}

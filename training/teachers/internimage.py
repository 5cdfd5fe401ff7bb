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

Code location: InternImage's backbone lives in its repository's `segmentation/` folder as the packages
`ops_dcnv3` (DCNv3 modules; needs its compiled `DCNv3` extension installed), `mmcv_custom` and `mmseg_custom`.
Pass that folder as `internimage_root` (teacher spec `internimage:config=CFG,checkpoint=CKPT,internimage_root=DIR`):
the three packages are imported from it by file location (`load_packages`), never by editing `sys.path`. Without
it, they are imported if installed, and plain mmseg ADE20K models need none of them.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

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


INTERNIMAGE_PACKAGES = ("ops_dcnv3", "mmcv_custom", "mmseg_custom")  # import order: mmseg_custom uses ops_dcnv3


def load_packages(root: str | Path, names: tuple[str, ...] = INTERNIMAGE_PACKAGES) -> list[str]:
    """Import the top-level packages `names` found as folders of `root` by file location (a folder without
    __init__.py becomes a namespace package), without touching sys.path; their submodules then import normally.
    Names already imported, or without a folder in root, are left alone. Returns the names imported here."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"internimage_root {root} is not a folder; pass InternImage's segmentation/ folder "
                                f"(it holds {', '.join(names)})")
    loaded = []
    for name in names:
        folder = root / name
        if name in sys.modules or not folder.is_dir():
            continue
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
        else:
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            if spec.loader is not None:
                spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        loaded.append(name)
    return loaded


class InternImageTeacher(Teacher):
    """ADE20K semantics from an mmsegmentation model (InternImage-H by default, any mmseg ADE20K model works)."""

    name = "internimage"
    provides = frozenset({"semantic"})

    def __init__(self, config: str, checkpoint: str, device: str = "cpu", internimage_root: str | None = None):
        """config, checkpoint: the mmseg config (.py) and weights (.pth); internimage_root: InternImage's
        segmentation/ folder (see the module docstring), None for installed packages or plain mmseg models."""
        try:
            import mmseg  # noqa: F401
        except ImportError as e:
            raise ImportError("the internimage teacher needs mmsegmentation (InternImage pins mmseg 0.27 + "
                              "mmcv-full 1.5) and InternImage's segmentation/ folder (pass internimage_root)") from e
        if internimage_root:  # registers InternImage's backbone and its DCNv3 op
            load_packages(internimage_root)
        else:
            try:  # installed copies, if any; absent for plain mmseg models
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

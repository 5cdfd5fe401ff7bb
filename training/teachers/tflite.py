"""A semantic teacher from a TFLite ADE20K segmentation model, run with Google's LiteRT (`ai-edge-litert`).

Made for `../shared/teachers/deeplabv3_mnv2_ade20k/` (DeepLabV3 + MobileNetV2 trained on ADE20K, TF Hub
"lite-model/deeplabv3-mobilenetv2-ade20k/1/default/1"): input (1, S, S, 3) float32 RGB in [-1, 1]
(x / 127.5 - 1), S = 513; output (1, S, S, 151) float32 class scores. Class 0 is "other" (-> 255, ignore),
class k in 1..150 is ADE20K-150 id k - 1 (wall 1 -> 0, floor 4 -> 3, ceiling 6 -> 5). Each view is resized to
S x S (bilinear), the scores are resized back to the view size (bilinear) before the softmax;
confidence = the winning class's softmax probability (over all 151 scores, so mass on "other" lowers it).

Semantic only: the output has "semantic" and "confidence", never depth, normals or a validity mask, so the
pseudo-label store keeps no geometry for such a teacher and its samples carry no depth/normal supervision.

Per-class judgement. A pixel keeps its label only when its confidence reaches the threshold of its class:
`min_confidence` for every class, overridden per class by `class_min_confidence` ({ADE20K id or name:
threshold}, or the string "wall:0.6;ceiling:0.4" as it comes from a teacher spec). Below it the pixel becomes
255 with confidence 0 (it votes for nothing when views are merged on the sphere). The defaults follow what
`../shared/teachers/README.md` measured for this model on real rooms (never anything fitted on a validation
set): floors come out well (IoU ~0.75) and keep the base threshold; walls are weaker (IoU ~0.5) and are where
this model puts what it does not recognise (a view of a plain ceiling is mostly called "wall"), so a wall label
needs a majority of the probability (0.5 > the base); ceilings are under- rather than over-predicted (IoU
~0.3-0.4, lost to "wall"), so a ceiling label, when it comes, keeps the base threshold. The base 0.3 drops pixels
where no class has even a third of the probability: guesses between several classes. `class_min_confidence={}`
and `min_confidence=0` keep every label.

Tilted views. The model learned from upright photographs; confidence cannot screen what it says about views
pointing far up or down. On the indoor training panoramas (`../shared/data/train_panoramas/`, no ground truth
involved) the central region of straight-up views came out 51 % "wall" and of straight-down views 51 % "wall" and
20 % "sky", with median confidences of 0.88-0.99, while views pitched 50 degrees called 61 % of their centre
floor (down) and 36 % ceiling (up). So views whose axis is pitched more than `max_abs_pitch_deg` (default 60)
get no labels at all (when the cameras are passed, as the pseudo-label pipeline does); cover the poles with the
borders of less tilted wide views (e.g. the ico20 layout: pitches +-10.8 and +-52.6 degrees, fov 100).

    build_teacher("tflite", model_path=".../lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite")
Impossible places. The panoramas are levelled (gravity along -z) and taken from a camera standing on the ground
in a room or outdoors, so some classes cannot lie on some rays: sky and ceiling are never far below the horizon,
floor, road, sidewalk and rug never far above it. `elevation_limits_deg` ({class: (min, max)} degrees of ray
elevation in the panorama frame; default +-10 degrees of slack around the horizon for levelling errors) turns such
labels into 255. On the training panoramas this removes, e.g., the "sky" this model sees on a photo studio's white
floor and the "sky" at the nadir of indoor scenes. Needs the cameras (yaw, pitch, roll, fov), as the
pseudo-label pipeline passes them.

    python training/pseudo_label.py --input DIR --out STORE --teacher tflite:PATH.tflite
    python training/pseudo_label.py ... --teacher "tflite:model_path=PATH,class_min_confidence=wall:0.7"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.teachers.base import Teacher, check_views

CAM_KEYS = ("yaw_deg", "pitch_deg", "roll_deg", "fov_deg")
DEFAULT_MIN_CONFIDENCE = 0.3
DEFAULT_MAX_ABS_PITCH_DEG = 60.0
# ray elevation (degrees above the horizon, panorama frame) where a class may lie: sky and ceiling not below -10,
# floor / road / sidewalk / rug not above +10 (the camera stands on the ground, below any ceiling)
DEFAULT_ELEVATION_LIMITS_DEG = {2: (-10.0, 90.0), 5: (-10.0, 90.0), 3: (-90.0, 10.0), 6: (-90.0, 10.0),
                                11: (-90.0, 10.0), 28: (-90.0, 10.0)}
DEFAULT_CLASS_MIN_CONFIDENCE = {0: 0.5}  # wall: the model's sink for plain surfaces it does not recognise


def _class_id(key) -> int:
    """ADE20K id from an id (int or digits) or a class name."""
    from mtpano_ros.labels import ADE20K_CLASSES

    if isinstance(key, str) and not key.strip().lstrip("-").isdigit():
        names = {n.lower(): i for i, n in enumerate(ADE20K_CLASSES)}
        if key.strip().lower() not in names:
            raise ValueError(f"unknown ADE20K class {key!r}; use an id 0..149 or a name from "
                             "mtpano_ros.labels.ADE20K_CLASSES")
        return names[key.strip().lower()]
    cid = int(key)
    if not 0 <= cid < len(ADE20K_CLASSES):
        raise ValueError(f"class id {cid} outside 0..{len(ADE20K_CLASSES) - 1}")
    return cid


def _parse_elevation_limits(table) -> dict[int, tuple[float, float]]:
    """{id or name: (min_deg, max_deg)} or "sky:-10:90;floor:-90:10" -> {ADE20K id: (min_deg, max_deg)}."""
    if isinstance(table, str):
        items = []
        for part in filter(None, (p.strip() for p in table.split(";"))):
            bits = part.rsplit(":", 2)
            if len(bits) != 3:
                raise ValueError(f"elevation_limits_deg entry {part!r}: expected NAME_OR_ID:MIN_DEG:MAX_DEG, "
                                 "e.g. 'sky:-10:90;floor:-90:10'")
            items.append((bits[0], (float(bits[1]), float(bits[2]))))
    else:
        items = list(dict(table).items())
    out = {}
    for key, (lo, hi) in items:
        if not -90.0 <= float(lo) <= float(hi) <= 90.0:
            raise ValueError(f"elevation_limits_deg[{key!r}] = ({lo}, {hi}): need -90 <= min <= max <= 90 degrees")
        out[_class_id(key)] = (float(lo), float(hi))
    return out


def ray_elevation_deg(cameras: dict, index: int, hw: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 elevation (degrees above the horizon, panorama frame) of the pixel rays of view `index`.

    cameras: {"yaw_deg", "pitch_deg", "roll_deg", "fov_deg"} (V,) arrays, the project's view convention."""
    from mtpano_ros.geometry import camera_rays, view_rotation

    cam = {k: float(np.asarray(cameras[k], np.float64).reshape(-1)[index]) for k in CAM_KEYS}
    rays = camera_rays([cam["fov_deg"]], hw)[0]  # (h, w, 3) OpenCV view frame, float64
    rot = view_rotation(cam["yaw_deg"], cam["pitch_deg"], cam["roll_deg"])[0]
    z = (rays @ rot[2]) / rays.norm(dim=-1)  # the panorama frame's up component of the unit ray
    return np.degrees(np.arcsin(z.clamp(-1, 1).numpy())).astype(np.float32)


def _parse_class_table(table) -> dict[int, float]:
    """{id or ADE20K name: threshold} or "name:t;id:t" -> {ADE20K id: threshold in [0, 1]}."""
    if isinstance(table, str):
        items = []
        for part in filter(None, (p.strip() for p in table.split(";"))):
            key, sep, value = part.rpartition(":")
            if not sep:
                raise ValueError(f"class_min_confidence entry {part!r}: expected NAME_OR_ID:THRESHOLD, "
                                 "e.g. 'wall:0.6;ceiling:0.4'")
            items.append((key.strip(), float(value)))
    else:
        items = list(dict(table).items())
    out: dict[int, float] = {}
    for key, value in items:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"class_min_confidence[{key!r}] = {value}: thresholds are probabilities in [0, 1]")
        out[_class_id(key)] = float(value)
    return out


class TFLiteSegTeacher(Teacher):
    """ADE20K-150 semantics from a local TFLite model (151 scores, class 0 = "other"). See the module doc."""

    name = "tflite"
    provides = frozenset({"semantic"})
    depth_kind = "none"

    def __init__(self, model_path: str, num_threads: int = 1, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 class_min_confidence: dict | str | None = None, max_abs_pitch_deg: float = DEFAULT_MAX_ABS_PITCH_DEG,
                 elevation_limits_deg: dict | str | None = None, device: str = "cpu"):
        """model_path: the .tflite file (never downloaded). num_threads: LiteRT CPU threads. device: accepted for
        the common teacher options; LiteRT runs on the CPU whatever it says."""
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError("the tflite teacher needs Google's LiteRT runtime: `pip install ai-edge-litert` "
                              "(listed in requirements-dev.txt)") from e
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"tflite teacher: no model file at {self.model_path}; pass the .tflite path, "
                                    "e.g. ../shared/teachers/deeplabv3_mnv2_ade20k/"
                                    "lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite")
        self.interpreter = Interpreter(model_path=str(self.model_path), num_threads=int(num_threads))
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        outp = self.interpreter.get_output_details()[0]
        in_shape, out_shape = tuple(int(s) for s in inp["shape"]), tuple(int(s) for s in outp["shape"])
        if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] != 3 or inp["dtype"] != np.float32:
            raise ValueError(f"{self.model_path}: expected a float32 (1, S, S, 3) RGB input, got {inp['dtype']} "
                             f"{in_shape}")
        if out_shape != (1, in_shape[1], in_shape[2], 151):
            raise ValueError(f"{self.model_path}: expected (1, {in_shape[1]}, {in_shape[2]}, 151) scores "
                             f"(class 0 'other' + ADE20K-150), got {out_shape}")
        self.input_hw = (in_shape[1], in_shape[2])
        self._in_index, self._out_index = inp["index"], outp["index"]
        self.num_threads = int(num_threads)
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be a probability in [0, 1], got {min_confidence}")
        self.min_confidence = float(min_confidence)
        table = DEFAULT_CLASS_MIN_CONFIDENCE if class_min_confidence is None else class_min_confidence
        self.class_min_confidence = _parse_class_table(table)
        self.max_abs_pitch_deg = float(max_abs_pitch_deg)
        limits = DEFAULT_ELEVATION_LIMITS_DEG if elevation_limits_deg is None else elevation_limits_deg
        self.elevation_limits_deg = _parse_elevation_limits(limits)
        self.thresholds = np.full(150, self.min_confidence, np.float32)  # (150,) per ADE20K id
        for cid, t in self.class_min_confidence.items():
            self.thresholds[cid] = t

    def scores(self, view: np.ndarray) -> np.ndarray:
        """Raw model scores of one view (h, w, 3) uint8 RGB -> (h, w, 151) float32 (bilinear back to h x w)."""
        import cv2

        h, w = view.shape[:2]
        S0, S1 = self.input_hw
        x = cv2.resize(view, (S1, S0), interpolation=cv2.INTER_LINEAR) if (h, w) != (S0, S1) else view
        x = x.astype(np.float32) / 127.5 - 1.0
        self.interpreter.set_tensor(self._in_index, x[None])
        self.interpreter.invoke()
        s = self.interpreter.get_tensor(self._out_index)[0]
        if (h, w) != (S0, S1):  # torch: OpenCV's resize refuses 151-channel maps
            import torch

            t = torch.from_numpy(np.ascontiguousarray(s)).permute(2, 0, 1)[None]
            t = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
            s = t[0].permute(1, 2, 0).numpy()
        return s

    def label_scores(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(h, w, 151) scores -> (semantic (h,w) uint8 ADE20K id or 255, confidence (h,w) float32, raw argmax
        (h,w) uint8 in 0..150 before the thresholds). Class 0 and sub-threshold pixels become 255, confidence 0."""
        z = scores - scores.max(-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(-1, keepdims=True)
        arg = z.argmax(-1)
        conf = np.take_along_axis(z, arg[..., None], -1)[..., 0].astype(np.float32)
        ade = arg - 1
        keep = (arg > 0) & (conf >= self.thresholds[np.clip(ade, 0, 149)])
        sem = np.where(keep, ade, 255).astype(np.uint8)
        return sem, np.where(keep, conf, 0.0).astype(np.float32), arg.astype(np.uint8)

    def __call__(self, views: np.ndarray, fov_deg, cameras: dict | None = None, scene=None) -> dict:
        """views (N, h, w, 3) uint8 RGB -> {"semantic" (N,h,w) uint8, "confidence" (N,h,w) float32}.

        cameras (optional, {"yaw_deg", "pitch_deg", "roll_deg", "fov_deg"} (N,)): views pitched beyond
        max_abs_pitch_deg come back all 255 / 0, and labels outside their elevation_limits_deg become 255 / 0."""
        views, _ = check_views(views, fov_deg)
        n, h, w, _ = views.shape
        pitch = np.zeros(n) if cameras is None or "pitch_deg" not in cameras else np.broadcast_to(
            np.asarray(cameras["pitch_deg"], np.float64), (n,))
        sems = np.full((n, h, w), 255, np.uint8)
        confs = np.zeros((n, h, w), np.float32)
        for i, v in enumerate(views):
            if abs(float(pitch[i])) > self.max_abs_pitch_deg:  # tilted views stay unlabelled (module doc)
                continue
            sem, conf, _ = self.label_scores(self.scores(v))
            if self.elevation_limits_deg and cameras is not None and all(k in cameras for k in CAM_KEYS):
                elev = ray_elevation_deg(cameras, i, (h, w))
                for cid, (lo, hi) in self.elevation_limits_deg.items():
                    bad = (sem == cid) & ((elev < lo) | (elev > hi))
                    sem[bad] = 255
                    conf[bad] = 0.0
            sems[i], confs[i] = sem, conf
        return {"semantic": sems, "confidence": confs}

    def describe(self) -> dict:
        return {**super().describe(), "model_path": str(self.model_path), "input_hw": list(self.input_hw),
                "min_confidence": self.min_confidence, "max_abs_pitch_deg": self.max_abs_pitch_deg,
                "class_min_confidence": {str(k): v for k, v in sorted(self.class_min_confidence.items())},
                "elevation_limits_deg": {str(k): list(v) for k, v in sorted(self.elevation_limits_deg.items())}}

"""User-facing inference: ``preprocess`` -> model -> ``postprocess``; ``infer`` chains them.

Outputs follow DESIGN §3: semantic ADE20K ids (255 unknown), radial depth in metres (NaN invalid: sky or <= 0),
unit normals in the REP 103 panorama frame (NaN invalid). Resizing to ``out_hw`` wraps horizontally.
"""

from __future__ import annotations

import array
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mtpano_ros.accel import jit_kernel
from mtpano_ros.model.layers import wrap_pad

SKY_ID = 2
IGNORE_INDEX = 255
_BLOCK_PIXELS = 1 << 17  # pixels per block in postprocess (its temporaries stay in cache)


def preprocess(images, input_hw: tuple[int, int]) -> torch.Tensor:
    """Images -> (B, 3, h, w) float32 in [0, 1] at ``input_hw`` = (h, w).

    Accepts uint8 RGB numpy (H, W, 3) or (B, H, W, 3) (each image resized with one ``cv2.resize`` INTER_AREA,
    no full-resolution float copy) or float tensors (3, H, W) / (B, 3, H, W) in [0, 1] (bilinear, wrap-aware).
    """
    h, w = int(input_hw[0]), int(input_hw[1])
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"numpy images must be uint8 RGB (H, W, 3) or (B, H, W, 3), got dtype {images.dtype}")
        arr = images[None] if images.ndim == 3 else images
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"numpy images must be (H, W, 3) or (B, H, W, 3) RGB, got shape {images.shape}")
        import cv2

        x = np.empty((arr.shape[0], 3, h, w), dtype=np.float32)
        for i, im in enumerate(arr):
            im = im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
            for c, plane in enumerate(cv2.split(im)):  # contiguous uint8 planes: HWC -> CHW without a strided pass
                np.divide(plane, np.float32(255.0), out=x[i, c])
        return torch.from_numpy(x)
    if isinstance(images, torch.Tensor):
        x = images[None] if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"tensor images must be (3, H, W) or (B, 3, H, W), got shape {tuple(images.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"tensor images must be float in [0, 1], got dtype {x.dtype}")
        x = x.float()
        if tuple(x.shape[-2:]) != (h, w):
            x = _resize_wrap(x, (h, w))
        return x
    raise TypeError(f"unsupported image type {type(images).__name__}: pass uint8 numpy RGB or a float tensor")


def _resize_wrap(x: torch.Tensor, out_hw: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize (B, C, H, W) to out_hw with one wrapped column on each side (so the seam interpolates across)."""
    h, w = x.shape[-2:]
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if (h, w) == (oh, ow):
        return x
    xp = wrap_pad(x, 0, 1)
    # the padded image spans w + 2 source columns; sample the central w columns at the output resolution
    scale_w = ow / w
    pw = int(round((w + 2) * scale_w))
    if mode == "nearest":
        y = F.interpolate(xp, size=(oh, pw), mode="nearest")
    else:
        y = F.interpolate(xp, size=(oh, pw), mode="bilinear", align_corners=False)
    off = int(round(scale_w))
    return y[..., off:off + ow]


def _byte_buffer_array(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zeroed array whose memory is one array.array("B"), the buffer type ROS messages hold: the ROS side
    (mtpano_ros.ros.conversions.array_to_image) publishes such an array without copying it."""
    dtype = np.dtype(dtype)
    return np.frombuffer(array.array("B", [0]) * (math.prod(shape) * dtype.itemsize), dtype=dtype).reshape(shape)


def _postprocess_kernel(sem, d, nrm, sem_u8, depth_out, n) -> None:  # pragma: no cover - compiled by numba
    """One pass over every pixel of postprocess's results (see there); numba compiles it (nogil)."""
    batch, height, width = d.shape
    nan = np.float32(np.nan)
    for b in range(batch):
        for v in range(height):
            for u in range(width):
                i = sem[b, v, u]
                label = np.uint8(i) if i >= 0 and i < IGNORE_INDEX else np.uint8(IGNORE_INDEX)
                sem_u8[b, v, u] = label
                sky = label == SKY_ID
                dv = d[b, v, u]
                depth_out[b, v, u] = dv if dv > 0 and not sky else nan
                x, y, z = nrm[b, 0, v, u], nrm[b, 1, v, u], nrm[b, 2, v, u]
                n2 = x * x + y * y + z * z
                inv = np.float32(1.0) / np.sqrt(n2) if n2 > 1e-12 and not sky else nan
                n[b, v, u, 0], n[b, v, u, 1], n[b, v, u, 2] = x * inv, y * inv, z * inv


_postprocess_compiled = jit_kernel(_postprocess_kernel)


def postprocess(outputs: dict, out_hw: tuple[int, int] | None = None) -> dict:
    """Model outputs -> numpy results, batched.

    outputs: ``semantic_logits`` (B, C, H, W) or ``semantic`` (B, H, W) int ids; ``depth`` (B, 1, H, W) metres;
    ``normals`` (B, 3, H, W) panorama frame. Returns ``semantic`` (B, h, w) uint8 (255 unknown), ``depth``
    (B, h, w) float32 metres (NaN where sky or <= 0), ``normals`` (B, h, w, 3) float32 unit, panorama frame
    (NaN where sky or zero length), at ``out_hw`` = (h, w) (default: the outputs' size). Each result's memory is an
    array.array("B"), so that with batch 1 a ROS message takes it without a copy.
    """
    with torch.no_grad():
        if "semantic" in outputs:
            sem = outputs["semantic"]
            sem = sem if isinstance(sem, torch.Tensor) else torch.as_tensor(np.asarray(sem))
        else:
            sem = outputs["semantic_logits"].argmax(dim=1)
        depth = outputs["depth"].float()
        normals = outputs["normals"].float()
        if out_hw is not None and tuple(out_hw) != tuple(depth.shape[-2:]):
            sem = _resize_wrap(sem[:, None].float(), out_hw, mode="nearest")[:, 0].long()
            depth = _resize_wrap(depth, out_hw)
            normals = _resize_wrap(normals, out_hw)
        sem, d, nrm = sem.cpu().numpy(), depth[:, 0].cpu().numpy(), normals.cpu().numpy()
    # The rest in numpy, block by block: this runs per frame on the robot's CPU, where every full-frame pass
    # costs memory bandwidth; a block's temporaries stay in cache.
    import cv2

    d = np.asarray(d, dtype=np.float32)
    nrm = np.asarray(nrm, dtype=np.float32)
    batch, height, width = d.shape
    sem_u8 = _byte_buffer_array((batch, height, width), np.uint8)  # new arrays: the caller's are never modified
    depth_out = _byte_buffer_array((batch, height, width), np.float32)
    n = _byte_buffer_array((batch, height, width, 3), np.float32)
    if _postprocess_compiled is not None and sem.dtype.kind in "iu":  # one compiled pass
        _postprocess_compiled(sem, d, nrm, sem_u8, depth_out, n)
        return {"semantic": sem_u8, "depth": depth_out, "normals": n}
    # Without numba: numpy and OpenCV, block by block (the same results)
    check_ids = sem.dtype != np.uint8  # ids outside [0, 255) become 255 (unknown)
    # signed ids viewed as unsigned: negative ids become huge, so one max() finds every id outside [0, 255)
    unsigned = np.dtype(f"u{sem.dtype.itemsize}") if sem.dtype.kind == "i" else None
    rows = max(1, min(height, _BLOCK_PIXELS // max(width, 1)))
    n2_buf = np.empty((rows, width), dtype=np.float32)
    bad_buf = np.empty((rows, width), dtype=np.uint8)  # OpenCV masks (0 / 255): SIMD compares and masked copies
    sky_buf = np.empty((rows, width), dtype=np.uint8)
    planes = np.empty((3, rows, width), dtype=np.float32)
    nan1 = np.full((rows, width), np.nan, dtype=np.float32)
    nan3 = np.full((rows, width, 3), np.nan, dtype=np.float32)
    for b in range(batch):
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            k = r1 - r0
            bad, n2 = bad_buf[:k], n2_buf[:k]
            ids, labels = sem[b, r0:r1], sem_u8[b, r0:r1]
            np.copyto(labels, ids, casting="unsafe")  # = astype(np.uint8)
            if check_ids and ids.size:
                if unsigned is not None:
                    out_of_range = int(ids.view(unsigned).max()) >= IGNORE_INDEX
                else:
                    out_of_range = ids.min() < 0 or ids.max() >= IGNORE_INDEX
                if out_of_range:
                    labels[(ids < 0) | (ids >= IGNORE_INDEX)] = IGNORE_INDEX
            sky = cv2.compare(labels, SKY_ID, cv2.CMP_EQ, dst=sky_buf[:k])
            # depth: NaN where sky or not > 0 (NaN compares false and stays NaN)
            cv2.compare(d[b, r0:r1], 0.0, cv2.CMP_LE, dst=bad)
            cv2.bitwise_or(bad, sky, dst=bad)
            out = depth_out[b, r0:r1]
            np.copyto(out, d[b, r0:r1])
            cv2.copyTo(nan1[:k], bad, out)
            # normals: n / |n|, NaN where sky or |n|^2 <= 1e-12
            block = nrm[b, :, r0:r1]
            np.einsum("chw,chw->hw", block, block, out=n2)
            cv2.compare(n2, 1e-12, cv2.CMP_GT, dst=bad)  # NaN compares false: not(> 1e-12) marks it bad too
            cv2.bitwise_not(bad, dst=bad)
            cv2.bitwise_or(bad, sky, dst=bad)
            inv_len = cv2.sqrt(n2, dst=n2)  # IEEE sqrt like np.sqrt (same bits), 2x faster
            with np.errstate(divide="ignore", invalid="ignore"):  # zero length: set to NaN below
                np.divide(np.float32(1.0), inv_len, out=inv_len)
                for c in range(3):
                    np.multiply(block[c], inv_len, out=planes[c, :k])
            dst = n[b, r0:r1]
            cv2.merge(list(planes[:, :k]), dst=dst)
            cv2.copyTo(nan3[:k], bad, dst)
    return {"semantic": sem_u8, "depth": depth_out, "normals": n}


def infer(model: nn.Module, images, out_hw: tuple[int, int] | None = None) -> dict:
    """postprocess(model(preprocess(images, model input size)), out_hw), in eval mode without gradients.

    images: uint8 RGB numpy (H, W, 3) / (B, H, W, 3) or float tensors (3, H, W) / (B, 3, H, W) in [0, 1].
    Returns batched numpy ``semantic`` (B, h, w) uint8, ``depth`` (B, h, w) metres, ``normals`` (B, h, w, 3).
    """
    was_training = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        x = preprocess(images, tuple(model.config["input_hw"])).to(dev)
        with torch.inference_mode():
            out = model(x)
        return postprocess(out, out_hw)
    finally:
        model.train(was_training)

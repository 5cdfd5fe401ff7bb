"""Domain randomisation of procedural panoramas towards what real 360-degree cameras deliver.

``randomize_appearance(rgb, semantic, rng, strength)`` changes only the colours of an ERP panorama (the exact depth,
normals and labels stay valid). Stages, each drawn at random per sample:

1. materials: per semantic segment a hue / saturation / value change and a procedural texture (value noise at a
   random scale: stains, wallpaper-like patterns, wood/stone-like grain), so no class keeps one colour;
2. sky: a new sky for sky pixels (clear blue, overcast grey, sunset, dusk, night; clouds; a sun glow);
3. exposure (2^EV in linear light) and white balance (colour temperature and tint gains);
4. a tone curve: plain gamma, global Reinhard then gamma 2.2 (like tonemapped HDR photographs), or a filmic
   S-curve; then saturation;
5. vignetting of a dual-fisheye 360 camera: falloff with the angle from the nearest lens axis (+x or -x);
6. optics and sensor: Gaussian blur (wrapping horizontally), signal-dependent (shot) and read noise, chroma noise;
7. JPEG compression artefacts at a random quality.

``strength`` scales every range (0 = unchanged image, 1 = the default ranges).
Input / output: rgb (H, W, 3) uint8 ERP, semantic (H, W) uint8 ADE20K ids (sky = 2). Pure numpy + OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

SKY = 2
_LIN_LUT = ((np.arange(256, dtype=np.float32) / 255.0) ** 2.2).astype(np.float32)


def _value_noise(rng: np.random.Generator, hw: tuple[int, int], cells: tuple[int, int], octaves: int) -> np.ndarray:
    """(H, W) float32 fractal value noise in about [-1, 1], periodic horizontally (wraps at the ERP seam)."""
    h, w = hw
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    ch, cw = cells
    for _ in range(octaves):
        grid = rng.standard_normal((max(ch, 1), max(cw, 1))).astype(np.float32)
        grid = np.concatenate([grid, grid[:, :1]], axis=1)  # periodic in u
        up = cv2.resize(grid, (w + w // max(cw, 1), h), interpolation=cv2.INTER_CUBIC)[:, :w]
        out += amp * up
        total += amp
        amp *= 0.5
        ch, cw = ch * 2, cw * 2
    return out / total


def _materials(img: np.ndarray, semantic: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Per-segment recolouring and texture in linear light. img (H, W, 3) float32 linear, returns the same."""
    h, w = semantic.shape
    out = img.copy()
    for lab in np.unique(semantic):
        if lab == SKY or rng.random() > 0.7 * min(s, 1.0):
            continue
        m = semantic == lab
        px = out[m]
        hsv = cv2.cvtColor(np.clip(px, 0, 1)[None].astype(np.float32), cv2.COLOR_RGB2HSV)[0]
        hsv[:, 0] = (hsv[:, 0] + rng.uniform(-180, 180) * s) % 360.0
        hsv[:, 1] = np.clip(hsv[:, 1] * np.exp(rng.uniform(-0.8, 0.6) * s) + rng.uniform(0, 0.15) * s, 0, 1)
        hsv[:, 2] = np.clip(hsv[:, 2] * np.exp(rng.uniform(-0.7, 0.5) * s), 0, 1)
        px = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
        if rng.random() < 0.6:
            cells = (int(rng.integers(2, 24)), int(rng.integers(4, 48)))
            tex = _value_noise(rng, (h, w), cells, int(rng.integers(1, 4)))[m]
            if rng.random() < 0.3:  # stripes / grain: noise stretched along one axis
                tex = np.sign(tex) * np.abs(tex) ** 0.5
            px = px * np.exp(rng.uniform(0.1, 0.6) * s * tex)[:, None]
        out[m] = px
    return out


def _sky(img: np.ndarray, semantic: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Replace sky pixels by a random procedural sky (linear light). img (H, W, 3) float32 linear."""
    m = semantic == SKY
    if not m.any() or rng.random() > 0.8 * min(s, 1.0):
        return img
    h, w = semantic.shape
    lat = (0.5 - (np.arange(h, dtype=np.float32) + 0.5) / h) * np.pi
    t = np.clip(np.sin(lat), 0, 1)[:, None, None] ** rng.uniform(0.3, 1.0)
    palettes = {  # (horizon, zenith) in display RGB
        "clear": ((0.75, 0.85, 0.95), (0.25, 0.45, 0.85)), "overcast": ((0.85, 0.86, 0.88), (0.65, 0.67, 0.7)),
        "sunset": ((1.0, 0.62, 0.35), (0.35, 0.4, 0.7)), "dusk": ((0.55, 0.45, 0.6), (0.08, 0.1, 0.25)),
        "night": ((0.08, 0.08, 0.12), (0.01, 0.01, 0.03)), "haze": ((0.9, 0.9, 0.85), (0.55, 0.7, 0.9)),
    }
    hor, zen = palettes[list(palettes)[int(rng.integers(len(palettes)))]]
    jit = rng.uniform(0.85, 1.15, (2, 3)).astype(np.float32)
    hor = (np.float32(hor) * jit[0]) ** 2.2
    zen = (np.float32(zen) * jit[1]) ** 2.2
    sky = hor * (1 - t) + zen * t
    if rng.random() < 0.7:  # clouds
        c = _value_noise(rng, (h, w), (int(rng.integers(2, 6)), int(rng.integers(6, 20))), 4)
        cover = rng.uniform(-0.3, 0.6)
        cloud = np.clip((c - (0.3 - cover)) * 2.0, 0, 1)[..., None]
        cloud_col = np.float32(rng.uniform(0.5, 1.0)) * hor.max() / max(float(hor.max()), 1e-3)
        sky = sky * (1 - 0.8 * cloud) + 0.8 * cloud * cloud_col * rng.uniform(0.6, 1.2)
    out = img.copy()
    out[m] = np.broadcast_to(sky, (h, w, 3))[m]
    return out


def _tone(lin: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Linear light (H, W, 3) -> display values in [0, 1] through a random tone curve."""
    choice = rng.random()
    if choice < 0.4:
        g = 2.2 * np.exp(rng.uniform(-0.15, 0.15) * s)
        return np.clip(lin, 0, 1) ** (1 / g)
    if choice < 0.75:  # global Reinhard then gamma 2.2 (tonemapped HDR environment maps)
        k = np.exp(rng.uniform(-0.3, 1.2) * s)
        x = lin * k
        return np.clip(x / (1 + x), 0, 1) ** (1 / 2.2)
    x = np.clip(lin, 0, None) * np.exp(rng.uniform(-0.2, 0.6) * s)  # filmic (ACES-like fit)
    y = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    return np.clip(y, 0, 1) ** (1 / 2.2)


def _vignette(h: int, w: int, amount: float) -> np.ndarray:
    """(H, W, 1) gain of a back-to-back dual-fisheye camera (lens axes +x and -x): 1 on the axes, 1 - amount at
    90 degrees from both (the stitching seam), smooth in between."""
    lat = (0.5 - (np.arange(h, dtype=np.float32) + 0.5) / h) * np.pi
    lon = (0.5 - (np.arange(w, dtype=np.float32) + 0.5) / w) * 2 * np.pi
    x = np.cos(lat)[:, None] * np.cos(lon)[None, :]
    ang = np.arccos(np.clip(np.abs(x), 0, 1))  # angle to the nearest lens axis, [0, pi/2]
    return (1 - amount * (ang / (np.pi / 2)) ** 2.5)[..., None].astype(np.float32)


def _blur_wrap(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (H, W, 3) float32 with horizontal wrap (columns padded from the other side)."""
    p = int(np.ceil(3 * sigma)) + 1
    padded = np.concatenate([img[:, -p:], img, img[:, :p]], axis=1)
    return cv2.GaussianBlur(padded, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)[:, p:-p]


def randomize_appearance(rgb: np.ndarray, semantic: np.ndarray, rng: np.random.Generator,
                         strength: float = 1.0) -> np.ndarray:
    """Randomised camera-like appearance of a procedural ERP panorama (see the module doc).

    rgb (H, W, 3) uint8, semantic (H, W) uint8 ADE20K ids (sky 2), rng: numpy Generator (all randomness),
    strength >= 0. Returns a new (H, W, 3) uint8 image; geometry and labels are untouched.
    """
    s = float(strength)
    if s <= 0:
        return rgb.copy()
    h, w = semantic.shape
    lin = _LIN_LUT[rgb]
    lin = _materials(lin, semantic, rng, s)
    lin = _sky(lin, semantic, rng, s)
    ev = rng.uniform(-1.3, 1.0) * s
    temp, tint = rng.uniform(-0.3, 0.3) * s, rng.uniform(-0.08, 0.08) * s
    gains = np.exp(np.float32([temp, tint, -temp])) * 2.0 ** ev
    lin = lin * gains.astype(np.float32)
    img = _tone(lin, rng, s)
    sat = np.exp(rng.uniform(-0.45, 0.3) * s)
    grey = img.mean(-1, keepdims=True)
    img = grey + (img - grey) * sat
    if rng.random() < 0.6:
        img = img * _vignette(h, w, rng.uniform(0.05, 0.45) * min(s, 1.5))
    if rng.random() < 0.5:
        img = _blur_wrap(img.astype(np.float32), rng.uniform(0.3, 1.4) * s)
    if rng.random() < 0.8:
        shot, read = rng.uniform(0, 0.002) * s, rng.uniform(0, 0.01) * s
        sd = np.sqrt(np.clip(img, 0, 1) * shot + read * read).astype(np.float32)
        noise = rng.standard_normal(img.shape, dtype=np.float32) * sd
        if rng.random() < 0.5:  # chroma noise at half resolution
            cn = rng.standard_normal((max(h // 2, 1), max(w // 2, 1), 3), dtype=np.float32) * (0.5 * read)
            noise = noise + cv2.resize(cn, (w, h), interpolation=cv2.INTER_LINEAR)
        img = img + noise
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rng.random() < 0.7:
        q = int(np.clip(rng.uniform(95 - 65 * min(s, 1.0), 96), 10, 95))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])  # OpenCV wants BGR
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)

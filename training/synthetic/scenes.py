"""Seeded procedural scenes: furnished rooms and simple streets, built from boxes, cylinders and spheres.

World frame: x, y horizontal, z up, metres; the floor / ground is z = 0. A scene is fully determined by its
seed (numpy Generator), so the same seed always gives the same scene and the same renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.synthetic.raycast import Prim

# ADE20K-150 ids used by the generator (names as in mtpano_ros.labels.ADE20K_CLASSES)
WALL, BUILDING, SKY, FLOOR, TREE, CEILING, ROAD, BED, WINDOWPANE, GRASS = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
CABINET, SIDEWALK, DOOR, TABLE, CHAIR, PAINTING, SOFA, SHELF, CAR, RUG = 10, 11, 14, 15, 19, 22, 23, 24, 20, 28


@dataclass
class Light:
    """Point light at `pos` (3,) world, colour*intensity `rgb` (3,); `radius_m` spreads it into an area
    light (several jittered samples)."""

    pos: np.ndarray
    rgb: np.ndarray
    radius_m: float = 0.0


@dataclass
class Scene:
    """A procedural scene and its camera. rot_wc (3,3) maps panorama-frame vectors to the world frame."""

    seed: int
    kind: str
    prims: list[Prim]
    cam_pos: np.ndarray
    rot_wc: np.ndarray
    lights: list[Light]
    ambient: np.ndarray
    sun_dir: np.ndarray | None = None  # unit vector towards the sun (outdoor)
    sun_rgb: np.ndarray | None = None
    sky_rgb: tuple[np.ndarray, np.ndarray] | None = None  # (horizon, zenith)
    info: dict = field(default_factory=dict)


def _rot(axis: str, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def camera_rotation(yaw_rad: float, pitch_rad: float, roll_rad: float) -> np.ndarray:
    """Panorama frame -> world: Rz(yaw) @ Ry(-pitch) @ Rx(roll) (pitch > 0 tilts the forward axis up)."""
    return (_rot("z", yaw_rad) @ _rot("y", -pitch_rad) @ _rot("x", roll_rad)).astype(np.float32)


def _pastel(rng: np.random.Generator, lo: float = 0.55, hi: float = 0.95) -> np.ndarray:
    return rng.uniform(lo, hi, 3)


def _wood(rng: np.random.Generator) -> np.ndarray:
    base = np.array([0.55, 0.36, 0.2]) * rng.uniform(0.6, 1.4)
    return np.clip(base + rng.normal(0, 0.04, 3), 0.05, 0.95)


def _fabric(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.15, 0.85, 3)


def _box(centre, half, label, material, colour, yaw=0.0, seed=0, cast=True) -> Prim:
    return Prim("box", np.asarray(centre), np.asarray(half), label, material, np.asarray(colour), yaw_rad=yaw,
                seed=seed, cast_shadow=cast)


def _local(x: float, y: float, yaw: float, dx: float, dy: float) -> tuple[float, float]:
    c, s = np.cos(yaw), np.sin(yaw)
    return x + c * dx - s * dy, y + s * dx + c * dy


# --- furniture: each returns (prims, half extents of the footprint in its own frame (hx, hy)) -------------

def _bed(rng, x, y, yaw):
    w, l = rng.uniform(0.9, 1.9), rng.uniform(1.9, 2.2)
    wood, cloth = _wood(rng), _pastel(rng, 0.5, 0.98)
    s = int(rng.integers(1 << 30))
    hf = rng.uniform(0.2, 0.35)
    out = [_box((x, y, hf / 2), (l / 2, w / 2, hf / 2), BED, "wood", wood, yaw, s)]
    hm = rng.uniform(0.15, 0.25)
    out.append(_box((x, y, hf + hm / 2), (l / 2 - 0.03, w / 2 - 0.03, hm / 2), BED, "fabric", cloth, yaw, s + 1))
    hx, hy = _local(x, y, yaw, -l / 2 + 0.03, 0)
    hh = rng.uniform(0.8, 1.2)
    out.append(_box((hx, hy, hh / 2), (0.03, w / 2, hh / 2), BED, "wood", wood, yaw, s + 2))
    px, py = _local(x, y, yaw, -l / 2 + 0.3, 0)
    out.append(_box((px, py, hf + hm + 0.06), (0.16, w / 2 - 0.12, 0.06), BED, "fabric", _pastel(rng), yaw, s + 3))
    return out, (l / 2, w / 2)


def _table(rng, x, y, yaw):
    s = int(rng.integers(1 << 30))
    h = rng.uniform(0.7, 0.78)
    col = _wood(rng)
    if rng.random() < 0.3:
        r = rng.uniform(0.4, 0.65)
        out = [Prim("cylinder", (x, y, h - 0.02), (r, r, 0.02), TABLE, "wood", col, seed=s),
               Prim("cylinder", (x, y, (h - 0.04) / 2), (0.05, 0.05, (h - 0.04) / 2), TABLE, "plain", col * 0.7,
                    seed=s)]
        return out, (r, r)
    l, w = rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.55)
    out = [_box((x, y, h - 0.02), (l, w, 0.02), TABLE, "wood", col, yaw, s)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = _local(x, y, yaw, sx * (l - 0.06), sy * (w - 0.06))
            out.append(_box((lx, ly, (h - 0.04) / 2), (0.03, 0.03, (h - 0.04) / 2), TABLE, "wood", col * 0.8, yaw, s))
    return out, (l, w)


def _chair(rng, x, y, yaw):
    s = int(rng.integers(1 << 30))
    col = _wood(rng) if rng.random() < 0.6 else _fabric(rng)
    hs = rng.uniform(0.42, 0.48)
    w = rng.uniform(0.2, 0.25)
    out = [_box((x, y, hs), (w, w, 0.025), CHAIR, "wood", col, yaw, s)]
    bx, by = _local(x, y, yaw, -w + 0.02, 0)
    hb = rng.uniform(0.35, 0.5)
    out.append(_box((bx, by, hs + hb / 2), (0.02, w, hb / 2), CHAIR, "wood", col, yaw, s + 1))
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = _local(x, y, yaw, sx * (w - 0.03), sy * (w - 0.03))
            out.append(_box((lx, ly, hs / 2), (0.02, 0.02, hs / 2), CHAIR, "plain", col * 0.8, yaw, s))
    return out, (w, w)


def _sofa(rng, x, y, yaw):
    s = int(rng.integers(1 << 30))
    col = _fabric(rng)
    l, d = rng.uniform(0.7, 1.2), rng.uniform(0.4, 0.5)
    hb = rng.uniform(0.38, 0.45)
    out = [_box((x, y, hb / 2), (d, l, hb / 2), SOFA, "fabric", col, yaw, s)]
    bx, by = _local(x, y, yaw, -d + 0.1, 0)
    out.append(_box((bx, by, hb + 0.22), (0.1, l, 0.22), SOFA, "fabric", col * 0.9, yaw, s + 1))
    for sy in (-1, 1):
        ax, ay = _local(x, y, yaw, 0, sy * (l - 0.1))
        out.append(_box((ax, ay, hb + 0.1), (d, 0.1, 0.1), SOFA, "fabric", col * 0.95, yaw, s + 2))
    return out, (d, l)


def _cabinet(rng, x, y, yaw):
    s = int(rng.integers(1 << 30))
    w, d, h = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.3), rng.uniform(0.8, 2.1)
    col = _wood(rng) if rng.random() < 0.6 else _pastel(rng, 0.4, 0.95)
    out = [_box((x, y, h / 2), (d, w, h / 2), CABINET, "wood", col, yaw, s)]
    fx, fy = _local(x, y, yaw, d + 0.01, 0)
    out.append(_box((fx, fy, h / 2), (0.01, 0.006, h / 2 - 0.05), CABINET, "plain", col * 0.5, yaw, s, cast=False))
    return out, (d, w)


def _shelf(rng, x, y, yaw):
    s = int(rng.integers(1 << 30))
    w, d, h = rng.uniform(0.35, 0.6), rng.uniform(0.14, 0.2), rng.uniform(1.2, 2.0)
    col = _wood(rng)
    back = _pastel(rng, 0.3, 0.9)
    bx, by = _local(x, y, yaw, -d + 0.01, 0)
    out = [_box((bx, by, h / 2), (0.01, w, h / 2), SHELF, "plain", back, yaw, s)]
    for sy in (-1, 1):
        sx_, sy_ = _local(x, y, yaw, 0, sy * (w - 0.015))
        out.append(_box((sx_, sy_, h / 2), (d, 0.015, h / 2), SHELF, "wood", col, yaw, s))
    n = int(rng.integers(3, 6))
    for i in range(n + 1):
        z = 0.02 + i * (h - 0.04) / n
        out.append(_box((x, y, z), (d, w, 0.015), SHELF, "wood", col, yaw, s))
    return out, (d, w)


FURNITURE = {"bed": _bed, "table": _table, "chair": _chair, "sofa": _sofa, "cabinet": _cabinet, "shelf": _shelf}


def _overlaps(fp: tuple[float, float, float, float], others: list[tuple[float, float, float, float]],
              margin: float) -> bool:
    x0, y0, x1, y1 = fp
    return any(x0 < b[2] + margin and b[0] - margin < x1 and y0 < b[3] + margin and b[1] - margin < y1
               for b in others)


def _footprint(x, y, yaw, hx, hy):
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    ex, ey = c * hx + s * hy, s * hx + c * hy
    return (x - ex, y - ey, x + ex, y + ey)


def make_indoor(seed: int) -> Scene:
    """A furnished room: random size, optional L-shape, doors, windows, paintings, rug, 3-9 pieces of
    furniture, 1-3 lights (some area lights), camera at 1.1-1.9 m with small pitch/roll."""
    rng = np.random.default_rng([seed, 1])
    X, Y, Z = rng.uniform(3.0, 8.0), rng.uniform(3.0, 8.0), rng.uniform(2.4, 3.3)
    wall_col = _pastel(rng, 0.55, 0.97)
    floor_mat = rng.choice(["wood", "tiles", "carpet"])
    floor_col = _wood(rng) if floor_mat == "wood" else _pastel(rng, 0.3, 0.9)
    ceil_col = np.full(3, rng.uniform(0.85, 0.98))
    room = Prim("room", (0, 0, Z / 2), (X / 2, Y / 2, Z / 2), WALL, "plaster", wall_col,
                face_labels=(WALL, WALL, WALL, WALL, FLOOR, CEILING),
                face_materials=("plaster",) * 4 + (str(floor_mat), "plaster"),
                face_colours=np.stack([wall_col] * 4 + [floor_col, ceil_col]).astype(np.float32),
                seed=int(rng.integers(1 << 30)), cast_shadow=False)
    prims: list[Prim] = [room]
    blocked: list[tuple[float, float, float, float]] = []
    # L-shape: a full-height block of wall in one corner
    if rng.random() < 0.35:
        bx, by = rng.uniform(0.8, X * 0.4), rng.uniform(0.8, Y * 0.4)
        sx, sy = rng.choice([-1, 1]), rng.choice([-1, 1])
        cx, cy = sx * (X / 2 - bx / 2), sy * (Y / 2 - by / 2)
        prims.append(_box((cx, cy, Z / 2), (bx / 2, by / 2, Z / 2), WALL, "plaster", wall_col,
                          seed=int(rng.integers(1 << 30))))
        blocked.append((cx - bx / 2, cy - by / 2, cx + bx / 2, cy + by / 2))
    # wall decals: doors, windows, paintings (thin boxes just in front of the walls)
    walls = [(0, -1), (0, 1), (1, -1), (1, 1)]  # (axis, side)
    decal_spans: dict[int, list[tuple[float, float]]] = {i: [] for i in range(4)}

    def wall_slot(wi: int, width: float) -> float | None:
        axis, _ = walls[wi]
        length = Y if axis == 0 else X
        for _ in range(10):
            c = rng.uniform(-length / 2 + width / 2 + 0.2, length / 2 - width / 2 - 0.2)
            if all(abs(c - a) > (width + b) / 2 + 0.15 for a, b in decal_spans[wi]):
                decal_spans[wi].append((c, width))
                return c
        return None

    def decal(wi, c, width, z0, z1, label, material, colour, depth=0.03):
        axis, side = walls[wi]
        if axis == 0:
            centre = (side * (X / 2 - depth / 2), c, (z0 + z1) / 2)
            half = (depth / 2, width / 2, (z1 - z0) / 2)
        else:
            centre = (c, side * (Y / 2 - depth / 2), (z0 + z1) / 2)
            half = (width / 2, depth / 2, (z1 - z0) / 2)
        prims.append(_box(centre, half, label, material, colour, seed=int(rng.integers(1 << 30)), cast=False))
        # keep furniture away from doors
        if label == DOOR:
            x0, y0 = centre[0] - half[0] - (0.9 if axis == 0 else 0), centre[1] - half[1] - (0.9 if axis == 1 else 0)
            blocked.append((x0, y0, centre[0] + half[0] + (0.9 if axis == 0 else 0),
                            centre[1] + half[1] + (0.9 if axis == 1 else 0)))

    for _ in range(int(rng.integers(1, 3))):
        wi = int(rng.integers(4))
        w = rng.uniform(0.8, 1.0)
        c = wall_slot(wi, w)
        if c is not None:
            decal(wi, c, w, 0.0, min(2.1, Z - 0.2), DOOR, "wood", _wood(rng) if rng.random() < 0.6 else _pastel(rng))
    for _ in range(int(rng.integers(0, 4))):
        wi = int(rng.integers(4))
        w = rng.uniform(0.7, 2.0)
        c = wall_slot(wi, w)
        if c is not None:
            z0 = rng.uniform(0.7, 1.1)
            decal(wi, c, w, z0, min(z0 + rng.uniform(0.9, 1.5), Z - 0.15), WINDOWPANE, "glass",
                  np.array([0.75, 0.85, 1.0]) * rng.uniform(0.8, 1.0), depth=0.02)
    for _ in range(int(rng.integers(0, 3))):
        wi = int(rng.integers(4))
        w = rng.uniform(0.4, 1.2)
        c = wall_slot(wi, w)
        if c is not None:
            z0 = rng.uniform(1.2, 1.6)
            decal(wi, c, w, z0, min(z0 + w * rng.uniform(0.6, 1.0), Z - 0.1), PAINTING, "canvas", _fabric(rng),
                  depth=0.02)
    # rug
    if rng.random() < 0.5:
        rx, ry = rng.uniform(0.6, min(1.6, X / 2 - 0.3)), rng.uniform(0.5, min(1.2, Y / 2 - 0.3))
        cx, cy = rng.uniform(-X / 2 + rx + 0.1, X / 2 - rx - 0.1), rng.uniform(-Y / 2 + ry + 0.1, Y / 2 - ry - 0.1)
        prims.append(_box((cx, cy, 0.005), (rx, ry, 0.005), RUG, "carpet", _fabric(rng),
                          seed=int(rng.integers(1 << 30)), cast=False))
    # furniture: against walls (facing the room) and free-standing
    kinds = list(FURNITURE)
    n_furn = int(rng.integers(3, 10))
    placed: list[tuple[float, float, float, float]] = []
    for _ in range(n_furn * 4):
        if len(placed) >= n_furn:
            break
        kind = kinds[int(rng.integers(len(kinds)))]
        # probe the footprint with a throwaway generator so a rejected spot does not change the object
        sub_seed = int(rng.integers(1 << 62))
        _, (hx, hy) = FURNITURE[kind](np.random.default_rng(sub_seed), 0.0, 0.0, 0.0)
        if rng.random() < 0.7 and kind not in ("table",):
            wi = int(rng.integers(4))
            axis, side = walls[wi]
            yaw = {(0, -1): 0.0, (0, 1): np.pi, (1, -1): np.pi / 2, (1, 1): -np.pi / 2}[(axis, side)]
            if axis == 0:
                x = side * (X / 2 - hx - 0.02)
                y = rng.uniform(-Y / 2 + hy + 0.05, Y / 2 - hy - 0.05) if Y / 2 - hy - 0.05 > -Y / 2 + hy + 0.05 else 0
            else:
                y = side * (Y / 2 - hx - 0.02)
                x = rng.uniform(-X / 2 + hy + 0.05, X / 2 - hy - 0.05) if X / 2 - hy - 0.05 > -X / 2 + hy + 0.05 else 0
        else:
            yaw = rng.uniform(0, 2 * np.pi) if kind in ("chair", "table") else rng.choice([0, np.pi / 2, np.pi])
            x, y = rng.uniform(-X / 2 + 0.5, X / 2 - 0.5), rng.uniform(-Y / 2 + 0.5, Y / 2 - 0.5)
        fp = _footprint(x, y, yaw, hx, hy)
        if fp[0] < -X / 2 or fp[2] > X / 2 or fp[1] < -Y / 2 or fp[3] > Y / 2:
            continue
        if _overlaps(fp, placed + blocked, 0.05):
            continue
        obj, _ = FURNITURE[kind](np.random.default_rng(sub_seed), x, y, yaw)
        prims.extend(obj)
        placed.append(fp)
        if kind == "table":  # chairs around tables
            for k in range(int(rng.integers(0, 4))):
                a = yaw + k * np.pi / 2 + np.pi
                d = (hx if k % 2 == 0 else hy) + 0.35
                cx, cy = x + d * np.cos(a - np.pi), y + d * np.sin(a - np.pi)
                cfp = _footprint(cx, cy, a, 0.25, 0.25)
                if cfp[0] < -X / 2 or cfp[2] > X / 2 or cfp[1] < -Y / 2 or cfp[3] > Y / 2:
                    continue
                if _overlaps(cfp, placed[:-1] + blocked, 0.02):
                    continue
                cobj, _ = _chair(rng, cx, cy, a)
                prims.extend(cobj)
                placed.append(cfp)
    # camera: free floor spot
    cam = None
    for _ in range(200):
        cx, cy = rng.uniform(-X / 2 + 0.5, X / 2 - 0.5), rng.uniform(-Y / 2 + 0.5, Y / 2 - 0.5)
        if not _overlaps((cx, cy, cx, cy), placed + blocked[:1] if blocked else placed, 0.35):
            cam = np.array([cx, cy, min(rng.uniform(1.1, 1.9), Z - 0.4)], np.float32)
            break
    if cam is None:
        cam = np.array([0.0, 0.0, 1.5], np.float32)
    # lights: ceiling point/area lights plus ambient
    lights = []
    for _ in range(int(rng.integers(1, 4))):
        pos = np.array([rng.uniform(-X / 2 + 0.3, X / 2 - 0.3), rng.uniform(-Y / 2 + 0.3, Y / 2 - 0.3), Z - 0.25])
        warm = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.65, 0.95)])
        lights.append(Light(pos.astype(np.float32), (warm * rng.uniform(1.5, 3.5)).astype(np.float32),
                            radius_m=float(rng.choice([0.0, rng.uniform(0.2, 0.5)]))))
    ambient = (np.full(3, rng.uniform(0.18, 0.35)) * np.array([1, 1, rng.uniform(0.95, 1.1)])).astype(np.float32)
    rot = camera_rotation(rng.uniform(0, 2 * np.pi), np.deg2rad(np.clip(rng.normal(0, 2.0), -6, 6)),
                          np.deg2rad(np.clip(rng.normal(0, 2.0), -6, 6)))
    return Scene(seed, "indoor", prims, cam, rot, lights, ambient, info={"room_m": (X, Y, Z)})


def make_outdoor(seed: int) -> Scene:
    """A street: grass ground, a road with sidewalks, building blocks along both sides, trees, parked cars,
    sunlight with shadows and a sky; camera at 1.4-2.6 m on the road or sidewalk."""
    rng = np.random.default_rng([seed, 2])
    R = 45.0
    prims: list[Prim] = [
        _box((0, 0, -0.5), (R, R, 0.5), GRASS, "grass", np.array([0.25, 0.45, 0.15]) * rng.uniform(0.7, 1.2),
             seed=int(rng.integers(1 << 30)), cast=False)]
    rw = rng.uniform(3.0, 6.0)  # road half width (road along x)
    sw = rng.uniform(1.5, 3.0)  # sidewalk width
    prims.append(_box((0, 0, 0.005), (R, rw, 0.005), ROAD, "asphalt", np.full(3, rng.uniform(0.18, 0.32)),
                      seed=int(rng.integers(1 << 30)), cast=False))
    for side in (-1, 1):
        prims.append(_box((0, side * (rw + sw / 2), 0.075), (R, sw / 2, 0.075), SIDEWALK, "tiles",
                          np.full(3, rng.uniform(0.5, 0.7)), seed=int(rng.integers(1 << 30)), cast=False))
    # buildings along both sides
    for side in (-1, 1):
        x = -R + rng.uniform(0, 4)
        setback = rw + sw + rng.uniform(0.0, 6.0)
        while x < R - 4:
            w = rng.uniform(6, 18)
            if rng.random() < 0.2:  # gap
                x += w
                continue
            d, h = rng.uniform(6, 14), rng.uniform(5, 30)
            col = _pastel(rng, 0.35, 0.9)
            yb = side * (setback + d / 2 + rng.uniform(0, 2))
            prims.append(_box((x + w / 2, yb, h / 2), (w / 2, d / 2, h / 2), BUILDING, "facade", col,
                              seed=int(rng.integers(1 << 30))))
            x += w + rng.uniform(0, 3)
    # buildings closing the ends of the street sometimes
    for end in (-1, 1):
        if rng.random() < 0.5:
            h = rng.uniform(6, 25)
            prims.append(_box((end * rng.uniform(25, 40), 0, h / 2), (4, rng.uniform(10, 25), h / 2), BUILDING,
                              "facade", _pastel(rng, 0.35, 0.9), seed=int(rng.integers(1 << 30))))
    # trees on the sidewalks / verges
    for _ in range(int(rng.integers(3, 12))):
        side = rng.choice([-1, 1])
        tx, ty = rng.uniform(-30, 30), side * (rw + rng.uniform(0.5, sw + 1.0))
        th = rng.uniform(1.5, 3.5)
        r = rng.uniform(1.0, 2.5)
        s = int(rng.integers(1 << 30))
        prims.append(Prim("cylinder", (tx, ty, th / 2), (0.15, 0.15, th / 2), TREE, "bark",
                          np.array([0.35, 0.25, 0.15]), seed=s))
        prims.append(Prim("sphere", (tx, ty, th + r * 0.8), (r, r, r), TREE, "foliage",
                          np.array([0.2, 0.45, 0.12]) * rng.uniform(0.6, 1.3), seed=s + 1))
    # parked cars
    for _ in range(int(rng.integers(0, 5))):
        side = rng.choice([-1, 1])
        cx, cy = rng.uniform(-30, 30), side * (rw - 1.1)
        col = rng.uniform(0.1, 0.9, 3)
        s = int(rng.integers(1 << 30))
        prims.append(_box((cx, cy, 0.55), (2.1, 0.9, 0.35), CAR, "plain", col, seed=s))
        prims.append(_box((cx - 0.2, cy, 1.15), (1.2, 0.8, 0.28), CAR, "plain", col * 0.6, seed=s))
    cam = np.array([rng.uniform(-5, 5), rng.uniform(-rw - sw + 0.5, rw + sw - 0.5), rng.uniform(1.4, 2.6)],
                   np.float32)
    el, az = np.deg2rad(rng.uniform(20, 70)), rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], np.float32)
    sun_rgb = (np.array([1.0, 0.95, 0.85]) * rng.uniform(0.9, 1.3)).astype(np.float32)
    ambient = (np.array([0.3, 0.33, 0.4]) * rng.uniform(0.8, 1.2)).astype(np.float32)
    horizon = np.array([0.8, 0.85, 0.95]) * rng.uniform(0.85, 1.0)
    zenith = np.array([0.25, 0.45, 0.85]) * rng.uniform(0.7, 1.1)
    rot = camera_rotation(rng.uniform(0, 2 * np.pi), np.deg2rad(np.clip(rng.normal(0, 2.0), -6, 6)),
                          np.deg2rad(np.clip(rng.normal(0, 2.0), -6, 6)))
    return Scene(seed, "outdoor", prims, cam, rot, [], ambient, sun_dir=sun_dir, sun_rgb=sun_rgb,
                 sky_rgb=(horizon.astype(np.float32), zenith.astype(np.float32)))


def make_scene(seed: int, kind: str = "auto") -> Scene:
    """Scene for `seed`. kind: "indoor", "outdoor" or "auto" (about 1 in 4 seeds outdoor)."""
    if kind == "auto":
        kind = "outdoor" if np.random.default_rng([seed, 0]).random() < 0.25 else "indoor"
    if kind == "indoor":
        return make_indoor(seed)
    if kind == "outdoor":
        return make_outdoor(seed)
    raise ValueError(f"unknown scene kind {kind!r}; expected 'auto', 'indoor' or 'outdoor'")

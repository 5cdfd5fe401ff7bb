"""Cut perspective views from equirectangular panoramas and write them as PNG files.

    python -m mtpano_ros.geometry.demo PATH... --out DIR        (console script: mtpano-views)

PATH is a panorama file or a folder of them (.jpg/.jpeg/.png, not recursive). By default every panorama gives
8 views: 6 around the horizon (yaw 0, 60, ..., 300) plus straight up and straight down; `--views N --seed S`
cuts N random views instead (yaw uniform, directions uniform on the sphere, fov from --fov-range).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mtpano_ros.geometry.sampling import sample_views
from mtpano_ros.geometry.views import erp_to_perspective_np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def ring_views(fov_deg: float) -> dict[str, np.ndarray]:
    """6 views around the horizon (yaw 0, 60, ..., 300) plus up and down, all with the same fov."""
    yaw = np.array([0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 0.0, 0.0])
    pitch = np.array([0.0] * 6 + [90.0, -90.0])
    return {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": np.zeros(8), "fov_deg": np.full(8, float(fov_deg))}


def find_panoramas(paths: list[str]) -> list[Path]:
    """Expand files and folders into a sorted list of image files; raises FileNotFoundError with advice."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            imgs = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not imgs:
                raise FileNotFoundError(f"folder {p} holds no panorama images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(imgs)
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist; give one or more equirectangular panorama files or "
                                    "folders, e.g. ../shared/data/panoramas")
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mtpano-views", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="PATH", help="panorama image files or folders of them")
    ap.add_argument("--out", default="demo_out", help="output folder (created if missing), default demo_out")
    ap.add_argument("--views", type=int, default=0, metavar="N",
                    help="cut N random views instead of the 6-around + up/down ring")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random views (with --views)")
    ap.add_argument("--fov", type=float, default=90.0, help="horizontal fov of the ring views, degrees")
    ap.add_argument("--fov-range", type=float, nargs=2, default=(80.0, 120.0), metavar=("LO", "HI"),
                    help="horizontal fov range of random views, degrees")
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"), help="view size, pixels")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import cv2
    except ImportError:
        print("error: the views demo needs OpenCV to read and write images: pip install opencv-python-headless",
              file=sys.stderr)
        return 2
    try:
        panoramas = find_panoramas(args.paths)
        if args.views < 0:
            raise ValueError(f"--views must be >= 0, got {args.views}")
        lay = (sample_views(args.views, args.seed, fov_range_deg=tuple(args.fov_range)) if args.views
               else ring_views(args.fov))
        h, w = args.size
        if h <= 0 or w <= 0:
            raise ValueError(f"--size must be two positive ints H W, got {h} {w}")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written, failed = 0, 0
    for pano in panoramas:
        img = cv2.imread(str(pano), cv2.IMREAD_COLOR)  # BGR uint8; written back as BGR, so colours are kept
        if img is None:
            print(f"error: cannot read {pano} as an image; skipped", file=sys.stderr)
            failed += 1
            continue
        H, W = img.shape[:2]
        if W != 2 * H:
            print(f"note: {pano.name} is {W}x{H}, not 2:1; treating it as a full equirectangular panorama")
        t0 = time.perf_counter()
        views = erp_to_perspective_np(img, lay["yaw_deg"], lay["pitch_deg"], lay["roll_deg"], lay["fov_deg"], (h, w))
        ms = (time.perf_counter() - t0) * 1000.0
        for k, view in enumerate(views):
            name = (f"{pano.stem}_v{k:02d}_yaw{lay['yaw_deg'][k]:+07.1f}_pitch{lay['pitch_deg'][k]:+05.1f}"
                    f"_fov{lay['fov_deg'][k]:05.1f}.png")
            path = out / name
            if not cv2.imwrite(str(path), view):
                print(f"error: could not write {path}", file=sys.stderr)
                failed += 1
                continue
            print(path)
            written += 1
        print(f"{pano.name}: {W}x{H} -> {len(views)} views of {w}x{h} in {ms:.0f} ms")
    print(f"wrote {written} views from {len(panoramas)} panorama(s) to {out}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

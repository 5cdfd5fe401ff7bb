"""Render the example panoramas of this folder with the project's procedural generator.

    python -m examples.panoramas.make_examples      # from the repository root; rewrites the images here

Four 512x1024 (H x W) equirectangular scenes with fixed seeds: two indoor, two outdoor; three JPEG and one
PNG so that `make demo` exercises both decoders. They are the project's own renders (no third-party images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from training.synthetic import make_scene, render_erp

EXAMPLES = (  # (file name, seed, kind)
    ("indoor_room_a.jpg", 11, "indoor"),
    ("indoor_room_b.png", 12, "indoor"),
    ("outdoor_yard_a.jpg", 21, "outdoor"),
    ("outdoor_yard_b.jpg", 22, "outdoor"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--size", default="512x1024", help="HxW of the panoramas")
    args = parser.parse_args()
    height, width = (int(x) for x in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, seed, kind in EXAMPLES:
        rgb = render_erp(make_scene(seed, kind=kind), height, width)["rgb"]
        path = args.out / name
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {path}")
        print(f"{path} ({width}x{height}, {kind}, seed {seed}, {path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

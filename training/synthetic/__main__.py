"""Write a folder of procedural panoramas with exact ground truth.

    python -m training.synthetic --out DIR --count N --seed S --size 256x512 [--kind auto] [--workers 1]

Layout: DIR/meta.json (size, seeds, format), DIR/samples/NNNNNN.npz (rgb (H,W,3) uint8, depth (H,W) float32
radial metres with 0 = invalid, normals (H,W,3) float16 panorama frame, semantic (H,W) uint8 ADE20K ids, seed),
DIR/contact_sheet.png (rgb | depth | normals | labels for the first samples). Sample i renders scene seed S + i.
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from training.config import parse_size
from training.synthetic import make_scene, render_erp


def render_sample(seed: int, height: int, width: int, kind: str = "auto") -> dict[str, np.ndarray]:
    """Render scene `seed` to an ERP sample dict (see training.synthetic.render_erp)."""
    return render_erp(make_scene(seed, kind), height, width)


def _write_one(args: tuple[Path, int, int, int, int, str]) -> int:
    out, i, seed, h, w, kind = args
    path = out / "samples" / f"{i:06d}.npz"
    if path.exists():
        return i
    r = render_sample(seed, h, w, kind)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, rgb=r["rgb"], depth=r["depth"], normals=r["normals"].astype(np.float16),
                        semantic=r["semantic"], seed=np.int64(seed))
    tmp.replace(path)
    return i


def contact_sheet(samples: list[dict[str, np.ndarray]], max_depth_m: float = 10.0) -> np.ndarray:
    """Rows of rgb | depth (grey, near = bright) | normals ((n+1)/2) | ADE20K colours -> (rows*H, 4*W, 3) uint8."""
    from mtpano_ros.labels import colorize_labels

    rows = []
    for r in samples:
        d = r["depth"]
        grey = np.where(d > 0, 255 * (1 - np.clip(d / max_depth_m, 0, 1)), 0).astype(np.uint8)
        n = ((np.asarray(r["normals"], np.float32) + 1) / 2 * 255).clip(0, 255).astype(np.uint8)
        rows.append(np.concatenate([r["rgb"], np.repeat(grey[..., None], 3, -1), n, colorize_labels(r["semantic"])],
                                   1))
    return np.concatenate(rows, 0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.synthetic", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output folder (created; existing samples are kept)")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="scene seed of the first sample")
    ap.add_argument("--size", default="256x512", help="HEIGHTxWIDTH of the panoramas")
    ap.add_argument("--kind", default="auto", choices=["auto", "indoor", "outdoor"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sheet", type=int, default=8, help="rows in contact_sheet.png (0 = none)")
    args = ap.parse_args(argv)
    h, w = parse_size(args.size)
    out: Path = args.out
    (out / "samples").mkdir(parents=True, exist_ok=True)
    meta = {"format": "mtpano-synthetic-v1", "size": [h, w], "seed": args.seed, "count": args.count,
            "kind": args.kind, "depth": "radial metres, 0 = invalid", "normals": "panorama frame (REP 103)",
            "semantic": "ADE20K-150 ids, 255 = ignore"}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    jobs = [(out, i, args.seed + i, h, w, args.kind) for i in range(args.count)]
    from tqdm import tqdm

    t0 = time.perf_counter()
    if args.workers > 1:
        with Pool(args.workers) as pool:
            for _ in tqdm(pool.imap_unordered(_write_one, jobs, chunksize=4), total=len(jobs), desc="render"):
                pass
    else:
        for job in tqdm(jobs, desc="render"):
            _write_one(job)
    dt = time.perf_counter() - t0
    if args.sheet > 0:
        from PIL import Image

        rows = []
        for i in range(min(args.sheet, args.count)):
            z = np.load(out / "samples" / f"{i:06d}.npz")
            rows.append({k: z[k] for k in ("rgb", "depth", "normals", "semantic")})
        Image.fromarray(contact_sheet(rows)).save(out / "contact_sheet.png")
    print(f"wrote {args.count} panoramas of {h}x{w} to {out} in {dt:.1f} s ({args.count / max(dt, 1e-9):.2f}/s)")


if __name__ == "__main__":
    main()

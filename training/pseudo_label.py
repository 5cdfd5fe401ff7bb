"""Label unlabelled panoramas with perspective teachers: the pseudo-label store of MTPano's label-free recipe.

    python training/pseudo_label.py --input PANOS_DIR --out STORE --geometry-teacher moge2:DIR \
        --semantic-teacher hf-seg:DIR                      # real teachers (any folder of ERP images)
    python training/pseudo_label.py --synthetic 0:200 --out STORE --teacher oracle   # procedural scenes
    mtpano-pseudo-label ...                                                           # the same, installed
    torchrun --nproc_per_node 4 training/pseudo_label.py ...                          # sharded (RANK/WORLD_SIZE)

Each panorama is cut into perspective views (MTPano's random layout: 32 views, horizontal FOV 80-120 deg, any
yaw, pitch in [-90, 90]; or the icosahedral 12/20 layouts), the teachers label every view, and the store keeps

    STORE/meta.json                  format, sizes, layout, teacher description
    STORE/items/<id>/image.png       the panorama, RGB, resized to erp_hw
    STORE/items/<id>/views.npz       per view (V of them): yaw_deg, pitch_deg, roll_deg, fov_deg (V,) float64;
                                     zdepth (V,h,w) float16 metres (0 invalid); normals (V,h,w,3) float16 OpenCV
                                     view frame; semantic (V,h,w) uint8 ADE20K (255 unknown); confidence (V,h,w)
                                     uint8 (x/255); valid (V,h,w) bool
    STORE/items/<id>/merged.npz      all views pasted on the sphere and fused at erp_hw: semantic (H,W) uint8,
                                     semantic_conf, normals (H,W,3) panorama frame, normals_conf, depth (H,W)
                                     radial metres, depth_conf (float16, confidences in [0, 1])
    STORE/items/<id>/item.json       source (path, or the procedural seed/kind that re-creates the scene), timing
    STORE/skipped-rank<r>.txt        unreadable inputs, one "path<TAB>reason" per line

An item directory is assembled under a temporary name and renamed into place, so it exists only when complete;
rerunning skips finished items (resume). For procedural scenes only the panorama RGB is stored, never its ground
truth: `training.synthetic.make_scene(seed, kind)` re-creates the scene from item.json when needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mtpano_ros.geometry import (
    erp_to_perspective,
    icosahedral_views,
    perspective_depth_to_erp,
    perspective_normals_to_erp,
    perspective_to_erp,
    sample_views,
)

FORMAT = "mtpano-pseudo-labels"
VERSION = 1
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CAM_KEYS = ("yaw_deg", "pitch_deg", "roll_deg", "fov_deg")


# ------------------------------------------------------------------------------------------------ layouts
def make_layout(layout: str, seed: int, n_views: int = 32, fov_range_deg=(80.0, 120.0),
                ico_fov_deg: float = 90.0) -> dict[str, np.ndarray]:
    """Cameras of one panorama: {"yaw_deg","pitch_deg","roll_deg","fov_deg"} float64 (V,), degrees.

    layout "random": MTPano's (n_views views, fov uniform in fov_range_deg, yaw any, pitch in [-90, 90], from seed);
    "ico12" / "ico20": the fixed icosahedral layouts with ico_fov_deg.
    """
    if layout == "random":
        return sample_views(n_views, seed, pitch_range_deg=(-90.0, 90.0), fov_range_deg=tuple(fov_range_deg))
    m = re.fullmatch(r"ico(12|20)", layout)
    if m:
        return icosahedral_views(int(m.group(1)), ico_fov_deg)
    raise ValueError(f"unknown layout {layout!r}; expected 'random', 'ico12' or 'ico20'")


# ------------------------------------------------------------------------------------------------ fusion
def _centre_weight(fov_deg: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    """(V, 1, h, w) cos^2 of the angle between each view pixel's ray and the optical axis (1 at the centre)."""
    from mtpano_ros.geometry import camera_rays

    rays = camera_rays(torch.as_tensor(fov_deg, dtype=torch.float64), hw, dtype=torch.float32)
    return (1.0 / (rays * rays).sum(-1))[:, None]


def merge_views(labels: dict, cameras: dict, erp_hw: tuple[int, int], num_classes: int = 150,
                chunk: int = 8) -> dict[str, np.ndarray]:
    """Fuse per-view teacher labels into ERP maps (see the module doc for the keys).

    labels: teacher dict with (V, h, w[, 3]) arrays (zdepth, normals, semantic, confidence, valid — any subset).
    Each view is pasted as a spherical patch; a pixel's fused value is the average (normals, depth) or the
    weighted vote (semantics) of the views covering it, weighted by confidence x cos^2(angle off the view axis),
    so view centres count more than their stretched borders. Confidences: the winning class's vote share;
    the length of the mean unit normal; 1 - relative spread of the depths (all in [0, 1]).
    """
    H, W = erp_hw
    n_views = len(cameras["fov_deg"])
    first = next(iter(labels.values()))
    h, w = first.shape[1:3]
    votes = torch.zeros(num_classes * H * W) if "semantic" in labels else None
    acc = {k: torch.zeros(c, H, W, dtype=torch.float64) for k, c in
           (("wsem", 1), ("n", 3), ("wn", 1), ("d", 1), ("d2", 1), ("wd", 1))}
    pix = torch.arange(H * W)
    for s in range(0, n_views, chunk):
        sl = slice(s, min(s + chunk, n_views))
        cam = [np.asarray(cameras[k][sl], dtype=np.float64) for k in CAM_KEYS]
        v = sl.stop - sl.start
        wc = _centre_weight(cam[3], (h, w))  # (v,1,h,w)
        if "semantic" in labels:
            conf = torch.from_numpy(np.asarray(labels.get("confidence", np.ones((v, h, w)))[sl], np.float32))
            sem = torch.from_numpy(np.asarray(labels["semantic"][sl]).astype(np.int64))
            wsem = (wc[:, 0] * conf * (sem != 255)).float()
            both = torch.stack((sem.float(), wsem), 1)[None]  # (1,v,2,h,w)
            pasted, mask = perspective_to_erp(both, *cam, erp_hw=(H, W), mode="nearest")
            ps, pw = pasted[0, :, 0].long(), pasted[0, :, 1] * mask[0, :, 0]
            for i in range(v):
                ok = (pw[i] > 0) & (ps[i] < num_classes)
                idx = ps[i][ok] * (H * W) + pix.view(H, W)[ok]
                votes.index_add_(0, idx, pw[i][ok])
                acc["wsem"][0] += pw[i].double()
        if "zdepth" in labels or "normals" in labels:
            valid = torch.from_numpy(np.asarray(labels["valid"][sl], bool))
            wgeo, wmask = perspective_to_erp((wc * valid[:, None]).float()[None], *cam, erp_hw=(H, W))
            wgeo = (wgeo[0] * wmask[0]).double()  # (v,1,H,W)
        if "normals" in labels:
            n = torch.from_numpy(np.asarray(labels["normals"][sl], np.float32)).permute(0, 3, 1, 2)[None]
            npano, nmask = perspective_normals_to_erp(n, *cam, erp_hw=(H, W))
            wn = wgeo * nmask[0]
            acc["n"] += (npano[0].double() * wn).sum(0)
            acc["wn"] += wn.sum(0)
        if "zdepth" in labels:
            z = torch.from_numpy(np.asarray(labels["zdepth"][sl], np.float32))[None, :, None]
            r, rmask = perspective_depth_to_erp(z, *cam, erp_hw=(H, W))
            wd = wgeo * rmask[0]
            r = r[0].double()
            acc["d"] += (r * wd).sum(0)
            acc["d2"] += (r * r * wd).sum(0)
            acc["wd"] += wd.sum(0)
    out: dict[str, np.ndarray] = {}
    if votes is not None:
        votes = votes.view(num_classes, H, W)
        best, arg = votes.max(0)
        total = acc["wsem"][0].float()
        has = total > 0
        out["semantic"] = torch.where(has, arg, torch.full_like(arg, 255)).to(torch.uint8).numpy()
        out["semantic_conf"] = torch.where(has, best / total.clamp_min(1e-12), torch.zeros_like(best)).numpy()
    if "normals" in labels:
        mean = acc["n"] / acc["wn"].clamp_min(1e-12)
        length = mean.norm(dim=0)
        ok = (acc["wn"][0] > 0) & (length > 1e-6)
        out["normals"] = torch.where(ok[None], mean / length.clamp_min(1e-12), torch.zeros_like(mean)).permute(
            1, 2, 0).float().numpy()
        out["normals_conf"] = torch.where(ok, length.clamp(0, 1), torch.zeros_like(length)).float().numpy()
    if "zdepth" in labels:
        wd = acc["wd"][0]
        ok = wd > 0
        mean = acc["d"][0] / wd.clamp_min(1e-12)
        var = (acc["d2"][0] / wd.clamp_min(1e-12) - mean * mean).clamp_min(0)
        rel = var.sqrt() / mean.clamp_min(1e-6)
        out["depth"] = torch.where(ok, mean, torch.zeros_like(mean)).float().numpy()
        out["depth_conf"] = torch.where(ok, (1 - rel).clamp(0, 1), torch.zeros_like(rel)).float().numpy()
    return out


# ------------------------------------------------------------------------------------------------ sources
def list_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders (recursively, image extensions) and text files listing paths (one per line)."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXTS and q.is_file())
        elif p.suffix.lower() == ".txt" and p.is_file():
            paths += [Path(line.strip()) for line in p.read_text().splitlines() if line.strip()]
        else:
            paths.append(p)
    return paths


def item_id_for_path(path: Path) -> str:
    """Stable, filesystem-safe id: sanitised stem + 8 hex digits of the full path."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:60]
    return f"{stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def item_id_for_seed(seed: int, kind: str) -> str:
    return f"scene-{kind}-{int(seed):08d}"


def read_panorama(path: Path) -> np.ndarray:
    """Read an ERP image as (H, W, 3) uint8 RGB; raises ValueError when unreadable or not 2:1."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("unreadable image")
    h, w = img.shape[:2]
    if abs(w - 2 * h) > max(2, w // 100):
        raise ValueError(f"not an equirectangular 2:1 image ({w}x{h})")
    return np.ascontiguousarray(img[..., ::-1])


def cut_views(pano: np.ndarray, cameras: dict, view_hw: tuple[int, int]) -> np.ndarray:
    """Perspective views (V, h, w, 3) uint8 cut from an ERP image (H, W, 3) uint8 with the project's convention."""
    t = torch.from_numpy(pano).permute(2, 0, 1)[None].float()
    v = erp_to_perspective(t, *(cameras[k] for k in CAM_KEYS), out_hw=view_hw)
    return v[0].permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


# ------------------------------------------------------------------------------------------------ store
def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def write_item(store: Path, item_id: str, image: np.ndarray, cameras: dict, labels: dict, merged: dict,
               info: dict) -> Path:
    """Write one item atomically (temporary directory + rename). Returns the item directory."""
    items = store / "items"
    final = items / item_id
    tmp = items / f".tmp-{item_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _write_png(tmp / "image.png", image)
    views = {k: np.asarray(cameras[k], np.float64) for k in CAM_KEYS}
    if "zdepth" in labels:
        views["zdepth"] = labels["zdepth"].astype(np.float16)
        views["valid"] = labels["valid"].astype(bool)
    if "normals" in labels:
        views["normals"] = labels["normals"].astype(np.float16)
        views["valid"] = labels["valid"].astype(bool)
    if "semantic" in labels:
        views["semantic"] = labels["semantic"].astype(np.uint8)
        conf = labels.get("confidence", np.ones(labels["semantic"].shape, np.float32))
        views["confidence"] = np.clip(np.round(conf * 255), 0, 255).astype(np.uint8)
    np.savez_compressed(tmp / "views.npz", **views)
    np.savez_compressed(tmp / "merged.npz", **{k: (v if v.dtype == np.uint8 else v.astype(np.float16))
                                               for k, v in merged.items()})
    (tmp / "item.json").write_text(json.dumps(info, indent=1))
    if final.exists():  # a finished duplicate from a concurrent run: keep it
        shutil.rmtree(tmp)
        return final
    os.replace(tmp, final)
    return final


def is_done(store: Path, item_id: str) -> bool:
    return (store / "items" / item_id / "item.json").is_file()


def write_meta(store: Path, meta: dict) -> None:
    """Write meta.json (atomically); refuses to mix stores made with other sizes or layouts."""
    path = store / "meta.json"
    if path.is_file():
        old = json.loads(path.read_text())
        for k in ("erp_hw", "view_hw", "layout"):
            if old.get(k) != meta.get(k):
                raise ValueError(f"{store} was made with {k}={old.get(k)}, this run uses {meta.get(k)}; "
                                 "use another --out or the same settings")
        return
    store.mkdir(parents=True, exist_ok=True)
    tmp = store / f".meta-{os.getpid()}.json"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ main
def _dist() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _pick_device(name: str, local_rank: int) -> str:
    if name != "auto":
        return name
    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


def build_teachers(args, device: str):
    from training.teachers import CombinedTeacher, build_teacher, parse_teacher_spec

    def one(spec):
        name, kw = parse_teacher_spec(spec)
        if name == "oracle":
            kw.setdefault("corruption", False if args.no_corruption else None)
            kw.setdefault("seed", args.seed)
        elif name != "internimage" or "device" not in kw:
            kw.setdefault("device", device)
        return build_teacher(name, **kw)

    if args.teacher:
        return one(args.teacher)
    if not (args.geometry_teacher and args.semantic_teacher):
        raise SystemExit("give --teacher SPEC, or both --geometry-teacher and --semantic-teacher")
    return CombinedTeacher(one(args.geometry_teacher), one(args.semantic_teacher))


def main(argv: list[str] | None = None) -> int:
    from training.config import parse_size as parse_hw

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", nargs="+", help="ERP images, folders of them, or .txt lists of paths")
    src.add_argument("--synthetic", metavar="START:COUNT", help="procedural scenes with seeds START..START+COUNT-1")
    ap.add_argument("--scene-kind", default="auto", choices=("auto", "indoor", "outdoor"))
    ap.add_argument("--out", required=True, type=Path, help="pseudo-label store directory")
    ap.add_argument("--teacher", help="one teacher for everything, e.g. oracle")
    ap.add_argument("--geometry-teacher", help="e.g. moge2:DIR, hf-depth:DIR")
    ap.add_argument("--semantic-teacher", help="e.g. hf-seg:DIR, internimage:config=CFG,checkpoint=CKPT")
    ap.add_argument("--layout", default="random", help="random (MTPano: 32 views, fov 80-120), ico12 or ico20")
    ap.add_argument("--views", type=int, default=32, help="views per panorama for the random layout")
    ap.add_argument("--fov-range", type=float, nargs=2, default=(80.0, 120.0), metavar=("MIN", "MAX"))
    ap.add_argument("--ico-fov", type=float, default=90.0, help="horizontal fov of the icosahedral layouts")
    ap.add_argument("--view-size", type=parse_hw, default=(384, 384), help="view pixels HxW (or one number)")
    ap.add_argument("--erp-size", type=parse_hw, default=(512, 1024), help="stored panorama / merged size HxW")
    ap.add_argument("--seed", type=int, default=0, help="seeds the random layouts and the oracle's corruption")
    ap.add_argument("--no-corruption", action="store_true", help="oracle: exact labels")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many new items (0 = all)")
    args = ap.parse_args(argv)

    rank, world, local_rank = _dist()
    device = _pick_device(args.device, local_rank)
    teacher = build_teachers(args, device)
    store = args.out
    if args.synthetic:
        start, _, count = args.synthetic.partition(":")
        sources = [("seed", int(start) + i) for i in range(int(count or 1))]
    else:
        sources = [("path", p) for p in list_inputs(args.input)]
    meta = {"format": FORMAT, "version": VERSION, "erp_hw": list(args.erp_size), "view_hw": list(args.view_size),
            "layout": {"name": args.layout, "views": args.views, "fov_range_deg": list(args.fov_range),
                       "ico_fov_deg": args.ico_fov, "seed": args.seed},
            "teacher": teacher.describe(), "depth_kind": teacher.depth_kind}
    if rank == 0:
        write_meta(store, meta)
    else:
        store.mkdir(parents=True, exist_ok=True)
    mine = sources[rank::world]
    skipped_log = store / f"skipped-rank{rank}.txt"
    from tqdm import tqdm

    done_new = skipped = 0
    bar = tqdm(mine, desc=f"pseudo-label r{rank}/{world}", disable=rank != 0 and world > 1, unit="pano")
    for kind, value in bar:
        if kind == "seed":
            scene_kind = args.scene_kind
            item_id = item_id_for_seed(value, scene_kind)
        else:
            item_id = item_id_for_path(value)
        if is_done(store, item_id):
            continue
        t0 = time.time()
        layout_seed = int.from_bytes(hashlib.sha1(f"{args.seed}/{item_id}".encode()).digest()[:4], "little")
        cameras = make_layout(args.layout, layout_seed, args.views, args.fov_range, args.ico_fov)
        if kind == "seed":
            from training.synthetic import make_scene, render_erp

            scene = make_scene(int(value), kind=scene_kind)
            image = render_erp(scene, *args.erp_size)["rgb"]  # the input image only; its labels stay unused
            _, labels = teacher.render(scene, cameras, args.view_size) if hasattr(teacher, "render") else (
                None, teacher(cut_views(image, cameras, args.view_size), cameras["fov_deg"], cameras, scene))
            info = {"id": item_id, "source": {"kind": "procedural", "seed": int(value), "scene_kind": scene_kind}}
        else:
            try:
                pano = read_panorama(value)
            except ValueError as e:
                skipped += 1
                with open(skipped_log, "a") as f:
                    f.write(f"{value}\t{e}\n")
                continue
            views = cut_views(pano, cameras, args.view_size)
            labels = teacher(views, cameras["fov_deg"], cameras)
            import cv2

            image = cv2.resize(pano, (args.erp_size[1], args.erp_size[0]), interpolation=cv2.INTER_AREA)
            info = {"id": item_id, "source": {"kind": "file", "path": str(value)}}
        merged = merge_views(labels, cameras, args.erp_size)
        info.update({"views": int(len(cameras["fov_deg"])), "seconds": round(time.time() - t0, 3),
                     "layout_seed": layout_seed})
        write_item(store, item_id, image, cameras, labels, merged, info)
        done_new += 1
        bar.set_postfix(new=done_new, skipped=skipped)
        if args.limit and done_new >= args.limit:
            break
    print(f"rank {rank}: {done_new} new items, {skipped} skipped"
          + (f" (listed in {skipped_log})" if skipped else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU check in one command: parity, FP16 audit, engine build time and latency of every variant at native size.

    python benchmarks/gpu_check.py --json [--variants mtpano-tiny,default] [--runs 50] [--images 4]
    python benchmarks/gpu_check.py --audit-only --variants default,tiny-labelfree  # FP16 audits only, on the CPU

Needs a CUDA GPU (torch CUDA); ONNX Runtime's CUDA provider and TensorRT are used when installed. For each model
(every registry variant with its deterministic random weights, plus the bundled ``default``) at its native input
size, on real panoramas from ../shared/data/panoramas (random images where that folder is missing):

- reference: torch CUDA fp32 (TorchBackend);
- candidates: torch CUDA fp16 (autocast), ONNX Runtime CUDA fp32 (``InferenceSession`` with
  ``CUDAExecutionProvider`` only, no TensorRT EP), TensorRT fp32 and fp16 (TensorRTBackend: ``OnnxParser``,
  ``build_serialized_network``, ``execute_async_v3``), each compared with the reference:
  depth relative error (median and max over pixels with reference depth >= 1 cm), normal angle (p99 and max,
  degrees), semantic label agreement (fraction of pixels);
- FP16 audit: NaN / inf counts in every fp16 output, the modules whose fp32 activations exceed FP16's
  largest finite value 65504 (forward hooks on the torch model), and the largest |Q K^T| of every attention
  layer (the scores DESIGN §5b says DINOv3's register tokens push past 65504: those layers need FP32);
- TensorRT: engine build time (fresh cache folder, export excluded) and the median of ``--runs`` forward passes
  (``Backend.forward`` on one preprocessed frame, host copies included) for every backend.

Prints a table per model and, with ``--json``, one JSON line last. Nothing here is asserted: it reports.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mtpano_ros.model import list_models, preprocess
from mtpano_ros.runtime import selection
from mtpano_ros.runtime.backends import OnnxRuntimeBackend, TorchBackend

PANOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panoramas"
FP16_MAX = 65504.0


def load_images(n: int, hw: tuple[int, int]) -> torch.Tensor:
    """(n, 3, H, W) float in [0, 1]: real panoramas resized to ``hw`` (random images when none are on disk)."""
    import cv2

    files = sorted(p for p in PANOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:n] if PANOS.is_dir() else []
    imgs = [cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for p in files]
    rng = np.random.default_rng(0)
    while len(imgs) < n:
        imgs.append((rng.random((hw[0], hw[1], 3)) * 255).astype(np.uint8))
    return torch.cat([preprocess(img, hw) for img in imgs])


def compare(out: dict, ref: dict) -> dict:
    """Depth relative error, normal angle and label agreement of ``out`` against ``ref`` (Backend.forward dicts)."""
    d, dr = out["depth"].double().numpy(), ref["depth"].double().numpy()
    ok = np.isfinite(d) & np.isfinite(dr) & (dr >= 0.01)
    rel = np.abs(d - dr)[ok] / dr[ok]
    n, nr = out["normals"].double().numpy(), ref["normals"].double().numpy()
    cos = (n * nr).sum(1) / np.maximum(np.linalg.norm(n, axis=1) * np.linalg.norm(nr, axis=1), 1e-12)
    cos = cos[np.isfinite(cos)]
    ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    agree = float((out["semantic"].numpy() == ref["semantic"].numpy()).mean())
    return {"depth_rel_median": float(np.median(rel)) if rel.size else None,
            "depth_rel_max": float(rel.max()) if rel.size else None,
            "normal_deg_p99": float(np.percentile(ang, 99)) if ang.size else None,
            "normal_deg_max": float(ang.max()) if ang.size else None, "label_agreement": agree}


def nonfinite(out: dict) -> dict:
    """Counts of NaN and inf in the float outputs."""
    return {k: {"nan": int(torch.isnan(v).sum()), "inf": int(torch.isinf(v).sum())}
            for k, v in out.items() if v.is_floating_point()}


def fp16_overflow_modules(net, x: torch.Tensor) -> dict[str, float]:
    """{module name: largest |activation|} for modules whose fp32 output exceeds FP16's 65504 on ``x``."""
    hits: dict[str, float] = {}

    def hook(name):
        def fn(_module, _inp, out):
            for t in out if isinstance(out, (tuple, list)) else (out.values() if isinstance(out, dict) else [out]):
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    m = float(t.detach().abs().max())
                    if m > FP16_MAX:
                        hits[name] = max(hits.get(name, 0.0), m)
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in net.named_modules() if name]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return dict(sorted(hits.items(), key=lambda kv: -kv[1])[:20])


def attention_logit_max(net, x: torch.Tensor) -> list[float]:
    """Largest |Q K^T| (before the 1/sqrt(d) scale, as the MatMul an engine runs sees it) of every
    ``scaled_dot_product_attention`` call in one fp32 forward, in call order (ViT layer order); values past 65504
    overflow an FP16 MatMul unless it is pinned to FP32 (TensorRTBackend's fp32_attention)."""
    real = torch.nn.functional.scaled_dot_product_attention
    found: list[float] = []

    def spy(q, k, v, *args, **kwargs):
        found.append(float((q.float() @ k.float().transpose(-2, -1)).abs().max()))
        return real(q, k, v, *args, **kwargs)

    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        with torch.no_grad():
            net(x)
    finally:
        torch.nn.functional.scaled_dot_product_attention = real
    return found


def median_ms(backend, x: torch.Tensor, runs: int) -> float:
    backend.forward(x)  # warm
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        backend.forward(x)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def run_batched(backend, x: torch.Tensor) -> dict:
    parts = [backend.forward(x[i:i + 1]) for i in range(x.shape[0])]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def check_model(name: str, n_images: int, runs: int, cache_root: Path) -> dict:
    res: dict = {"model": name}
    ref_backend = TorchBackend(name, device="cuda", precision="fp32")
    hw = ref_backend.input_size
    res["input_hw"] = list(hw)
    x = load_images(n_images, hw)
    ref = run_batched(ref_backend, x)
    res["latency_ms"] = {"torch_cuda_fp32": median_ms(ref_backend, x[:1], runs)}
    res["fp16_overflow_modules"] = fp16_overflow_modules(ref_backend.model, x[:1].cuda())
    logits = attention_logit_max(ref_backend.model, x[:1].cuda())
    res["attention_qk_max"] = [round(v, 1) for v in logits]
    res["attention_layers_past_fp16"] = [i for i, v in enumerate(logits) if v > FP16_MAX]
    res["parity"], res["fp16_nonfinite"] = {}, {}
    del ref_backend
    gc.collect()
    torch.cuda.empty_cache()

    candidates = [("torch_cuda_fp16", lambda: TorchBackend(name, device="cuda", precision="fp16"))]
    cache = cache_root / name
    if selection.probe_onnxruntime("cuda") is None:
        candidates.append(("onnxruntime_cuda_fp32", lambda: OnnxRuntimeBackend(
            name, device="cuda", precision="fp32", cache_dir=cache, use_tensorrt_ep=False)))
    else:
        res["onnxruntime_cuda"] = selection.probe_onnxruntime("cuda")
    if selection.probe_tensorrt() is None:
        from mtpano_ros.runtime.export import cached_onnx
        from mtpano_ros.runtime.tensorrt_backend import TensorRTBackend, import_tensorrt, onnx_opset_for

        onnx_path, _ = cached_onnx(name, hw, cache, onnx_opset_for(import_tensorrt().__version__))
        res["build_s"] = {}
        for precision in ("fp32", "fp16"):
            def make(precision=precision):
                t0 = time.perf_counter()
                b = TensorRTBackend(onnx_path, precision=precision, cache_dir=cache / f"engines_{precision}")
                res["build_s"][f"tensorrt_{precision}"] = round(time.perf_counter() - t0, 1)
                return b
            candidates.append((f"tensorrt_{precision}", make))
    else:
        res["tensorrt"] = selection.probe_tensorrt()
    for label, factory in candidates:
        try:
            backend = factory()
            out = run_batched(backend, x)
            res["parity"][label] = compare(out, ref)
            if "fp16" in label:
                res["fp16_nonfinite"][label] = nonfinite(out)
            res["latency_ms"][label] = median_ms(backend, x[:1], runs)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next backend
            res["parity"][label] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        finally:
            backend = None
            gc.collect()
            torch.cuda.empty_cache()
    return res


def audit_only(name: str, n_images: int) -> dict:
    """The FP16 audits alone, in fp32 on the CPU (no GPU needed): per-layer attention |Q K^T| max over the
    images, and the modules whose activations pass 65504."""
    from mtpano_ros.model import load_model

    net = load_model(name)
    hw = tuple(net.config["input_hw"])
    x = load_images(n_images, hw)
    per_image = [attention_logit_max(net, x[i:i + 1]) for i in range(n_images)]
    logits = [max(v) for v in zip(*per_image)]
    over: dict[str, float] = {}
    for i in range(n_images):
        for k, v in fp16_overflow_modules(net, x[i:i + 1]).items():
            over[k] = max(over.get(k, 0.0), v)
    return {"model": name, "input_hw": list(hw), "device": "cpu", "attention_qk_max": [round(v, 1) for v in logits],
            "attention_layers_past_fp16": [i for i, v in enumerate(logits) if v > FP16_MAX],
            "fp16_overflow_modules": over}


def environment() -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}",
                   gpu_memory_gib=round(props.total_memory / 2**30, 1))
    try:
        import onnxruntime as ort

        env.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except Exception as exc:  # noqa: BLE001
        env["onnxruntime"] = f"not importable: {exc}"
    try:
        import tensorrt as trt

        env["tensorrt"] = trt.__version__
    except Exception as exc:  # noqa: BLE001
        env["tensorrt"] = f"not importable: {exc}"
    return env


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def print_table(res: dict) -> None:
    print(f"\n{res['model']} @ {res['input_hw'][0]}x{res['input_hw'][1]}")
    print(f"{'backend':24s} {'ms':>8s} {'depth rel med':>14s} {'depth rel max':>14s} {'normal p99':>11s} "
          f"{'labels':>8s}")
    print(f"{'torch_cuda_fp32 (ref)':24s} {_fmt(res['latency_ms']['torch_cuda_fp32']):>8s}")
    for label, p in res["parity"].items():
        if "error" in p:
            print(f"{label:24s} error: {p['error'][:80]}")
            continue
        print(f"{label:24s} {_fmt(res['latency_ms'].get(label)):>8s} {_fmt(p['depth_rel_median']):>14s} "
              f"{_fmt(p['depth_rel_max']):>14s} {_fmt(p['normal_deg_p99']):>11s} {_fmt(p['label_agreement']):>8s}")
    if res.get("build_s"):
        print("engine build s:", res["build_s"])
    print("fp32 activations over 65504:", res["fp16_overflow_modules"] or "none")
    print("attention |Q K^T| max per layer:", res["attention_qk_max"], "past 65504:",
          res["attention_layers_past_fp16"] or "none")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join([*list_models(), "default"]),
                    help="comma-separated model names (default: every registry variant and the bundled default)")
    ap.add_argument("--images", type=int, default=4, help="panoramas compared per model")
    ap.add_argument("--runs", type=int, default=50, help="timed forward passes per backend (median reported)")
    ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
    ap.add_argument("--audit-only", action="store_true",
                    help="only the FP16 overflow audits, in fp32 on the CPU (runs without a GPU)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    env = environment()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.audit_only:
        results = [audit_only(name, args.images) for name in names]
        for r in results:
            print(f"{r['model']} @ {r['input_hw'][0]}x{r['input_hw'][1]}: attention |Q K^T| max per layer "
                  f"{r['attention_qk_max']}, layers past 65504: {r['attention_layers_past_fp16'] or 'none'}, "
                  f"activations past 65504: {r['fp16_overflow_modules'] or 'none'}")
        if args.json:
            print(json.dumps({"environment": env, "results": results}))
        return 0
    if not torch.cuda.is_available():
        msg = {"environment": env, "error": "no CUDA GPU: gpu_check needs torch with CUDA"}
        print(json.dumps(msg) if args.json else msg["error"])
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="mtpano_gpu_check_") as tmp:
        for name in names:
            try:
                res = check_model(name, args.images, args.runs, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others
                res = {"model": name, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
            results.append(res)
            if "error" in res:
                print(f"\n{name}: error {res['error']}")
            else:
                print_table(res)
            gc.collect()
            torch.cuda.empty_cache()
    if args.json:
        print(json.dumps({"environment": env, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

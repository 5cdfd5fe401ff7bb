"""Per-frame cost of the perception node without the network, at a 512x1024 model input.

What one frame costs besides the forward pass: read a 3840x1920 rgb8 sensor_msgs/Image, resize it to 512x1024,
normalise it into the network's input tensor, post-process prepared network outputs (class ids, depth, normals
at 512x1024), and build every output message (mono8, 2x rgb8, 32FC1, 32FC3 images and a full-resolution
organised PointCloud2 of 524288 points). "ours" is the node's code path; "baseline" is the same pipeline with the
cloud packed point by point in Python (struct.pack per point), the straightforward way. "floor" is what no
implementation can avoid, measured in the same run: one read of the input image's bytes and one write of every
output message's bytes, copied from ready arrays into fresh message buffers (array.array, as rclpy takes them).
All run here, same data.

    .venv/bin/python benchmarks/node_overhead.py [--iters 20] [--threads 1] [--logits] [--json]

--json makes the last stdout line {"overhead_ms": ..., "baseline_ms": ..., "speedup": ..., "floor_ms": ...,
"floor_ratio": ...} (medians of CPU time per frame, which a busy machine distorts less than wall time; the wall
medians are printed too). floor_ratio = overhead / floor.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import statistics
import struct
import time

import numpy as np
import torch
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from mtpano_ros.model import postprocess, preprocess
from mtpano_ros.ros.conversions import (
    CLOUD_POINT_STEP,
    INPUT_ENCODINGS,
    array_to_image,
    cloud_fields,
    erp_rays_f32,
    image_to_array,
    to_rgb,
)
from mtpano_ros.ros.node import OUTPUT_TOPICS, OutputOptions, build_output_messages

MODEL_HW = (512, 1024)
INPUT_HW = (1920, 3840)


def make_input() -> tuple:
    """A 3840x1920 rgb8 Image (smooth random content) and prepared network outputs at MODEL_HW (batch 1)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (INPUT_HW[0] // 32, INPUT_HW[1] // 32, 3), dtype=np.uint8)
    import cv2

    image = cv2.resize(small, INPUT_HW[::-1], interpolation=cv2.INTER_LINEAR)
    msg = array_to_image(image, "rgb8", Header(frame_id="camera_link"))
    h, w = MODEL_HW
    normals = torch.randn(1, 3, h, w)
    normals = normals / normals.norm(dim=1, keepdim=True)
    outputs = {"semantic": torch.randint(0, 150, (1, h, w), dtype=torch.int64),
               "depth": torch.rand(1, 1, h, w) * 20.0, "normals": normals}
    outputs["semantic"][:, : h // 8] = 2  # sky band: invalid depth and normals after post-processing
    return msg, outputs


def frame_ours(msg, outputs, stages: dict | None = None) -> dict:
    marks = [(time.perf_counter(), time.process_time())]
    view = image_to_array(msg, "image", INPUT_ENCODINGS)
    rgb = to_rgb(view, msg.encoding, MODEL_HW)
    marks.append((time.perf_counter(), time.process_time()))
    x = preprocess(rgb, MODEL_HW)
    marks.append((time.perf_counter(), time.process_time()))
    res = postprocess(outputs)
    marks.append((time.perf_counter(), time.process_time()))
    messages = build_output_messages(res["semantic"][0], res["depth"][0], res["normals"][0], rgb, msg.header,
                                     [t for t in OUTPUT_TOPICS if t != "points"], OutputOptions())
    marks.append((time.perf_counter(), time.process_time()))
    messages.update(build_output_messages(res["semantic"][0], res["depth"][0], res["normals"][0], rgb, msg.header,
                                          ["points"], OutputOptions()))
    marks.append((time.perf_counter(), time.process_time()))
    if stages is not None:
        for i, key in enumerate(("decode+resize", "normalise", "postprocess", "images", "cloud")):
            wall, cpu = (1e3 * (marks[i + 1][k] - marks[i][k]) for k in (0, 1))
            stages.setdefault(key, []).append((wall, cpu))
    assert x.shape == (1, 3, *MODEL_HW)
    return messages


def cloud_point_by_point(depth: np.ndarray, rgb: np.ndarray, labels: np.ndarray, header: Header) -> PointCloud2:
    """The straightforward cloud: a Python loop with one struct.pack per point (same bytes as ours)."""
    h, w = depth.shape
    rays = erp_rays_f32(h, w)
    buf = bytearray()
    nan = float("nan")
    for v in range(h):
        for u in range(w):
            d = float(depth[v, u])
            if d > 0 and not math.isnan(d):
                x, y, z = (float(c) * d for c in rays[v, u])
            else:
                x = y = z = nan
            r, g, b = (int(c) for c in rgb[v, u])
            packed = struct.unpack("<f", struct.pack("<I", (r << 16) | (g << 8) | b))[0]
            buf += struct.pack("<ffffI", x, y, z, packed, int(labels[v, u]))
    msg = PointCloud2(header=header, height=h, width=w, fields=cloud_fields(), is_bigendian=False,
                      point_step=CLOUD_POINT_STEP, row_step=CLOUD_POINT_STEP * w, is_dense=False)
    msg.data = bytes(buf)
    return msg


def frame_baseline(msg, outputs) -> dict:
    view = image_to_array(msg, "image", INPUT_ENCODINGS)
    rgb = to_rgb(view, msg.encoding, MODEL_HW)
    preprocess(rgb, MODEL_HW)
    res = postprocess(outputs)
    messages = build_output_messages(res["semantic"][0], res["depth"][0], res["normals"][0], rgb, msg.header,
                                     [t for t in OUTPUT_TOPICS if t != "points"], OutputOptions())
    messages["points"] = cloud_point_by_point(res["depth"][0], rgb, res["semantic"][0], msg.header)
    return messages


def output_payloads(messages: dict) -> list[np.ndarray]:
    """Every output message's bytes as a ready uint8 array (the source of the floor's writes)."""
    return [np.frombuffer(bytes(m.data), dtype=np.uint8) for m in messages.values()]


def frame_floor(msg, payloads: list[np.ndarray]) -> int:
    """The copy floor of one frame: read every input byte once (a max reduction, SIMD-fast) and write every output
    message's bytes once, copied from ready arrays into fresh array.array buffers (what a published message needs).
    Returns a value so that nothing is optimised away."""
    seen = int(np.frombuffer(msg.data, dtype=np.uint8).max())
    for payload in payloads:
        buf = array.array("B", [0]) * payload.size
        np.copyto(np.frombuffer(buf, dtype=np.uint8), payload)
    return seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20, help="timed frames for ours (median reported)")
    parser.add_argument("--baseline-iters", type=int, default=2, help="timed frames for the baseline")
    parser.add_argument("--logits", action="store_true", help="feed (1,150,H,W) logits instead of class ids "
                                                               "(adds the argmax to post-processing)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (0: library default); "
                                                                "one is what a busy two-core machine does best")
    parser.add_argument("--json", action="store_true", help="last stdout line is a JSON summary")
    args = parser.parse_args(argv)
    if args.threads > 0:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    msg, outputs = make_input()
    if args.logits:
        logits = torch.randn(1, 150, *MODEL_HW)
        outputs = {"semantic_logits": logits, "depth": outputs["depth"], "normals": outputs["normals"]}
    for _ in range(3):
        frame_ours(msg, outputs)
    stages: dict[str, list[tuple[float, float]]] = {}
    payloads = output_payloads(frame_ours(msg, outputs))
    sizes = [p.size for p in payloads]
    times, cpu_times, floor_times, floor_cpu = [], [], [], []
    for _ in range(args.iters):  # ours and the floor interleaved: both see the same machine load
        t0, c0 = time.perf_counter(), time.process_time()
        ours = frame_ours(msg, outputs, stages)
        times.append(1e3 * (time.perf_counter() - t0))
        cpu_times.append(1e3 * (time.process_time() - c0))
        t0, c0 = time.perf_counter(), time.process_time()
        frame_floor(msg, payloads)
        floor_times.append(1e3 * (time.perf_counter() - t0))
        floor_cpu.append(1e3 * (time.process_time() - c0))
    base_times = []
    for _ in range(args.baseline_iters):
        t0 = time.perf_counter()
        base = frame_baseline(msg, outputs)
        base_times.append(1e3 * (time.perf_counter() - t0))
    if bytes(base["points"].data) != bytes(ours["points"].data):
        a = np.frombuffer(bytes(ours["points"].data), np.uint8)
        b = np.frombuffer(bytes(base["points"].data), np.uint8)
        raise SystemExit(f"baseline and ours built different clouds ({int((a != b).sum())} bytes differ)")

    overhead, baseline = statistics.median(times), statistics.median(base_times)
    overhead_cpu, floor_ms = statistics.median(cpu_times), statistics.median(floor_cpu)
    print(f"input {INPUT_HW[1]}x{INPUT_HW[0]} rgb8 -> model {MODEL_HW[1]}x{MODEL_HW[0]}, "
          f"{'logits' if args.logits else 'class ids'} from the network, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'stage (ours)':<16}{'median ms':>10}{'min ms':>10}{'CPU med ms':>12}")
    for key, values in stages.items():
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        print(f"{key:<16}{statistics.median(wall):>10.2f}{min(wall):>10.2f}{statistics.median(cpu):>12.2f}")
    print(f"{'total ours':<16}{overhead:>10.2f}{min(times):>10.2f}   (CPU time: median "
          f"{statistics.median(cpu_times):.2f} ms, min {min(cpu_times):.2f} ms; wall time suffers on a busy machine)")
    print(f"{'baseline':<16}{baseline:>10.2f}{min(base_times):>10.2f}   (cloud packed with struct.pack per point)")
    print(f"{'floor':<16}{statistics.median(floor_times):>10.2f}{min(floor_times):>10.2f}   (CPU time: median "
          f"{floor_ms:.2f} ms; read {len(msg.data) / 2**20:.1f} MiB once, write {sum(sizes) / 2**20:.1f} MiB of "
          f"{len(sizes)} messages once)")
    print(f"speedup {baseline / overhead:.1f}x; cloud bytes identical; CPU time ours / floor = "
          f"{overhead_cpu / floor_ms:.2f}")
    if args.json:
        print(json.dumps({"overhead_ms": round(overhead_cpu, 3), "overhead_wall_ms": round(overhead, 3),
                          "baseline_ms": round(baseline, 3), "speedup": round(baseline / overhead, 2),
                          "floor_ms": round(floor_ms, 3), "floor_ratio": round(overhead_cpu / floor_ms, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

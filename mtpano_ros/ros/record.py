"""mtpano-record: subscribe to the perception node's outputs and write them to disk, frame by frame.

    mtpano-record --out DIR [--frames N] [--timeout-s T] [--ply-format binary|ascii]
                  [--incomplete-after-s 5] [--max-queue 8] [--ros-args -r __ns:=/robot1]

Subscribes to the node's relative output topics (DESIGN §5): `semantic`, `semantic/color`, `depth`,
`normals`, `normals/color` (sensor_msgs/Image) and `points` (sensor_msgs/PointCloud2). Messages are
grouped by header stamp; every frame goes to `DIR/frame_NNNN/`:

    semantic.png        8-bit class ids (255 unknown)           semantic_color.png  ADE20K palette (RGB)
    depth_mm.png        16-bit radial depth in millimetres, 0 invalid (NaN, <= 0 or beyond 65.535 m)
    normals_color.png   (n + 1) / 2 * 255 (RGB)                 outputs.npz         semantic (H, W) uint8,
    points.ply          x y z float32 (metres, frame_id),                           depth (H, W) float32 m
                        red green blue uchar, label uchar                           NaN invalid, normals
                                                                                    (H, W, 3) float32
DIR/frames.json lists every frame (stamp, frame id, topics, files) and DIR/latency.json the latency from
each message's stamp to its reception (p50/p95/max per topic and per complete frame), also printed as a
table. Exits after --frames complete frames, after --timeout-s, or on Ctrl-C.

Bounded: a frame still missing topics --incomplete-after-s after its first message (or once a newer frame is
complete) is dropped, not written, and counted; at most --max-queue frames wait for the disk writer, further
complete frames are dropped and counted (frames.json keeps only written frames; the counts go to
DIR/dropped.json and the log).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from mtpano_ros.ros.node import OUTPUT_TOPICS  # the node owns the list of its output topics
from mtpano_ros.ros.replay import matching_qos


def depth_to_mm_png(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float metres (NaN invalid) -> (H, W) uint16 millimetres, 0 where invalid or out of range."""
    depth_mm = np.nan_to_num(depth_m.astype(np.float64) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    depth_mm = np.rint(depth_mm)
    depth_mm[(depth_mm <= 0) | (depth_mm > 65535)] = 0
    return depth_mm.astype(np.uint16)


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray, label: np.ndarray, ascii: bool = False) -> int:
    """Write points as PLY with `x y z` float32, `red green blue` uchar and `label` uchar.

    xyz (N, 3) float32 metres, rgb (N, 3) uint8, label (N,) uint8. Binary little-endian unless `ascii`.
    Returns N.
    """
    count = len(xyz)
    vertex = np.empty(count, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                                    ("blue", "u1"), ("label", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    vertex["label"] = label
    header = ("ply\nformat {} 1.0\ncomment mtpano_ros point cloud, panorama frame (REP 103), metres\n"
              f"element vertex {count}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar label\nend_header\n")
    with open(path, "wb") as stream:
        stream.write(header.format("ascii" if ascii else "binary_little_endian").encode("ascii"))
        if ascii:
            columns = np.column_stack([vertex[name].astype(np.float64) for name in vertex.dtype.names])
            np.savetxt(stream, columns, fmt=["%.6g"] * 3 + ["%d"] * 4)
        else:
            stream.write(vertex.tobytes())
    return count


def read_ply(path: Path) -> np.ndarray:
    """Read a PLY written by `write_ply` (binary or ascii) back as a structured (N,) array."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    types = {"float": "<f4", "uchar": "u1"}
    dtype = [(line.split()[2], types[line.split()[1]]) for line in header if line.startswith("property")]
    if "format ascii 1.0" in header:
        rows = [tuple(line.split()) for line in data[end:].decode("ascii").splitlines() if line.strip()]
        return np.array(rows, dtype=[(n, "U32") for n, _ in dtype]).astype(dtype)[:count]
    return np.frombuffer(data, dtype=dtype, count=count, offset=end)


def latency_summary(latencies_ms: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """{name: [ms, ...]} -> {name: {"count", "p50_ms", "p95_ms", "max_ms"}} (names with no samples skipped)."""
    summary = {}
    for name, values in latencies_ms.items():
        if values:
            arr = np.asarray(values, dtype=np.float64)
            summary[name] = {"count": int(arr.size), "p50_ms": float(np.percentile(arr, 50)),
                             "p95_ms": float(np.percentile(arr, 95)), "max_ms": float(arr.max())}
    return summary


def format_latency_table(summary: dict[str, dict[str, float]]) -> str:
    """The latency summary as a fixed-width text table."""
    lines = [f"{'stream':<16} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}"]
    for name, s in summary.items():
        lines.append(f"{name:<16} {s['count']:>5d} {s['p50_ms']:>9.1f} {s['p95_ms']:>9.1f} {s['max_ms']:>9.1f}")
    return "\n".join(lines)


def write_frame(frame_dir: Path, messages: dict, ply_ascii: bool = False) -> list[str]:
    """Convert one frame's messages ({relative topic: msg}) and write its files; returns the file names."""
    from mtpano_ros.ros import conversions

    frame_dir.mkdir(parents=True, exist_ok=True)
    written = []
    arrays = {}
    for topic, name in (("semantic/color", "semantic_color.png"), ("normals/color", "normals_color.png")):
        if topic in messages:
            msg = messages[topic]
            bgr = cv2.cvtColor(conversions.to_rgb(conversions.image_to_array(msg), msg.encoding), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(frame_dir / name), bgr)
            written.append(name)
    if "semantic" in messages:
        arrays["semantic"] = conversions.image_to_array(messages["semantic"]).astype(np.uint8)
        cv2.imwrite(str(frame_dir / "semantic.png"), arrays["semantic"])
        written.append("semantic.png")
    if "depth" in messages:
        arrays["depth"] = conversions.image_to_array(messages["depth"]).astype(np.float32)
        cv2.imwrite(str(frame_dir / "depth_mm.png"), depth_to_mm_png(arrays["depth"]))
        written.append("depth_mm.png")
    if "normals" in messages:
        arrays["normals"] = conversions.image_to_array(messages["normals"]).astype(np.float32)
    if arrays:
        np.savez_compressed(frame_dir / "outputs.npz", **arrays)
        written.append("outputs.npz")
    if "points" in messages:
        cloud = conversions.pointcloud2_to_arrays(messages["points"])
        xyz = cloud["xyz"].reshape(-1, 3)
        keep = np.isfinite(xyz).all(axis=1)
        write_ply(frame_dir / "points.ply", xyz[keep], cloud["rgb"].reshape(-1, 3)[keep],
                  cloud["label"].reshape(-1)[keep], ascii=ply_ascii)
        written.append("points.ply")
    return written


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mtpano-record", description="Record the perception node's outputs as PNG, NPZ and PLY per frame.",
        epilog="ROS arguments go after --ros-args, e.g. --ros-args -r __ns:=/robot1")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--frames", type=int, default=0, help="exit after this many complete frames (0 = no limit)")
    parser.add_argument("--timeout-s", type=float, default=0.0, help="exit after this many seconds (0 = no limit)")
    parser.add_argument("--topics", nargs="+", default=list(OUTPUT_TOPICS), choices=OUTPUT_TOPICS,
                        help="which outputs to record (default: all)")
    parser.add_argument("--ply-format", choices=("binary", "ascii"), default="binary", help="PLY encoding")
    parser.add_argument("--reliability", choices=("auto", "reliable", "best_effort"), default="auto",
                        help="subscription reliability; auto matches the publishers seen at start-up")
    parser.add_argument("--incomplete-after-s", type=float, default=5.0,
                        help="drop a frame that still misses topics this long after its first message")
    parser.add_argument("--max-queue", type=int, default=8,
                        help="at most this many complete frames wait for the writer; more are dropped")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console script `mtpano-record`. Returns 0 when --frames frames were recorded (or no limit was set)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse_args(rclpy.utilities.remove_ros_args(["mtpano-record", *argv])[1:])
    args.out.mkdir(parents=True, exist_ok=True)

    rclpy.init(args=["mtpano-record", *argv])
    node = Node("mtpano_record")
    log = node.get_logger()
    lock = threading.Lock()
    pending: dict[int, dict] = {}  # stamp_ns -> {"messages": {topic: msg}, "received_ns": {topic: ns}, "first": t}
    frames: list[dict] = []
    dropped = {"incomplete": 0, "queue_full": 0}
    latencies: dict[str, list[float]] = {topic: [] for topic in args.topics}
    latencies["frame"] = []
    work: queue.Queue = queue.Queue(maxsize=max(1, args.max_queue))
    done = threading.Event()
    topics = list(args.topics)

    def finish_frame(stamp_ns: int) -> None:
        entry = pending.pop(stamp_ns)
        received = entry["received_ns"]
        if len(received) < len(topics):
            dropped["incomplete"] += 1
            missing = sorted(set(topics) - set(received))
            log.warning(f"dropped incomplete frame (stamp {stamp_ns}): no {', '.join(missing)}")
            return
        latencies["frame"].append((max(received.values()) - stamp_ns) / 1e6)
        index = len(frames)
        record = {"index": index, "dir": f"frame_{index:04d}", "stamp_ns": stamp_ns,
                  "frame_id": next(iter(entry["messages"].values())).header.frame_id,
                  "topics": sorted(received), "complete": True,
                  "latency_ms": {t: (ns - stamp_ns) / 1e6 for t, ns in received.items()}}
        try:
            work.put_nowait((record, entry["messages"]))
        except queue.Full:
            dropped["queue_full"] += 1
            log.warning(f"dropped frame (stamp {stamp_ns}): {work.maxsize} frames already wait for the disk")
            return
        frames.append(record)
        worst_ms = max(record["latency_ms"].values())
        log.info(f"{record['dir']}: complete ({len(received)} topics, stamp {stamp_ns}, last after "
                 f"{worst_ms:.0f} ms)")

    def expire(now: float) -> None:
        with lock:
            for stamp_ns in sorted(s for s, e in pending.items() if now - e["first"] > args.incomplete_after_s):
                finish_frame(stamp_ns)

    def make_callback(topic: str):
        def callback(msg, info) -> None:
            # The middleware's reception time, so that a busy executor does not inflate the latency.
            now_ns = int(info.get("received_timestamp") or 0) or time.time_ns()
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with lock:
                if done.is_set():
                    return
                latencies[topic].append((now_ns - stamp_ns) / 1e6)
                entry = pending.setdefault(stamp_ns, {"messages": {}, "received_ns": {}, "first": time.monotonic()})
                entry["messages"][topic] = msg
                entry["received_ns"][topic] = now_ns
                if len(entry["messages"]) == len(topics):
                    # Frames older than a complete one will not complete any more: write what they have.
                    for old in sorted(s for s in pending if s < stamp_ns):
                        finish_frame(old)
                    finish_frame(stamp_ns)
                    if args.frames and sum(f["complete"] for f in frames) >= args.frames:
                        done.set()
        return callback

    def writer() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            record, messages = item
            try:
                record["files"] = write_frame(args.out / record["dir"], messages, args.ply_format == "ascii")
            except Exception as error:  # a bad message must not stop the recorder
                record["error"] = f"{type(error).__name__}: {error}"
                log.error(f"could not write {record['dir']}: {record['error']}")

    writer_thread = threading.Thread(target=writer, daemon=True)
    writer_thread.start()
    subscriptions = []
    for topic in topics:
        msg_type = PointCloud2 if topic == "points" else Image
        resolved = node.resolve_topic_name(topic)
        if args.reliability == "auto":
            qos = matching_qos(node, resolved)
        else:
            policy = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
            qos = QoSProfile(depth=5, reliability=policy)
        subscriptions.append(node.create_subscription(msg_type, resolved, make_callback(topic), qos))
    log.info(f"recording {', '.join(topics)} into {args.out}"
             + (f" until {args.frames} frame(s)" if args.frames else "")
             + (f" or {args.timeout_s:g} s" if args.timeout_s else ""))

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    start = time.monotonic()
    connected = False
    try:
        while rclpy.ok() and not done.is_set():
            if not connected and all(sub.get_publisher_count() > 0 for sub in subscriptions):
                connected = True  # every output has a matched publisher: nothing the node publishes now is missed
                log.info("connected: every recorded topic has a publisher")
            if args.timeout_s and time.monotonic() - start > args.timeout_s:
                log.warning(f"timeout after {args.timeout_s:g} s")
                break
            executor.spin_once(timeout_sec=0.1)
            expire(time.monotonic())
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C / SIGTERM: write what we have
        pass
    finally:
        with lock:
            done.set()
            for stamp_ns in sorted(pending):
                finish_frame(stamp_ns)
        work.put(None)  # blocks while the queue is full: the writer drains it
        writer_thread.join()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    summary = latency_summary(latencies)
    (args.out / "frames.json").write_text(json.dumps(frames, indent=1))
    (args.out / "latency.json").write_text(json.dumps(summary, indent=1))
    (args.out / "dropped.json").write_text(json.dumps(dropped, indent=1))
    complete = len(frames)
    print(f"recorded {complete} frame(s) into {args.out}; dropped {dropped['incomplete']} incomplete, "
          f"{dropped['queue_full']} for a full queue")
    print("latency from image stamp to reception:")
    print(format_latency_table(summary), flush=True)
    return 0 if not args.frames or complete >= args.frames else 1


if __name__ == "__main__":
    sys.exit(main())

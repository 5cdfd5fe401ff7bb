"""mtpano-replay and mtpano-record over real DDS (Fast DDS), each run on its own ROS domain.

Replay runs as a subprocess and is received here; record runs as a subprocess and is fed here with synthetic
node outputs whose values are known, then its PNG / NPZ / PLY files are read back and compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402

from mtpano_ros.ros import conversions  # noqa: E402
from mtpano_ros.ros.record import depth_to_mm_png, latency_summary, read_ply, write_ply  # noqa: E402

_DOMAIN_BASE = 120 + os.getpid() % 50
_domain_counter = iter(range(1000))


def _domain_id() -> int:
    """A ROS domain id per test (120..229), so parallel runs and other suites do not cross-talk."""
    return _DOMAIN_BASE + next(_domain_counter) % 60


class _Ros:
    """An rclpy context + node spinning in a background thread, on one domain."""

    def __init__(self, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("mtpano_test", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    return env


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def ros_domain(monkeypatch):
    domain_id = _domain_id()
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    ros = _Ros(domain_id)
    yield ros, domain_id
    ros.close()


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _panorama(seed: int, hw=(24, 48)) -> np.ndarray:
    """A small (H, W, 3) uint8 BGR test image with a gradient plus noise (distinct per seed)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(*hw, 3), dtype=np.uint8)
    img[:, :, 0] = np.linspace(0, 255, hw[1], dtype=np.uint8)[None, :]
    return img


def _run_replay(args: list[str], domain_id: int, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtpano_ros.ros.replay", *args], env=_env(domain_id),
                          capture_output=True, text=True, timeout=timeout_s)


def test_replay_folder_raw_and_compressed(ros_domain, tmp_path):
    ros, domain_id = ros_domain
    folder = tmp_path / "panos"
    folder.mkdir()
    images = {f"p{i}.png": _panorama(i, hw=(24 + 2 * i, 48 + 4 * i)) for i in range(3)}
    for name, img in images.items():
        cv2.imwrite(str(folder / name), img)
    cv2.imwrite(str(folder / "q.jpg"), _panorama(9))
    (folder / "notes.txt").write_text("not an image")

    raw, compressed = [], []
    ros.node.create_subscription(Image, "/cam/image", raw.append, QoSProfile(depth=20))
    ros.node.create_subscription(CompressedImage, "image/compressed", compressed.append,
                                 QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT))
    before_ns = time.time_ns()
    done = _run_replay([str(folder), "--rate-hz", "50", "--wait-subscribers", "1", "--encoding", "rgb8",
                        "--manifest", str(tmp_path / "manifest.json"),
                        "--ros-args", "-r", "image:=/cam/image", "-p", "frame_id:=pano_cam"], domain_id)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert _wait(lambda: len(raw) == 4, 10), f"received {len(raw)} of 4 images"
    names = sorted(images) + ["q.jpg"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [m["name"] for m in manifest] == names
    for msg, name, entry in zip(raw, names, manifest):
        assert msg.encoding == "rgb8" and msg.header.frame_id == "pano_cam"
        assert _stamp_ns(msg) == entry["stamp_ns"] and _stamp_ns(msg) >= before_ns
        got = conversions.image_to_array(msg)
        if name.endswith(".png"):
            np.testing.assert_array_equal(got, cv2.cvtColor(images[name], cv2.COLOR_BGR2RGB))
        else:
            assert got.shape == (24, 48, 3)
    stamps = [_stamp_ns(m) for m in raw]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    # Compressed transport, looping past the end of the folder: files go out as their own bytes.
    done = _run_replay([str(folder), "--transport", "compressed", "--count", "5", "--rate-hz", "50",
                        "--wait-subscribers", "1"], domain_id)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert _wait(lambda: len(compressed) == 5, 10), f"received {len(compressed)} of 5 compressed images"
    expected = names + names[:1]
    for msg, name in zip(compressed, expected):
        assert bytes(msg.data) == (folder / name).read_bytes()
        assert msg.format == ("png" if name.endswith(".png") else "jpeg")
        assert msg.header.frame_id == "camera_link"


IMAGE_MSGDEF = """std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""
COMPRESSED_MSGDEF = """std_msgs/Header header
string format
uint8[] data
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""


def _write_bag(path: Path) -> list[tuple[str, np.ndarray]]:
    """A tiny ROS 2 MCAP bag: two rgb8 Images and one PNG CompressedImage; returns (frame_id, BGR) in order."""
    from mcap_ros2.writer import Writer

    frames = []
    with open(path, "wb") as stream:
        writer = Writer(stream)
        image_schema = writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_MSGDEF)
        compressed_schema = writer.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_MSGDEF)
        for i in range(2):
            bgr = _panorama(20 + i, hw=(16, 32))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            header = {"stamp": {"sec": 100 + i, "nanosec": 0}, "frame_id": f"theta_{i}"}
            writer.write_message("/theta/image_raw", image_schema,
                                 {"header": header, "height": 16, "width": 32, "encoding": "rgb8", "is_bigendian": 0,
                                  "step": 32 * 3, "data": rgb.tobytes()}, log_time=(100 + i) * 10**9)
            frames.append((f"theta_{i}", bgr))
        bgr = _panorama(30, hw=(20, 40))
        png = cv2.imencode(".png", bgr)[1].tobytes()
        writer.write_message("/theta/image_raw/compressed", compressed_schema,
                             {"header": {"stamp": {"sec": 103, "nanosec": 0}, "frame_id": "theta_c"},
                              "format": "png", "data": png}, log_time=103 * 10**9)
        frames.append(("theta_c", bgr))
        writer.finish()
    return frames


def test_replay_mcap_bag(ros_domain, tmp_path):
    ros, domain_id = ros_domain
    bag = tmp_path / "tiny.mcap"
    frames = _write_bag(bag)
    raw = []
    ros.node.create_subscription(Image, "image", raw.append, QoSProfile(depth=20))
    done = _run_replay([str(bag), "--encoding", "bgr8", "--frame-id", "", "--rate-hz", "50",
                        "--wait-subscribers", "1"], domain_id)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert _wait(lambda: len(raw) == 3, 10), f"received {len(raw)} of 3 images"
    for msg, (frame_id, bgr) in zip(raw, frames):
        assert msg.encoding == "bgr8" and msg.header.frame_id == frame_id  # empty frame_id keeps the bag's
        np.testing.assert_array_equal(conversions.image_to_array(msg), bgr)
        assert _stamp_ns(msg) > 200 * 10**9  # restamped now, not the bag's stamps

    raw.clear()
    done = _run_replay([str(bag), "--bag-topic", "/theta/image_raw", "--rate-hz", "50", "--wait-subscribers", "1"],
                       domain_id)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert _wait(lambda: len(raw) == 2, 10), f"received {len(raw)} of 2 images"
    assert all(m.header.frame_id == "camera_link" and m.encoding == "rgb8" for m in raw)


def test_replay_streams_bags_and_cycles(tmp_path, monkeypatch):
    from mtpano_ros.ros import replay

    bag = tmp_path / "tiny.mcap"
    frames = _write_bag(bag)
    source = replay.source_frames(bag)
    assert isinstance(source, replay.BagFrames) and len(source) == 3
    assert len(replay.BagFrames(bag, "/theta/image_raw")) == 2
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: (opened.append(a[0]), real_open(*a, **k))[1])
    names = [f.message.header.frame_id for f in replay.play_order(source, loop=False, count=7)]
    assert names == [fid for fid, _ in frames] * 2 + [frames[0][0]]
    assert opened.count(bag) == 3  # one streaming pass over the file per cycle, nothing kept between them
    endless = replay.play_order(source, loop=True, count=0)
    assert len([next(endless) for _ in range(10)]) == 10
    assert [f.name for f in replay.play_order([replay.Frame("a"), replay.Frame("b")], False, 0)] == ["a", "b"]


def test_replay_rejects_bad_source(tmp_path):
    (tmp_path / "empty").mkdir()
    for source in (tmp_path / "empty", tmp_path / "missing"):
        done = _run_replay([str(source)], 0, timeout_s=30)
        assert done.returncode == 2
        assert str(source) in done.stderr


def _outputs(seed: int, hw=(8, 16)) -> dict[str, np.ndarray]:
    """Synthetic node outputs with NaN holes: semantic (H, W) uint8, depth (H, W) m, normals (H, W, 3), colours."""
    rng = np.random.default_rng(seed)
    semantic = rng.integers(0, 150, size=hw).astype(np.uint8)
    semantic[0, :3] = 255
    depth = rng.uniform(0.3, 60.0, size=hw).astype(np.float32)
    depth[1, :4] = np.nan
    normals = rng.normal(size=(*hw, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[1, :4] = np.nan
    return {"semantic": semantic, "depth": depth, "normals": normals,
            "semantic_color": rng.integers(0, 255, size=(*hw, 3), dtype=np.uint8),
            "normals_color": conversions.normals_to_rgb(normals)}


def test_record_writes_png_npz_ply_and_latency(ros_domain, tmp_path):
    from std_msgs.msg import Header

    ros, domain_id = ros_domain
    node = ros.node
    topics = {"semantic": Image, "semantic/color": Image, "depth": Image, "normals": Image, "normals/color": Image,
              "points": PointCloud2}
    pubs = {t: node.create_publisher(kind, f"/robot/{t}", QoSProfile(depth=5)) for t, kind in topics.items()}
    out = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-m", "mtpano_ros.ros.record", "--out", str(out), "--frames", "2",
                             "--timeout-s", "60", "--incomplete-after-s", "1", "--ros-args", "-r", "__ns:=/robot"],
                            env=_env(domain_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 30), "recorder not subscribed"
        time.sleep(0.3)
        partial = _outputs(9)  # a frame that never completes: dropped after --incomplete-after-s, not written
        header = Header(frame_id="partial", stamp=node.get_clock().now().to_msg())
        pubs["semantic"].publish(conversions.array_to_image(partial["semantic"], "mono8", header))
        pubs["depth"].publish(conversions.array_to_image(partial["depth"], "32FC1", header))
        time.sleep(2.0)  # longer than --incomplete-after-s: the recorder expires it before the next frames
        sent = []
        for i in range(2):
            o = _outputs(i)
            header = Header(frame_id="pano_cam", stamp=node.get_clock().now().to_msg())
            cloud = conversions.build_pointcloud2(o["depth"], o["semantic_color"], o["semantic"], header=header,
                                                  organized=(i == 0))
            msgs = {"semantic": conversions.array_to_image(o["semantic"], "mono8", header),
                    "semantic/color": conversions.array_to_image(o["semantic_color"], "rgb8", header),
                    "depth": conversions.array_to_image(o["depth"], "32FC1", header),
                    "normals": conversions.array_to_image(o["normals"], "32FC3", header),
                    "normals/color": conversions.array_to_image(o["normals_color"], "rgb8", header),
                    "points": cloud}
            for topic, msg in msgs.items():
                pubs[topic].publish(msg)
            sent.append((o, cloud))
            time.sleep(0.2)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout
    assert "p50 ms" in stdout and "frame" in stdout

    frames = json.loads((out / "frames.json").read_text())
    assert [f["complete"] for f in frames] == [True, True]
    assert json.loads((out / "dropped.json").read_text()) == {"incomplete": 1, "queue_full": 0}
    assert "dropped incomplete frame" in stdout and "no normals, normals/color, points, semantic/color" in stdout
    for record, (o, cloud) in zip(frames, sent):
        d = out / record["dir"]
        assert record["frame_id"] == "pano_cam"
        np.testing.assert_array_equal(cv2.imread(str(d / "semantic.png"), cv2.IMREAD_UNCHANGED), o["semantic"])
        for name in ("semantic_color", "normals_color"):
            png = cv2.cvtColor(cv2.imread(str(d / f"{name}.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(png, o[name])
        depth_png = cv2.imread(str(d / "depth_mm.png"), cv2.IMREAD_UNCHANGED)
        assert depth_png.dtype == np.uint16 and depth_png.shape == o["depth"].shape
        valid = np.isfinite(o["depth"])
        assert (depth_png[~valid] == 0).all()
        np.testing.assert_allclose(depth_png[valid] / 1000.0, o["depth"][valid], atol=0.0006)
        with np.load(d / "outputs.npz") as npz:
            np.testing.assert_array_equal(npz["semantic"], o["semantic"])
            np.testing.assert_array_equal(npz["depth"], o["depth"])
            np.testing.assert_array_equal(npz["normals"], o["normals"])
        ply = read_ply(d / "points.ply")
        expected = conversions.pointcloud2_to_arrays(cloud)
        keep = np.isfinite(expected["xyz"].reshape(-1, 3)).all(axis=1)
        assert len(ply) == int(valid.sum()) == int(keep.sum())
        xyz = np.stack([ply["x"], ply["y"], ply["z"]], axis=-1)
        np.testing.assert_array_equal(xyz, expected["xyz"].reshape(-1, 3)[keep])
        np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), o["depth"][valid], rtol=1e-5)
        np.testing.assert_array_equal(ply["label"], o["semantic"][valid])
        np.testing.assert_array_equal(np.stack([ply["red"], ply["green"], ply["blue"]], -1), o["semantic_color"][valid])

    latency = json.loads((out / "latency.json").read_text())
    assert set(latency) == set(topics) | {"frame"}
    for name, stats in latency.items():  # the partial frame's two messages count for their topics
        assert stats["count"] == (3 if name in ("semantic", "depth") else 2), name
        assert 0 <= stats["p50_ms"] <= stats["p95_ms"] <= stats["max_ms"]


def test_ply_ascii_roundtrip_and_depth_png(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 255, size=(50, 3), dtype=np.uint8)
    label = rng.integers(0, 150, size=50).astype(np.uint8)
    for ascii in (False, True):
        path = tmp_path / f"p{int(ascii)}.ply"
        assert write_ply(path, xyz, rgb, label, ascii=ascii) == 50
        ply = read_ply(path)
        assert (b"format ascii" in path.read_bytes()[:40]) == ascii
        np.testing.assert_allclose(np.stack([ply["x"], ply["y"], ply["z"]], -1), xyz, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.stack([ply["red"], ply["green"], ply["blue"]], -1), rgb)
        np.testing.assert_array_equal(ply["label"], label)

    depth = np.array([[np.nan, -1.0, 0.0, 0.0004, 1.2344, 65.535, 70.0, np.inf]], dtype=np.float32)
    np.testing.assert_array_equal(depth_to_mm_png(depth), [[0, 0, 0, 0, 1234, 65535, 0, 0]])
    summary = latency_summary({"a": [1.0, 2.0, 3.0, 100.0], "b": []})
    assert set(summary) == {"a"} and summary["a"]["max_ms"] == 100.0 and summary["a"]["count"] == 4
    assert 2.0 <= summary["a"]["p50_ms"] <= 3.0


def test_demo_end_to_end(tmp_path):
    """python -m mtpano_ros.ros.demo: node + recorder + replay, every panorama (any size, jpg and png) recorded."""
    model = pytest.importorskip("mtpano_ros.model")
    if "mtpano-tiny" not in getattr(model, "list_models", list)():
        pytest.skip("the model registry has no mtpano-tiny")
    panos = tmp_path / "panos"
    panos.mkdir()
    cv2.imwrite(str(panos / "a.jpg"), _panorama(1, hw=(64, 128)))
    cv2.imwrite(str(panos / "b.png"), _panorama(2, hw=(50, 90)))  # odd size and aspect
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "mtpano_ros.ros.demo", "--panos", str(panos), "--out", str(out),
                           "--model", "mtpano-tiny", "--backend", "torch", "--domain-id", str(_domain_id()),
                           "--ready-timeout-s", "300", "--frame-timeout-s", "120"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "2/2 panorama(s) complete" in done.stdout and "p95 ms" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [r["panorama"] for r in summary["panoramas"]] == ["a.jpg", "b.png"]
    assert [r["input"] for r in summary["panoramas"]] == ["128x64", "90x50"]
    for name in ("a", "b"):
        d = out / name
        with np.load(d / "outputs.npz") as npz:
            semantic, depth, normals = npz["semantic"], npz["depth"], npz["normals"]
        assert semantic.shape == depth.shape == normals.shape[:2] and normals.shape[2] == 3
        np.testing.assert_array_equal(cv2.imread(str(d / "semantic.png"), cv2.IMREAD_UNCHANGED), semantic)
        assert len(read_ply(d / "points.ply")) == int(np.isfinite(depth).sum())
        assert cv2.imread(str(d / "semantic_color.png")).shape == (*semantic.shape, 3)
    assert summary["latency"]["frame"]["count"] == 2


def test_record_bounds_its_writer_queue(ros_domain, tmp_path):
    """Complete frames arriving faster than the disk takes them: at most --max-queue wait, the rest are dropped
    and counted (frames.json lists only written frames)."""
    from std_msgs.msg import Header

    ros, domain_id = ros_domain
    node = ros.node
    pubs = {"depth": node.create_publisher(Image, "/rq/depth", QoSProfile(depth=20)),
            "normals": node.create_publisher(Image, "/rq/normals", QoSProfile(depth=20))}
    out = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-m", "mtpano_ros.ros.record", "--out", str(out), "--topics", "depth",
                             "normals", "--max-queue", "1", "--timeout-s", "10", "--ros-args", "-r", "__ns:=/rq"],
                            env=_env(domain_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 30), "recorder not subscribed"
        time.sleep(0.5)
        o = _outputs(3, hw=(512, 1024))  # each frame: a compressed 6 MiB normals array to write, slow on purpose
        sent = 8
        for _ in range(sent):
            header = Header(frame_id="pano", stamp=node.get_clock().now().to_msg())
            pubs["depth"].publish(conversions.array_to_image(o["depth"], "32FC1", header))
            pubs["normals"].publish(conversions.array_to_image(o["normals"], "32FC3", header))
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    dropped = json.loads((out / "dropped.json").read_text())
    frames = json.loads((out / "frames.json").read_text())
    assert dropped["queue_full"] >= 1, stdout
    assert len(frames) + dropped["queue_full"] + dropped["incomplete"] <= sent
    assert all((out / f["dir"] / "outputs.npz").exists() for f in frames)
    assert "frames already wait for the disk" in stdout

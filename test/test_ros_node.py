"""The perception node end to end over real Fast DDS: panoramas in, every output checked; bad input survived.

Two node subprocesses (raw and compressed transport) run a small random-init model (mtpano-tiny at 128x256) on
one CPU thread. The test process publishes and subscribes with rclpy in a unique ROS_DOMAIN_ID.
"""

from __future__ import annotations

import os
import re
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from conftest import wait_for  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402

from mtpano_ros.geometry import erp_ray_grid_np  # noqa: E402
from mtpano_ros.labels import colorize_labels  # noqa: E402
from mtpano_ros.ros import conversions as C  # noqa: E402

PANOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panoramas"
MODEL_HW = (128, 256)
TOPICS = {"semantic": Image, "semantic/color": Image, "depth": Image, "normals": Image, "normals/color": Image,
          "points": PointCloud2}
ENCODING = {"semantic": "mono8", "semantic/color": "rgb8", "depth": "32FC1", "normals": "32FC3",
            "normals/color": "rgb8"}
BASE_PARAMS = {"model": "mtpano-tiny", "backend": "torch", "device": "cpu", "input_height": MODEL_HW[0],
               "input_width": MODEL_HW[1], "threads": 1, "warn_period_s": 1.0}


class Harness:
    """Publishes input to one node namespace and collects its outputs and diagnostics by stamp."""

    def __init__(self, client, ns: str, compressed: bool):
        self.client, self.ns = client, ns
        self.lock = threading.Lock()
        self.outputs: dict[str, dict[int, object]] = {t: {} for t in TOPICS}
        self.diagnostics: list = []
        self.levels: list[tuple[bytes, str]] = []  # (level, message) of every status of this node
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in TOPICS.items():
            client.node.create_subscription(msg_type, f"{ns}/{topic}", self._saver(topic), qos)
        client.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        in_type = CompressedImage if compressed else Image
        self.pub = client.node.create_publisher(in_type, f"{ns}/image" + ("/compressed" if compressed else ""), qos)
        assert wait_for(lambda: self.pub.get_subscription_count() >= 1 and all(
            client.node.count_publishers(f"{ns}/{t}") >= 1 for t in TOPICS), 30.0), "node topics not discovered"
        time.sleep(1.0)  # let the node's publishers match our subscriptions too

    def _saver(self, topic):
        def save(msg):
            with self.lock:
                self.outputs[topic][msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg
        return save

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name.startswith(f"{self.ns}/mtpano_perception"):
                with self.lock:
                    self.diagnostics.append({kv.key: kv.value for kv in status.values})
                    self.levels.append((status.level, status.message))

    def send(self, msg, stamp_ns: int, frame_id: str = "theta_link", timeout_s: float = 60.0) -> dict:
        """Publish msg with this stamp (re-sent every 10 s: the node's input is best effort) and return
        {topic: output message} once every output topic has one with the same stamp."""
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.header.frame_id = frame_id
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.pub.publish(msg)
            if wait_for(lambda: all(stamp_ns in self.outputs[t] for t in TOPICS), min(10.0, end - time.monotonic())):
                with self.lock:
                    return {t: self.outputs[t][stamp_ns] for t in TOPICS}
        missing = [t for t in TOPICS if stamp_ns not in self.outputs[t]]
        raise AssertionError(f"no output on {missing} for stamp {stamp_ns}")

    def latest_diagnostics(self) -> dict:
        with self.lock:
            return dict(self.diagnostics[-1]) if self.diagnostics else {}


def check_outputs(out: dict, out_hw: tuple[int, int], frame_id: str, stamp_ns: int, color_rgb: np.ndarray,
                  organized: bool = True, stride: int = 1) -> None:
    for topic, msg in out.items():
        assert msg.header.frame_id == frame_id, topic
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp_ns, topic
        if topic in ENCODING:
            assert msg.encoding == ENCODING[topic], topic
            assert (msg.height, msg.width) == out_hw, topic
    semantic = C.image_to_array(out["semantic"])
    depth = C.image_to_array(out["depth"])
    normals = C.image_to_array(out["normals"])
    assert semantic.dtype == np.uint8 and ((semantic < 150) | (semantic == 255)).all()
    np.testing.assert_array_equal(C.image_to_array(out["semantic/color"]), colorize_labels(semantic))
    finite = np.isfinite(depth)
    assert (depth[finite] > 0).all()
    n_ok = np.isfinite(normals).all(axis=-1)
    np.testing.assert_allclose(np.linalg.norm(normals[n_ok], axis=-1), 1.0, atol=1e-3)
    assert np.abs(C.image_to_array(out["normals/color"]).astype(int) - C.normals_to_rgb(normals)).max() <= 1

    cloud = out["points"]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label"]
    assert cloud.point_step == 20 and cloud.row_step == cloud.point_step * cloud.width
    got = C.pointcloud2_to_arrays(cloud)
    rays = erp_ray_grid_np(*out_hw)[::stride, ::stride]
    d = depth[::stride, ::stride]
    valid = np.isfinite(d) & (d > 0)
    expected_xyz = rays * d[..., None]
    if organized:
        assert (cloud.height, cloud.width, cloud.is_dense) == (*d.shape, False)
        np.testing.assert_allclose(got["xyz"][valid], expected_xyz[valid], rtol=1e-5, atol=1e-5)
        assert np.isnan(got["xyz"][~valid]).all()
        np.testing.assert_array_equal(got["label"], semantic[::stride, ::stride])
        np.testing.assert_array_equal(got["rgb"], color_rgb[::stride, ::stride])
    else:
        assert (cloud.height, cloud.width, cloud.is_dense) == (1, int(valid.sum()), True)
        np.testing.assert_allclose(got["xyz"][0], expected_xyz[valid], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got["label"][0], semantic[::stride, ::stride][valid])
        np.testing.assert_array_equal(got["rgb"][0], color_rgb[::stride, ::stride][valid])


def _real_panoramas(names):
    paths = [PANOS / n for n in names if (PANOS / n).exists()]
    return [(p.name, cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)) for p in paths]


def _synthetic(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _as_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    return {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
            "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
            "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])}[encoding]


@pytest.fixture(scope="module")
def raw_node(perception_node):
    ns = f"/mtpano_e2e_raw_{os.getpid()}"
    config = Path(__file__).resolve().parents[1] / "config" / "perception.yaml"  # the shipped file, overridden
    return ns, perception_node(ns, dict(BASE_PARAMS, max_input_pixels=4096 * 4096, stale_after_s=3.0),
                               params_file=config)


@pytest.fixture(scope="module")
def raw_harness(raw_node, ros_client):
    return Harness(ros_client, raw_node[0], compressed=False)


def test_raw_panoramas_every_output(raw_node, raw_harness):
    ns, node = raw_node
    frames = [(name, "rgb8", rgb) for name, rgb in _real_panoramas(
        ["indoor_cabin_1024x512.jpg", "outdoor_sunset_2050x1025.jpg", "outdoor_park_4096x2048.jpg"])]
    frames += [("synthetic", enc, _synthetic(i, h, w)) for i, (enc, h, w) in enumerate(
        [("bgr8", 320, 640), ("mono8", 200, 400), ("rgba8", 200, 300), ("bgra8", 257, 515), ("rgb8", 2, 2)])]
    for i, (_name, encoding, rgb) in enumerate(frames):
        data = _as_encoding(rgb, encoding)
        msg = C.array_to_image(np.ascontiguousarray(data), encoding)
        frame_id = {1: "", 2: "theta_optical_frame", 3: "theta_optical_frame"}.get(i, "theta_link")
        stamp = 1_700_000_000 * 10**9 + i * 1_000_003
        out = raw_harness.send(msg, stamp, frame_id)
        expected_color = C.to_rgb(data, encoding, MODEL_HW)
        check_outputs(out, MODEL_HW, frame_id or "camera_link", stamp, expected_color)
    assert node.alive()
    log = node.log()
    assert log.count("not 2:1") == 1, log  # said once, although several inputs were not 2:1
    assert log.count("empty header.frame_id") == 1, log
    assert log.count("an optical frame (z forward, x right, y down)") == 1, log  # two optical inputs, one warning
    diag = raw_harness.latest_diagnostics()
    assert wait_for(lambda: int(raw_harness.latest_diagnostics().get("frames_processed", 0)) >= len(frames), 5.0)
    diag = raw_harness.latest_diagnostics()
    assert diag["backend"] == "torch" and diag["model"] and diag["model_input"] == "256x128"
    for key in ("input_rate_hz", "output_rate_hz", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
                "frames_dropped", "errors_total"):
        assert key in diag, key
    assert float(diag["latency_ms_p99"]) >= float(diag["latency_ms_p50"]) > 0


def _bad_raw(rng: np.random.Generator) -> tuple[str, Image]:
    kind = rng.choice(["encoding", "step", "truncated", "data_size", "size", "too_large"])
    h, w = int(rng.integers(2, 40)), int(rng.integers(2, 80))
    msg = C.array_to_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8")
    if kind == "encoding":
        msg.encoding = str(rng.choice(["16UC1", "32FC1", "yuv422", "bayer_rggb8", "", "RGB8", "8UC3"]))
    elif kind == "step":
        msg.step = int(rng.integers(0, w * 3))
    elif kind == "truncated":
        if rng.random() < 0.2:  # a 4096x2048 header with a few bytes of data
            msg.width, msg.height, msg.step = 4096, 2048, 4096 * 3
        msg.data = bytes(msg.data)[:int(rng.integers(0, len(msg.data)))]
    elif kind == "data_size":
        msg.data = bytes(msg.data) + bytes(int(rng.integers(1, 100)))
    elif kind == "size":
        msg.width, msg.height = [(0, 0), (1, 1), (0, 10), (10, 1)][int(rng.integers(0, 4))]
        msg.step, msg.data = msg.width * 3, bytes(msg.width * msg.height * 3)
    else:
        msg.width, msg.height, msg.step = 8192, 4096, 8192 * 3
    return str(kind), msg


def _count_kind_lines(log: str, kind: str) -> int:
    return len(re.findall(rf"bad input \({kind}\)", log))


def test_raw_bad_input_survives(raw_node, raw_harness):
    ns, node = raw_node
    rng = np.random.default_rng(1234)
    sent: dict[str, int] = {}
    t0 = time.monotonic()
    for _ in range(1000):
        kind, msg = _bad_raw(rng)
        sent[kind] = sent.get(kind, 0) + 1
        raw_harness.pub.publish(msg)
        time.sleep(0.002)
    stamp = 1_800_000_000 * 10**9
    rgb = _synthetic(99, 256, 512)
    out = raw_harness.send(C.array_to_image(rgb, "rgb8"), stamp)
    check_outputs(out, MODEL_HW, "theta_link", stamp, C.to_rgb(rgb, "rgb8", MODEL_HW))
    elapsed = time.monotonic() - t0
    assert node.alive()
    time.sleep(1.5)  # one more diagnostics period
    diag = raw_harness.latest_diagnostics()
    log = node.log()
    received = 0
    for kind in sent:
        count = int(diag.get(f"errors.{kind}", 0))
        assert 0 < count <= sent[kind], (kind, count, sent[kind])
        received += count
        lines = _count_kind_lines(log, kind)
        assert 1 <= lines <= 2 + elapsed / BASE_PARAMS["warn_period_s"], (kind, lines)
    assert received >= 300  # much of the best-effort burst arrived (depth 1: a busy reader loses some), counted
    assert "expected rgb8/bgr8/rgba8/bgra8/mono8, got" in log and f"{ns}/image" in log


def _exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
    """JPEG of rgb (H, W, 3) tagged EXIF Orientation 6 (a viewer would turn it 90 degrees clockwise)."""
    import io

    from PIL import Image as PILImage

    exif = PILImage.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_diagnostics_ok_while_served_then_stale(raw_node, raw_harness):
    from diagnostic_msgs.msg import DiagnosticStatus

    ns, node = raw_node
    rgb = _synthetic(7, 128, 256)
    for i in range(3):
        raw_harness.send(C.array_to_image(rgb, "rgb8"), 2_140_000_000 * 10**9 + i)
    assert wait_for(lambda: raw_harness.levels and raw_harness.levels[-1][0] == DiagnosticStatus.OK, 5.0), \
        raw_harness.levels[-3:]
    with raw_harness.lock:
        seen = len(raw_harness.levels)
    # input stops: within stale_after_s (3 s) plus a diagnostics period the node says STALE, and why
    assert wait_for(lambda: raw_harness.levels[-1][0] == DiagnosticStatus.STALE, 8.0), raw_harness.levels[seen:]
    level, message = raw_harness.levels[-1]
    assert f"{ns}/image" in message and "no image received" in message
    raw_harness.send(C.array_to_image(rgb, "rgb8"), 2_140_000_000 * 10**9 + 9)  # input again: OK again
    assert wait_for(lambda: raw_harness.levels[-1][0] == DiagnosticStatus.OK, 5.0), raw_harness.levels[-3:]
    assert node.alive()


def _png_bytes(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()


def _bad_compressed(rng: np.random.Generator, jpeg: bytes, png: bytes) -> tuple[str, CompressedImage]:
    kind = str(rng.choice(["corrupt_jpeg", "truncated_jpeg", "wrong_size_png", "not_an_image", "huge_png",
                           "tiny_png"]))
    if kind == "corrupt_jpeg":
        data = bytearray(jpeg)
        start = int(rng.integers(2, 40))
        data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    elif kind == "truncated_jpeg":
        data = jpeg[:int(rng.integers(0, 300))]
    elif kind == "wrong_size_png":
        data = bytearray(png)
        data[16:24] = int(rng.integers(100, 2000)).to_bytes(4, "big") + int(rng.integers(50, 1000)).to_bytes(4, "big")
    elif kind == "not_an_image":
        data = rng.integers(0, 256, int(rng.integers(0, 500)), dtype=np.uint8).tobytes()
    elif kind == "huge_png":
        data = bytearray(png)
        data[16:24] = (8192 * 4).to_bytes(4, "big") + (4096 * 4).to_bytes(4, "big")
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # a valid header claiming 32768x16384
    else:
        data = _png_bytes(np.zeros((1, 1, 3), np.uint8))
    return kind, CompressedImage(format=str(rng.choice(["jpeg", "png", "rgb8; jpeg compressed bgr8"])),
                                 data=bytes(data))


def test_compressed_input_at_input_resolution_and_bad_compressed(perception_node, ros_client):
    ns = f"/mtpano_e2e_jpeg_{os.getpid()}"
    node = perception_node(ns, dict(BASE_PARAMS, input_transport="compressed", output_size="input",
                                    cloud_organized=False, cloud_stride=2, frame_id="pano_frame",
                                    override_frame_id=True))
    harness = Harness(ros_client, ns, compressed=True)
    files = [PANOS / n for n in ("indoor_cabin_1024x512.jpg", "indoor_office_1024x512.png") if (PANOS / n).exists()]
    inputs = [(p.read_bytes(), "jpeg" if p.suffix == ".jpg" else "png") for p in files]
    synthetic = _synthetic(5, 100, 200)
    inputs.append((_png_bytes(synthetic), "png"))
    inputs.append((_exif_rotated_jpeg(_synthetic(6, 120, 240)), "jpeg"))  # EXIF "rotate 90": served as stored
    for i, (data, fmt) in enumerate(inputs):
        stamp = 1_900_000_000 * 10**9 + i
        msg = CompressedImage(format=fmt, data=data)
        out = harness.send(msg, stamp, "ignored_frame")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        check_outputs(out, bgr.shape[:2], "pano_frame", stamp, bgr[..., ::-1], organized=False, stride=2)
    assert (out["depth"].height, out["depth"].width) == (120, 240)  # its true size, not rotated to 240x120

    rng = np.random.default_rng(4321)
    jpeg, png = bytes(C.encode_compressed(synthetic, "jpeg").data), _png_bytes(synthetic)
    sent: dict[str, int] = {}
    for _ in range(300):
        kind, msg = _bad_compressed(rng, jpeg, png)
        sent[kind] = sent.get(kind, 0) + 1
        harness.pub.publish(msg)
        time.sleep(0.003)
    stamp = 2_000_000_000 * 10**9
    out = harness.send(CompressedImage(format="png", data=png), stamp)
    check_outputs(out, (100, 200), "pano_frame", stamp, synthetic, organized=False, stride=2)
    assert node.alive()
    time.sleep(1.5)
    diag = harness.latest_diagnostics()
    errors = {k[len("errors."):]: int(v) for k, v in diag.items() if k.startswith("errors.")}
    assert set(errors) <= {"decode", "format", "too_large", "size"}, errors
    assert {"decode", "format", "too_large", "size"} <= set(errors), errors
    assert sum(errors.values()) <= sum(sent.values())
    assert sum(errors.values()) >= 100


def test_namespace_params_file_ground_scale_and_scan(perception_node, ros_client, tmp_path):
    """Under -r __ns:=/robot1 with a params file keyed /**/mtpano_perception: the file's values apply; with
    camera_height_m the ground in the published depth sits at that height; `scan` follows DESIGN §5 on the depth."""
    from conftest import brute_force_scan
    from sensor_msgs.msg import LaserScan

    from mtpano_ros.geometry.ground import ground_height
    from training.synthetic import make_scene, render_erp

    scene = make_scene(2000002)
    camera_height_m = round(float(scene.cam_pos[2]), 3)
    params = tmp_path / "robot1.yaml"
    params.write_text(
        "/**/mtpano_perception:\n  ros__parameters:\n    model: default\n    backend: torch\n    device: cpu\n"
        f"    threads: 1\n    camera_height_m: {camera_height_m}\n    frame_id: robot1_pano\n"
        "    override_frame_id: true\n    scan_num_beams: 128\n    scan_min_height_m: -0.4\n"
        "    scan_max_height_m: 0.6\n    scan_range_max_m: 20.0\n")
    node = perception_node("/robot1", {}, params_file=params)
    harness = Harness(ros_client, "/robot1", compressed=False)
    scans: dict[int, LaserScan] = {}
    ros_client.node.create_subscription(
        LaserScan, "/robot1/scan", lambda m: scans.__setitem__(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                                                               m), QoSProfile(depth=10))
    assert wait_for(lambda: ros_client.node.count_publishers("/robot1/scan") >= 1, 20.0)
    time.sleep(1.0)
    rgb = render_erp(scene, 256, 512)["rgb"]
    stamp = 2_100_000_000 * 10**9
    out = harness.send(C.array_to_image(rgb, "rgb8"), stamp, "theta_link")
    assert all(m.header.frame_id == "robot1_pano" for m in out.values())  # the file's frame_id applies
    depth, semantic = C.image_to_array(out["depth"]), C.image_to_array(out["semantic"])
    assert ground_height(depth, semantic) == pytest.approx(camera_height_m, rel=1e-3)
    assert wait_for(lambda: stamp in scans, 10.0), "no scan for the frame"
    scan = scans[stamp]
    assert len(scan.ranges) == 128 and scan.range_max == pytest.approx(20.0)
    np.testing.assert_allclose(np.asarray(scan.ranges), brute_force_scan(depth, 128, -0.4, 0.6, 0.1, 20.0),
                               rtol=1e-5)
    assert np.isfinite(np.asarray(scan.ranges)).sum() > 64  # walls and furniture in the band
    time.sleep(1.5)
    diag = harness.latest_diagnostics()
    assert float(diag["ground_scale"]) > 0 and diag["camera_height_m"] == f"{camera_height_m:g}"
    assert node.alive()

"""The perception node: one ERP panorama in; semantic, depth, normal images and a PointCloud2 out (DESIGN §5).

Run: ``perception_node --ros-args -r image:=/theta/image_raw --params-file config/perception.yaml``.

Threads: the executor thread runs the subscription callback (O(1) header checks, then the frame replaces the
pending one; a replaced frame counts as dropped) and the diagnostics timer; one inference thread takes the
newest frame, resizes it, runs the backend and publishes. So the subscription never blocks, nothing queues,
and the latency of a published frame is at most about two forward passes.
"""

from __future__ import annotations

import array
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, LaserScan, PointCloud2
from std_msgs.msg import Header

from mtpano_ros.geometry.ground import ScaleSmoother, ground_scale
from mtpano_ros.geometry.scan import scan_angles, virtual_scan
from mtpano_ros.labels import ADE20K_PALETTE, NUM_CLASSES
from mtpano_ros.ros.conversions import (
    INPUT_ENCODINGS,
    InputError,
    array_to_image,
    build_pointcloud2,
    check_size,
    compressed_size,
    decode_compressed,
    image_buffer,
    image_to_array,
    new_message,
    normals_to_rgb,
    to_rgb,
)
from mtpano_ros.ros.diagnostics import HealthThresholds, NodeStats, diagnostic_array
from mtpano_ros.ros.python_logging import forward_to_ros
from mtpano_ros.runtime.options import RuntimeOptions, option_choices, option_range, runtime_parameters

NODE_NAME = "mtpano_perception"
OUTPUT_TOPICS = ("semantic", "semantic/color", "depth", "normals", "normals/color", "points")  # dense, per pixel
SCAN_TOPIC = "scan"  # sensor_msgs/LaserScan, computed only while someone subscribes
_CHOICES = {
    "input_transport": ("raw", "compressed"),
    "reliability": ("best_effort", "reliable"),
    "output_size": ("model", "input"),
    **{name: option_choices(name) for name, _, _ in runtime_parameters() if option_choices(name)},
}
# ADE20K colours as little-endian uint32 0x00BBGGRR (bytes R, G, B, 0) per id: one gather per pixel, then RGBA -> RGB
_LABEL_RGBA = np.zeros((256, 4), dtype=np.uint8)
_LABEL_RGBA[:NUM_CLASSES, :3] = ADE20K_PALETTE
_LABEL_WORDS = np.ascontiguousarray(_LABEL_RGBA.view("<u4")[:, 0])


def _int(default: int, lo: int, hi: int, text: str, read_only: bool = False):
    return default, ParameterDescriptor(description=text, read_only=read_only,
                                        integer_range=[IntegerRange(from_value=lo, to_value=hi, step=1)])


def _float(default: float, lo: float, hi: float, text: str, read_only: bool = False):
    return default, ParameterDescriptor(description=text, read_only=read_only,
                                        floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi,
                                                                                 step=0.0)])


def _plain(default, text: str, read_only: bool = False, choices: tuple[str, ...] = ()):
    constraint = f"one of: {', '.join(choices)}" if choices else ""
    return default, ParameterDescriptor(description=text, read_only=read_only, additional_constraints=constraint)


def _runtime(name: str, default, text: str):
    """Descriptor of a runtime parameter from RuntimeOptions (fixed at start-up: the backend is built once)."""
    rng = option_range(name)
    if isinstance(default, bool) or rng is None:
        return _plain(default, text, True, option_choices(name))
    if isinstance(default, int):
        return _int(default, rng[0], rng[1], text, read_only=True)
    return _float(default, rng[0], rng[1], text, read_only=True)


# name -> (default, descriptor). The runtime ones come from RuntimeOptions (mtpano_ros/runtime/options.py).
# Read-only ones are fixed at start-up; the others may change while running.
PARAMETERS = {
    "image_topic": _plain("image", "input topic (relative; remap it or set it); the compressed transport "
                                   "subscribes to <image_topic>/compressed", read_only=True),
    "input_transport": _plain("raw", "raw: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8); compressed: "
                                     "sensor_msgs/CompressedImage (jpeg, png)", True, _CHOICES["input_transport"]),
    "reliability": _plain("best_effort", "input QoS reliability (best_effort = sensor data QoS; reliable for "
                                         "publishers that only offer reliable)", True, _CHOICES["reliability"]),
    "qos_depth": _int(1, 1, 100, "input QoS history depth (keep last N); 1 = newest frame only", read_only=True),
    **{name: _runtime(name, default, text) for name, default, text in runtime_parameters()},
    "output_size": _plain("model", "model: outputs at the network's resolution; input: resized (nearest) to the "
                                   "input image's size", False, _CHOICES["output_size"]),
    "frame_id": _plain("camera_link", "frame id of the outputs when the input's header.frame_id is empty, or "
                                      "always when override_frame_id is true"),
    "override_frame_id": _plain(False, "true: always use frame_id instead of the input's header.frame_id"),
    "cloud_stride": _int(1, 1, 64, "keep every N-th row and column in the point cloud (1 = every pixel)"),
    "max_range_m": _float(0.0, 0.0, 10000.0, "points farther than this (metres) are invalid in the cloud; "
                                             "0 = no limit (the depth image is not clipped)"),
    "cloud_organized": _plain(True, "true: organised HxW cloud with NaN for invalid points (is_dense false); "
                                    "false: only valid points, 1xN, is_dense true"),
    "max_input_pixels": _int(8192 * 4096, 4, 2**31 - 1, "input images with more pixels than this are rejected "
                                                      "(protects memory and latency)"),
    # virtual laser scan (DESIGN §5)
    "scan_enabled": _plain(True, "publish the virtual 2D laser scan on `scan` (computed only while it has a "
                                 "subscriber)"),
    "scan_num_beams": _int(360, 1, 16384, "beams of the scan over [-pi, pi); keep <= the output width (one "
                                          "azimuth per image column, more beams leave some empty)"),
    "scan_min_height_m": _float(-0.3, -100.0, 100.0, "lowest point height (metres, relative to the camera, z up) "
                                                     "that counts as an obstacle in the scan"),
    "scan_max_height_m": _float(0.3, -100.0, 100.0, "highest point height (metres, relative to the camera) that "
                                                    "counts as an obstacle in the scan"),
    "scan_range_min_m": _float(0.1, 0.0, 1000.0, "scan range_min: nearer points (horizontal distance) are ignored"),
    "scan_range_max_m": _float(30.0, 0.01, 10000.0, "scan range_max: farther points are ignored (+inf beams)"),
    # metric scale from the ground (DESIGN §5)
    "camera_height_m": _float(0.0, 0.0, 100.0, "camera height above the ground in metres; > 0 rescales every "
                                               "frame's depth so that pixels labelled ground lie that far below the "
                                               "camera (0 = off)"),
    "ground_smoothing_frames": _int(15, 1, 1000, "the ground scale is the running median of this many frames' "
                                                 "estimates"),
    # monitoring
    "diagnostics_period_s": _float(1.0, 0.1, 60.0, "period of /diagnostics messages", read_only=True),
    "warn_period_s": _float(10.0, 0.1, 3600.0, "repeated bad-input warnings of one kind are summarised at most "
                                               "once per this period"),
    "stale_after_s": _float(5.0, 0.1, 3600.0, "/diagnostics is STALE when no valid image arrived for this long"),
    "diag_max_drop_ratio": _float(0.9, 0.0, 1.0, "/diagnostics WARN when more of the frames received since the "
                                                 "last report were dropped (model slower than the camera)"),
    "diag_max_latency_ms": _float(2000.0, 0.0, 1e6, "/diagnostics WARN when the p95 receipt-to-publish latency "
                                                    "exceeds this (ms; 0 = off)"),
    "diag_max_bad_input_ratio": _float(0.0, 0.0, 1.0, "/diagnostics WARN when more of the messages since the last "
                                                      "report were bad (0: any bad message)"),
    "diag_error_after_failures": _int(3, 1, 1000, "/diagnostics ERROR after this many failed inferences in a row"),
}


@dataclass
class OutputOptions:
    """Per-frame output settings (from the node's parameters)."""

    cloud_stride: int = 1
    max_range_m: float = 0.0
    cloud_organized: bool = True


def colorize(labels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint8 ADE20K ids -> (H, W, 3) uint8 RGB palette colours (ids >= 150, e.g. 255, black), written into
    ``out`` ((H, W, 3) uint8) when given."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    words = cv2.LUT(labels, _LABEL_WORDS.view(np.int32))  # (H, W) words: bytes R, G, B, 0 (2x np.take's speed)
    rgba = words.view(np.uint8).reshape(*labels.shape, 4)
    if out is not None:
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB, dst=out)
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)


def build_output_messages(semantic: np.ndarray, depth: np.ndarray, normals: np.ndarray, color_rgb: np.ndarray,
                          header: Header, wanted, options: OutputOptions) -> dict:
    """Build the output messages named in ``wanted`` (a subset of OUTPUT_TOPICS) for one frame.

    semantic (H, W) uint8 ids; depth (H, W) float32 radial metres, NaN invalid; normals (H, W, 3) float32
    unit, panorama frame, NaN invalid; color_rgb (H, W, 3) uint8 RGB image colours for the cloud. All at one
    resolution. Returns {topic: message}; every message carries ``header``.
    """
    out = {}
    if "semantic" in wanted:
        out["semantic"] = array_to_image(np.ascontiguousarray(semantic, dtype=np.uint8), "mono8", header)
    if "semantic/color" in wanted:
        out["semantic/color"], view = image_buffer(*semantic.shape[:2], "rgb8", header)
        colorize(semantic, out=view)
    if "depth" in wanted:
        out["depth"] = array_to_image(np.ascontiguousarray(depth, dtype=np.float32), "32FC1", header)
    if "normals" in wanted:
        out["normals"] = array_to_image(np.ascontiguousarray(normals, dtype=np.float32), "32FC3", header)
    if "normals/color" in wanted:
        out["normals/color"], view = image_buffer(*normals.shape[:2], "rgb8", header)
        normals_to_rgb(normals, out=view)
    if "points" in wanted:
        out["points"] = build_pointcloud2(depth, color_rgb, semantic, header, stride=options.cloud_stride,
                                          max_range_m=options.max_range_m, organized=options.cloud_organized)
    return out


def _warm_kernels() -> None:
    """Compile (or load from numba's disk cache) the per-pixel kernels of post-processing and cloud packing before
    the first frame, so that it is not a second late (mtpano_ros.accel; a no-op cost without numba)."""
    import torch

    from mtpano_ros.model import postprocess

    h, w = 4, 8
    normals = torch.zeros(1, 3, h, w)
    normals[:, 2] = 1.0
    res = postprocess({"semantic": torch.zeros(1, h, w, dtype=torch.int64), "depth": torch.ones(1, 1, h, w),
                       "normals": normals})
    build_output_messages(res["semantic"][0], res["depth"][0], res["normals"][0], np.zeros((h, w, 3), np.uint8),
                          Header(), ["points"], OutputOptions())


def _resize_nearest(arr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[:2] == tuple(out_hw):
        return arr
    return cv2.resize(arr, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_NEAREST)


class PerceptionCore:
    """The perception node's behaviour, shared by :class:`PerceptionNode` (starts working at once) and the managed
    ``perception_lifecycle_node`` (mtpano_ros.ros.lifecycle). Mixed into an rclpy Node (plain or lifecycle): it uses
    the node's parameters, publishers, subscriptions, timers and logger."""

    # ---- set-up steps (the plain node runs them all in __init__, the lifecycle node one per transition) -------
    def _declare_parameters(self) -> None:
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        for name, choices in _CHOICES.items():
            value = self.get_parameter(name).value
            if value not in choices:
                raise ValueError(f"parameter {name}={value!r} is not valid: expected one of {', '.join(choices)}; "
                                 "fix it in the params file or on the command line")
        self.add_on_set_parameters_callback(self._check_parameter_change)
        self._stats = NodeStats()
        self._cv = threading.Condition()
        self._pending = None
        self._stop = threading.Event()
        self._worker = None
        self._sub = None
        self._backend = None
        self._outputs: dict = {}
        self._scan_pub = None
        self._warned_once: set[str] = set()
        self._warn_state: dict[str, list] = {}  # kind -> [last log time, suppressed count]
        self._warn_lock = threading.Lock()
        self._ground = ScaleSmoother(window=self.get_parameter("ground_smoothing_frames").value)
        self._ground_last: float | None = None
        self._static_diag = {"state": "unconfigured"}
        p = self._params()
        self._compressed = p["input_transport"] == "compressed"
        self._in_topic = self._input_topic(p)

    def _input_topic(self, p: dict) -> str:
        """The input topic as configured, relative until subscribed (then the subscription's resolved name); no
        resolve_topic_name, which old rclpy lacks."""
        return p["image_topic"] + ("/compressed" if self._compressed else "")

    def _params(self) -> dict:
        return {name: self.get_parameter(name).value for name in PARAMETERS}

    def _load_backend(self) -> None:
        """Build the inference backend from the runtime parameters and warm it up (slow: seconds to minutes)."""
        from mtpano_ros.runtime import select_backend  # the runtime pulls in torch; keep module import light

        forward_to_ros(self.get_logger())  # the runtime's log (backend choice, export, engine build) reaches ROS
        p = self._params()
        runtime = RuntimeOptions.from_dict({name: p[name] for name, _, _ in runtime_parameters()})
        self.get_logger().info(f"loading model '{runtime.model}' with backend '{runtime.backend}' on device "
                               f"'{runtime.device}' ({runtime.precision})")
        self._backend = select_backend(runtime)
        self._model_hw = tuple(int(x) for x in self._backend.input_size)
        self.get_logger().info(f"backend {self._backend.name} on {self._backend.device}, model "
                               f"{self._backend.model_name}, input {self._model_hw[1]}x{self._model_hw[0]}; "
                               "warming up")
        self._backend.warmup()
        _warm_kernels()
        self._static_diag.update({"backend": str(self._backend.name), "device": str(self._backend.device),
                                  "model": str(self._backend.model_name),
                                  "model_input": f"{self._model_hw[1]}x{self._model_hw[0]}",
                                  "input_topic": self._in_topic})

    def _free_backend(self) -> None:
        self._backend = None
        import gc

        gc.collect()

    def _create_outputs(self, create_publisher) -> None:
        """Output publishers via ``create_publisher(type, topic, qos)`` (plain or lifecycle) and /diagnostics."""
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {topic: create_publisher(PointCloud2 if topic == "points" else Image, topic, qos)
                         for topic in OUTPUT_TOPICS}
        self._scan_pub = create_publisher(LaserScan, SCAN_TOPIC, qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period_s").value,
                                             self._publish_diagnostics)

    def _start_input(self) -> None:
        """Subscribe to the input and start the inference thread."""
        p = self._params()
        in_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p["qos_depth"],
                            reliability=ReliabilityPolicy.BEST_EFFORT if p["reliability"] == "best_effort"
                            else ReliabilityPolicy.RELIABLE)
        self._stop.clear()
        self._in_topic = self._input_topic(p)
        self._stats.last_input = None
        self._stats.started = time.monotonic()
        self._worker = threading.Thread(target=self._work, name="mtpano_inference", daemon=True)
        self._worker.start()
        self._sub = self.create_subscription(CompressedImage if self._compressed else Image, self._in_topic,
                                             self._on_image, in_qos)
        self._in_topic = self._sub.topic_name
        self.get_logger().info(f"ready: subscribed to {self._in_topic} ({p['input_transport']}, {p['reliability']}, "
                               f"depth {p['qos_depth']}), publishing {', '.join(OUTPUT_TOPICS)}, {SCAN_TOPIC} under "
                               f"{self.get_namespace()}")

    def _stop_input(self) -> None:
        """Unsubscribe and stop the inference thread (a frame in progress finishes first)."""
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        worker, self._worker = self._worker, None
        if worker is not None:
            self._stop.set()
            with self._cv:
                self._pending = None
                self._cv.notify_all()
            if worker.is_alive() and threading.current_thread() is not worker:
                worker.join(timeout=30.0)

    # ---- parameters -------------------------------------------------------------------------------------------
    def _check_parameter_change(self, params) -> SetParametersResult:
        for param in params:
            choices = _CHOICES.get(param.name)
            if choices and param.value not in choices:
                return SetParametersResult(successful=False,
                                           reason=f"{param.name} must be one of {', '.join(choices)}, "
                                                  f"got {param.value!r}")
        return SetParametersResult(successful=True)

    # ---- input ------------------------------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        """Subscription callback: O(1) checks, then the frame becomes the pending one. Never blocks on work."""
        now = time.monotonic()
        max_px = self.get_parameter("max_input_pixels").value
        try:
            if self._compressed:
                _, width, height = compressed_size(msg, self._in_topic)
                check_size(width, height, max_px, self._in_topic)
                view = None
            else:
                view = image_to_array(msg, self._in_topic, INPUT_ENCODINGS, max_px)
        except InputError as err:
            self._bad_input(err)
            return
        with self._cv:
            dropped = self._pending is not None
            self._pending = (msg, view, now)
            self._cv.notify()
        self._stats.note_input(now, dropped)

    def _bad_input(self, err: InputError) -> None:
        """Count a bad frame; log its kind in full once, then at most one summary per warn_period_s."""
        self._stats.note_error(err.kind)
        now = time.monotonic()
        period = self.get_parameter("warn_period_s").value
        with self._warn_lock:
            state = self._warn_state.get(err.kind)
            if state is None:
                self._warn_state[err.kind] = [now, 0]
                text = (f"bad input ({err.kind}): {err}; skipping the frame. Repeats of '{err.kind}' are summarised "
                        f"at most every {period:g} s")
            elif now - state[0] >= period:
                text = (f"bad input ({err.kind}): {state[1] + 1} more frames skipped since the last report; "
                        f"latest: {err}")
                self._warn_state[err.kind] = [now, 0]
            else:
                state[1] += 1
                return
        self.get_logger().warning(text)

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned_once:
            self._warned_once.add(key)
            self.get_logger().warning(text)

    # ---- inference thread -------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while self._pending is None and not self._stop.is_set():
                    self._cv.wait(0.5)
                item, self._pending = self._pending, None
            if item is None:
                continue
            try:
                self._process(*item)
            except InputError as err:
                self._bad_input(err)
            except Exception as exc:  # noqa: BLE001 - the node must survive any single frame
                if not rclpy.ok() or self._stop.is_set():
                    return
                self._bad_input(InputError("inference", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))

    def _wanted(self) -> tuple[set, bool]:
        wanted = {t for t, pub in self._outputs.items() if pub.get_subscription_count() > 0}
        scan = bool(self.get_parameter("scan_enabled").value) and self._scan_pub.get_subscription_count() > 0
        return wanted, scan

    def _output_frame_id(self, frame_id: str) -> str:
        override = self.get_parameter("override_frame_id").value
        if override or not frame_id:
            if not frame_id and not override:
                self._warn_once("frame_id", f"input on {self._in_topic} has an empty header.frame_id; publishing in "
                                            f"frame '{self.get_parameter('frame_id').value}' (the frame_id "
                                            "parameter) instead")
            return self.get_parameter("frame_id").value
        if frame_id.endswith("_optical_frame"):
            self._warn_once("optical", f"input on {self._in_topic} is in frame '{frame_id}', an optical frame (z "
                                       "forward, x right, y down); the outputs use the panorama body axes (REP 103: "
                                       "x forward, y left, z up) and are published in that frame id as given. Publish "
                                       "the panorama in a body frame, or set frame_id and override_frame_id: true")
        return frame_id

    def _ground_scale(self, depth: np.ndarray, semantic: np.ndarray) -> float | None:
        """This frame's smoothed ground scale from the network-resolution depth (H, W) metres and ids (H, W), or
        None (camera_height_m 0 = off, or no frame has shown enough level ground yet)."""
        height_m = self.get_parameter("camera_height_m").value
        if not height_m > 0:
            return None
        self._ground.window = self.get_parameter("ground_smoothing_frames").value
        self._ground_last = ground_scale(depth, semantic, height_m)
        scale = self._ground.update(self._ground_last)
        if scale is None:
            self._warn_once("ground", "camera_height_m is set but no frame so far shows enough level ground (floor, "
                                      "road, grass, ...) below the horizon: depth stays unscaled until one does")
        return scale

    def _scan_message(self, depth: np.ndarray, header: Header) -> LaserScan:
        p = {k: self.get_parameter(k).value for k in ("scan_num_beams", "scan_min_height_m", "scan_max_height_m",
                                                       "scan_range_min_m", "scan_range_max_m")}
        ranges = virtual_scan(depth, p["scan_num_beams"], p["scan_min_height_m"], p["scan_max_height_m"],
                              p["scan_range_min_m"], p["scan_range_max_m"])
        angle_min, angle_max, increment = scan_angles(p["scan_num_beams"])
        msg = new_message(LaserScan)
        msg.header = header
        msg.angle_min, msg.angle_max, msg.angle_increment = float(angle_min), float(angle_max), float(increment)
        msg.range_min, msg.range_max = float(p["scan_range_min_m"]), float(p["scan_range_max_m"])
        buf = array.array("f")
        buf.frombytes(ranges.astype(np.float32).tobytes())
        msg.ranges = buf
        return msg

    def _process(self, msg, view, t_received: float) -> None:
        wanted, scan_wanted = self._wanted()
        if not wanted and not scan_wanted:  # nobody listens: no decoding, no inference
            self._stats.note_unobserved()
            return
        output_size = self.get_parameter("output_size").value
        if self._compressed:
            hint = self._model_hw if output_size == "model" else None
            image = decode_compressed(msg, self._in_topic, self.get_parameter("max_input_pixels").value, hint)
            encoding = "bgr8"
            _, in_w, in_h = compressed_size(msg, self._in_topic)
        else:
            image, encoding = view, msg.encoding
            in_h, in_w = image.shape[:2]
        if abs(in_w - 2 * in_h) > 1:
            self._warn_once("aspect", f"input on {self._in_topic} is {in_w}x{in_h}, not 2:1: it is treated as a full "
                                      "360x180 degree equirectangular panorama and stretched to the model input "
                                      f"{self._model_hw[1]}x{self._model_hw[0]}; expect distorted geometry unless "
                                      "the source really is equirectangular")
        model_rgb = to_rgb(image, encoding, self._model_hw)

        out_hw = self._model_hw if output_size == "model" else (in_h, in_w)
        t0 = time.monotonic()
        backend = self._backend
        result = backend.infer(model_rgb) if out_hw == self._model_hw else backend.infer(model_rgb, out_hw=out_hw)
        forward_s = time.monotonic() - t0
        semantic, depth, normals = result["semantic"][0], result["depth"][0], result["normals"][0]
        scale = self._ground_scale(depth, semantic)
        if semantic.shape[:2] != out_hw:
            semantic, depth, normals = (_resize_nearest(a, out_hw) for a in (semantic, depth, normals))
        if scale is not None:
            depth = depth * np.float32(scale)
        color = model_rgb
        if "points" in wanted and out_hw != self._model_hw:
            color = to_rgb(image, encoding, out_hw)

        header = Header(stamp=msg.header.stamp, frame_id=self._output_frame_id(msg.header.frame_id))
        options = OutputOptions(cloud_stride=self.get_parameter("cloud_stride").value,
                                max_range_m=self.get_parameter("max_range_m").value,
                                cloud_organized=self.get_parameter("cloud_organized").value)
        messages = build_output_messages(semantic, depth, normals, color, header, wanted, options)
        if scan_wanted:
            messages[SCAN_TOPIC] = self._scan_message(depth, header)
        for topic, out_msg in messages.items():
            (self._scan_pub if topic == SCAN_TOPIC else self._outputs[topic]).publish(out_msg)
        self._stats.note_output(t_received, time.monotonic(), forward_s)

    # ---- diagnostics ------------------------------------------------------------------------------------------
    def _health_thresholds(self) -> HealthThresholds:
        g = self.get_parameter
        return HealthThresholds(stale_after_s=g("stale_after_s").value,
                                error_after_failures=g("diag_error_after_failures").value,
                                max_drop_ratio=g("diag_max_drop_ratio").value,
                                max_latency_ms=g("diag_max_latency_ms").value,
                                max_bad_input_ratio=g("diag_max_bad_input_ratio").value)

    def _publish_diagnostics(self) -> None:
        extra = {}
        height_m = self.get_parameter("camera_height_m").value
        if height_m > 0:
            smoothed, last = self._ground.value, self._ground_last
            extra = {"camera_height_m": f"{height_m:g}",
                     "ground_scale": "none" if smoothed is None else f"{smoothed:.4f}",
                     "ground_scale_frame": "none" if last is None else f"{last:.4f}",
                     "ground_scale_rejected": str(self._ground.rejected)}
        limits = self._health_thresholds()
        if self._static_diag.get("state") != "active":  # a lifecycle node that is not active expects no input
            limits.stale_after_s = float("inf")
        msg = diagnostic_array(self._stats, f"{self.get_fully_qualified_name()}: perception",
                               self._static_diag.get("device", "none"), self._static_diag,
                               stamp=self.get_clock().now().to_msg(), limits=limits,
                               input_topic=self._in_topic, extra=extra)
        self._diag_pub.publish(msg)

    def stats(self) -> dict:
        """Current counters, rates and latency percentiles (see NodeStats.snapshot)."""
        return self._stats.snapshot()


class PerceptionNode(PerceptionCore, Node):
    """ROS 2 node ``mtpano_perception``: subscribes ``image`` (or ``image/compressed``), publishes semantic,
    semantic/color, depth, normals, normals/color, points, scan and /diagnostics (DESIGN §5). Starts working as
    soon as it is constructed (for managed start-up see mtpano_ros.ros.lifecycle)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self._load_backend()
        self._static_diag["state"] = "active"
        self._create_outputs(self.create_publisher)
        self._start_input()

    def destroy_node(self) -> None:
        if hasattr(self, "_stop"):  # absent when __init__ failed part-way
            self._stop_input()
        super().destroy_node()


def spin_node(make_node, args=None) -> int:
    """Init rclpy, build ``make_node()`` and spin it until Ctrl-C / SIGTERM; 1 (logged) when it cannot start."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, RuntimeError, OSError, ImportError, ParameterException, NameValidationException) as exc:
        get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(args=None) -> int:
    """Console script ``perception_node``: start the node and spin until Ctrl-C / SIGTERM."""
    return spin_node(PerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())

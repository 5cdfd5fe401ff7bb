"""The perception node: one ERP panorama in; semantic, depth, normal images and a PointCloud2 out (DESIGN §5).

Run: ``perception_node --ros-args -r image:=/theta/image_raw --params-file config/perception.yaml``.

Threads: the executor thread runs the subscription callback (O(1) header checks, then the frame replaces the
pending one; a replaced frame counts as dropped) and the diagnostics timer; one inference thread takes the
newest frame, resizes it, runs the backend and publishes. So the subscription never blocks, nothing queues,
and the latency of a published frame is at most about two forward passes.
"""

from __future__ import annotations

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
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from mtpano_ros.labels import ADE20K_PALETTE, NUM_CLASSES
from mtpano_ros.ros.conversions import (
    INPUT_ENCODINGS,
    InputError,
    array_to_image,
    build_pointcloud2,
    check_size,
    compressed_size,
    decode_compressed,
    image_to_array,
    normals_to_rgb,
    to_rgb,
)
from mtpano_ros.ros.diagnostics import NodeStats, diagnostic_array
from mtpano_ros.runtime.options import RuntimeOptions, option_choices, option_range, runtime_parameters

NODE_NAME = "mtpano_perception"
OUTPUT_TOPICS = ("semantic", "semantic/color", "depth", "normals", "normals/color", "points")
_CHOICES = {
    "input_transport": ("raw", "compressed"),
    "reliability": ("best_effort", "reliable"),
    "output_size": ("model", "input"),
    **{name: option_choices(name) for name, _, _ in runtime_parameters() if option_choices(name)},
}
_LABEL_LUT = np.zeros((256, 3), dtype=np.uint8)
_LABEL_LUT[:NUM_CLASSES] = ADE20K_PALETTE
_LABEL_LUT_CV = np.ascontiguousarray(_LABEL_LUT.reshape(256, 1, 3))


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
    "diagnostics_period_s": _float(1.0, 0.1, 60.0, "period of /diagnostics messages", read_only=True),
    "warn_period_s": _float(10.0, 0.1, 3600.0, "repeated bad-input warnings of one kind are summarised at most "
                                               "once per this period"),
}


@dataclass
class OutputOptions:
    """Per-frame output settings (from the node's parameters)."""

    cloud_stride: int = 1
    max_range_m: float = 0.0
    cloud_organized: bool = True


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 ADE20K ids -> (H, W, 3) uint8 RGB palette colours (ids >= 150, e.g. 255, black)."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    return cv2.LUT(cv2.merge([labels, labels, labels]), _LABEL_LUT_CV)


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
        out["semantic/color"] = array_to_image(colorize(semantic), "rgb8", header)
    if "depth" in wanted:
        out["depth"] = array_to_image(np.ascontiguousarray(depth, dtype=np.float32), "32FC1", header)
    if "normals" in wanted:
        out["normals"] = array_to_image(np.ascontiguousarray(normals, dtype=np.float32), "32FC3", header)
    if "normals/color" in wanted:
        out["normals/color"] = array_to_image(normals_to_rgb(normals), "rgb8", header)
    if "points" in wanted:
        out["points"] = build_pointcloud2(depth, color_rgb, semantic, header, stride=options.cloud_stride,
                                          max_range_m=options.max_range_m, organized=options.cloud_organized)
    return out


def _resize_nearest(arr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[:2] == tuple(out_hw):
        return arr
    return cv2.resize(arr, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_NEAREST)


class PerceptionNode(Node):
    """ROS 2 node ``mtpano_perception``: subscribes ``image`` (or ``image/compressed``), publishes semantic,
    semantic/color, depth, normals, normals/color, points and /diagnostics (DESIGN §5)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        for name, choices in _CHOICES.items():
            value = self.get_parameter(name).value
            if value not in choices:
                raise ValueError(f"parameter {name}={value!r} is not valid: expected one of {', '.join(choices)}; "
                                 "fix it in the params file or on the command line")
        self.add_on_set_parameters_callback(self._check_parameter_change)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}

        from mtpano_ros.runtime import select_backend  # the runtime pulls in torch; keep module import light

        runtime = RuntimeOptions.from_dict({name: p[name] for name, _, _ in runtime_parameters()})
        self.get_logger().info(f"loading model '{runtime.model}' with backend '{runtime.backend}' on device "
                               f"'{runtime.device}' ({runtime.precision})")
        self._backend = select_backend(runtime)
        self._model_hw = tuple(int(x) for x in self._backend.input_size)
        self.get_logger().info(f"backend {self._backend.name} on {self._backend.device}, model "
                               f"{self._backend.model_name}, input {self._model_hw[1]}x{self._model_hw[0]}; "
                               "warming up")
        self._backend.warmup()

        self._stats = NodeStats()
        self._static_diag = {"backend": str(self._backend.name), "device": str(self._backend.device),
                             "model": str(self._backend.model_name),
                             "model_input": f"{self._model_hw[1]}x{self._model_hw[0]}"}
        self._cv = threading.Condition()
        self._pending = None
        self._stop = threading.Event()
        self._warned_once: set[str] = set()
        self._warn_state: dict[str, list] = {}  # kind -> [last log time, suppressed count]
        self._warn_lock = threading.Lock()

        self._outputs = {topic: self.create_publisher(PointCloud2 if topic == "points" else Image, topic,
                                                         QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
                            for topic in OUTPUT_TOPICS}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        in_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p["qos_depth"],
                            reliability=ReliabilityPolicy.BEST_EFFORT if p["reliability"] == "best_effort"
                            else ReliabilityPolicy.RELIABLE)
        self._compressed = p["input_transport"] == "compressed"
        topic = p["image_topic"] + ("/compressed" if self._compressed else "")
        self._sub = self.create_subscription(CompressedImage if self._compressed else Image, topic,
                                             self._on_image, in_qos)
        self._in_topic = self._sub.topic_name
        self._static_diag["input_topic"] = self._in_topic
        self._worker = threading.Thread(target=self._work, name="mtpano_inference", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        self.get_logger().info(f"ready: subscribed to {self._in_topic} ({p['input_transport']}, {p['reliability']}, "
                               f"depth {p['qos_depth']}), publishing {', '.join(OUTPUT_TOPICS)} under "
                               f"{self.get_namespace()}")

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

    def _process(self, msg, view, t_received: float) -> None:
        wanted = {t for t, pub in self._outputs.items() if pub.get_subscription_count() > 0}
        if not wanted:  # nobody listens: no decoding, no inference
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
        result = self._backend.infer(model_rgb) if out_hw == self._model_hw else self._backend.infer(model_rgb,
                                                                                                    out_hw=out_hw)
        forward_s = time.monotonic() - t0
        semantic, depth, normals = result["semantic"][0], result["depth"][0], result["normals"][0]
        if semantic.shape[:2] != out_hw:
            semantic, depth, normals = (_resize_nearest(a, out_hw) for a in (semantic, depth, normals))
        color = model_rgb
        if "points" in wanted and out_hw != self._model_hw:
            color = to_rgb(image, encoding, out_hw)

        frame_id = msg.header.frame_id
        if self.get_parameter("override_frame_id").value or not frame_id:
            if not frame_id and not self.get_parameter("override_frame_id").value:
                self._warn_once("frame_id", f"input on {self._in_topic} has an empty header.frame_id; publishing in "
                                            f"frame '{self.get_parameter('frame_id').value}' (the frame_id "
                                            "parameter) instead")
            frame_id = self.get_parameter("frame_id").value
        header = Header(stamp=msg.header.stamp, frame_id=frame_id)
        options = OutputOptions(cloud_stride=self.get_parameter("cloud_stride").value,
                                max_range_m=self.get_parameter("max_range_m").value,
                                cloud_organized=self.get_parameter("cloud_organized").value)
        messages = build_output_messages(semantic, depth, normals, color, header, wanted, options)
        for topic, out_msg in messages.items():
            self._outputs[topic].publish(out_msg)
        self._stats.note_output(t_received, time.monotonic(), forward_s)

    # ---- diagnostics ------------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        msg = diagnostic_array(self._stats, f"{self.get_fully_qualified_name()}: perception",
                               self._static_diag["device"], self._static_diag, stamp=self.get_clock().now().to_msg())
        self._diag_pub.publish(msg)

    def stats(self) -> dict:
        """Current counters, rates and latency percentiles (see NodeStats.snapshot)."""
        return self._stats.snapshot()

    def destroy_node(self) -> None:
        worker = getattr(self, "_worker", None)  # absent when __init__ failed part-way
        if worker is not None:
            self._stop.set()
            with self._cv:
                self._cv.notify_all()
            if worker.is_alive() and threading.current_thread() is not worker:
                worker.join(timeout=10.0)
        super().destroy_node()


def main(args=None) -> int:
    """Console script ``perception_node``: start the node and spin until Ctrl-C / SIGTERM."""
    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
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


if __name__ == "__main__":
    sys.exit(main())

"""`ros2 launch mtpano_ros perception.launch.py` and `replay.launch.py` for real, against the colcon install.

The launch stack (launch, launch_ros, ros2launch, ros2cli) comes from ../shared/wheels (make test installs it when
that folder exists; on a robot it comes from apt). The colcon install is build/colcon/install (make colcon), or
$MTPANO_COLCON_INSTALL (the Jazzy run builds its own). Without either, these tests skip and say why.

Proved: the node comes up; image_topic, namespace, params_file, backend and model do what the README says; a value
from a params file keyed /**/mtpano_perception applies under a namespace; launch arguments override the file only
when given; the launch file hands the node the Fast DDS large-image profile unless the environment has one (and a
1.5 MB best-effort image arrives); the scan of the launched node follows the rule of DESIGN §5.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
from conftest import REPO, brute_force_scan, default_sigint, wait_for  # noqa: E402

INSTALL = Path(os.environ.get("MTPANO_COLCON_INSTALL", REPO / "build" / "colcon" / "install"))
VENV = Path(sys.prefix)
ROS2 = VENV / "bin" / "ros2"


def _skip_reason() -> str | None:
    if importlib.util.find_spec("launch_ros") is None:  # not imported: `launch` reconfigures Python logging
        return ("the ROS 2 launch stack (launch_ros, ros2launch) is not installed: make test installs it from "
                "../shared/wheels when that folder exists; on a robot install ros-<distro>-launch-ros from apt")
    if not ROS2.exists():
        return f"no ros2 command at {ROS2} (install ros-ros2launch)"
    if not (INSTALL / "mtpano_ros" / "share" / "mtpano_ros" / "launch" / "perception.launch.py").exists():
        return f"no colcon install of mtpano_ros at {INSTALL}: run `make colcon` (make test does)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


class Launch:
    """A `ros2 launch` process group; its output goes to a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(ROS2), "launch", "mtpano_ros", *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
                                     preexec_fn=default_sigint)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        ok = wait_for(lambda: "ready:" in self.log() or self.proc.poll() is not None, timeout_s, 0.2)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"the launched node did not become ready (exit {self.proc.poll()}):\n{self.log()}")

    def pid(self, executable: str) -> int:
        match = re.search(rf"\[{re.escape(executable)}-\d+\]: process started with pid \[(\d+)\]", self.log())
        assert match, f"no pid of {executable} in the launch log:\n{self.log()}"
        return int(match.group(1))

    def environ(self, executable: str) -> dict[str, str]:
        raw = Path(f"/proc/{self.pid(executable)}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # ros2 launch forwards it to the nodes
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def launch(ros_domain_id, tmp_path):
    started: list[Launch] = []

    def start(args: list[str], profile: str | None = None) -> Launch:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_DEFAULT_PROFILES_FILE")}
        if profile is not None:
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
        env.update(AMENT_PREFIX_PATH=f"{INSTALL / 'mtpano_ros'}:{VENV}", PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",
                   PYTHONPATH=":".join(str(p) for p in (INSTALL / "mtpano_ros" / "lib").glob("python3*/site-packages")),
                   ROS_DOMAIN_ID=str(ros_domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0")
        run = Launch(args, tmp_path / f"launch_{len(started)}.log", env)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


class Outputs:
    """Subscriptions to one namespace's outputs, collected by topic."""

    def __init__(self, client, ns: str, topics: dict):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.lock = threading.Lock()
        self.got: dict[str, list] = {t: [] for t in topics}
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in topics.items():
            name = topic if topic.startswith("/") else f"{ns}/{topic}"
            client.node.create_subscription(msg_type, name, self._saver(topic), qos if topic[0] != "/" else 10)

    def _saver(self, topic):
        def save(msg):
            with self.lock:
                self.got[topic].append(msg)
        return save

    def latest(self, topic):
        with self.lock:
            return self.got[topic][-1] if self.got[topic] else None


def _diag_values(msg, ns: str) -> dict | None:
    for status in msg.status:
        if status.name.startswith(f"{ns}/mtpano_perception"):
            return {kv.key: kv.value for kv in status.values}
    return None


def test_perception_launch_namespace_params_file_overrides_and_profile(launch, ros_client, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, LaserScan

    from mtpano_ros.ros import conversions as C

    ns, topic = f"/robot1_{os.getpid()}", f"/cam_{os.getpid()}/pano"
    params = tmp_path / "robot1.yaml"
    params.write_text(
        "/**/mtpano_perception:\n  ros__parameters:\n"
        "    backend: onnxruntime     # overridden: backend:=torch is given\n"
        "    model: default           # overridden: model:=mtpano-tiny is given\n"
        "    input_height: 128        # not given as an argument: the file decides\n"
        "    input_width: 256\n"
        "    frame_id: yaml_pano_link\n    override_frame_id: true\n"
        "    scan_num_beams: 96\n    scan_min_height_m: -0.5\n    scan_max_height_m: 0.5\n")
    run = launch(["perception.launch.py", f"image_topic:={topic}", f"namespace:={ns}", f"params_file:={params}",
                  "backend:=torch", "model:=mtpano-tiny", "device:=cpu", "threads:=1"])
    outputs = Outputs(ros_client, ns, {"depth": Image, "semantic": Image, "scan": LaserScan,
                                       "/diagnostics": DiagnosticArray})
    run.wait_ready()
    log = run.log()
    assert f"subscribed to {topic}" in log, log  # image_topic remapped
    env = run.environ("perception_node")
    shipped = INSTALL / "mtpano_ros" / "share" / "mtpano_ros" / "config" / "fastdds_large_images.xml"
    assert env.get("FASTDDS_DEFAULT_PROFILES_FILE") == str(shipped)  # Fast DDS 3 (Kilted)
    assert env.get("FASTRTPS_DEFAULT_PROFILES_FILE") == str(shipped)  # Fast DDS 2 (Humble, Jazzy)

    pub = ros_client.node.create_publisher(Image, topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    assert wait_for(lambda: pub.get_subscription_count() >= 1 and ros_client.node.count_publishers(f"{ns}/scan") >= 1,
                    30.0), "the launched node's topics were not discovered"
    time.sleep(1.0)
    rgb = cv2.resize(np.random.default_rng(3).integers(0, 256, (32, 64, 3), dtype=np.uint8), (1024, 512))
    msg = C.array_to_image(rgb, "rgb8")  # 1.5 MB: arrives best effort only with the large-image profile
    msg.header.frame_id = "theta_link"
    assert len(msg.data) > 512 * 1024

    def all_out():
        return all(outputs.latest(t) is not None for t in ("depth", "semantic", "scan"))

    for _ in range(6):
        pub.publish(msg)
        if wait_for(all_out, 10.0):
            break
    assert all_out(), f"no outputs from the launched node:\n{run.log()}"
    time.sleep(0.5)
    depth_msg, scan = outputs.latest("depth"), outputs.latest("scan")
    assert depth_msg.header.frame_id == scan.header.frame_id == "yaml_pano_link"  # the file's value applies
    assert (depth_msg.height, depth_msg.width) == (128, 256)  # input size from the file
    assert len(scan.ranges) == 96 and scan.angle_min == pytest.approx(-np.pi)
    assert scan.angle_increment == pytest.approx(2 * np.pi / 96)
    stamp = depth_msg.header.stamp
    scan = next(s for s in reversed(outputs.got["scan"]) if s.header.stamp == stamp)
    expected = brute_force_scan(C.image_to_array(depth_msg), 96, -0.5, 0.5, scan.range_min, scan.range_max)
    np.testing.assert_allclose(np.asarray(scan.ranges), expected, rtol=1e-5)

    assert wait_for(lambda: any(_diag_values(m, ns) for m in outputs.got["/diagnostics"]), 10.0)
    diag = next(d for d in (_diag_values(m, ns) for m in reversed(outputs.got["/diagnostics"])) if d)
    assert diag["backend"] == "torch"  # the argument, not the file's onnxruntime
    assert "tiny" in diag["model"] and diag["model_input"] == "256x128"
    assert run.stop() == 0


def test_replay_launch_keeps_a_profile_from_the_environment(launch, ros_client, tmp_path):
    from sensor_msgs.msg import Image

    panos = tmp_path / "panos"
    panos.mkdir()
    for i in range(2):
        img = cv2.resize(np.random.default_rng(i).integers(0, 256, (8, 16, 3), dtype=np.uint8), (256, 128))
        cv2.imwrite(str(panos / f"p{i}.png"), img)
    custom = tmp_path / "my_profile.xml"
    shutil.copy(REPO / "config" / "fastdds_large_images.xml", custom)
    ns = f"/replay_{os.getpid()}"
    outputs = Outputs(ros_client, ns, {"semantic": Image, "image": Image})
    run = launch(["replay.launch.py", f"panos:={panos}", "rate_hz:=4", "use_rviz:=false", f"namespace:={ns}",
                  "backend:=torch", "model:=mtpano-tiny", "device:=cpu", "threads:=1", "input_height:=128",
                  "input_width:=256"], profile=str(custom))
    run.wait_ready()
    env = run.environ("perception_node")
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(custom)  # not replaced
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(custom)  # the Fast DDS 2 name follows it
    assert wait_for(lambda: outputs.latest("semantic") is not None, 60.0), f"no output:\n{run.log()}"
    assert wait_for(lambda: outputs.latest("image") is not None, 10.0), "mtpano-replay publishes into the namespace"
    assert (outputs.latest("semantic").height, outputs.latest("semantic").width) == (128, 256)
    assert run.stop() == 0

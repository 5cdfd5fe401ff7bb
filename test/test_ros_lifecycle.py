"""perception_lifecycle_node over real DDS, driven through its lifecycle services (lifecycle_msgs ChangeState /
GetState): configure loads the model, activate subscribes and publishes, deactivate stops publishing, cleanup
frees the backend and its publishers, shutdown works from the active state."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from conftest import FASTDDS_PROFILE, NodeProcess, wait_for  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, LaserScan  # noqa: E402

from mtpano_ros.ros import conversions as C  # noqa: E402

PARAMS = {"model": "mtpano-tiny", "backend": "torch", "device": "cpu", "input_height": 128, "input_width": 256,
          "threads": 1}


def _call(client_node, srv_type, name: str, request, timeout_s: float = 120.0):
    cli = client_node.create_client(srv_type, name)
    assert cli.wait_for_service(timeout_sec=30.0), f"service {name} not available"
    future = cli.call_async(request)
    assert wait_for(future.done, timeout_s), f"{name} did not answer in {timeout_s} s"
    client_node.destroy_client(cli)
    return future.result()


def test_lifecycle_transitions_gate_the_outputs(ros_domain_id, ros_client, tmp_path):
    ns = f"/lc_{os.getpid()}"
    cmd = [sys.executable, "-m", "mtpano_ros.ros.lifecycle", "--ros-args", "-r", f"__ns:={ns}"]
    for key, value in PARAMS.items():
        cmd += ["-p", f"{key}:={value}"]
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0",
               FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_PROFILE), FASTRTPS_DEFAULT_PROFILES_FILE=str(FASTDDS_PROFILE))
    proc = NodeProcess(cmd, tmp_path / "lifecycle.log", env)
    node = ros_client.node
    outputs: list = []
    scans: list = []
    states: list[str] = []
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, f"{ns}/depth", outputs.append, qos)
    node.create_subscription(LaserScan, f"{ns}/scan", scans.append, qos)

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith(f"{ns}/mtpano_perception"):
                states.append({kv.key: kv.value for kv in status.values}.get("state", ""))

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    pub = node.create_publisher(Image, f"{ns}/image", qos)
    base = f"{ns}/mtpano_perception"
    try:
        assert wait_for(lambda: "unconfigured" in proc.log() or not proc.alive(), 120.0), proc.log()

        def state() -> int:
            return _call(node, GetState, f"{base}/get_state", GetState.Request()).current_state.id

        def change(transition: int) -> bool:
            return _call(node, ChangeState, f"{base}/change_state",
                         ChangeState.Request(transition=Transition(id=transition))).success

        rgb = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)

        def outputs_while_sending(seconds: float) -> int:
            before = len(outputs)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                msg = C.array_to_image(rgb, "rgb8")
                msg.header.stamp = node.get_clock().now().to_msg()
                pub.publish(msg)
                time.sleep(0.25)
            return len(outputs) - before

        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node.count_publishers(f"{ns}/depth") == 0  # nothing exists before configure

        assert change(Transition.TRANSITION_CONFIGURE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        assert "warming up" in proc.log()  # the model was loaded and warmed up in configure
        assert wait_for(lambda: node.count_publishers(f"{ns}/depth") >= 1, 20.0)
        assert wait_for(lambda: "inactive" in states, 10.0)
        assert pub.get_subscription_count() == 0  # inactive: not subscribed
        assert outputs_while_sending(2.0) == 0

        assert change(Transition.TRANSITION_ACTIVATE)
        assert state() == State.PRIMARY_STATE_ACTIVE
        assert wait_for(lambda: pub.get_subscription_count() >= 1, 20.0)
        assert outputs_while_sending(6.0) > 0 and scans  # active: it publishes (depth and scan)

        assert change(Transition.TRANSITION_DEACTIVATE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        time.sleep(1.0)  # a frame in flight at the transition may still land
        assert outputs_while_sending(3.0) == 0

        assert change(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert wait_for(lambda: node.count_publishers(f"{ns}/depth") == 0, 20.0)  # publishers destroyed

        assert change(Transition.TRANSITION_CONFIGURE) and change(Transition.TRANSITION_ACTIVATE)
        assert wait_for(lambda: pub.get_subscription_count() >= 1, 20.0)
        assert outputs_while_sending(6.0) > 0
        assert change(Transition.TRANSITION_ACTIVE_SHUTDOWN)  # shutdown straight from active
        assert state() == State.PRIMARY_STATE_FINALIZED
        assert wait_for(lambda: pub.get_subscription_count() == 0, 20.0)
        assert proc.alive() and "Traceback" not in proc.log(), proc.log()
    finally:
        proc.stop()

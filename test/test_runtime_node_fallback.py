"""perception_node with backend auto on a machine where onnxruntime cannot be imported, over real Fast DDS: it
starts on torch, says why ONNX Runtime was skipped, and serves frames.

The node runs in a fresh interpreter that blocks ``onnxruntime`` (``sys.modules["onnxruntime"] = None``, the way
Python reports a missing package) before the node module is imported.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from conftest import FASTDDS_PROFILE, NodeProcess, wait_for  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from mtpano_ros.ros import conversions as C  # noqa: E402

HW = (64, 128)
NODE_CODE = ("import sys; sys.modules['onnxruntime'] = None; "
             "from mtpano_ros.ros.node import main; sys.exit(main())")


def test_auto_without_onnxruntime_starts_on_torch_and_serves_frames(ros_client, ros_domain_id, tmp_path):
    ns = "/no_ort"
    cmd = [sys.executable, "-c", NODE_CODE, "--ros-args", "-r", f"__ns:={ns}",
           "-p", "backend:=auto", "-p", "model:=mtpano-tiny", "-p", f"input_height:={HW[0]}",
           "-p", f"input_width:={HW[1]}", "-p", "threads:=1", "-p", f"engine_cache_dir:={tmp_path / 'cache'}"]
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0",
               FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_PROFILE))
    node = NodeProcess(cmd, tmp_path / "node.log", env)
    try:
        node.wait_ready(240.0)
        log = node.log()
        assert "skipping onnxruntime/cpu: onnxruntime is not importable" in log, log
        assert "skipping onnxruntime/cuda: onnxruntime is not importable" in log, log
        assert "selected backend torch on cpu" in log and "backend torch on cpu" in log, log

        got = {}
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for topic in ("depth", "semantic"):
            ros_client.node.create_subscription(Image, f"{ns}/{topic}",
                                                lambda msg, t=topic: got.setdefault(t, msg), qos)
        pub = ros_client.node.create_publisher(Image, f"{ns}/image", qos)
        assert wait_for(lambda: pub.get_subscription_count() >= 1, 30.0), node.log()
        time.sleep(1.0)
        rgb = (np.random.default_rng(0).random((*HW, 3)) * 255).astype(np.uint8)
        msg = C.array_to_image(rgb, "rgb8", None)
        msg.header.frame_id = "theta_link"
        for _ in range(6):
            pub.publish(msg)
            if wait_for(lambda: len(got) == 2, 10.0):
                break
        assert set(got) == {"depth", "semantic"}, node.log()
        depth = C.image_to_array(got["depth"])
        assert depth.shape == HW and got["depth"].header.frame_id == "theta_link"
        assert np.isfinite(depth).any()
        assert node.alive()
    finally:
        node.stop()

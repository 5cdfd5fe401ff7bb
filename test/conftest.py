"""Shared fixtures for the ROS tests: a unique ROS_DOMAIN_ID per test run, an in-process rclpy client node,
and a launcher for ``perception_node`` subprocesses (``MTPANO_PERCEPTION_NODE_CMD`` overrides the command, e.g.
"ros2 run mtpano_ros perception_node" to test an installed package).

Every run gets its own DDS domain (and every node its own namespace), so concurrent test runs on one machine
do not see each other's topics. Discovery stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Best-effort samples above Fast DDS's default 512 KiB shared-memory segment are lost (see the profile's comment)
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_images.xml"
# Fast DDS reads its XML profiles once per process, when the first participant is made: set the profile before any
# test creates an rclpy context, or every later participant in this process keeps the 512 KiB default.
# Fast DDS 3 (Kilted) reads FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2 (Humble, Jazzy) FASTRTPS_DEFAULT_PROFILES_FILE.
for _name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
    os.environ.setdefault(_name, str(FASTDDS_PROFILE))


def unique_ros_domain_id() -> int:
    """A DDS domain id in 1..100 derived from this process and the clock (other suites use 120+)."""
    return 1 + (os.getpid() * 7919 + time.time_ns() // 1_000_000) % 100


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """Unique ROS_DOMAIN_ID for this test run; also exported to this process's environment for children."""
    domain = unique_ros_domain_id()
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


def brute_force_scan(depth, num_beams: int, lo: float, hi: float, rmin: float = 0.0, rmax: float = float("inf")):
    """The virtual scan of DESIGN §5 by brute force, for cross-checks: per beam i (azimuth -pi + i * 2pi/N), the
    wrapped azimuth difference to every pixel, nearest-beam bins [-inc/2, inc/2), the smallest horizontal distance
    d cos(lat) of the pixels with height d sin(lat) in [lo, hi] and horizontal distance in [rmin, rmax]; +inf if
    none. depth (H, W) radial metres, NaN invalid. Returns (N,) float64."""
    import numpy as np

    from mtpano_ros.geometry import erp_lonlat_grid_np

    grid = erp_lonlat_grid_np(*depth.shape)
    lon, lat = grid[..., 0], grid[..., 1]
    inc = 2 * np.pi / num_beams
    d = np.asarray(depth, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        horiz, z = d * np.cos(lat), d * np.sin(lat)
        ok = (d > 0) & (z >= lo) & (z <= hi) & (horiz >= rmin) & (horiz <= rmax)
    out = np.full(num_beams, np.inf)
    for i in range(num_beams):
        diff = (lon - (-np.pi + i * inc) + np.pi) % (2 * np.pi) - np.pi
        sel = ok & (diff >= -inc / 2 - 1e-9) & (diff < inc / 2 - 1e-9)
        if sel.any():
            out[i] = horiz[sel].min()
    return out


def wait_for(predicate, timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll predicate() until it is truthy or timeout_s passes; returns its last truth value."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


class RosClient:
    """An rclpy node in its own context, spun on a background thread (publishers and subscriptions for tests)."""

    def __init__(self, domain_id: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f"mtpano_test_client_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # noqa: BLE001 - shutting down
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope="module")
def ros_client(ros_domain_id):
    pytest.importorskip("rclpy")
    client = RosClient(ros_domain_id)
    yield client
    client.close()


def default_sigint() -> None:
    """For Popen(preexec_fn=...): SIGINT back to its default in the child, so that a test run started in the
    background (where the shell ignores SIGINT, and children inherit that) can still stop its nodes with SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class NodeProcess:
    """A perception_node subprocess; its stdout and stderr go to one log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                     preexec_fn=default_sigint)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        ok = wait_for(lambda: "ready:" in self.log() or not self.alive(), timeout_s, 0.2)
        if not ok or not self.alive():
            self.stop()
            raise AssertionError(f"perception_node did not become ready (exit {self.proc.poll()}):\n{self.log()}")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def perception_node(ros_domain_id, tmp_path_factory):
    """Factory: perception_node(namespace, params: dict) -> a started NodeProcess (waits for 'ready')."""
    started: list[NodeProcess] = []

    def start(namespace: str, params: dict, threads: int = 1, wait: bool = True,
              params_file: Path | None = None) -> NodeProcess:
        exe = Path(sys.executable).with_name("perception_node")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mtpano_ros.ros.node"]
        if os.environ.get("MTPANO_PERCEPTION_NODE_CMD"):  # e.g. "ros2 run mtpano_ros perception_node"
            cmd = shlex.split(os.environ["MTPANO_PERCEPTION_NODE_CMD"])
        cmd += ["--ros-args", "-r", f"__ns:={namespace}"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        for key, value in params.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            cmd += ["-p", f"{key}:={text}"]
        profile = str(FASTDDS_PROFILE)
        env = dict(os.environ, ROS_DOMAIN_ID=str(ros_domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), RCUTILS_COLORIZED_OUTPUT="0",
                   FASTDDS_DEFAULT_PROFILES_FILE=profile, FASTRTPS_DEFAULT_PROFILES_FILE=profile)
        log_path = tmp_path_factory.mktemp("node") / f"{namespace.strip('/')}.log"
        node = NodeProcess(cmd, log_path, env)
        started.append(node)
        if wait:
            node.wait_ready()
        return node

    yield start
    for node in started:
        node.stop()

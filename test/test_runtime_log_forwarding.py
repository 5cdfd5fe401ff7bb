"""mtpano_ros.ros.python_logging: the runtime's Python log records reach the node's ROS logger (one handler per
process, re-pointed by a second call; DEBUG stays out)."""

from __future__ import annotations

import logging

import pytest

from mtpano_ros.ros import python_logging
from mtpano_ros.ros.python_logging import forward_to_ros

CHILDREN = ("mtpano_ros.runtime", "mtpano_ros.runtime.selection", "mtpano_ros.runtime.tensorrt")


@pytest.fixture(autouse=True)
def restore_logging():
    """Saves and restores the logging state; children propagate as in a node process (another test in this process
    may have imported ``launch``, whose logger class makes loggers created afterwards non-propagating)."""
    root = logging.getLogger("mtpano_ros")
    level, handlers = root.level, list(root.handlers)
    children = [logging.getLogger(n) for n in CHILDREN]
    propagate = [c.propagate for c in children]
    for c in children:
        c.propagate = True
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for c, p in zip(children, propagate):
        c.propagate = p
    python_logging._HANDLER = None


class Recorder:
    """Collects calls the way an rclpy logger receives them (info/warning/error/fatal/debug with one string)."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level):
        if level not in ("debug", "info", "warning", "error", "fatal"):
            raise AttributeError(level)
        return lambda text: self.lines.append((level, text))


def test_records_reach_the_ros_logger_at_their_level():
    first, second = Recorder(), Recorder()
    forward_to_ros(first)
    log = logging.getLogger("mtpano_ros.runtime.selection")
    log.info("skipping onnxruntime/cpu: not importable")
    log.warning("auto: tensorrt/cuda failed to start")
    logging.getLogger("mtpano_ros.runtime.tensorrt").error("build failed")
    log.debug("not forwarded")
    assert first.lines == [("info", "[mtpano_ros.runtime.selection] skipping onnxruntime/cpu: not importable"),
                           ("warning", "[mtpano_ros.runtime.selection] auto: tensorrt/cuda failed to start"),
                           ("error", "[mtpano_ros.runtime.tensorrt] build failed")]
    forward_to_ros(second)
    log.info("after re-pointing")
    assert len(first.lines) == 3 and second.lines == [("info", "[mtpano_ros.runtime.selection] after re-pointing")]
    handlers = [h for h in logging.getLogger("mtpano_ros").handlers if type(h).__name__ == "_RosHandler"]
    assert len(handlers) == 1
    logging.getLogger("mtpano_ros").handlers.clear()  # as launch.logging.reset() does to its loggers
    forward_to_ros(second)
    log.info("re-attached")
    assert second.lines[-1] == ("info", "[mtpano_ros.runtime.selection] re-attached")
    second.lines.pop()
    logging.getLogger("other.library").warning("not ours")
    assert len(second.lines) == 1

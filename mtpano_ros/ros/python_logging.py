"""Forward Python ``logging`` records of ``mtpano_ros.*`` (runtime, model) to a ROS logger.

The runtime logs with Python ``logging``: which backend ``auto`` skipped and why, ONNX export and exporter
fallbacks, TensorRT engine build progress. Without a handler those INFO lines would be lost in a node, so the
node calls ``forward_to_ros(self.get_logger())`` before it builds its backend.
"""

from __future__ import annotations

import logging

_HANDLER: _RosHandler | None = None


class _RosHandler(logging.Handler):
    def __init__(self, ros_logger):
        super().__init__(level=logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"[{record.name}] {record.getMessage()}"
            if record.levelno >= logging.CRITICAL:
                self.ros_logger.fatal(text)
            elif record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def forward_to_ros(ros_logger, level: int = logging.INFO) -> None:
    """Send ``mtpano_ros.*`` Python log records at ``level`` and above to ``ros_logger`` (an rclpy logger).

    One handler per process: a second call points it at the new logger instead of adding another. Records reach
    it by propagation; in a process that imported ``launch`` (whose logger class makes new loggers
    non-propagating) only loggers made before that import forward.
    """
    global _HANDLER
    root = logging.getLogger("mtpano_ros")
    if _HANDLER is None:
        _HANDLER = _RosHandler(ros_logger)
    if _HANDLER not in root.handlers:  # first call, or something (launch.logging.reset()) removed it
        root.addHandler(_HANDLER)
    _HANDLER.ros_logger = ros_logger
    _HANDLER.setLevel(level)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)

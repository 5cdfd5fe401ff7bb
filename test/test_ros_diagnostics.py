"""The node's /diagnostics levels: OK, WARN (drops, latency, bad input), ERROR (failing inference), STALE (no input)."""

import pytest

pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from mtpano_ros.ros.diagnostics import HealthThresholds, NodeStats, diagnostic_array  # noqa: E402


def _status(stats, limits=None, extra=None):
    msg = diagnostic_array(stats, "ns/mtpano_perception: perception", "cpu", {"backend": "torch"},
                           limits=limits or HealthThresholds(stale_after_s=5.0), input_topic="/cam/image", extra=extra)
    (status,) = msg.status
    return status.level, status.message, {kv.key: kv.value for kv in status.values}


def test_ok_then_stale_when_input_stops():
    stats = NodeStats()
    t0 = stats.started
    assert _status(stats)[:2] == (DiagnosticStatus.OK, "ready, waiting for images")
    for i in range(10):
        stats.note_input(t0 + 0.1 * i, dropped=False)
        stats.note_output(t0 + 0.1 * i, t0 + 0.1 * i + 0.05, 0.04)
    level, message, values = _status(stats)
    assert level == DiagnosticStatus.OK and message.startswith("running at")
    assert values["backend"] == "torch" and values["frames_received"] == "10"
    stats.last_input = t0 - 10.0  # the last frame came 10 s ago
    level, message, _ = _status(stats)
    assert level == DiagnosticStatus.STALE and "/cam/image" in message and "for 1" in message


def test_stale_before_the_first_frame():
    stats = NodeStats()
    stats.started -= 6.0
    level, message, _ = _status(stats)
    assert level == DiagnosticStatus.STALE and "none yet" in message


def test_warn_on_drops_latency_and_bad_input():
    stats = NodeStats()
    t = stats.started
    for i in range(20):
        stats.note_input(t, dropped=i > 0)  # 19 of 20 replaced while the model was busy
    stats.note_output(t, t + 0.01, 0.01)
    level, message, _ = _status(stats)
    assert level == DiagnosticStatus.WARN and "19 of 20 frames dropped" in message
    assert _status(stats)[0] == DiagnosticStatus.OK  # nothing new since the last report

    stats.note_input(t, dropped=False)
    stats.note_output(t, t + 3.5, 3.0)  # 3.5 s from receipt to publish
    level, message, _ = _status(stats, HealthThresholds(max_latency_ms=1000.0))
    assert level == DiagnosticStatus.WARN and "p95 latency 33" in message and "> 1000 ms" in message
    assert _status(stats, HealthThresholds(max_latency_ms=0.0))[0] == DiagnosticStatus.OK  # 0 = off

    stats.note_input(t, dropped=False)
    stats.note_error("encoding")
    level, message, values = _status(stats)
    assert level == DiagnosticStatus.WARN and "encoding: 1" in message and values["errors.encoding"] == "1"
    stats.note_input(t, dropped=False)
    stats.note_error("encoding")  # 1 of 2 bad: under a 0.6 limit
    assert _status(stats, HealthThresholds(max_bad_input_ratio=0.6, max_latency_ms=0.0))[0] == DiagnosticStatus.OK


def test_error_when_inference_keeps_failing_and_recovery():
    stats = NodeStats()
    t = stats.started
    for _ in range(3):
        stats.note_input(t, dropped=False)
        stats.note_error("inference")
    level, message, values = _status(stats)
    assert level == DiagnosticStatus.ERROR and "3 times in a row" in message and values["consecutive_failures"] == "3"
    stats.note_input(t, dropped=False)
    stats.note_output(t, t + 0.1, 0.1)
    level, _, values = _status(stats, extra={"ground_scale": "1.234"})
    assert level == DiagnosticStatus.OK and values["ground_scale"] == "1.234"

"""Counters, rates and latency percentiles of the perception node, and their /diagnostics message.

Thread-safe: the subscription callback, the inference thread and the diagnostics timer all touch one
:class:`NodeStats`. Nothing here imports the model or the runtime.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

RATE_WINDOW_S = 5.0


def _rate_hz(times: collections.deque, now: float) -> float:
    recent = [t for t in times if now - t <= RATE_WINDOW_S]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0])
    return (len(recent) - 1) / span if span > 0 else 0.0


class NodeStats:
    """Frame counters, input/output times, latencies (ms, receipt -> published) and errors by kind."""

    def __init__(self, history: int = 1000):
        self._lock = threading.Lock()
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_unobserved = 0
        self.errors: collections.Counter = collections.Counter()
        self._in_times: collections.deque = collections.deque(maxlen=history)
        self._out_times: collections.deque = collections.deque(maxlen=history)
        self._latency_ms: collections.deque = collections.deque(maxlen=history)
        self._forward_ms: collections.deque = collections.deque(maxlen=history)
        self._errors_at_last_report = 0

    def note_input(self, t: float, dropped: bool) -> None:
        """A valid frame arrived at monotonic time t; dropped=True if it replaced a pending, unprocessed one."""
        with self._lock:
            self.frames_received += 1
            self.frames_dropped += int(dropped)
            self._in_times.append(t)

    def note_output(self, t_received: float, t_done: float, forward_s: float) -> None:
        """A frame received at t_received was published at t_done after forward_s seconds of inference."""
        with self._lock:
            self.frames_processed += 1
            self._out_times.append(t_done)
            self._latency_ms.append(1e3 * (t_done - t_received))
            self._forward_ms.append(1e3 * forward_s)

    def note_error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def note_unobserved(self) -> None:
        """A frame was taken but skipped because no output topic had a subscriber."""
        with self._lock:
            self.frames_unobserved += 1

    def snapshot(self, now: float | None = None) -> dict:
        """Plain-number summary: counters, rates (Hz), latency and forward-time percentiles (ms), errors."""
        now = time.monotonic() if now is None else now
        with self._lock:
            lat = np.array(self._latency_ms, dtype=np.float64)
            fwd = np.array(self._forward_ms, dtype=np.float64)
            snap = {
                "frames_received": self.frames_received, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "frames_unobserved": self.frames_unobserved,
                "input_rate_hz": _rate_hz(self._in_times, now),
                "output_rate_hz": _rate_hz(self._out_times, now), "errors": dict(self.errors),
                "errors_total": sum(self.errors.values()),
            }
        for q in (50, 95, 99):
            snap[f"latency_ms_p{q}"] = float(np.percentile(lat, q)) if lat.size else float("nan")
        snap["forward_ms_p50"] = float(np.median(fwd)) if fwd.size else float("nan")
        return snap

    def new_errors_since_last_report(self) -> int:
        with self._lock:
            total = sum(self.errors.values())
            new, self._errors_at_last_report = total - self._errors_at_last_report, total
        return new


def diagnostic_array(stats: NodeStats, name: str, hardware_id: str, static: dict[str, str],
                     stamp=None) -> DiagnosticArray:
    """Build the node's DiagnosticArray: one status with ``static`` (backend, model, ...) and the live numbers.

    Level: OK while frames flow, WARN when bad input arrived since the last report, and a message saying why.
    """
    snap = stats.snapshot()
    new_errors = stats.new_errors_since_last_report()
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if new_errors:
        status.level = DiagnosticStatus.WARN
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(snap["errors"].items()))
        status.message = f"{new_errors} bad or failed frames since the last report (totals {kinds})"
    elif snap["frames_received"] == 0:
        status.level = DiagnosticStatus.OK
        status.message = "ready, waiting for images"
    else:
        status.level = DiagnosticStatus.OK
        status.message = f"running at {snap['output_rate_hz']:.1f} Hz"
    values = dict(static)
    for key in ("frames_received", "frames_processed", "frames_dropped", "frames_unobserved", "errors_total"):
        values[key] = str(snap[key])
    for key in ("input_rate_hz", "output_rate_hz", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
                "forward_ms_p50"):
        values[key] = f"{snap[key]:.2f}"
    for kind, count in sorted(snap["errors"].items()):
        values[f"errors.{kind}"] = str(count)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    msg = DiagnosticArray(status=[status])
    if stamp is not None:
        msg.header.stamp = stamp
    return msg

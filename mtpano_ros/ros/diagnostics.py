"""Counters, rates and latency percentiles of the perception node, and their /diagnostics message.

Thread-safe: the subscription callback, the inference thread and the diagnostics timer all touch one
:class:`NodeStats`. Nothing here imports the model or the runtime.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

RATE_WINDOW_S = 5.0


@dataclass
class HealthThresholds:
    """When /diagnostics stops saying OK (the node's diag_* / stale_after_s parameters).

    stale_after_s: STALE when no valid input arrived for this long (also before the first frame).
    error_after_failures: ERROR after this many inference failures in a row (no output in between).
    max_drop_ratio: WARN when more than this fraction of the frames received since the last report were dropped
    (replaced while the model was busy; 0.9 at 30 Hz input means the node runs below 3 Hz).
    max_latency_ms: WARN when the p95 receipt -> publish latency of the last RATE_WINDOW_S exceeds it (0: off).
    max_bad_input_ratio: WARN when more than this fraction of the messages since the last report were bad.
    """

    stale_after_s: float = 5.0
    error_after_failures: int = 3
    max_drop_ratio: float = 0.9
    max_latency_ms: float = 2000.0
    max_bad_input_ratio: float = 0.0


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
        self.started = time.monotonic()
        self.last_input: float | None = None
        self.consecutive_failures = 0
        self._report = {"received": 0, "dropped": 0, "errors": 0}

    def note_input(self, t: float, dropped: bool) -> None:
        """A valid frame arrived at monotonic time t; dropped=True if it replaced a pending, unprocessed one."""
        with self._lock:
            self.frames_received += 1
            self.frames_dropped += int(dropped)
            self._in_times.append(t)
            self.last_input = t

    def note_output(self, t_received: float, t_done: float, forward_s: float) -> None:
        """A frame received at t_received was published at t_done after forward_s seconds of inference."""
        with self._lock:
            self.frames_processed += 1
            self._out_times.append(t_done)
            self._latency_ms.append(1e3 * (t_done - t_received))
            self._forward_ms.append(1e3 * forward_s)
            self.consecutive_failures = 0

    def note_error(self, kind: str) -> None:
        """A bad message (or, kind "inference", a failed forward pass / publish)."""
        with self._lock:
            self.errors[kind] += 1
            if kind == "inference":
                self.consecutive_failures += 1

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
            recent = [ms for t, ms in zip(self._out_times, self._latency_ms) if now - t <= RATE_WINDOW_S]
            snap["recent_latency_ms_p95"] = float(np.percentile(recent, 95)) if recent else float("nan")
            snap["seconds_since_input"] = (now - self.last_input) if self.last_input is not None else float("nan")
            snap["seconds_since_start"] = now - self.started
            snap["consecutive_failures"] = self.consecutive_failures
        for q in (50, 95, 99):
            snap[f"latency_ms_p{q}"] = float(np.percentile(lat, q)) if lat.size else float("nan")
        snap["forward_ms_p50"] = float(np.median(fwd)) if fwd.size else float("nan")
        return snap

    def since_last_report(self) -> dict[str, int]:
        """Frames received, dropped and bad since the previous call: {"received", "dropped", "errors"}."""
        with self._lock:
            now = {"received": self.frames_received, "dropped": self.frames_dropped,
                   "errors": sum(self.errors.values())}
            delta = {k: now[k] - self._report[k] for k in now}
            self._report = now
        return delta


def health(snap: dict, delta: dict[str, int], limits: HealthThresholds, input_topic: str = "input"
           ) -> tuple[int, str]:
    """(DiagnosticStatus level, message) from a NodeStats snapshot and its since_last_report() counts.

    ERROR: inference failed error_after_failures times in a row. STALE: no valid input for stale_after_s.
    WARN: drop ratio, p95 latency or bad-input ratio over its threshold. OK otherwise. The worst one wins.
    """
    if snap["consecutive_failures"] >= limits.error_after_failures:
        kinds = snap["errors"].get("inference", 0)
        return DiagnosticStatus.ERROR, (f"inference failed {snap['consecutive_failures']} times in a row "
                                        f"({kinds} in total): see the node's log")
    idle = snap["seconds_since_input"]
    if idle != idle:  # NaN: nothing received yet
        idle = snap["seconds_since_start"]
        if idle > limits.stale_after_s:
            return DiagnosticStatus.STALE, f"no image received on {input_topic} for {idle:.1f} s (none yet)"
    elif idle > limits.stale_after_s:
        return DiagnosticStatus.STALE, f"no image received on {input_topic} for {idle:.1f} s"
    problems = []
    if delta["received"] and delta["dropped"] / delta["received"] > limits.max_drop_ratio:
        problems.append(f"{delta['dropped']} of {delta['received']} frames dropped since the last report (model "
                        f"slower than the input; max_drop_ratio {limits.max_drop_ratio:g})")
    lat = snap["recent_latency_ms_p95"]
    if limits.max_latency_ms > 0 and lat == lat and lat > limits.max_latency_ms:
        problems.append(f"p95 latency {lat:.0f} ms > {limits.max_latency_ms:g} ms")
    seen = delta["received"] + delta["errors"]
    if seen and delta["errors"] / seen > limits.max_bad_input_ratio:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(snap["errors"].items()))
        problems.append(f"{delta['errors']} bad or failed frames since the last report (totals {kinds})")
    if problems:
        return DiagnosticStatus.WARN, "; ".join(problems)
    if snap["frames_received"] == 0:
        return DiagnosticStatus.OK, "ready, waiting for images"
    return DiagnosticStatus.OK, f"running at {snap['output_rate_hz']:.1f} Hz"


def diagnostic_array(stats: NodeStats, name: str, hardware_id: str, static: dict[str, str], stamp=None,
                     limits: HealthThresholds | None = None, input_topic: str = "input",
                     extra: dict[str, str] | None = None) -> DiagnosticArray:
    """Build the node's DiagnosticArray: one status with ``static`` (backend, model, ...), the live numbers and
    ``extra`` (e.g. the ground scale); level and message from :func:`health`."""
    snap = stats.snapshot()
    delta = stats.since_last_report()
    level, message = health(snap, delta, limits or HealthThresholds(), input_topic)
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message)
    values = dict(static)
    for key in ("frames_received", "frames_processed", "frames_dropped", "frames_unobserved", "errors_total",
                "consecutive_failures"):
        values[key] = str(snap[key])
    for key in ("input_rate_hz", "output_rate_hz", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
                "forward_ms_p50", "seconds_since_input"):
        values[key] = f"{snap[key]:.2f}"
    for kind, count in sorted(snap["errors"].items()):
        values[f"errors.{kind}"] = str(count)
    values.update(extra or {})
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    msg = DiagnosticArray(status=[status])
    if stamp is not None:
        msg.header.stamp = stamp
    return msg

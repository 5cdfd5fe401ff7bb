"""The main job: panoramas in, the perception node's outputs on disk, over real ROS 2 topics.

    python -m mtpano_ros.ros.demo --panos DIR --out DIR [--model default] [--backend auto]

Starts three processes on a ROS domain of their own (ROS_DOMAIN_ID picked at random, discovery limited to
this machine): the perception node, `mtpano-record` and `mtpano-replay`. It waits for the node to report
ready, plays every panorama of DIR once in lock step (the next frame goes out only when the node has
published the previous one, so nothing is dropped however slow the model is), then stops everything and
moves each frame's files to OUT/<panorama name>/ (see mtpano_ros.ros.record for the files). Prints where the
outputs are and a latency table (image stamp -> reception by the recorder); OUT/summary.json has the same.
Logs of the three processes are in OUT/logs/. Exit status 0 when every panorama produced every output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mtpano_ros.ros.record import format_latency_table
from mtpano_ros.ros.replay import list_images

# Fast DDS settings for a few large samples per frame on one machine: a 64 MiB shared-memory segment (the
# default 512 KiB one overflows with a frame's ~10 MB of images and cloud, and lost fragments wait for the next
# heartbeat) and a 100 ms writer heartbeat (default 3 s) so that any repair is quick. Other RMWs ignore it.
FASTDDS_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>mtpano_shm</transport_id>
        <type>SHM</type>
        <segment_size>67108864</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>mtpano_udp</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="mtpano_participant" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>mtpano_shm</transport_id>
          <transport_id>mtpano_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
    <data_writer profile_name="mtpano_writer" is_default_profile="true">
      <times>
        <heartbeat_period><sec>0</sec><nanosec>100000000</nanosec></heartbeat_period>
      </times>
    </data_writer>
  </profiles>
</dds>
"""


class Child:
    """A child process whose merged stdout/stderr goes to a log file and, prefixed, to our stdout.

    echo: True (every line), "log" (only ROS log lines, which start with "[") or False.
    """

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path, echo: bool | str = True,
                 stdin: bool = False):
        self.name = name
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.log = open(log_path, "w", encoding="utf-8")
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1, errors="replace",
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.echo = echo
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            if self.echo and (self.echo is True or line.startswith("[")):
                print(f"[{self.name}] {line.rstrip()}", flush=True)
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for_line(self, text: str, timeout_s: float) -> bool:
        """Wait until a line containing `text` was printed; False on timeout or when the process ended first."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not any(text in line for line in self.lines):
                if self.proc.poll() is not None and not self.reader.is_alive():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Close its stdin, then SIGINT (a clean ROS shutdown), SIGTERM, SIGKILL; returns the exit code."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # a replay waiting for its next step sees the end of input and stops
            except OSError:
                pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        self.reader.join(timeout=5)
        self.log.close()
        return self.proc.poll()


def _image_size(path: Path) -> str:
    """'WxH' of an image file from its header (no full decode)."""
    from PIL import Image

    with Image.open(path) as image:
        return f"{image.width}x{image.height}"


def _output_names(panoramas: list[Path]) -> list[str]:
    """Output folder name per panorama: its stem, or its full name where two stems collide."""
    stems = [p.stem for p in panoramas]
    return [p.stem if stems.count(p.stem) == 1 else p.name.replace(".", "_") for p in panoramas]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mtpano_ros.ros.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--panos", type=Path, required=True, help="folder of .jpg/.png equirectangular panoramas")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--model", default="default", help="bundled model name, registry name or weights path")
    parser.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime", "torch"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--transport", default="compressed", choices=("compressed", "raw"),
                        help="how panoramas travel to the node (compressed: the files' own JPEG/PNG bytes)")
    parser.add_argument("--output-size", default="model", choices=("model", "input"),
                        help="node outputs at the network resolution or at each panorama's own size")
    parser.add_argument("--ply-format", default="binary", choices=("binary", "ascii"))
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random in 30..229)")
    parser.add_argument("--ready-timeout-s", type=float, default=900.0,
                        help="how long the node may take to load and warm up the model")
    parser.add_argument("--frame-timeout-s", type=float, default=300.0, help="how long one frame may take")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run replay -> node -> record over every panorama of --panos; returns the exit status."""
    args = _parse_args(argv)
    if not args.panos.is_dir():
        print(f"demo: --panos {args.panos} is not a folder: give a folder of .jpg/.png panoramas", file=sys.stderr)
        return 2
    panoramas = list_images(args.panos)
    if not panoramas:
        print(f"demo: {args.panos} holds no .jpg/.jpeg/.png files: add panoramas or point --panos elsewhere",
              file=sys.stderr)
        return 2
    out = args.out
    logs = out / "logs"
    record_dir = out / "logs" / "record"
    shutil.rmtree(record_dir, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)

    domain_id = args.domain_id if args.domain_id is not None else random.SystemRandom().randint(30, 229)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    if not (env.get("FASTDDS_DEFAULT_PROFILES_FILE") or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
        (logs / "fastdds.xml").write_text(FASTDDS_PROFILE)
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(logs / "fastdds.xml")  # Fast DDS 3 (Kilted)
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(logs / "fastdds.xml")  # Fast DDS 2 (Humble, Jazzy)
    py = sys.executable
    print(f"demo: {len(panoramas)} panorama(s) from {args.panos}, model '{args.model}', backend '{args.backend}', "
          f"ROS_DOMAIN_ID={domain_id}", flush=True)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    children: list[Child] = []
    status = 1
    try:
        node = Child("node", [py, "-m", "mtpano_ros.ros.node", "--ros-args",
                              "-p", f"model:={args.model}", "-p", f"backend:={args.backend}",
                              "-p", f"device:={args.device}", "-p", f"input_transport:={args.transport}",
                              "-p", "reliability:=reliable", "-p", f"output_size:={args.output_size}"],
                     env, logs / "node.log")
        children.append(node)
        if not node.wait_for_line("ready:", args.ready_timeout_s):
            print(f"demo: the node did not become ready (see {logs / 'node.log'})", file=sys.stderr)
            return 1
        recorder = Child("record", [py, "-m", "mtpano_ros.ros.record", "--out", str(record_dir),
                                    "--frames", str(len(panoramas)), "--ply-format", args.ply_format],
                         env, logs / "record.log", echo="log")  # its own summary table is printed below
        children.append(recorder)
        if not recorder.wait_for_line("connected:", 120):
            print(f"demo: the recorder did not connect to the node (see {logs / 'record.log'})", file=sys.stderr)
            return 1
        manifest_path = logs / "replay.json"
        replay = Child("replay", [py, "-m", "mtpano_ros.ros.replay", str(args.panos), "--transport", args.transport,
                                  "--step-stdin", "--rate-hz", "100", "--wait-subscribers", "1",
                                  "--manifest", str(manifest_path)],
                       env, logs / "replay.log", stdin=True)
        children.append(replay)
        # One frame at a time: the next panorama goes out once the recorder holds every output of the last one,
        # so the node never has a frame waiting (nothing dropped) and no output is overwritten before delivery.
        for index, path in enumerate(panoramas):
            replay.proc.stdin.write("\n")
            replay.proc.stdin.flush()
            if not recorder.wait_for_line(f"frame_{index:04d}: ", args.frame_timeout_s):
                print(f"demo: no complete output for {path.name} after {args.frame_timeout_s:.0f} s; going on",
                      file=sys.stderr)
        replay.proc.stdin.close()
        replay_status = replay.proc.wait(timeout=60)
        try:  # the recorder stops by itself after the last frame; give it time to write the files
            recorder.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            print("demo: the recorder is still waiting for frames; stopping it", file=sys.stderr)
        for child in reversed(children):
            child.stop()
        status = _collect(panoramas, out, record_dir, manifest_path)
        if replay_status != 0:
            status = 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        status = 130
    except subprocess.TimeoutExpired as error:
        print(f"demo: timed out ({error})", file=sys.stderr)
        status = 1
    finally:
        for child in reversed(children):
            child.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
    return status


def _collect(panoramas: list[Path], out: Path, record_dir: Path, manifest_path: Path) -> int:
    """Move each recorded frame to OUT/<name>/, write OUT/summary.json, print the tables; 0 if all complete."""
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    frames_path = record_dir / "frames.json"
    frames = json.loads(frames_path.read_text()) if frames_path.exists() else []
    by_stamp = {f["stamp_ns"]: f for f in frames}
    name_of = dict(zip((p.name for p in panoramas), _output_names(panoramas)))
    rows, complete = [], 0
    for entry, path in zip(manifest, panoramas):
        frame = by_stamp.get(entry["stamp_ns"])
        row = {"panorama": entry["name"], "input": _image_size(path), "outputs": None, "files": [],
               "latency_ms": None, "complete": False}
        if frame is not None and (record_dir / frame["dir"]).is_dir():
            dest = out / name_of.get(entry["name"], Path(entry["name"]).stem)
            dest.mkdir(parents=True, exist_ok=True)
            for item in sorted((record_dir / frame["dir"]).iterdir()):
                os.replace(item, dest / item.name)
                row["files"].append(item.name)
            row.update(outputs=str(dest), complete=bool(frame["complete"]),
                       latency_ms=max(frame["latency_ms"].values()) if frame["latency_ms"] else None)
            complete += row["complete"]
        rows.append(row)
    latency_path = record_dir / "latency.json"
    latency = json.loads(latency_path.read_text()) if latency_path.exists() else {}
    summary = {"panoramas": rows, "latency": latency}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    width = max([len(r["panorama"]) for r in rows] + [9])
    print()
    print(f"{'panorama':<{width}}  {'input':>10}  {'latency ms':>10}  outputs")
    for r in rows:
        where = f"{r['outputs']}/ ({len(r['files'])} files)" if r["outputs"] else "MISSING"
        lat = f"{r['latency_ms']:.0f}" if r["latency_ms"] is not None else "-"
        print(f"{r['panorama']:<{width}}  {r['input']:>10}  {lat:>10}  {where}")
    print()
    print("latency from image stamp to reception, per output topic:")
    print(format_latency_table(latency) if latency else "(no frames recorded)")
    print()
    print(f"demo: {complete}/{len(panoramas)} panorama(s) complete; outputs in {out}/<panorama>/, "
          f"summary in {out / 'summary.json'}, logs in {out / 'logs'}", flush=True)
    return 0 if complete == len(panoramas) else 1


if __name__ == "__main__":
    sys.exit(main())

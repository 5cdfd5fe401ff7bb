"""mtpano-replay: publish a folder of panoramas or an MCAP bag as images at a fixed rate.

    mtpano-replay DIR_OR_BAG [--rate-hz 2] [--loop | --count N] [--transport raw|compressed]
                  [--encoding rgb8|bgr8] [--frame-id camera_link] [--ros-args -r image:=/theta/image_raw]

Sources: a folder of .jpg/.jpeg/.png files (sorted by name, any size), one image file, or an MCAP bag
(ROS 2 profile, as written by `ros2 bag record -s mcap` or `mcap_ros2.writer`) holding
`sensor_msgs/msg/Image` or `sensor_msgs/msg/CompressedImage` messages (`--bag-topic` picks one topic).

Bags are streamed (one message in memory at a time, the file re-read for every --loop pass).
Publishes on the relative topic `image` (`sensor_msgs/Image`, rgb8 or bgr8) or `image/compressed`
(`sensor_msgs/CompressedImage`, jpeg/png; image files are sent as their own bytes). Each message is
stamped with the current time; its frame id is the `frame_id` parameter (an empty value keeps the bag's
frame ids). `--wait-output TOPIC` plays in lock step with a node: before the first frame it waits until
the node subscribes and publishes TOPIC, and after each frame until TOPIC carries that frame's stamp,
so that a slow consumer drops nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


@dataclass
class Frame:
    """One source frame. Exactly one of `path`, `message` is set.

    name: file name or `<bag topic>#<index>`; path: an image file on disk; message: a decoded
    sensor_msgs Image or CompressedImage from a bag.
    """

    name: str
    path: Path | None = None
    message: object | None = None


def list_images(folder: Path) -> list[Path]:
    """Image files (.jpg/.jpeg/.png, any case) directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def iter_bag(bag: Path, topic: str | None = None) -> Iterator[Frame]:
    """Yield the Image / CompressedImage messages of an MCAP bag in log-time order, one at a time (streamed).

    Messages are deserialised with rclpy from their CDR bytes, so they are real sensor_msgs messages.
    `topic` restricts to one topic; by default every image topic of the bag is played.
    """
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage, Image

    types = {IMAGE_TYPE: Image, COMPRESSED_TYPE: CompressedImage}
    with open(bag, "rb") as stream:
        reader = make_reader(stream)
        index = 0
        for schema, channel, message in reader.iter_messages(topics=[topic] if topic else None):
            if schema is None or schema.name not in types or channel.message_encoding != "cdr":
                continue
            yield Frame(f"{channel.topic}#{index}", message=deserialize_message(message.data, types[schema.name]))
            index += 1


class BagFrames:
    """The image messages of an MCAP bag, streamed: each iteration reads the file again, one message at a time,
    so a bag of any length plays in constant memory. ``len()`` comes from the bag's summary (message counts of
    the image channels) when it has one, else from one counting pass."""

    def __init__(self, bag: Path, topic: str | None = None):
        self.bag, self.topic = bag, topic
        self._count: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        return iter_bag(self.bag, self.topic)

    def __len__(self) -> int:
        if self._count is None:
            self._count = _bag_image_count(self.bag, self.topic)
        return self._count


def _bag_image_count(bag: Path, topic: str | None) -> int:
    from mcap.reader import make_reader

    with open(bag, "rb") as stream:
        summary = make_reader(stream).get_summary()
    if summary is not None and summary.statistics is not None:
        counts = summary.statistics.channel_message_counts
        return sum(counts.get(cid, 0) for cid, ch in summary.channels.items()
                   if summary.schemas.get(ch.schema_id) is not None
                   and summary.schemas[ch.schema_id].name in (IMAGE_TYPE, COMPRESSED_TYPE)
                   and ch.message_encoding == "cdr" and (topic is None or ch.topic == topic))
    return sum(1 for _ in iter_bag(bag, topic))


def source_frames(source: Path, bag_topic: str | None = None):
    """The frames of `source` (folder, image file or .mcap bag) as a re-iterable sequence with ``len()``.

    Folders and image files: a list of Frame(path=...) (the files are read when published). Bags: a
    :class:`BagFrames` that streams the file. Raises FileNotFoundError / ValueError with what was expected
    when the source has no images.
    """
    if not source.exists():
        raise FileNotFoundError(f"replay source {source} does not exist: give a folder of .jpg/.png panoramas, "
                                "one image file, or an .mcap bag")
    if source.is_dir():
        frames = [Frame(p.name, path=p) for p in list_images(source)]
    elif source.suffix.lower() == ".mcap":
        frames = BagFrames(source, bag_topic)
        if next(iter(frames), None) is None:
            frames = []
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        frames = [Frame(source.name, path=source)]
    else:
        raise ValueError(f"replay source {source} is neither a folder, a .jpg/.png image nor an .mcap bag")
    if not frames:
        what = f"{IMAGE_TYPE} or {COMPRESSED_TYPE} messages" + (f" on {bag_topic}" if bag_topic else "")
        if source.is_dir():
            what = "files ending in " + "/".join(IMAGE_SUFFIXES)
        raise ValueError(f"replay source {source} holds no {what}")
    return frames


def play_order(frames, loop: bool, count: int) -> Iterator[Frame]:
    """Frames in publishing order: each once (count 0), ``count`` in total cycling through the source, or
    endlessly (loop). Re-iterates ``frames`` for every pass, so a streamed bag is never held in memory."""
    published = 0
    while True:
        empty = True
        for frame in frames:
            empty = False
            if count and published >= count:
                return
            yield frame
            published += 1
        if empty or not (loop or (count and published < count)):
            return


def frame_to_bgr(frame: Frame) -> np.ndarray:
    """Decode any source frame to (H, W, 3) uint8 BGR."""
    from sensor_msgs.msg import CompressedImage

    from mtpano_ros.ros import conversions

    msg = frame.message
    if isinstance(msg, CompressedImage):
        return conversions.decode_compressed(msg, where=frame.name)
    if msg is not None:
        array = conversions.image_to_array(msg, where=frame.name, allowed=conversions.INPUT_ENCODINGS)
        return cv2.cvtColor(conversions.to_rgb(array, msg.encoding), cv2.COLOR_RGB2BGR)
    image = cv2.imread(str(frame.path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image file {frame.path}: expected a readable JPEG or PNG")
    return image


def frame_to_message(frame: Frame, transport: str, encoding: str, jpeg_quality: int = 90):
    """Build the message to publish for `frame` (the caller sets the stamp and, if asked, the frame id).

    transport "raw" -> sensor_msgs/Image in `encoding` (rgb8 or bgr8); "compressed" ->
    sensor_msgs/CompressedImage (image files and compressed bag messages keep their own bytes; raw bag
    images are JPEG-encoded). Bag messages keep their frame id.
    """
    from sensor_msgs.msg import CompressedImage

    from mtpano_ros.ros import conversions

    msg = frame.message
    if transport == "compressed" and isinstance(msg, CompressedImage):
        out = CompressedImage(format=msg.format, data=msg.data)
    elif transport == "compressed" and frame.path is not None:
        fmt = "png" if frame.path.suffix.lower() == ".png" else "jpeg"
        out = CompressedImage(format=fmt, data=frame.path.read_bytes())
    elif transport == "compressed":
        out = conversions.encode_compressed(frame_to_bgr(frame), "jpeg", encoding="bgr8", quality=jpeg_quality)
    else:
        bgr = frame_to_bgr(frame)
        array = bgr if encoding == "bgr8" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out = conversions.array_to_image(array, encoding)
    if msg is not None:
        out.header.frame_id = msg.header.frame_id
    return out


def matching_qos(node, topic: str, depth: int = 5):
    """A subscription QoS compatible with every current publisher of `topic` (resolved name).

    Best effort when any publisher is best effort (a reliable reader cannot match it), else reliable
    (no loss of large messages). Volatile durability, keep-last `depth`.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
    return QoSProfile(depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mtpano-replay",
        description="Publish a folder of panoramas or an MCAP bag as sensor_msgs Image / CompressedImage.",
        epilog="ROS arguments go after --ros-args, e.g. --ros-args -r image:=/theta/image_raw -p frame_id:=cam")
    parser.add_argument("source", type=Path, help="folder of .jpg/.png panoramas, one image, or an .mcap bag")
    parser.add_argument("--rate-hz", type=float, default=1.0, help="publish rate (default 1 Hz)")
    parser.add_argument("--loop", action="store_true", help="play the source again and again until Ctrl-C")
    parser.add_argument("--count", type=int, default=0,
                        help="publish this many frames in total, cycling through the source (0 = each frame once)")
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw",
                        help="raw: Image on `image`; compressed: CompressedImage on `image/compressed`")
    parser.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8", help="Image encoding (raw)")
    parser.add_argument("--topic", default=None,
                        help="output topic (default `image`, or `image/compressed` with --transport compressed)")
    parser.add_argument("--frame-id", default="camera_link",
                        help="default of the frame_id parameter; an empty string keeps a bag's frame ids")
    parser.add_argument("--bag-topic", default=None, help="play only this topic of an MCAP bag")
    parser.add_argument("--wait-subscribers", type=int, default=0,
                        help="before the first frame, wait until this many subscribers are matched")
    parser.add_argument("--step-stdin", action="store_true",
                        help="publish the next frame each time a line arrives on standard input (stop at its end)")
    parser.add_argument("--wait-output", default=None, metavar="TOPIC",
                        help="lock step: after each frame, wait for TOPIC (e.g. semantic) to carry its stamp")
    parser.add_argument("--wait-output-subscribers", type=int, default=1, metavar="N",
                        help="lock step: before the first frame, wait until TOPIC has N subscribers (this tool "
                             "counts as one; 2 = also a recorder)")
    parser.add_argument("--wait-timeout-s", type=float, default=120.0,
                        help="give up waiting (for subscribers or one frame's output) after this long")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="write a JSON list of {name, stamp_ns, output_received} for every published frame")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console script `mtpano-replay`. Returns 0, or 1 when a lock-step frame got no output in time."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2


    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse_args(rclpy.utilities.remove_ros_args(["mtpano-replay", *argv])[1:])
    if args.rate_hz <= 0:
        print(f"mtpano-replay: --rate-hz must be > 0, got {args.rate_hz}", file=sys.stderr)
        return 2
    try:
        frames = source_frames(args.source, args.bag_topic)
    except (FileNotFoundError, ValueError) as error:
        print(f"mtpano-replay: {error}", file=sys.stderr)
        return 2

    rclpy.init(args=["mtpano-replay", *argv])
    node = Node("mtpano_replay")
    frame_id = node.declare_parameter("frame_id", args.frame_id).value
    topic = args.topic or ("image/compressed" if args.transport == "compressed" else "image")
    msg_type = CompressedImage if args.transport == "compressed" else Image
    publisher = node.create_publisher(msg_type, topic, QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:  # Ctrl-C / SIGTERM: the main loop sees rclpy.ok() turn False
            pass

    spin_thread = threading.Thread(target=spin, daemon=True)
    spin_thread.start()
    log = node.get_logger()

    received: set[int] = set()
    cond = threading.Condition()
    lockstep_sub = None

    def on_output(msg) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with cond:
            received.add(stamp_ns)
            cond.notify_all()

    def wait_until(predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline or not rclpy.ok():
                return False
            time.sleep(0.05)
        return True

    manifest: list[dict] = []
    missed = 0
    try:
        need_subs = max(args.wait_subscribers, 1 if args.wait_output else 0)
        if need_subs and not wait_until(lambda: publisher.get_subscription_count() >= need_subs, args.wait_timeout_s):
            log.error(f"no subscriber on {publisher.topic_name} after {args.wait_timeout_s:.0f} s; publishing anyway")
        if args.wait_output:
            out_topic = node.resolve_topic_name(args.wait_output)
            if not wait_until(lambda: node.count_publishers(out_topic) > 0, args.wait_timeout_s):
                log.error(f"nobody publishes {out_topic} after {args.wait_timeout_s:.0f} s")
                return 1
            out_type = PointCloud2 if out_topic.rstrip("/").endswith("points") else Image
            lockstep_sub = node.create_subscription(out_type, out_topic, on_output, matching_qos(node, out_topic))
            wait_until(lambda: lockstep_sub.get_publisher_count() > 0, args.wait_timeout_s)
            if not wait_until(lambda: node.count_subscribers(out_topic) >= args.wait_output_subscribers,
                              args.wait_timeout_s):
                log.warning(f"{out_topic} has fewer than {args.wait_output_subscribers} subscribers; starting anyway")
            time.sleep(0.5)  # discovery has announced every endpoint; give the matching a moment to complete
        total = args.count or len(frames)
        log.info(f"publishing {'endlessly' if args.loop else total} frame(s) from {args.source} on "
                 f"{publisher.topic_name} at {args.rate_hz:g} Hz")
        period_s = 1.0 / args.rate_hz
        next_t = None
        index = 0
        for frame in play_order(frames, args.loop, args.count):
            if not rclpy.ok():
                break
            msg = frame_to_message(frame, args.transport, args.encoding)
            if frame_id:
                msg.header.frame_id = frame_id
            if args.step_stdin and not sys.stdin.readline():
                break
            if next_t is not None and next_t > time.monotonic():
                time.sleep(max(0.0, next_t - time.monotonic()))
            if not rclpy.ok():
                break
            stamp = node.get_clock().now()
            msg.header.stamp = stamp.to_msg()
            try:
                publisher.publish(msg)
            except Exception:  # the context went down between the check and the call (Ctrl-C / SIGTERM)
                if rclpy.ok():
                    raise
                break
            next_t = time.monotonic() + period_s if next_t is None else max(next_t + period_s, time.monotonic())
            entry = {"name": frame.name, "stamp_ns": stamp.nanoseconds}
            if args.wait_output:
                stamp_ns = stamp.nanoseconds
                with cond:
                    got = cond.wait_for(lambda: stamp_ns in received, timeout=args.wait_timeout_s)  # noqa: B023
                entry["output_received"] = bool(got)
                if got:
                    waited_ms = (node.get_clock().now().nanoseconds - stamp_ns) / 1e6
                    log.info(f"{index + 1}/{total} {frame.name}: {args.wait_output} after {waited_ms:.0f} ms")
                else:
                    missed += 1
                    log.warning(f"no {args.wait_output} output for {frame.name} within {args.wait_timeout_s:.0f} s")
                next_t = max(next_t, time.monotonic())  # lock step: the rate is an upper bound
            manifest.append(entry)
            index += 1
        log.info(f"published {index} frame(s)" + (f", {missed} without output" if args.wait_output else ""))
    except KeyboardInterrupt:
        pass
    finally:
        if args.manifest is not None:
            args.manifest.parent.mkdir(parents=True, exist_ok=True)
            args.manifest.write_text(json.dumps(manifest, indent=1))
        if args.wait_output is None and rclpy.ok():
            publisher.wait_for_all_acked(Duration(seconds=2.0))
        executor.shutdown()
        spin_thread.join(timeout=5.0)  # a thread still inside the middleware at exit aborts the process
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

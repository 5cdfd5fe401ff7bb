"""config/mtpano.rviz: valid, and consistent with the node's topics. (The launch files are tested by running them
through `ros2 launch`: test/test_launch_ros.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "perception.launch.py"
RVIZ_FILE = ROOT / "config" / "mtpano.rviz"
PARAMS_FILE = ROOT / "config" / "perception.yaml"
# DESIGN §5, used only where the node module cannot be imported (no rclpy).
DESIGN_TOPICS = ("semantic", "semantic/color", "depth", "normals", "normals/color", "points")
DESIGN_TYPES = {"points": "rviz_default_plugins/PointCloud2"}


def _node_topics() -> tuple[str, ...]:
    try:
        from mtpano_ros.ros.node import OUTPUT_TOPICS
    except ImportError:
        return DESIGN_TOPICS
    return tuple(OUTPUT_TOPICS)


def test_rviz_config_parses_and_names_only_node_topics():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "camera_link"
    topics = _node_topics()
    shown = {}
    for display in manager["Displays"]:
        topic = display.get("Topic", {}).get("Value") if isinstance(display.get("Topic"), dict) else None
        if topic is None:
            continue
        assert topic.startswith("/"), f"{display['Name']}: RViz topics are absolute, got {topic}"
        name = topic[1:]
        assert name in topics, f"{display['Name']} shows {topic}, which the node does not publish ({topics})"
        shown[name] = display
    # RViz shows the three colour views (depth normalised) and the cloud coloured by its packed rgb field.
    assert {"semantic/color", "depth", "normals/color", "points"} <= set(shown)
    for name, display in shown.items():
        assert display["Class"] == DESIGN_TYPES.get(name, "rviz_default_plugins/Image")
        assert display["Enabled"] is True
    assert shown["points"]["Color Transformer"] == "RGB8"
    assert shown["points"]["Position Transformer"] == "XYZ"

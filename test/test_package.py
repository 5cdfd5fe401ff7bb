"""The package as a ROS 2 ament_python package and as a two-command project (README, Makefile, CI)."""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format3_ament_python_with_rosdep_keys():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "mtpano_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    for key in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy", "python3-opencv"):
        assert key in deps, f"package.xml lacks the rosdep key {key}"


def test_setup_py_installs_ament_marker_launch_config_and_entry_points():
    text = (ROOT / "setup.py").read_text()
    ast.parse(text)
    assert (ROOT / "resource" / "mtpano_ros").is_file()
    for needle in ("share/ament_index/resource_index/packages", "launch/*.launch.py", "config/*.yaml",
                   "weights/*/*.safetensors", "perception_node = mtpano_ros.ros.node:main"):
        assert needle in text, f"setup.py lacks {needle!r}"
    root = ET.parse(ROOT / "package.xml").getroot()
    version = re.search(r'version="([^"]+)"', text).group(1)
    assert version == root.findtext("version"), "setup.py and package.xml versions differ"


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", setup, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert ci_commands[-1] == "make test"
    assert not any(c.startswith(("pytest", "python", "pip")) for c in ci_commands), "CI must only call make test"


def test_venv_is_git_ignored():
    assert ".venv/" in (ROOT / ".gitignore").read_text().splitlines()

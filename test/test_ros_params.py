"""The node's parameters: every one declared with a description (and a range for numbers); config/perception.yaml
lists exactly them (keyed /**/mtpano_perception) with values of the declared types, within range; and the runtime
options agree in name, default and description across RuntimeOptions, the YAML, the node and the launch file."""

import importlib.util
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")
from mtpano_ros.ros.node import _CHOICES, NODE_NAME, PARAMETERS  # noqa: E402
from mtpano_ros.runtime.options import RuntimeOptions, option_choices, option_range  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "perception.yaml"
YAML_KEY = f"/**/{NODE_NAME}"


def _yaml_values() -> dict:
    return yaml.safe_load(CONFIG.read_text())[YAML_KEY]["ros__parameters"]


def test_parameters_have_descriptions_and_ranges():
    for name, (default, descriptor) in PARAMETERS.items():
        assert len(descriptor.description) > 15, name
        if isinstance(default, bool):
            continue
        if isinstance(default, int):
            (rng,) = descriptor.integer_range
            assert rng.from_value <= default <= rng.to_value, name
        elif isinstance(default, float):
            (rng,) = descriptor.floating_point_range
            assert rng.from_value <= default <= rng.to_value, name
    for name, choices in _CHOICES.items():
        assert PARAMETERS[name][0] in choices
        assert all(c in PARAMETERS[name][1].additional_constraints for c in choices)


def test_config_file_matches_declared_parameters():
    config = yaml.safe_load(CONFIG.read_text())
    assert list(config) == [YAML_KEY]  # one entry, for the node under any namespace
    values = _yaml_values()
    assert set(values) == set(PARAMETERS)
    for name, value in values.items():
        default, descriptor = PARAMETERS[name]
        assert type(value) is type(default), (name, value, default)  # a float written as 0 would not load
        assert value == default, f"{name}: perception.yaml says {value!r}, the node's default is {default!r}"
        if isinstance(value, str) and name in _CHOICES:
            assert value in _CHOICES[name]
        if isinstance(value, int) and not isinstance(value, bool):
            (rng,) = descriptor.integer_range
            assert rng.from_value <= value <= rng.to_value, name


def test_runtime_options_agree_across_dataclass_yaml_node_and_launch_file():
    values = _yaml_values()
    for f in fields(RuntimeOptions):
        default, descriptor = PARAMETERS[f.name]
        assert default == f.default and type(default) is type(f.default), f.name
        assert descriptor.description == f.metadata["description"], f.name
        assert descriptor.read_only, f.name  # the backend is built once
        assert values[f.name] == f.default, f.name
        if option_choices(f.name):
            assert _CHOICES[f.name] == option_choices(f.name)
        rng = option_range(f.name)
        if rng is not None and not isinstance(f.default, bool):
            (r,) = descriptor.integer_range if isinstance(f.default, int) else descriptor.floating_point_range
            assert (r.from_value, r.to_value) == pytest.approx(rng), f.name

    if importlib.util.find_spec("launch_ros") is None:  # not imported here: see below
        pytest.skip("launch_ros is not installed (make test installs it from ../shared/wheels when that folder "
                    "exists)")
    # In a child process: importing `launch` reconfigures Python logging for the whole process.
    probe = (
        "import importlib.util, json, sys\n"
        "from launch.actions import DeclareLaunchArgument\n"
        "spec = importlib.util.spec_from_file_location('perception_launch', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "text = lambda e: ''.join(getattr(s, 'text', '<sub>') for s in e.default_value or [])\n"
        "print(json.dumps({e.name: [e.description, text(e)]\n"
        "                  for e in module.generate_launch_description().entities\n"
        "                  if isinstance(e, DeclareLaunchArgument)}))\n")
    done = subprocess.run([sys.executable, "-c", probe, str(ROOT / "launch" / "perception.launch.py")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    declared = json.loads(done.stdout.strip().splitlines()[-1])
    for f in fields(RuntimeOptions):
        description, default = declared[f.name]
        assert f.metadata["description"] in description and repr(f.default) in description, f.name
        assert default == "", f.name  # empty: the params file decides
    assert {"image_topic", "params_file", "namespace", "use_rviz", "rviz_config"} <= set(declared)

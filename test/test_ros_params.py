"""The node's parameters: every one declared with a description (and a range for numbers), and
config/perception.yaml lists exactly them with values of the declared types, within range."""

from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")
from mtpano_ros.ros.node import _CHOICES, NODE_NAME, PARAMETERS  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "config" / "perception.yaml"


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
    values = yaml.safe_load(CONFIG.read_text())[NODE_NAME]["ros__parameters"]
    assert set(values) == set(PARAMETERS)
    for name, value in values.items():
        default, descriptor = PARAMETERS[name]
        assert type(value) is type(default), (name, value, default)  # a float written as 0 would not load
        if isinstance(value, str) and name in _CHOICES:
            assert value in _CHOICES[name]
        if isinstance(value, int) and not isinstance(value, bool):
            (rng,) = descriptor.integer_range
            assert rng.from_value <= value <= rng.to_value, name

"""Perspective teachers for label-free distillation (see `training.teachers.base` for the interface).

build_teacher("oracle") / ("moge2", pretrained=DIR) / ("internimage", config=..., checkpoint=...) /
("hf-depth", model_dir=DIR) / ("hf-seg", model_dir=DIR) / ("tflite", model_path=FILE.tflite). Heavy packages
load only when a teacher is built.
"""

from __future__ import annotations

from training.teachers.base import CombinedTeacher, Teacher

TEACHERS = ("moge2", "internimage", "hf-depth", "hf-seg", "tflite", "oracle")


def build_teacher(name: str, **kwargs) -> Teacher:
    """Build one teacher by name; kwargs go to its constructor."""
    if name == "oracle":
        from training.teachers.oracle import OracleTeacher

        return OracleTeacher(**kwargs)
    if name == "moge2":
        from training.teachers.moge2 import MoGe2Teacher

        return MoGe2Teacher(**kwargs)
    if name == "internimage":
        from training.teachers.internimage import InternImageTeacher

        return InternImageTeacher(**kwargs)
    if name == "hf-depth":
        from training.teachers.hf import HFDepthTeacher

        return HFDepthTeacher(**kwargs)
    if name == "hf-seg":
        from training.teachers.hf import HFSegTeacher

        return HFSegTeacher(**kwargs)
    if name == "tflite":
        from training.teachers.tflite import TFLiteSegTeacher

        return TFLiteSegTeacher(**kwargs)
    raise ValueError(f"unknown teacher {name!r}; expected one of {TEACHERS}")


def parse_teacher_spec(spec: str) -> tuple[str, dict]:
    """'name' or 'name:key=value,key=value' (or 'name:PATH' for the path-taking teachers) -> (name, kwargs)."""
    name, _, rest = spec.partition(":")
    kwargs: dict = {}
    if not rest:
        return name, kwargs
    if "=" not in rest:
        key = {"moge2": "pretrained", "hf-depth": "model_dir", "hf-seg": "model_dir", "tflite": "model_path"}.get(name)
        if key is None:
            raise ValueError(f"teacher spec {spec!r}: give key=value pairs for {name}")
        return name, {key: rest}
    for item in rest.split(","):
        k, _, v = item.partition("=")
        for cast in (int, float, str):
            try:
                kwargs[k] = cast(v)
                break
            except ValueError:
                continue
    return name, kwargs


__all__ = ["TEACHERS", "CombinedTeacher", "Teacher", "build_teacher", "parse_teacher_spec"]

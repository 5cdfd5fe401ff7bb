"""TensorRT rules that need no GPU: network creation flags per TensorRT version, the engine cache key, the
stale-engine decision, atomic writes, the calibration-set hash, the shared error log and the build heartbeat.

TensorRT is not installed here; its enum is passed as a plain object with the members the rule reads (the
functions take values, not the tensorrt module).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import fields, replace
from types import SimpleNamespace

import pytest

from mtpano_ros.runtime import cache
from mtpano_ros.runtime.backends import BackendError
from mtpano_ros.runtime.cache import GpuInfo, atomic_write_bytes, calibration_set_sha256, engine_cache_path, engine_key
from mtpano_ros.runtime.tensorrt_backend import (
    BuildHeartbeat,
    LogBuffer,
    network_flags,
    onnx_opset_for,
    sidecar_mismatch,
    stale_engine_action,
    version_tuple,
)

# Member values as TensorRT documents them: 8.6 has EXPLICIT_BATCH (0) and EXPLICIT_PRECISION (1, deprecated);
# 10.x keeps EXPLICIT_BATCH (deprecated, ignored) and adds STRONGLY_TYPED.
TRT86_FLAGS = SimpleNamespace(EXPLICIT_BATCH=0, EXPLICIT_PRECISION=1)
TRT10_FLAGS = SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
AGX_ORIN = GpuInfo("Orin", (8, 7), 64 * 2**30 - 900 * 2**20)
ORIN_NANO = GpuInfo("Orin", (8, 7), 8 * 2**30 - 700 * 2**20)


def test_explicit_batch_is_set_on_tensorrt_8():
    assert network_flags(TRT86_FLAGS, "8.6.2.3") == 1 << 0
    assert network_flags(TRT86_FLAGS, "8.5.2") == 1


def test_explicit_batch_is_left_out_from_tensorrt_10_and_strongly_typed_is_added():
    assert network_flags(TRT10_FLAGS, "10.3.0.30") == 0
    assert network_flags(TRT10_FLAGS, "10.3.0", strongly_typed=True) == 1 << 1
    assert network_flags(SimpleNamespace(STRONGLY_TYPED=3), "11.0.0", strongly_typed=True) == 1 << 3


def test_missing_flags_are_clear_errors():
    with pytest.raises(BackendError, match="strongly typed"):
        network_flags(TRT86_FLAGS, "8.6.1", strongly_typed=True)
    with pytest.raises(BackendError, match="EXPLICIT_BATCH"):
        network_flags(SimpleNamespace(), "8.4.0")


def test_versions_and_opsets():
    assert version_tuple("8.6.2.3") == (8, 6) and version_tuple("10.14.1") == (10, 14)
    assert version_tuple("10") == (10, 0)
    assert onnx_opset_for("8.6.2") == 17 and onnx_opset_for("10.3.0") == 18


def _key(**over):
    base = dict(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu=AGX_ORIN, precision="fp16",
                strongly_typed=False, fp32_attention=True, calibration_sha256="", max_batch=1, workspace_bytes=0)
    return engine_key(**{**base, **over})


def test_engine_key_changes_with_every_input(tmp_path):
    base = _key()
    path = engine_cache_path(tmp_path, base)
    assert path.parent == tmp_path / "engines" and path.suffix == ".engine"
    assert not set(path.name) & set("/ ()")
    changed = {
        "onnx": _key(onnx_sha256="cd" * 32), "trt": _key(tensorrt_version="10.7.0"),
        "gpu name": _key(gpu=GpuInfo("NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30)),
        "Orin Nano vs AGX": _key(gpu=ORIN_NANO), "capability": _key(gpu=replace(AGX_ORIN, compute_capability=(8, 6))),
        "precision": _key(precision="fp32"), "fp32 attention off": _key(fp32_attention=False),
        "max batch": _key(max_batch=4), "workspace": _key(workspace_bytes=2**30),
        "int8 calibration": _key(precision="int8", calibration_sha256="ee" * 32),
    }
    names = {k: engine_cache_path(tmp_path, v).name for k, v in changed.items()}
    assert path.name not in names.values(), names
    assert len(set(names.values())) == len(names)
    int8_a, int8_b = _key(precision="int8", calibration_sha256="01" * 32), _key(precision="int8",
                                                                              calibration_sha256="02" * 32)
    assert int8_a.digest() != int8_b.digest()
    assert _key(precision="fp32", strongly_typed=True).digest() != _key(precision="fp32").digest()
    assert {f.name for f in fields(base)} >= {"onnx_sha256", "tensorrt_version", "gpu", "precision",
                                               "strongly_typed", "fp32_layers", "calibration_sha256"}


def test_engine_key_ignores_what_cannot_matter():
    # fp32 builds pin nothing and are not calibrated: the flags must not split the cache
    assert _key(precision="fp32", fp32_attention=True).digest() == _key(precision="fp32", fp32_attention=False).digest()
    assert _key(calibration_sha256="aa" * 32).digest() == _key().digest()  # fp16: no calibration
    assert _key().fp32_layers == cache.FP32_ATTENTION_RULE and _key(fp32_attention=False).fp32_layers == ""


def test_orin_variants_get_their_own_file_names():
    assert AGX_ORIN.slug() != ORIN_NANO.slug()
    assert AGX_ORIN.slug().startswith("Orin_sm87_")


def test_sidecar_mismatch_names_the_difference():
    meta = {"tensorrt_version": "8.6.2", "gpu": {"name": "Orin", "compute_capability": [8, 7],
                                                 "total_memory_bytes": ORIN_NANO.total_memory_bytes}}
    assert "TensorRT 8.6.2" in sidecar_mismatch(meta, "10.3.0", ORIN_NANO)
    assert "GiB" in sidecar_mismatch({**meta, "tensorrt_version": "10.3.0"}, "10.3.0", AGX_ORIN)
    assert sidecar_mismatch({**meta, "tensorrt_version": "10.3.0"}, "10.3.0", ORIN_NANO) is None
    assert sidecar_mismatch({}, "10.3.0", ORIN_NANO) is None


def test_stale_engines_are_rebuilt_only_inside_the_cache(tmp_path):
    cache_dir = tmp_path / "cache"
    inside = cache_dir / "engines" / "x.engine"
    outside = tmp_path / "robot" / "model.engine"
    assert stale_engine_action(inside, cache_dir, can_build=True) == "rebuild"
    assert stale_engine_action(inside, cache_dir, can_build=False) == "error"
    assert stale_engine_action(outside, cache_dir, can_build=True) == "error"
    assert stale_engine_action(cache_dir / ".." / "robot" / "m.engine", cache_dir, can_build=True) == "error"


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "model.engine"
    atomic_write_bytes(target, b"old" * 1000)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["model.engine"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "timing.cache"
    atomic_write_bytes(target, b"good")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # not bytes: fails while writing the temporary file
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["timing.cache"]


def test_calibration_set_hash_follows_the_images(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8one")
    (folder / "notes.txt").write_text("not an image")
    h1 = calibration_set_sha256(folder)
    (folder / "notes.txt").write_text("still not an image")
    assert calibration_set_sha256(folder) == h1
    (folder / "b.png").write_bytes(b"\x89PNGtwo")
    h2 = calibration_set_sha256(folder)
    (folder / "b.png").write_bytes(b"\x89PNGTWO")
    assert len({h1, h2, calibration_set_sha256(folder)}) == 3
    assert calibration_set_sha256(None) == "" and calibration_set_sha256("") == ""
    with pytest.raises(FileNotFoundError, match="int8_calibration_dir"):
        calibration_set_sha256(tmp_path / "missing")


def test_log_buffer_gives_the_errors_of_one_build_across_threads():
    buf = LogBuffer(keep=1000)
    buf.add("old error")
    mark = buf.mark()
    threads = [threading.Thread(target=lambda i=i: [buf.add(f"e{i}-{j}") for j in range(50)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    since = buf.since(mark)
    assert len(since) == 200 and "old error" not in since and buf.count == 201


def test_build_heartbeat_logs_elapsed_time_and_phase():
    lines = []
    with BuildHeartbeat(0.05, "fp16 engine for m.onnx", log=lines.append) as hb:
        time.sleep(0.2)
        hb.phase = "Building engine"
        time.sleep(0.15)
    n = len(lines)
    time.sleep(0.15)
    assert len(lines) == n  # stopped with the block
    assert n >= 3 and all("building fp16 engine for m.onnx:" in x and "s elapsed" in x for x in lines)
    assert "phase: Building engine" in lines[-1]


def test_heartbeat_default_goes_to_the_runtime_log(caplog):
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.tensorrt"), BuildHeartbeat(0.02, "x"):
        time.sleep(0.1)
    assert "s elapsed" in caplog.text


def test_exclusive_makes_a_second_builder_wait_and_find_the_file(tmp_path, caplog):
    """Two builders of one cache entry (two nodes starting together): the second waits for the first, then sees
    the finished file and does not build again."""
    from mtpano_ros.runtime.cache import exclusive

    target = tmp_path / "engines" / "m.engine"
    built, order = [], []
    first_in = threading.Event()

    def builder(name):
        with exclusive(target, "building m.engine"):
            order.append(f"{name} in")
            first_in.set()
            if not target.exists():
                time.sleep(0.3)
                atomic_write_bytes(target, b"engine")
                built.append(name)
            order.append(f"{name} out")

    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime.cache"):
        a = threading.Thread(target=builder, args=("a",))
        a.start()
        first_in.wait(5)
        b = threading.Thread(target=builder, args=("b",))
        b.start()
        a.join()
        b.join()
    assert built == ["a"] and order == ["a in", "a out", "b in", "b out"]
    assert "another process is building m.engine" in caplog.text

"""Fallbacks that work, each path made to fail for real:

- export: dynamo -> TorchScript when onnxscript cannot be imported (a fresh interpreter with it blocked), when
  the dynamo exporter raises, and a clear error when every exporter fails or the one asked for fails;
- auto backend selection: onnxruntime not importable, a corrupt ONNX file, an export that raises -> the next
  candidate (torch on CPU here), with the reason logged; an explicit backend that cannot run stays an error.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_export_graph import _Toy

from mtpano_ros.runtime import export as ex
from mtpano_ros.runtime import select_backend
from mtpano_ros.runtime.backends import BackendError

TEST_DIR = Path(__file__).resolve().parent
HW = (64, 128)
TINY = {"model": "mtpano-tiny", "input_height": HW[0], "input_width": HW[1], "threads": 1}


def _exporter_of(path) -> str:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}["mtpano_exporter"]


@pytest.fixture
def dynamo_raises(monkeypatch):
    """torch.onnx.export raising for dynamo=True (as on a Jetson torch whose torch.export cannot trace the model);
    the TorchScript path runs the real exporter."""
    real = torch.onnx.export
    calls = []

    def export(*args, dynamo=True, **kwargs):
        calls.append(dynamo)
        if dynamo:
            raise RuntimeError("torch._dynamo.exc.Unsupported: data-dependent branching (raised by the test)")
        return real(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)
    return calls


def test_export_falls_back_to_torchscript_when_dynamo_raises(tmp_path, dynamo_raises, caplog):
    with caplog.at_level(logging.WARNING, logger="mtpano_ros.runtime.export"):
        path = ex.export_onnx(_Toy().eval(), tmp_path / "toy.onnx", opset=17)
    assert dynamo_raises == [True, False]
    assert _exporter_of(path) == "torchscript"
    assert "falling back to the TorchScript exporter" in caplog.text and "data-dependent branching" in caplog.text
    assert ex.onnx_input_hw(path) == (32, 64)


def test_export_on_a_torch_without_the_dynamo_argument(tmp_path, monkeypatch, caplog):
    """torch 2.3/2.4 (NVIDIA's Jetson wheels): ``torch.onnx.export`` has no ``dynamo`` parameter. The dynamo
    attempt fails with Python's own TypeError, the TorchScript one calls the old signature."""
    real = torch.onnx.export

    def export_2_4(model, args, f, export_params=True, verbose=False, training=None, input_names=None,
                   output_names=None, operator_export_type=None, opset_version=None, do_constant_folding=True,
                   dynamic_axes=None, keep_initializers_as_inputs=None, custom_opsets=None,
                   export_modules_as_functions=False):
        return real(model, args, f, dynamo=False, export_params=export_params, input_names=input_names,
                    output_names=output_names, opset_version=opset_version,
                    do_constant_folding=do_constant_folding, dynamic_axes=dynamic_axes)

    monkeypatch.setattr(torch.onnx, "export", export_2_4)
    with caplog.at_level(logging.WARNING, logger="mtpano_ros.runtime.export"):
        path = ex.export_onnx(_Toy().eval(), tmp_path / "toy.onnx", opset=17)
    assert _exporter_of(path) == "torchscript"
    assert "unexpected keyword argument 'dynamo'" in caplog.text


def test_explicit_dynamo_does_not_fall_back(tmp_path, dynamo_raises):
    with pytest.raises(ex.ExportError, match="exporter tried \\(dynamo\\).*data-dependent"):
        ex.export_onnx(_Toy().eval(), tmp_path / "toy.onnx", opset=17, exporter="dynamo")
    assert dynamo_raises == [True]
    assert not (tmp_path / "toy.onnx").exists()


def test_every_exporter_failing_is_one_clear_error(tmp_path):
    class Broken(_Toy):
        def forward(self, images):
            raise NotImplementedError("this network cannot run (test)")

    with pytest.raises(ex.ExportError) as err:
        ex.export_onnx(Broken().eval(), tmp_path / "b.onnx", opset=17)
    msg = str(err.value)
    assert "dynamo: NotImplementedError" in msg and "torchscript: NotImplementedError" in msg
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_export_falls_back_when_onnxscript_is_not_importable(tmp_path):
    """A fresh interpreter where onnxscript cannot be imported (as on a robot without it): dynamo is unavailable,
    the TorchScript exporter writes the graph, and the log says so."""
    out = tmp_path / "toy.onnx"
    code = (f"import sys, logging; sys.modules['onnxscript'] = None; sys.path.insert(0, {str(TEST_DIR)!r}); "
            "logging.basicConfig(level=logging.WARNING); "
            "from test_export_graph import _Toy; from mtpano_ros.runtime import export as ex; "
            f"ex.export_onnx(_Toy().eval(), {str(out)!r}, opset=17)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "falling back to the TorchScript exporter" in res.stderr and "onnxscript" in res.stderr
    assert _exporter_of(out) == "torchscript"


def test_auto_runs_torch_when_onnxruntime_is_not_importable(monkeypatch, caplog, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.INFO, logger="mtpano_ros.runtime"):
        backend = select_backend(**TINY, engine_cache_dir=str(tmp_path))
    assert (backend.name, backend.device) == ("torch", "cpu")
    skipped = dict(backend.selection_log)
    assert "onnxruntime is not importable (ModuleNotFoundError" in skipped["onnxruntime/cpu"]
    assert "skipping onnxruntime/cpu: onnxruntime is not importable" in caplog.text
    out = backend.infer(np.zeros((*HW, 3), np.uint8))
    assert out["depth"].shape == (1, *HW)
    with pytest.raises(BackendError, match="backend 'onnxruntime' on cpu cannot run: onnxruntime is not importable"):
        select_backend(**TINY, backend="onnxruntime", device="cpu")


def test_auto_moves_past_a_corrupt_onnx_file(tmp_path, caplog):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf" * 20)
    with caplog.at_level(logging.WARNING, logger="mtpano_ros.runtime.selection"):
        backend = select_backend(**TINY, onnx_path=str(bad))
    assert backend.name == "torch"
    assert "cannot read ONNX file" in dict(backend.selection_log)["onnxruntime/cpu"]
    assert "onnxruntime/cpu failed to start: ExportError" in caplog.text
    with pytest.raises(ex.ExportError, match="truncated or not an ONNX graph"):
        select_backend(**TINY, onnx_path=str(bad), backend="onnxruntime")


def test_auto_moves_past_an_export_that_raises(tmp_path, monkeypatch, caplog):
    def export(*args, **kwargs):
        raise RuntimeError("exporter crashed (raised by the test)")

    monkeypatch.setattr(torch.onnx, "export", export)
    with caplog.at_level(logging.WARNING, logger="mtpano_ros.runtime"):
        backend = select_backend(**TINY, engine_cache_dir=str(tmp_path))
    assert backend.name == "torch"
    reason = dict(backend.selection_log)["onnxruntime/cpu"]
    assert "ExportError" in reason and "exporter crashed" in reason
    assert not list((tmp_path / "onnx").glob("*.onnx"))  # no half-written cache entry

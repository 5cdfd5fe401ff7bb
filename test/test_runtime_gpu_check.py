"""benchmarks/gpu_check.py on a machine without a GPU: its metrics are right on known inputs, the FP16 overflow
audit finds an activation past 65504, and the command says (in its JSON line) that it needs CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402


def _out(depth, normals, semantic):
    return {"depth": torch.tensor(depth, dtype=torch.float32), "normals": torch.tensor(normals, dtype=torch.float32),
            "semantic": torch.tensor(semantic)}


def test_compare_on_known_values():
    ref = _out([[[[1.0, 2.0]]]], [[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]], [[[3, 4]]])
    out = _out([[[[1.1, 2.0]]]], [[[[1.0, 1.0]], [[0.0, 1.0]], [[0.0, 0.0]]]], [[[3, 5]]])  # pixel 1: (1, 1, 0)
    res = gpu_check.compare(out, ref)
    assert res["depth_rel_max"] == pytest.approx(0.1, rel=1e-5) and res["depth_rel_median"] == pytest.approx(0.05)
    assert res["normal_deg_max"] == pytest.approx(45.0, abs=1e-4)  # (0, 1, 0) against (1, 1, 0) / sqrt(2)
    assert res["label_agreement"] == 0.5


def test_nonfinite_counts():
    counts = gpu_check.nonfinite({"depth": torch.tensor([1.0, float("nan"), float("inf")]),
                                  "semantic": torch.tensor([1, 2])})
    assert counts == {"depth": {"nan": 1, "inf": 1}}


def test_fp16_overflow_audit_names_the_module():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    with torch.no_grad():
        net[0].weight.fill_(1e5)
        net[0].bias.zero_()
    hits = gpu_check.fp16_overflow_modules(net, torch.ones(1, 2))
    assert set(hits) == {"0", "1"} and hits["0"] == pytest.approx(2e5)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    assert gpu_check.fp16_overflow_modules(net, torch.ones(1, 2)) == {}


def test_attention_audit_sees_every_vit_layer():
    from mtpano_ros.model import create_model

    torch.manual_seed(0)
    net = create_model("mtpano-tiny", input_hw=[32, 64]).eval()
    found = gpu_check.attention_logit_max(net, torch.rand(1, 3, 32, 64))
    assert len(found) == net.config["depth"] and all(v > 0 for v in found)
    assert torch.nn.functional.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"  # restored


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: run gpu_check itself")
def test_without_cuda_the_json_line_says_so():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert "needs torch with CUDA" in line["error"] and line["environment"]["torch"] == torch.__version__

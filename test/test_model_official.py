"""mtpano-import-official: key mapping, strictness and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtpano_ros.model import create_model, load_model
from mtpano_ros.model.official import convert_official_state_dict, main

MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "mtpano_official" / \
    "state_dict_manifest.tsv"


def _meta_vitl_state():
    with torch.device("meta"):
        return create_model("mtpano-vitl").state_dict()


def _manifest_shapes() -> dict[str, tuple[int, ...]]:
    if not MANIFEST.is_file():
        pytest.skip(f"manifest not found at {MANIFEST}")
    out = {}
    for line in MANIFEST.read_text().splitlines()[1:]:
        name, shape = line.split("\t")[:2]
        out[name] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return out


def test_strict_errors_list_the_differences():
    sd = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in _meta_vitl_state().items()}
    sd.pop("heads.depth.head.4.bias")
    sd["heads.normals.head.4.weight"] = torch.empty(4, 32, 1, 1, device="meta")
    sd["extra.thing"] = torch.empty(1, device="meta")
    with pytest.raises(ValueError) as e:
        convert_official_state_dict({"model": {"module." + k: v for k, v in sd.items()}})
    msg = str(e.value)
    assert "1 missing" in msg and "heads.depth.head.4.bias" in msg
    assert "1 unexpected" in msg and "extra.thing" in msg
    assert "1 shape mismatch" in msg and "heads.normals.head.4.weight (4, 32, 1, 1) != (3, 32, 1, 1)" in msg


def test_both_naming_schemes_and_prefix_map_to_ours():
    ref = _meta_vitl_state()
    sd = {}
    for k, v in ref.items():
        k5 = k.replace("backbone.layer.", "backbone.model.layer.")
        sd["module." + k5] = torch.empty(v.shape, dtype=v.dtype, device="meta")
    out = convert_official_state_dict(sd)  # whole object, no 'model' key
    assert list(out) == list(ref)
    with pytest.raises(ValueError, match="duplicate key"):
        convert_official_state_dict({**sd, "backbone.layer.0.norm1.weight": torch.empty(1024, device="meta")})


def test_cli_reports_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pth.tar"
    torch.save({"model": {"foo": torch.zeros(2)}}, bad)
    assert main([str(bad), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "1201 missing" in err and "foo" in err
    assert main([str(tmp_path / "missing.pth.tar"), "-o", str(tmp_path / "out")]) == 1


@pytest.mark.slow
def test_synthesised_manifest_checkpoint_imports_and_loads(tmp_path):
    """A state dict synthesised from the manifest (random values, official names, 'model' key, 'module.'
    prefix) goes through the command line and loads strictly as mtpano-vitl."""
    shapes = _manifest_shapes()
    g = torch.Generator().manual_seed(0)
    sd = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            sd["module." + name] = torch.zeros((), dtype=torch.int64)
        else:
            sd["module." + name] = torch.randn(shape, generator=g)
    probes = {k[len("module."):]: sd[k].clone() for k in
              ("module.backbone.layer.7.mlp.up_proj.bias", "module.heads.semseg.head.4.bias", "module.RayDir")}
    src = tmp_path / "mtpano_model_408k.pth.tar"
    torch.save({"model": sd, "epoch": 1}, src)
    del sd
    out = tmp_path / "vitl"
    assert main([str(src), "-o", str(out), "--fp16"]) == 0
    src.unlink()
    m = load_model(out)
    assert m.config["variant"] == "mtpano-vitl" and not m.training
    got = m.state_dict()
    assert len(got) == 1201
    for k, v in probes.items():
        assert got[k].dtype == torch.float32
        assert torch.allclose(got[k], v.half().float()), k

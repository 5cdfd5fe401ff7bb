"""PD-BridgeNet variants: forward contract, checkpoints, truncated gradient flow, horizontal wrap."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mtpano_ros.model import create_model, infer, list_models, load_model, postprocess, preprocess, save_checkpoint
from mtpano_ros.model.layers import ERPConv2d, erp_resize
from mtpano_ros.model.pdbridge import ERPTokenMixer

SMALL_HW = (64, 128)


def _randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Give every float parameter (zero-initialised injectors and modulation included) random values, so that
    every path of the network actually carries signal and gradient."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lambda1") or re.search(r"(norm\w*|norm\d?)\.weight$", name):
                p.copy_(1.0 + std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("mtpano-tiny")


def test_registry_lists_variants():
    assert list_models() == ["mtpano-tiny", "mtpano-lite", "mtpano-vits", "mtpano-vitl"]
    with pytest.raises(KeyError, match="unknown model"):
        create_model("mtpano-huge")
    with pytest.raises(KeyError, match="unknown config keys"):
        create_model("mtpano-tiny", no_such_key=1)


@pytest.mark.parametrize("name", ["mtpano-tiny", "mtpano-lite", "mtpano-vits"])
def test_forward_contract(name):
    torch.manual_seed(0)
    m = create_model(name)
    cfg = m.config
    for key in ("variant", "input_hw", "num_classes", "mean", "std", "output_frame", "version"):
        assert key in cfg
    assert cfg["variant"] == name and cfg["num_classes"] == 150 and cfg["output_frame"] == "rep103"
    m.eval()
    x = torch.rand(2, 3, *SMALL_HW)
    with torch.no_grad():
        out = m(x)
    assert set(out) == {"semantic_logits", "depth", "normals"}
    assert out["semantic_logits"].shape == (2, 150, *SMALL_HW)
    assert out["depth"].shape == (2, 1, *SMALL_HW) and out["normals"].shape == (2, 3, *SMALL_HW)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert (out["depth"] >= 0).all()
    assert torch.allclose(out["normals"].norm(dim=1), torch.ones(1), atol=1e-4)
    m.train()
    out = m(x)
    aux_shapes = {"semantic_logits": 150, "depth": 1, "normals": 3, "grad": 2, "edge_distance": 1, "points": 3}
    assert set(out["aux"]) == set(aux_shapes)
    for k, c in aux_shapes.items():
        assert out["aux"][k].shape == (2, c, *SMALL_HW), k
        assert torch.isfinite(out["aux"][k]).all()


def test_tiny_budget(tiny):
    n = sum(p.numel() for p in tiny.parameters())
    assert n <= 10_000_000
    assert tiny.config["input_hw"] == [256, 512]


def test_tiny_native_size_and_other_multiples_of_16(tiny):
    tiny.eval()
    with torch.no_grad():
        for hw in [(256, 512), (96, 160)]:
            out = tiny(torch.rand(1, 3, *hw))
            assert out["semantic_logits"].shape == (1, 150, *hw)
            assert torch.isfinite(out["normals"]).all()


# mtpano-vitl's forward (native size, official weights layout) runs in test/test_official_golden.py.


def test_checkpoint_roundtrip(tmp_path, tiny):
    m = _randomize(create_model("mtpano-tiny"), seed=3).eval()
    x = torch.rand(1, 3, *SMALL_HW)
    with torch.no_grad():
        ref = m(x)
    save_checkpoint(m, tmp_path / "fp32", extra={"note": "test"})
    save_checkpoint(m, tmp_path / "fp16", fp16=True)
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "fp32" / "model.safetensors").stat().st_size
    for path, tol in [(tmp_path / "fp32", 0.0), (tmp_path / "fp32" / "model.safetensors", 0.0),
                      (tmp_path / "fp16", 2e-2)]:
        m2 = load_model(path)
        assert not m2.training and m2.config["variant"] == "mtpano-tiny"
        assert all(p.dtype == torch.float32 for p in m2.parameters())
        with torch.no_grad():
            out = m2(x)
        err = (out["semantic_logits"] - ref["semantic_logits"]).abs().max().item()
        assert err <= tol * max(1.0, ref["semantic_logits"].abs().max().item())
    # .pth with a config inside
    torch.save({"model": m.state_dict(), "config": m.config}, tmp_path / "m.pth")
    m3 = load_model(tmp_path / "m.pth")
    with torch.no_grad():
        assert torch.equal(m3(x)["depth"], ref["depth"])


def test_load_model_names(tmp_path):
    with pytest.warns(UserWarning, match="no weights loaded"):
        a = load_model("mtpano-tiny")
    with pytest.warns(UserWarning):
        b = load_model("mtpano-tiny")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # fixed seed
    with pytest.raises(FileNotFoundError, match="not a registered model"):
        load_model(tmp_path / "nothing_here")


def test_bundled_missing_gives_clear_error(monkeypatch, tmp_path):
    import mtpano_ros.model.checkpoint as ck

    monkeypatch.setattr(ck, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="bundled weights 'default' not found"):
        load_model("default")


def _variant_only(name: str) -> bool:
    return (name.startswith(("aggregator_var.", "bfe_variant.", "var_injectors.", "aux_heads.normals.",
                             "extended_heads.point.", "heads.normals.", "necks.normals.", "task_adapters.normals.",
                             "aux_injectors.normals."))
            or ".variant_layers." in name)


def _invariant_only(name: str) -> bool:
    task_owned = any(name.startswith(f"{p}.{t}.") for t in ("semseg", "depth")
                     for p in ("aux_heads", "heads", "necks", "task_adapters", "aux_injectors"))
    return (task_owned or name.startswith(("aggregator_inv.", "bfe_invariant.", "inv_injectors.",
                                           "extended_heads.grad.", "extended_heads.sdf."))
            or ".invariant_layers." in name)


@pytest.mark.parametrize("loss_on", ["semantic_logits", "normals"])
def test_truncated_gradient_flow(loss_on):
    m = _randomize(create_model("mtpano-tiny"), seed=1).train()
    out = m(torch.rand(1, 3, *SMALL_HW))
    out[loss_on].square().mean().backward()
    other = _variant_only if loss_on == "semantic_logits" else _invariant_only
    own = _invariant_only if loss_on == "semantic_logits" else _variant_only
    grads = {n: (p.grad.abs().sum().item() if p.grad is not None else 0.0) for n, p in m.named_parameters()}
    leaked = [n for n, gsum in grads.items() if other(n) and gsum != 0.0]
    assert not leaked, f"loss on {loss_on} reached parameters of the other branch: {leaked[:5]}"
    assert sum(1 for n in grads if other(n)) > 20
    # the own branch and the shared backbone do learn
    assert sum(gsum for n, gsum in grads.items() if own(n)) > 0
    assert grads["backbone.layer.0.attention.q_proj.weight"] > 0


def test_wrap_conv_and_mixer_see_across_the_seam():
    conv = ERPConv2d(2, 2, 3, wrap=True)
    x = torch.zeros(1, 2, 6, 12)
    x[..., -1] = 1.0
    assert conv(x)[..., 0].sub(conv(torch.zeros_like(x))[..., 0]).abs().sum() > 0
    mix = ERPTokenMixer(4, wrap=True)
    x = torch.randn(1, 4, 6, 16, requires_grad=True)
    mix(x, torch.full((1, 1, 6, 16), 0.5))[..., 0].sum().backward()
    assert x.grad[..., -1].abs().sum() > 0 and x.grad[..., -4].abs().sum() > 0  # 3x9 kernel reaches 4 columns
    assert x.grad[..., 5:-5].abs().sum() == 0


def test_erp_resize_wraps():
    x = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 2, 8)
    y = erp_resize(x, (4, 16), wrap=True)
    # output column 0 lies 1/4 pixel left of input column 0's centre: a blend of columns 7 and 0
    assert torch.allclose(y[0, 0, 0, 0], torch.tensor(0.25 * 7 + 0.75 * 0))
    assert torch.allclose(y[0, 0, 0, -1], torch.tensor(0.75 * 7 + 0.25 * 0))


@pytest.mark.parametrize("hw_in,hw_out,channels_last", [((8, 16), (128, 256), True), ((32, 64), (128, 256), False),
                                                         ((5, 7), (20, 14), False), ((4, 8), (64, 128), True)])
def test_erp_resize_training_path_equals_export_path(hw_in, hw_out, channels_last):
    """With autograd on, erp_resize runs as two interpolation matmuls (cheap backward); values and gradients must
    equal the slice/interpolate/crop form that inference and export use."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, *hw_in, dtype=torch.float64, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = erp_resize(x, hw_out, wrap=True)
    xa = x.clone().requires_grad_(True)
    y = erp_resize(xa, hw_out, wrap=True)
    assert torch.allclose(y, ref, atol=1e-12)
    gy = torch.randn(y.shape, dtype=torch.float64, generator=g)
    y.backward(gy)
    xb = x.clone().requires_grad_(True)
    s = hw_out[1] // hw_in[1]
    z = torch.nn.functional.interpolate(torch.cat([xb[..., -1:], xb, xb[..., :1]], -1),
                                        size=(hw_out[0], hw_out[1] + 2 * s), mode="bilinear")[..., s:s + hw_out[1]]
    z.backward(gy)
    assert torch.allclose(xa.grad, xb.grad, atol=1e-10)


@pytest.mark.parametrize("width,pad", [(10, 4), (3, 2), (8, 1)])
def test_wrap_pad_training_backward(width, pad):
    from mtpano_ros.model.layers import wrap_pad

    x = torch.randn(2, 3, 6, width, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: wrap_pad(t, 1, pad), (x,))
    with torch.no_grad():
        assert torch.equal(wrap_pad(x, 1, pad), wrap_pad(x.detach(), 1, pad))
        assert torch.equal(wrap_pad(x, 1, pad)[..., 1:-1, :pad], x[..., -pad:])


def test_tiny_output_at_column_zero_depends_on_last_column():
    m = _randomize(create_model("mtpano-tiny"), seed=2).eval()
    x = torch.rand(1, 3, *SMALL_HW, requires_grad=True)
    out = m(x)
    (out["semantic_logits"][..., 0].sum() + out["depth"][..., 0].sum()).backward()
    assert x.grad[..., -1].abs().sum() > 0


def _tiny_without_modulation(seed: int) -> torch.nn.Module:
    m = _randomize(create_model("mtpano-tiny"), seed=seed).eval()
    with torch.no_grad():  # gamma/beta depend on absolute longitude by design (variant branch): switch them off
        for blocks in m.feature_grouping:
            for blk in blocks.variant_layers:
                blk.geo_mlp[2].weight.zero_()
                blk.geo_mlp[2].bias.zero_()
    return m


def _roll_taps(taps: list[torch.Tensor], grid_hw: tuple[int, int], shift: int) -> list[torch.Tensor]:
    out = []
    for t in taps:
        b, n, d = t.shape
        p = torch.roll(t[:, 5:].reshape(b, *grid_hw, d), shifts=shift, dims=2).reshape(b, -1, d)
        out.append(torch.cat([t[:, :5], p], dim=1))
    return out


def test_tiny_roll_equivariance_after_backbone():
    """Everything after the backbone is exactly roll-equivariant for the invariant outputs: every conv wraps, the
    pole weight depends on latitude only, resizes are wrap-exact and a 4-token roll is a multiple of every
    stride (bridge squeeze 2, reassemble 4). Tolerance 1e-5 of the output range: float32 summation order only."""
    m = _tiny_without_modulation(seed=4)
    g = torch.Generator().manual_seed(0)
    taps = [torch.randn(1, 5 + 4 * 16, 96, generator=g) for _ in range(4)]
    x = torch.rand(1, 3, 64, 256)
    with torch.no_grad():
        m.backbone.forward = lambda _x: taps
        a = m(x)
        m.backbone.forward = lambda _x: _roll_taps(taps, (4, 16), 4)
        b = m(x)
    for k in ("semantic_logits", "depth"):
        ref = torch.roll(a[k], shifts=64, dims=-1)
        assert (b[k] - ref).abs().max().item() <= 1e-5 * ref.abs().max().item(), k


def test_tiny_roll_equivariance_of_invariant_outputs():
    """Rolling the input by whole tokens (a yaw rotation) rolls the invariant outputs (semantics, depth).

    Patch-to-patch attention is exactly shift-equivariant (RoPE x-frequencies are integers per turn), but, as in
    DINOv3, the CLS and register tokens carry no rotation, so their scores against rotated patch keys depend on
    absolute longitude. That coupling is the only approximation left (the part after the backbone is exact, see
    the test above); at these random weights it measures ~2e-3 of the output range, so the bar is 2e-2.
    """
    m = _tiny_without_modulation(seed=4)
    x = torch.rand(1, 3, 64, 256)
    with torch.no_grad():
        a = m(x)
        b = m(torch.roll(x, shifts=64, dims=-1))
    for k in ("semantic_logits", "depth"):
        ref = torch.roll(a[k], shifts=64, dims=-1)
        scale = ref.abs().max().item()
        assert scale > 0
        assert (b[k] - ref).abs().max().item() <= 2e-2 * scale, k
        # and far from a non-rolled output, so the check has teeth
        assert (b[k] - a[k]).abs().max().item() > 10 * (b[k] - ref).abs().max().item(), k


def test_preprocess_and_infer(tiny):
    rgb = (np.random.default_rng(0).random((200, 400, 3)) * 255).astype(np.uint8)
    x = preprocess(rgb, (64, 128))
    assert x.shape == (1, 3, 64, 128) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    x2 = preprocess(torch.rand(2, 3, 100, 200), (64, 128))
    assert x2.shape == (2, 3, 64, 128)
    with pytest.raises(TypeError):
        preprocess(rgb.astype(np.float32), (64, 128))
    res = infer(tiny, np.stack([rgb, rgb]), out_hw=(50, 100))
    assert res["semantic"].shape == (2, 50, 100) and res["semantic"].dtype == np.uint8
    assert res["depth"].shape == (2, 50, 100) and res["depth"].dtype == np.float32
    assert res["normals"].shape == (2, 50, 100, 3) and res["normals"].dtype == np.float32


def test_postprocess_masks_sky_and_nonpositive_depth():
    logits = torch.zeros(1, 150, 4, 8)
    logits[:, 5] = 1.0
    logits[:, 2, 0, :] = 5.0  # sky on the top row
    depth = torch.full((1, 1, 4, 8), 3.0)
    depth[..., 1, 0] = 0.0
    normals = torch.zeros(1, 3, 4, 8)
    normals[:, 2] = 2.0
    res = postprocess({"semantic_logits": logits, "depth": depth, "normals": normals})
    assert (res["semantic"][0, 0] == 2).all() and (res["semantic"][0, 1:] == 5).all()
    assert np.isnan(res["depth"][0, 0]).all() and np.isnan(res["depth"][0, 1, 0])
    assert np.allclose(res["depth"][0, 2:], 3.0)
    assert np.isnan(res["normals"][0, 0]).all()
    assert np.allclose(res["normals"][0, 1:], [0, 0, 1])
    ids = postprocess({"semantic": torch.full((1, 4, 8), 2), "depth": depth, "normals": normals})
    assert np.isnan(ids["depth"]).all()


def _postprocess_full_frame(sem: np.ndarray, depth: np.ndarray, normals: np.ndarray) -> dict:
    """postprocess written the plain way, one full-frame numpy expression per step (the reference)."""
    ids = sem.astype(np.uint8)
    if sem.dtype != np.uint8:
        ids[(sem < 0) | (sem >= 255)] = 255
    sky = ids == 2
    d = depth[:, 0].astype(np.float32)
    d[sky | ~(d > 0)] = np.nan
    x, y, z = normals[:, 0], normals[:, 1], normals[:, 2]
    n2 = x * x + y * y + z * z
    with np.errstate(divide="ignore"):
        inv = np.float32(1.0) / np.sqrt(n2)
    inv[sky | ~(n2 > 1e-12)] = np.nan
    return {"semantic": ids, "depth": d, "normals": np.stack([x * inv, y * inv, z * inv], axis=-1)}


@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("ids_dtype", [torch.int64, torch.int32, torch.uint8])
def test_postprocess_is_bit_identical_to_the_full_frame_reference(ids_dtype, path, monkeypatch):
    """Both post-processing paths, the compiled per-pixel kernel (numba) and the blocked numpy one (rows of a few
    hundred thousand pixels), give exactly the full-frame result, with a last partial block, a batch of two, ids out
    of range, NaN / zero / negative depth and zero / tiny normals."""
    import mtpano_ros.model.inference as inference

    if path == "compiled":
        pytest.importorskip("numba", reason="numba is not installed: only the numpy path runs here")
        assert inference._postprocess_compiled is not None
    else:
        monkeypatch.setattr(inference, "_postprocess_compiled", None)
    g = torch.Generator().manual_seed(3)
    b, h, w = 2, 301, 1000  # 131 rows per block: blocks of 131, 131 and 39 rows
    sem = torch.randint(-3, 260, (b, h, w), generator=g).clamp(min=0 if ids_dtype == torch.uint8 else -3)
    sem = sem.clamp(max=255).to(ids_dtype) if ids_dtype == torch.uint8 else sem.to(ids_dtype)
    sem[:, :20] = 2  # sky band
    depth = torch.rand(b, 1, h, w, generator=g) * 30 - 1
    depth[0, 0, 100, :50] = float("nan")
    depth[1, 0, 200, :50] = 0.0
    normals = torch.randn(b, 3, h, w, generator=g) * 3
    normals[0, :, 50, :40] = 0.0
    normals[1, :, 60, :40] = 1e-7  # |n|^2 = 3e-14: invalid
    before = [t.clone() for t in (sem, depth, normals)]
    got = postprocess({"semantic": sem, "depth": depth, "normals": normals})
    want = _postprocess_full_frame(sem.numpy(), depth.numpy(), normals.numpy())
    for key in ("semantic", "depth", "normals"):
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)  # NaN where NaN, every other bit equal
    assert np.isnan(got["depth"][1, 200, :50]).all() and np.isnan(got["normals"][1, 60, :40]).all()
    for a, c in zip(before, (sem, depth, normals), strict=True):
        np.testing.assert_array_equal(a.numpy(), c.numpy(), err_msg="postprocess modified its inputs")


def test_tiny_state_dict_layout_is_frozen():
    """The bundled default weights are trained on this exact layout: names and shapes must not change."""
    import hashlib

    with torch.device("meta"):
        sd = create_model("mtpano-tiny").state_dict()
    txt = "\n".join(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in sd.items())
    assert len(sd) == 703
    assert hashlib.sha256(txt.encode()).hexdigest() == (
        "2c06c027c0389253087bc275e10bc8041c80103a930cba55eb0faede14125c27")


def test_vitl_matches_manifest():
    manifest = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "mtpano_official" / \
        "state_dict_manifest.tsv"
    if not manifest.is_file():
        pytest.skip(f"manifest not found at {manifest}")
    rows = [line.split("\t")[:2] for line in manifest.read_text().splitlines()[1:]]
    with torch.device("meta"):
        m = create_model("mtpano-vitl")
    ours = [(k, "x".join(map(str, v.shape)) if v.dim() else "scalar") for k, v in m.state_dict().items()]
    assert [tuple(r) for r in rows] == ours  # same names (no mapping needed at 4.5x naming), shapes and order
    assert sum(p.numel() for p in m.parameters()) == 589_514_490

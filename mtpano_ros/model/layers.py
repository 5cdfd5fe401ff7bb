"""Small building blocks shared by every PD-BridgeNet variant: ERP wrap padding, ERP convolutions, resizing.

Horizontal wrap (DESIGN §3: column 0 and column W-1 are neighbours) is written as slice + concat, never as
``F.pad(mode="circular")``, so ONNX export gives plain Slice/Concat nodes that TensorRT 10 parses.
Every module here takes a ``wrap`` flag: ``wrap=False`` reproduces ordinary zero padding (the released
official weights were trained that way), ``wrap=True`` makes the layer see the panorama as a cylinder.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F


def _training_path(x: torch.Tensor) -> bool:
    """True when ``x`` takes part in a backward pass outside any tracing/export: the layers below then use
    autograd-friendlier forms of the same function (identical values; export always sees the plain ops)."""
    return x.requires_grad and torch.is_grad_enabled() and not torch.compiler.is_compiling()


class _WrapColumns(torch.autograd.Function):
    """Horizontal wrap pad whose backward folds the pad gradients into one buffer of the input size (autograd of
    slice + concat allocates and zero-fills an input-sized tensor per slice: most of a CPU training step)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: int) -> torch.Tensor:
        ctx.p = p
        return torch.cat([x[..., -p:], x, x[..., :p]], dim=-1)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        p = ctx.p
        gx = g[..., p:-p].clone()
        gx[..., -p:] += g[..., :p]
        gx[..., :p] += g[..., -p:]
        return gx, None


def wrap_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad (B, C, H, W) by ``pad_w`` columns wrapped around horizontally and ``pad_h`` zero rows top and bottom.

    Returns (B, C, H + 2 pad_h, W + 2 pad_w). Column -1 of the result's left pad is column W-1 of the input.
    """
    if pad_w > 0:
        if _training_path(x) and pad_w <= x.shape[-1]:
            x = _WrapColumns.apply(x, pad_w)
        else:
            x = torch.cat([x[..., -pad_w:], x, x[..., :pad_w]], dim=-1)
    if pad_h > 0:
        x = F.pad(x, (0, 0, pad_h, pad_h))
    return x


class ERPConv2d(nn.Conv2d):
    """``nn.Conv2d`` with "same" padding that wraps horizontally when ``wrap`` is true.

    Same parameter names and shapes as ``nn.Conv2d`` (so state dicts are interchangeable). Input (B, C_in, H, W)
    -> (B, C_out, H / stride, W / stride). Padding is (k_h // 2, k_w // 2); odd kernels only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 groups: int = 1, bias: bool = True, wrap: bool = False):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"ERPConv2d needs odd kernel sizes, got {(kh, kw)}")
        self.wrap = bool(wrap)
        self.erp_pad = (kh // 2, kw // 2)
        super().__init__(in_channels, out_channels, (kh, kw), stride=stride,
                         padding=0 if self.wrap else self.erp_pad, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.wrap:
            x = wrap_pad(x, *self.erp_pad)
        return super().forward(x)


def _interp_matrix(n_out: int, n_in: int, wrap: bool, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) matrix of 1-D linear interpolation with align_corners=False, as ``F.interpolate`` samples:
    source coordinate (i + 0.5) * n_in / n_out - 0.5, clamped to the edges, or wrapped around when ``wrap``.
    Dtype and device of ``like``."""
    return _interp_matrix64(n_out, n_in, wrap).to(dtype=like.dtype, device=like.device)


@functools.lru_cache(maxsize=64)
def _interp_matrix64(n_out: int, n_in: int, wrap: bool) -> torch.Tensor:
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    if not wrap:
        src = src.clamp_min(0.0)
    i0 = torch.floor(src)
    frac = src - i0
    i0 = i0.long()
    i1 = i0 + 1
    if wrap:
        i0, i1 = i0 % n_in, i1 % n_in
    else:
        i1 = i1.clamp_max(n_in - 1)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m


def erp_resize(x: torch.Tensor, out_hw: tuple[int, int], wrap: bool, align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to (B, C, H, W) = out_hw.

    With ``wrap`` and an integer horizontal scale s = W / w, one wrapped column is added on each side before
    the resize and s columns are cropped after it, so output columns near 0 and W-1 interpolate across the
    seam (exact wrap-around bilinear sampling, align_corners=False). Otherwise a plain ``F.interpolate``.
    """
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    h, w = x.shape[-2], x.shape[-1]
    if (h, w) == (out_h, out_w):
        return x
    if wrap and out_w % w == 0:
        if _training_path(x):  # two matmuls: a cheap backward (no scatter, no crop)
            ah, aw = _interp_matrix(out_h, h, False, x), _interp_matrix(out_w, w, True, x)
            if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1:  # stay channels-last
                y = aw @ x.permute(0, 2, 3, 1)  # (B, h, W, C)
                y = (ah @ y.reshape(y.shape[0], h, -1)).reshape(y.shape[0], out_h, out_w, -1)
                return y.permute(0, 3, 1, 2)
            return ah @ x @ aw.T
        s = out_w // w
        x = wrap_pad(x, 0, 1)
        x = F.interpolate(x, size=(out_h, out_w + 2 * s), mode="bilinear", align_corners=False)
        return x[..., s:s + out_w]
    return F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=align_corners)


class ERPUpsample(nn.Module):
    """Bilinear upsampling by an integer ``scale``: (B, C, h, w) -> (B, C, scale h, scale w).

    ``wrap=False`` uses ``align_corners`` as given (DPT uses True); ``wrap=True`` uses the wrap-exact
    align_corners=False resize of :func:`erp_resize` (align_corners=True is not shift-equivariant).
    """

    def __init__(self, scale: int = 2, wrap: bool = False, align_corners: bool = True):
        super().__init__()
        self.scale = int(scale)
        self.wrap = bool(wrap)
        self.align_corners = bool(align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.wrap:
            return erp_resize(x, (x.shape[-2] * self.scale, x.shape[-1] * self.scale), wrap=True)
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=self.align_corners)


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of (B, C, H, W) maps: permute to channels-last, ``nn.LayerNorm``, permute back."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

"""DINOv3-style ViT backbone with precomputed rotary position embeddings (export-friendly).

Parameter names and shapes equal those of ``transformers``' ``DINOv3ViTModel`` (4.5x naming: ``embeddings.*``,
``layer.N.*``, ``norm.*``), so the official MTPano checkpoint loads into it unchanged. Differences from the
``transformers`` module are in how it is computed, not what: RoPE cos/sin are constants of the token grid
(computed once per grid and cached; no data-dependent control flow in the graph), q/k/v are separate Linear
layers, LayerNorm is ``nn.LayerNorm``, attention is ``F.scaled_dot_product_attention`` (exports to
MatMul/Softmax at opset 17-18). The training-time RoPE augmentation of DINOv3 (coordinate rescale) is not
applied.

RoPE modes:
- ``"dinov3"``: DINOv3's. Patch centres in [-1, 1] on both axes, head_dim/4 frequencies 1/theta^(4i/head_dim),
  angles 2 pi * coord * freq, [y-angles, x-angles] tiled twice over the head dimension.
- ``"spherical"``: the y part as DINOv3, the x part uses integer frequencies k_i (geometric from 1 to 16 cycles
  per turn, independent of the grid) times longitude, so the encoding is periodic over 360 degrees and
  relative positions across the seam are the true ones (patch-to-patch attention scores are unchanged when the
  panorama is rolled by whole tokens; CLS/register tokens are not rotated, as in DINOv3, so their scores
  against patches still depend on absolute longitude).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@functools.lru_cache(maxsize=16)
def _rope_tables_np(grid_h: int, grid_w: int, head_dim: int, theta: float, mode: str) -> tuple[np.ndarray, np.ndarray]:
    # numpy (not torch) so that exporters see constants, never the computation
    nf = head_dim // 4
    inv_freq = (1.0 / theta ** (np.arange(nf, dtype=np.float32) * np.float32(4 / head_dim))).astype(np.float32)
    ch = (np.arange(grid_h, dtype=np.float32) + np.float32(0.5)) / np.float32(grid_h)
    cw = (np.arange(grid_w, dtype=np.float32) + np.float32(0.5)) / np.float32(grid_w)
    cy = np.repeat(2 * ch - 1, grid_w).astype(np.float32)  # (N,) row-major token order, in [-1, 1]
    cx = np.tile(2 * cw - 1, grid_h).astype(np.float32)
    two_pi = np.float32(2 * math.pi)
    ay = two_pi * cy[:, None] * inv_freq[None, :]
    if mode == "dinov3":
        ax = two_pi * cx[:, None] * inv_freq[None, :]
    elif mode == "spherical":  # float64: angles reach 16 pi; rolled grids then agree to float32 rounding
        k = np.round(np.exp(np.linspace(0.0, math.log(16.0), nf)))
        lon = np.tile(math.pi * (1.0 - 2.0 * (np.arange(grid_w) + 0.5) / grid_w), grid_h)
        ax = lon[:, None] * k[None, :]
        ay = ay.astype(np.float64)
    else:
        raise ValueError(f"unknown rope mode {mode!r}; expected 'dinov3' or 'spherical'")
    angles = np.concatenate([ay, ax, ay, ax], axis=1)  # (N, head_dim): [y, x] tiled twice
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    cos.setflags(write=False)
    sin.setflags(write=False)
    return cos, sin


def rope_tables(grid_h: int, grid_w: int, head_dim: int, theta: float, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE (cos, sin) tables, each (grid_h * grid_w, head_dim) float32 CPU tensors, row-major token order.

    Computed once per grid in numpy (cached), so that traced/exported graphs hold them as constants.
    ``mode`` is "dinov3" or "spherical" (module docstring).
    """
    cos, sin = _rope_tables_np(int(grid_h), int(grid_w), int(head_dim), float(theta), mode)
    return torch.from_numpy(cos.copy()), torch.from_numpy(sin.copy())


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class ViTEmbeddings(nn.Module):
    """Patch embedding + CLS + register tokens: (B, 3, H, W) -> (B, 1 + R + H/p * W/p, D)."""

    def __init__(self, dim: int, patch_size: int, num_register_tokens: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))  # unused in forward; kept for checkpoint parity
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, dim))
        self.patch_embeddings = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        p = self.patch_embeddings(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(b, -1, -1), self.register_tokens.expand(b, -1, -1), p], dim=1)


class ViTAttention(nn.Module):
    """Self-attention with RoPE on the patch tokens only (the first ``num_prefix`` tokens are not rotated)."""

    def __init__(self, dim: int, num_heads: int, key_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.k_proj = nn.Linear(dim, dim, bias=key_bias)
        self.v_proj = nn.Linear(dim, dim, bias=True)
        self.q_proj = nn.Linear(dim, dim, bias=True)
        self.o_proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_prefix: int) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        qp, kp = q[:, :, num_prefix:], k[:, :, num_prefix:]
        q = torch.cat([q[:, :, :num_prefix], qp * cos + _rotate_half(qp) * sin], dim=2)
        k = torch.cat([k[:, :, :num_prefix], kp * cos + _rotate_half(kp) * sin], dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class ViTMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up_proj = nn.Linear(dim, hidden)
        self.down_proj = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.up_proj(x)))


class ViTLayer(nn.Module):
    """Pre-norm transformer block with LayerScale (DINOv3 layout)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float, key_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attention = ViTAttention(dim, num_heads, key_bias)
        self.layer_scale1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = ViTMLP(dim, int(dim * mlp_ratio))
        self.layer_scale2 = LayerScale(dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_prefix: int) -> torch.Tensor:
        x = self.layer_scale1(self.attention(self.norm1(x), cos, sin, num_prefix)) + x
        return self.layer_scale2(self.mlp(self.norm2(x))) + x


class DINOv3ViT(nn.Module):
    """DINOv3-layout ViT. ``forward(x)`` returns the raw outputs (before the final ``norm``) of the blocks in
    ``out_indices``, each (B, 1 + R + N, D) tokens: [CLS, R registers, N = H/p * W/p patches, row-major].

    x: (B, 3, H, W) normalised image, H and W multiples of ``patch_size``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, patch_size: int = 16, num_register_tokens: int = 4,
                 mlp_ratio: float = 4.0, layer_norm_eps: float = 1e-5, rope_theta: float = 100.0,
                 key_bias: bool = False, rope_mode: str = "dinov3", out_indices: tuple[int, ...] = (5, 11, 17, 23)):
        super().__init__()
        self.dim, self.patch_size, self.num_heads = dim, patch_size, num_heads
        self.num_prefix = 1 + num_register_tokens
        self.rope_theta, self.rope_mode = float(rope_theta), rope_mode
        self.out_indices = tuple(int(i) for i in out_indices)
        self.embeddings = ViTEmbeddings(dim, patch_size, num_register_tokens)
        self.layer = nn.ModuleList(
            [ViTLayer(dim, num_heads, mlp_ratio, layer_norm_eps, key_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)  # unused in forward (taps are pre-norm); kept for parity

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        cos, sin = rope_tables(gh, gw, self.dim // self.num_heads, self.rope_theta, self.rope_mode)
        cos, sin = cos.to(device=x.device, dtype=x.dtype), sin.to(device=x.device, dtype=x.dtype)
        h = self.embeddings(x)
        outs = []
        last = max(self.out_indices)
        for i, blk in enumerate(self.layer):
            h = blk(h, cos, sin, self.num_prefix)
            if i in self.out_indices:
                outs.append(h)
            if i == last:
                break
        return outs

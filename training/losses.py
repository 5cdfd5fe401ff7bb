"""Training losses of PD-BridgeNet (MTPano's released recipe).

- semantics: cross-entropy + Dice (ignore 255);
- depth and normals: masked L1 + edge-aware term (L1 between horizontal/vertical finite differences, wrapping
  horizontally) + frequency term (L1 between 2-D FFT amplitudes of the masked maps);
- intermediate supervision: the same task losses on the auxiliary (intermediate) predictions, weight 0.3;
- auxiliary tasks: image gradient, edge distance field, metric point map (L1), weight 0.003 each.

`compute_losses(outputs, batch, cfg)` returns (total loss, {name: detached scalar}); cfg is a
training.config.LossConfig (weights and switches, with their defaults). Depth known only up to scale and shift
(samples whose "depth_affine" flag is set, e.g. a store made by an affine-invariant teacher) is compared after a
per-sample least-squares alignment (the SSI loss) with `depth_loss: auto`, the default; the metric point-map
auxiliary target is skipped for those samples.
"""

from __future__ import annotations

import math

import torch

from mtpano_ros.labels import SKY_ID
from training.config import LossConfig, to_dict, validate
from training.data.gravity import CEILING

IGNORE_INDEX = 255

DEFAULTS = to_dict(LossConfig())  # the schema's defaults as a plain dict (what the helpers below take as `w`)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)


class _CrossEntropyDice(torch.autograd.Function):
    """Mean cross-entropy and soft Dice (over the classes present) of logits against labels, with a hand-written
    backward: autograd of log_softmax + gather + index_select allocates and zero-fills several full-size
    (B,H,W,150) tensors, most of a CPU training step. Returns a (2,) tensor (ce, dice).

    Gradient: d ce / d x = valid (p - onehot) / n; the Dice gradient g_p on the present classes' probabilities goes
    through the softmax Jacobian, d / d x = p (g_p - sum_k g_p,k p_k)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, t: torch.Tensor, valid: torch.Tensor, present: torch.Tensor, eps: float):
        # x (B,H,W,C) float32 logits, t (B,H,W) int64 (a valid class where invalid), valid (B,H,W) float32
        n = valid.sum().clamp_min(1.0)
        logp = torch.log_softmax(x, -1)
        ce = -(logp.gather(-1, t[..., None])[..., 0] * valid).sum() / n
        p = logp.exp_()  # in place: logp is not needed any more
        pk = p.index_select(-1, present) * valid[..., None]  # (B,H,W,K)
        yk = (t[..., None] == present).to(p.dtype) * valid[..., None]
        inter, denom = (pk * yk).sum((0, 1, 2)), pk.sum((0, 1, 2)) + yk.sum((0, 1, 2))
        dice = (1 - (2 * inter + eps) / (denom + eps)).mean()
        ctx.save_for_backward(p, t, valid, present, yk, inter, denom)
        ctx.eps, ctx.n = eps, n
        return torch.stack([ce, dice])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        p, t, valid, present, yk, inter, denom = ctx.saved_tensors
        eps, n, k = ctx.eps, ctx.n, present.numel()
        # Dice: d dice / d pk = -(2 yk (denom + eps) - (2 inter + eps)) / (denom + eps)^2 / K, on valid pixels
        gpk = -(2 * yk * (denom + eps) - (2 * inter + eps)) / ((denom + eps) ** 2 * k) * valid[..., None] * g[1]
        pk = p.index_select(-1, present)
        s = (gpk * pk).sum(-1)  # (B,H,W)
        gx = p * (valid * (g[0] / n) - s)[..., None]
        gx.index_add_(-1, present, pk * gpk)
        gx.scatter_add_(-1, t[..., None], (-valid * (g[0] / n))[..., None])
        return gx, None, None, None, None


def _ce_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean CE, soft Dice over the present classes) of logits (B,C,H,W) against target (B,H,W) int64, 255 ignored.
    Channels-last: a softmax over a contiguous last axis is far faster on CPU than over NCHW's axis 1."""
    valid = target != IGNORE_INDEX
    t = torch.where(valid, target, torch.zeros_like(target))
    present = torch.unique(target[valid])
    x = (logits if logits.dtype == torch.float64 else logits.float()).permute(0, 2, 3, 1)
    return _CrossEntropyDice.apply(x, t, valid.to(x.dtype), present, eps).unbind(0)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice over the classes present in target. logits (B,C,H,W), target (B,H,W) int64 (255 ignored)."""
    if not (target != IGNORE_INDEX).any():
        return logits.sum() * 0
    return _ce_dice(logits, target, eps)[1]


def semantic_loss(logits: torch.Tensor, target: torch.Tensor, w: dict) -> torch.Tensor:
    """CE + w["dice"] * Dice. logits (B,C,H,W), target (B,H,W) int64 (255 ignored)."""
    if not (target != IGNORE_INDEX).any():
        return logits.sum() * 0
    ce, dice = _ce_dice(logits, target)
    return ce + w["dice"] * dice if w["dice"] > 0 else ce


def edge_aware_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between finite differences of pred and target (B,C,H,W); horizontal differences wrap (ERP), a difference
    counts where both of its pixels are valid (mask (B,1,H,W) bool)."""
    dxp = pred - torch.roll(pred, -1, 3)
    dxt = target - torch.roll(target, -1, 3)
    mx = mask & torch.roll(mask, -1, 3)
    dyp, dyt = pred[:, :, 1:] - pred[:, :, :-1], target[:, :, 1:] - target[:, :, :-1]
    my = mask[:, :, 1:] & mask[:, :, :-1]
    return _masked_mean((dxp - dxt).abs(), mx) + _masked_mean((dyp - dyt).abs(), my)


def frequency_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between the amplitude spectra (orthonormal 2-D FFT) of pred*mask and target*mask, per pixel."""
    m = mask.to(torch.float32)
    fp = torch.fft.rfft2(pred.float() * m, norm="ortho").abs()
    ft = torch.fft.rfft2(target.float() * m, norm="ortho").abs()
    return (fp - ft).abs().mean()


def depth_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 in metres. pred, target (B,1,H,W), mask (B,1,H,W) bool."""
    return _masked_mean((pred - target).abs(), mask)


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample least-squares scale s and shift t fitting s * pred + t to target on mask; returns s * pred + t.
    pred, target (B,1,H,W), mask (B,1,H,W) bool. For teachers whose depth is known only up to scale and shift."""
    m = mask.to(pred.dtype)
    n = m.sum((1, 2, 3), keepdim=True).clamp_min(1.0)
    pm, tm = (pred * m).sum((1, 2, 3), keepdim=True) / n, (target * m).sum((1, 2, 3), keepdim=True) / n
    pc, tc = (pred - pm) * m, (target - tm) * m
    s = (pc * tc).sum((1, 2, 3), keepdim=True) / (pc * pc).sum((1, 2, 3), keepdim=True).clamp_min(1e-8)
    return s * (pred - pm) + tm


def aligned_samples(w: dict, affine: torch.Tensor | None, batch_size: int) -> torch.Tensor:
    """(B,) bool: which samples the depth loss aligns first. w["depth_loss"]: "ssi" all, "l1" none, "auto" the
    samples whose `affine` flag ((B,) bool, the batch's "depth_affine"; None = all metric) is set."""
    mode = w["depth_loss"]
    if mode not in ("auto", "l1", "ssi"):
        raise ValueError(f"loss.depth_loss must be 'auto', 'l1' or 'ssi', got {mode!r}")
    if mode == "auto" and affine is not None:
        return affine.reshape(-1).to(torch.bool)
    return torch.full((batch_size,), mode == "ssi", dtype=torch.bool)


def depth_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w: dict,
               affine: torch.Tensor | None = None) -> torch.Tensor:
    """Depth task loss: masked L1 (after scale-and-shift alignment for the samples aligned_samples picks) +
    edge-aware + frequency (+ optional log-depth L1). pred, target (B,1,H,W) metres, mask (B,1,H,W) bool,
    affine (B,) bool or None."""
    if not mask.any():
        return pred.sum() * 0
    align = aligned_samples(w, affine, pred.shape[0]).to(pred.device)
    if align.any():
        pred = torch.where(align.view(-1, 1, 1, 1), align_scale_shift(pred, target, mask), pred)
    loss = depth_l1(pred, target, mask)
    if w["edge"] > 0:
        loss = loss + w["edge"] * edge_aware_loss(pred, target, mask)
    if w["freq"] > 0:
        loss = loss + w["freq"] * frequency_loss(pred, target, mask)
    if w["depth_log"] > 0:
        lp = torch.log(pred.clamp_min(1e-3))
        lt = torch.log(target.clamp_min(1e-3))
        loss = loss + w["depth_log"] * _masked_mean((lp - lt).abs(), mask)
    return loss


def normals_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w: dict) -> torch.Tensor:
    """Normals task loss: masked L1 over the 3 components + edge-aware + frequency. (B,3,H,W), mask (B,1,H,W)."""
    if not mask.any():
        return pred.sum() * 0
    loss = _masked_mean((pred - target).abs(), mask)
    if w["edge"] > 0:
        loss = loss + w["edge"] * edge_aware_loss(pred, target, mask)
    if w["freq"] > 0:
        loss = loss + w["freq"] * frequency_loss(pred, target, mask)
    return loss


def _task_losses(out: dict, batch: dict, w: dict) -> dict[str, torch.Tensor]:
    return {
        "semantic": semantic_loss(out["semantic_logits"], batch["semantic"], w),
        "depth": depth_loss(out["depth"], batch["depth"], batch["depth_mask"], w, batch.get("depth_affine")),
        "normals": normals_loss(out["normals"], batch["normals"], batch["normals_mask"], w),
    }


def points_target(depth: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) radial depth -> (B,3,H,W) points in the panorama frame (metres)."""
    from mtpano_ros.geometry import depth_to_points

    return depth_to_points(depth)


def facing_loss(normals: torch.Tensor, semantic: torch.Tensor, sky: int = SKY_ID) -> torch.Tensor:
    """Mean of relu(n . ray)^2 over non-sky pixels: predicted normals (B, 3, H, W) (panorama frame) that point away
    from the camera are penalised; semantic (B, H, W) targets mark sky (excluded). True for every surface seen, so
    it needs no labels (real photographs included)."""
    from mtpano_ros.geometry import erp_ray_grid

    h, w = normals.shape[-2:]
    rays = erp_ray_grid(h, w, dtype=normals.dtype, device=normals.device)  # (H, W, 3)
    dot = (normals * rays.permute(2, 0, 1)[None]).sum(1, keepdim=True)
    mask = (semantic != sky)[:, None]
    return _masked_mean(torch.relu(dot) ** 2, mask)


def _latitudes(height: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(H,) latitude in radians of each ERP row centre (+pi/2 at the top, DESIGN §3)."""
    from mtpano_ros.geometry import pixel_to_lonlat

    rows = torch.arange(height, dtype=dtype, device=device)
    return pixel_to_lonlat(torch.zeros_like(rows), rows, height, 1)[1]


def level_plane_loss(depth: torch.Tensor, semantic: torch.Tensor, depth_mask: torch.Tensor,
                     min_lat_deg: float = 8.0, min_pixels: int = 64) -> torch.Tensor:
    """Scale-free level-plane term for pixels without a depth target (real photographs, level camera).

    Ground pixels (``GROUND_CLASSES``, at least min_lat_deg below the horizon) lie on one level plane, so their
    height below the camera, depth * sin(-lat), is the same for all of them; ceiling pixels (at least min_lat_deg
    above it) likewise with depth * sin(lat). The term is the mean absolute deviation of log height from its mean,
    per sample and surface (samples with fewer than min_pixels such pixels are left out), averaged: it shapes the
    depth of floors and ceilings without knowing the camera height.
    depth (B,1,H,W) radial metres (prediction); semantic (B,H,W) int64 ADE20K targets (255 ignore); depth_mask
    (B,1,H,W) bool (True where a depth target exists: those pixels are left to the depth loss).
    """
    from mtpano_ros.geometry.ground import GROUND_CLASSES

    h = depth.shape[-2]
    lat = _latitudes(h, depth.dtype, depth.device).view(1, 1, h, 1)
    logd = torch.log(depth.clamp_min(1e-3))
    min_lat = math.radians(min_lat_deg)
    terms = []
    for ids, side in ((GROUND_CLASSES, -1.0), ((CEILING,), 1.0)):
        cls = torch.isin(semantic, torch.tensor(ids, device=semantic.device))[:, None]
        m = cls & ~depth_mask & (side * lat > min_lat)
        logh = logd + torch.log((side * torch.sin(lat)).clamp_min(1e-3))
        mf = m.to(depth.dtype)
        n = mf.sum((1, 2, 3))
        mean = (logh * mf).sum((1, 2, 3)) / n.clamp_min(1.0)
        dev = ((logh - mean.view(-1, 1, 1, 1)).abs() * mf).sum((1, 2, 3)) / n.clamp_min(1.0)
        terms.append(dev[n >= min_pixels])
    dev = torch.cat(terms)
    return dev.mean() if dev.numel() else depth.sum() * 0


def depth_normal_loss(depth: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor,
                      max_log_step: float = 0.1, max_abs_lat_deg: float = 80.0) -> torch.Tensor:
    """Mean of 1 - |cos| between the normals of the depth map and the (detached) predicted normals on mask.

    The depth map's normal at a pixel is the cross product of its 3-D neighbours' differences (east-west wrapping,
    north-south inside the image). Pixels near depth edges (a log-depth step to a neighbour above max_log_step:
    occlusions, where no surface joins the neighbours) and near the poles (|lat| > max_abs_lat_deg) are left out.
    depth (B,1,H,W) radial metres; normals (B,3,H,W) unit, panorama frame; mask (B,1,H,W) bool. Trains the depth
    only: where the network's normals are better than its depth (real photographs), they shape it.
    """
    from mtpano_ros.geometry import erp_ray_grid

    b, _, h, w = depth.shape
    rays = erp_ray_grid(h, w, dtype=depth.dtype, device=depth.device).permute(2, 0, 1)[None]
    p = depth * rays  # (B,3,H,W) points
    du = torch.roll(p, -1, 3) - torch.roll(p, 1, 3)  # east-west tangent, wraps at the seam
    dv = p[:, :, 2:] - p[:, :, :-2]  # north-south tangent, rows 1..H-2
    nd = torch.cross(du[:, :, 1:-1], dv, dim=1)
    nd = nd / nd.norm(dim=1, keepdim=True).clamp_min(1e-8)
    cos = (nd * normals[:, :, 1:-1].detach()).sum(1, keepdim=True).abs()
    with torch.no_grad():
        logd = torch.log(depth.clamp_min(1e-3))
        step = torch.maximum((torch.roll(logd, -1, 3) - torch.roll(logd, 1, 3)).abs()[:, :, 1:-1],
                             (logd[:, :, 2:] - logd[:, :, :-2]).abs())
        lat = _latitudes(h, depth.dtype, depth.device)[1:-1].view(1, 1, h - 2, 1)
        keep = mask[:, :, 1:-1] & (step < max_log_step) & (lat.abs() < math.radians(max_abs_lat_deg))
    return _masked_mean(1 - cos, keep)


def sky_below_loss(logits: torch.Tensor, min_below_deg: float = 10.0) -> torch.Tensor:
    """Mean of -log(1 - p_sky) over the pixels more than min_below_deg below the horizon: for a level camera sky is
    never there (real photographs have no labels to say so where the teacher is unsure). logits (B,C,H,W)."""
    h = logits.shape[-2]
    rows = _latitudes(h, torch.float32, logits.device) < -math.radians(min_below_deg)
    x = logits[:, :, rows].float()
    if x.numel() == 0:
        return logits.sum() * 0
    others = torch.cat([x[:, :SKY_ID], x[:, SKY_ID + 1:]], 1)
    return (torch.logsumexp(x, 1) - torch.logsumexp(others, 1)).mean()


def compute_losses(outputs: dict, batch: dict, cfg: LossConfig | dict | None = None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total training loss and its parts.

    outputs: the model's training-mode dict (semantic_logits, depth, normals, optional aux {semantic_logits, depth,
    normals, grad, edge_distance, points}); batch: collated dataset samples (optional targets "grad" (B,2,H,W) and
    "edge_distance" (B,1,H,W), optional "depth_affine" (B,) bool; points come from the metric depth). cfg: a
    LossConfig, or a dict of its keys (validated; missing keys take the defaults).
    """
    w = to_dict(validate(LossConfig, cfg, "loss"))
    parts = _task_losses(outputs, batch, w)
    total = sum(w[k] * v for k, v in parts.items())
    logs = {f"loss/{k}": v.detach() for k, v in parts.items()}
    aux = outputs.get("aux")
    if aux is not None:
        if w["intermediate"] > 0:
            inter = _task_losses(aux, batch, w)
            total = total + w["intermediate"] * sum(w[k] * v for k, v in inter.items())
            logs.update({f"loss/inter_{k}": v.detach() for k, v in inter.items()})
        if w["aux"] > 0:
            extra = {}
            if "grad" in aux and "grad" in batch:
                extra["grad"] = (aux["grad"] - batch["grad"]).abs().mean()
            if "edge_distance" in aux and "edge_distance" in batch:
                extra["edge_distance"] = (aux["edge_distance"] - batch["edge_distance"]).abs().mean()
            if "points" in aux:  # metric targets only: affine depth gives no metric points
                metric = ~aligned_samples(w, batch.get("depth_affine"), batch["depth"].shape[0])
                pmask = batch["depth_mask"] & metric.to(batch["depth_mask"].device).view(-1, 1, 1, 1)
                extra["points"] = _masked_mean((aux["points"] - points_target(batch["depth"])).abs(), pmask)
            if extra:
                total = total + w["aux"] * sum(extra.values())
                logs.update({f"loss/aux_{k}": v.detach() for k, v in extra.items()})
    if w["facing"] > 0:  # every visible surface faces the camera: n . ray <= 0 (normals point to the camera side)
        face = facing_loss(outputs["normals"], batch["semantic"])
        total = total + w["facing"] * face
        logs["loss/facing"] = face.detach()
    if w["gravity"] > 0 and "vertical_mask" in batch:  # vertical surfaces: no z component in the normal
        vm = batch["vertical_mask"]
        grav = _masked_mean(outputs["normals"][:, 2:3] ** 2, vm) if vm.any() else outputs["normals"].sum() * 0
        total = total + w["gravity"] * grav
        logs["loss/gravity"] = grav.detach()
    if w["sky_below"] > 0:  # samples without any depth target (real photographs, level camera)
        real = ~batch["depth_mask"].flatten(1).any(1)
        sb = sky_below_loss(outputs["semantic_logits"][real]) if real.any() else total * 0
        total = total + w["sky_below"] * sb
        logs["loss/sky_below"] = sb.detach()
    if w["level_planes"] > 0:  # pixels without depth targets (real photographs): scale-free floors and ceilings
        lp = level_plane_loss(outputs["depth"], batch["semantic"], batch["depth_mask"])
        total = total + w["level_planes"] * lp
        logs["loss/level_planes"] = lp.detach()
    if w["depth_normal"] > 0:  # the same pixels, sky and unlabelled ones left out
        sem = batch["semantic"][:, None]
        dn = depth_normal_loss(outputs["depth"], outputs["normals"],
                               ~batch["depth_mask"] & (sem != SKY_ID) & (sem != IGNORE_INDEX))
        total = total + w["depth_normal"] * dn
        logs["loss/depth_normal"] = dn.detach()
    logs["loss/total"] = total.detach()
    return total, {k: float(v) for k, v in logs.items()}

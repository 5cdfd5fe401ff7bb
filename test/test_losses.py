"""Training losses: the hand-written cross-entropy + Dice backward against autograd, hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import IGNORE_INDEX, compute_losses, dice_loss, semantic_loss


def _reference(logits: torch.Tensor, target: torch.Tensor, dice_w: float) -> torch.Tensor:
    """CE + dice_w * Dice written the plain way (boolean indexing, autograd everywhere)."""
    valid = target != IGNORE_INDEX
    x = logits.permute(0, 2, 3, 1)[valid]
    t = target[valid]
    logp = torch.log_softmax(x, -1)
    ce = -logp.gather(1, t[:, None]).mean()
    present = torch.unique(t)
    prob = logp[:, present].exp()
    onehot = (t[:, None] == present[None]).to(prob.dtype)
    dice = (1 - (2 * (prob * onehot).sum(0) + 1) / (prob.sum(0) + onehot.sum(0) + 1)).mean()
    return ce + dice_w * dice


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semantic_loss_value_and_gradient_match_autograd(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 9, 5, 7, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randint(0, 5, (2, 5, 7), generator=g)
    target[0, 1, :4] = IGNORE_INDEX
    target[1, :, 0] = 8
    for dice_w in (0.0, 1.0, 0.4):
        ours = semantic_loss(logits, target, {"dice": dice_w})
        ref = _reference(logits, target, dice_w)
        assert torch.allclose(ours, ref, atol=1e-12)
        (g_ours,) = torch.autograd.grad(ours, logits)
        (g_ref,) = torch.autograd.grad(ref, logits)
        assert torch.allclose(g_ours, g_ref, atol=1e-12)
        assert g_ours[0, :, 1, :4].abs().max() == 0  # ignored pixels get no gradient


def test_semantic_loss_gradcheck():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 4, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (1, 3, 4), generator=g)
    target[0, 0, 0] = IGNORE_INDEX
    assert torch.autograd.gradcheck(lambda x: semantic_loss(x, target, {"dice": 1.0}), (logits,))


def test_semantic_loss_hand_computed():
    # two pixels, two classes, uniform logits: CE = log 2; Dice per class (eps 1): p = 0.5 at both pixels,
    # class 0 present at pixel 0 only: 1 - (2 * 0.5 + 1) / (1.0 + 1 + 1) = 1/3, class 1 the same
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    assert math.isclose(float(semantic_loss(logits, target, {"dice": 0.0})), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(dice_loss(logits, target)), 1 / 3, rel_tol=1e-6)
    # all ignored: zero, still differentiable
    z = semantic_loss(logits.requires_grad_(True), torch.full((1, 1, 2), IGNORE_INDEX), {"dice": 1.0})
    assert float(z) == 0.0
    z.backward()


def test_compute_losses_perfect_prediction_is_near_zero():
    h, w = 8, 16
    depth = torch.full((1, 1, h, w), 3.0)
    normals = torch.zeros(1, 3, h, w)
    normals[:, 2] = 1
    sem = torch.randint(0, 3, (1, h, w))
    logits = torch.nn.functional.one_hot(sem, 150).permute(0, 3, 1, 2).float() * 50
    batch = {"depth": depth, "depth_mask": torch.ones(1, 1, h, w, dtype=torch.bool), "normals": normals,
             "normals_mask": torch.ones(1, 1, h, w, dtype=torch.bool), "semantic": sem}
    total, logs = compute_losses({"semantic_logits": logits, "depth": depth, "normals": normals}, batch,
                                 {"depth_log": 1.0})
    assert float(total) < 1e-3
    assert set(logs) >= {"loss/semantic", "loss/depth", "loss/normals", "loss/total"}


def test_affine_flagged_samples_get_the_ssi_depth_loss_by_default():
    from training.config import ConfigError
    from training.losses import DEFAULTS, depth_loss

    g = torch.Generator().manual_seed(0)
    h, w = 8, 16
    gt = torch.rand(2, 1, h, w, generator=g) + 1
    mask = torch.ones(2, 1, h, w, dtype=torch.bool)
    pred = 2.0 * gt + 0.5  # right up to scale and shift
    assert DEFAULTS["depth_loss"] == "auto"
    flags = torch.tensor([True, False])
    per_sample = [float(depth_loss(pred[i:i + 1], gt[i:i + 1], mask[i:i + 1], DEFAULTS, flags[i:i + 1]))
                  for i in range(2)]
    assert per_sample[0] < 1e-4 and per_sample[1] > 1.0  # affine: aligned first; metric: plain L1
    normals = torch.zeros(2, 3, h, w)
    normals[:, 2] = 1
    sem = torch.zeros(2, h, w, dtype=torch.int64)
    out = {"semantic_logits": torch.zeros(2, 150, h, w), "depth": pred, "normals": normals}
    batch = {"depth": gt, "depth_mask": mask, "normals": normals, "normals_mask": mask, "semantic": sem}
    aff = compute_losses(out, {**batch, "depth_affine": torch.tensor([True, True])})[1]["loss/depth"]
    met = compute_losses(out, {**batch, "depth_affine": torch.tensor([False, False])})[1]["loss/depth"]
    forced = compute_losses(out, {**batch, "depth_affine": torch.tensor([True, True])}, {"depth_loss": "l1"})[1]
    assert aff < 1e-4 < 1.0 < met and forced["loss/depth"] == pytest.approx(met)
    with pytest.raises(ConfigError, match="loss.depht"):
        compute_losses(out, batch, {"depht": 1.0})

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

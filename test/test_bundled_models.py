"""The bundled checkpoints load with the contract the node relies on and still predict procedural scenes well.

A floor, not the model cards' numbers: 6 held-out scenes (seeds never used for training) at the models' own input
size, thresholds well above what a broken checkpoint (wrong frame, wrong config, random weights) reaches. The
model cards hold the full 40-scene evaluation at 256x512."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtpano_ros.model import load_model
from training.evaluate import evaluate, synthetic_samples

WEIGHTS = Path(__file__).resolve().parents[1] / "mtpano_ros" / "weights"

# name: (max depth AbsRel, max normal mean angle (deg), min mIoU (%))
FLOORS = {"default": (0.25, 16.0, 38.0), "tiny-labelfree": (0.28, 17.0, 35.0), "tiny-synthetic": (0.25, 16.0, 38.0)}
VARIANTS = {"default": "mtpano-lite", "tiny-labelfree": "mtpano-tiny", "tiny-synthetic": "mtpano-tiny"}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_bundled_checkpoint_contract(name):
    folder = WEIGHTS / name
    assert (folder / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    assert (folder / "MODEL_CARD.md").is_file()
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["variant"] == VARIANTS[name] and cfg["output_frame"] == "rep103"
    assert cfg["label_set"] == "ade20k-150" and cfg["num_classes"] == 150


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_bundled_model_quality_floor(name):
    torch.set_num_threads(1)
    model = load_model(name)
    hw = tuple(model.config["input_hw"])
    res = evaluate(model, synthetic_samples(2_100_000, 6, hw), batch_size=2)
    max_absrel, max_normal_deg, min_miou = FLOORS[name]
    assert res["depth_abs_rel"] < max_absrel, res
    assert res["normal_mean_deg"] < max_normal_deg, res
    assert res["miou"] > min_miou, res


def test_default_beats_the_trivial_priors_on_a_real_photograph():
    """The real-photograph model against the latitude priors on the shared real panorama with ground truth
    (measuring only; it was never trained or tuned on it)."""
    from training.evaluate import evaluate_real, model_predictor, prior_predictor, real_gt_samples

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_gt"
    if not root.is_dir():
        pytest.skip(f"no real panoramas with ground truth at {root}")
    torch.set_num_threads(1)
    ours = evaluate_real(model_predictor(load_model("default")), real_gt_samples(root))
    prior = evaluate_real(prior_predictor, real_gt_samples(root))
    assert ours["depth_abs_rel_median_aligned"] < prior["depth_abs_rel_median_aligned"], (ours, prior)
    assert ours["normal_mean_deg"] < prior["normal_mean_deg"], (ours, prior)
    assert ours["structural_miou"] > prior["structural_miou"], (ours, prior)

"""Our export-friendly DINOv3 ViT and DPT neck/heads compute what transformers' modules compute (same names).

Small random configs, built locally (no download). mtpano-vitl uses these modules at the official sizes; the
golden test checks the whole network against the official outputs.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")


def test_vit_matches_transformers_dinov3():
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    from mtpano_ros.model.vit import DINOv3ViT

    cfg = DINOv3ViTConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                          num_register_tokens=4, patch_size=16, key_bias=False, layer_norm_eps=1e-5,
                          rope_theta=100.0, layerscale_value=1.0)
    torch.manual_seed(0)
    ref = DINOv3ViTModel(cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours = DINOv3ViT(dim=64, depth=3, num_heads=4, key_bias=False, out_indices=(0, 1, 2))
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=True)
    assert not missing and not unexpected
    ours.eval()
    x = torch.randn(2, 3, 48, 96)
    with torch.no_grad():
        hs = ref(x, output_hidden_states=True).hidden_states
        taps = ours(x)
    for i, t in enumerate(taps):
        assert torch.allclose(t, hs[i + 1], atol=1e-5, rtol=1e-4), i  # raw block outputs, before the final norm


def test_dpt_neck_and_heads_match_transformers():
    from transformers import DPTConfig
    from transformers.models.dpt.modeling_dpt import DPTDepthEstimationHead, DPTNeck, DPTSemanticSegmentationHead

    from mtpano_ros.model.dpt import DenseHead, SemanticHead
    from mtpano_ros.model.dpt import DPTNeck as OurNeck

    cfg = DPTConfig(hidden_size=64, neck_hidden_sizes=[16, 32, 64, 64], fusion_hidden_size=32,
                    reassemble_factors=[4, 2, 1, 0.5], readout_type="project", use_batch_norm_in_fusion_residual=True,
                    num_labels=150, head_in_index=-1)
    torch.manual_seed(0)
    neck, seg, dep = DPTNeck(cfg).eval(), DPTSemanticSegmentationHead(cfg).eval(), DPTDepthEstimationHead(cfg).eval()
    with torch.no_grad():
        for mod in (neck, seg, dep):
            for name, b in mod.named_buffers():
                if name.endswith("running_var"):
                    b.uniform_(0.5, 1.5)
                elif name.endswith("running_mean"):
                    b.normal_(0, 0.1)
    ours = OurNeck(64, [16, 32, 64, 64], [4, 2, 1, 0.5], 32, use_bn=True, wrap=False).eval()
    oseg = SemanticHead(32, 150, wrap=False).eval()
    odep = DenseHead(32, 1, wrap=False, final_relu=True).eval()
    for a, b in ((ours, neck), (oseg, seg), (odep, dep)):
        a.load_state_dict(b.state_dict(), strict=True)
    gh, gw = 4, 8
    feats = [torch.randn(2, 64, gh, gw) for _ in range(4)]
    cls = [torch.randn(2, 64) for _ in range(4)]
    tokens = [torch.cat([c[:, None], f.flatten(2).transpose(1, 2)], dim=1) for f, c in zip(feats, cls)]
    with torch.no_grad():
        ref_out = neck(tokens, gh, gw)
        our_out = ours(feats, cls)
        for r, o in zip(ref_out, our_out):
            assert torch.allclose(r, o, atol=1e-5, rtol=1e-4)
        assert torch.allclose(seg(ref_out), oseg(our_out), atol=1e-5, rtol=1e-4)
        assert torch.allclose(dep(ref_out)[:, None], odep(our_out), atol=1e-5, rtol=1e-4)

"""A small sae-lens top-k SAE saved to disk, for tests that read a tiny Llama (hidden size 64)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_topk_sae(folder: Path, hook: str, d_sae: int, k: int, d_in: int = 64) -> Path:
    """Seeded encoder weights (normal, std 0.125) with the decoder as their transpose: features
    that respond to the activations, the same on every run."""
    import torch
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    config = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype="float32", device="cpu")
    config.metadata.hook_name = hook
    sae = TopKSAE(config)
    torch.manual_seed(0)
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.125)
        sae.W_dec.copy_(sae.W_enc.T)
    sae.save_model(str(folder))
    return folder

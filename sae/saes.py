"""Loading SAEs through sae-lens, from its registry, the hub or a local directory.

Sources:
- ``<release>:<sae_id>`` — sae-lens registry (``SAE.from_pretrained``);
- ``hf:<owner>/<repo>[/<subfolder>]`` — a hub repo in sae-lens or sparsify format;
- a local directory: sae-lens format (``cfg.json`` + ``sae_weights.safetensors``) or sparsify format
  (``cfg.json`` + ``sae.safetensors``; EleutherAI's SAEs), which is converted here because sae-lens'
  own loader mis-reads it (transposed decoder, decoder-bias handling).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from af_tasks.core.errors import AfError, reading
from af_tasks.core.hooks import HookError, parse_hook

SAE_LENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"


class SaeError(AfError, ValueError):
    """An SAE that cannot be loaded, or that does not fit the model and hook it is paired with."""


def _is_local(source: str) -> bool:
    return Path(source).is_dir()


def sparsify_to_sae_lens(folder: Path, device: str = "cpu"):
    """A sparsify top-k SAE as a sae-lens ``TopKSAE`` with the same encode/decode.

    sparsify encodes ``topk(relu(W_enc (x - b_dec) + b_enc))`` and decodes ``acts @ W_dec + b_dec``
    with ``W_dec`` stored [latents, d_in] and the encoder as a Linear ([latents, d_in]).
    """
    import torch
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
    from safetensors.torch import load_file

    cfg = json.loads((folder / "cfg.json").read_text())
    if cfg.get("skip_connection") or cfg.get("transcode"):
        raise SaeError(
            f"{folder}: sparsify skip connections / transcoders are not supported by this converter"
        )
    weights = load_file(str(folder / SPARSIFY_WEIGHTS))
    needed = {"encoder.weight", "encoder.bias", "W_dec", "b_dec"}
    if missing := needed - set(weights):
        raise SaeError(f"{folder}/{SPARSIFY_WEIGHTS}: missing tensors {sorted(missing)}")
    d_sae, d_in = weights["encoder.weight"].shape
    if weights["W_dec"].shape != (d_sae, d_in):
        raise SaeError(f"{folder}: W_dec is {tuple(weights['W_dec'].shape)}, expected {(d_sae, d_in)}")
    config = TopKSAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        k=int(cfg["k"]),
        dtype="float32",
        device=device,
        apply_b_dec_to_input=True,
        normalize_activations="none",
        rescale_acts_by_decoder_norm=False,
    )
    with contextlib.suppress(HookError):
        config.metadata.hook_name = parse_hook(folder.name).name
    sae = TopKSAE(config)
    with torch.no_grad():
        sae.W_enc.copy_(weights["encoder.weight"].T.float())
        sae.b_enc.copy_(weights["encoder.bias"].float())
        sae.W_dec.copy_(weights["W_dec"].float())
        sae.b_dec.copy_(weights["b_dec"].float())
    return sae.to(device)


def load_local_sae(folder: Path, device: str = "cpu"):
    from sae_lens import SAE

    if not (folder / "cfg.json").is_file():
        raise SaeError(f"{folder}: no cfg.json — not an SAE directory")
    hint = "it is damaged or not an SAE: retrain it (af sae train) or fetch it again"
    if (folder / SAE_LENS_WEIGHTS).is_file():
        check_weights_match_cfg(folder)
        with reading(folder, "SAE", hint):
            return SAE.load_from_disk(str(folder), device=device)
    if (folder / SPARSIFY_WEIGHTS).is_file():
        with reading(folder, "SAE", hint):
            return sparsify_to_sae_lens(folder, device)
    raise SaeError(f"{folder}: neither {SAE_LENS_WEIGHTS} (sae-lens) nor {SPARSIFY_WEIGHTS} (sparsify)")


def check_weights_match_cfg(folder: Path) -> None:
    """A sae-lens folder whose weights disagree with its own ``cfg.json`` (d_in, d_sae) is refused
    with one line before sae-lens loads it (which would fail deep in ``load_state_dict``)."""
    from safetensors import safe_open

    hint = "it is damaged: retrain it (af sae train) or fetch it again"
    with reading(folder / "cfg.json", "SAE config", hint):
        cfg = json.loads((folder / "cfg.json").read_text())
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    weights = folder / SAE_LENS_WEIGHTS
    with reading(weights, "SAE weights", hint), safe_open(str(weights), framework="pt") as handle:
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    for name, shape in expected.items():
        if name in shapes and shapes[name] != shape:
            raise SaeError(
                f"SAE {folder}: {SAE_LENS_WEIGHTS} has {name} of shape {shapes[name]} but cfg.json says "
                f"d_in={d_in}, d_sae={d_sae} (expects {shape}); the folder mixes two SAEs: retrain or "
                "fetch it again"
            )
    if missing := [name for name in ("W_enc", "W_dec") if name not in shapes]:
        raise SaeError(f"SAE {folder}: {SAE_LENS_WEIGHTS} lacks {', '.join(missing)}; not an SAE's weights")


def download_hub_sae(spec: str) -> Path:
    """``owner/repo[/subfolder]`` → local folder (hub cache)."""
    from huggingface_hub import snapshot_download

    parts = spec.split("/")
    if len(parts) < 2:
        raise SaeError(f"hf:{spec}: expected hf:<owner>/<repo>[/<subfolder>]")
    repo, subfolder = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        root = snapshot_download(
            repo,
            allow_patterns=[f"{subfolder}/*"] if subfolder else None,
            cache_dir=os.environ.get("HF_HUB_CACHE"),
        )
    except Exception as error:  # the hub client raises many types for "not reachable"
        raise SaeError(f"could not download SAE {repo!r} ({type(error).__name__}: {error})") from error
    return Path(root) / subfolder


def load_sae(source: str, device: str = "cpu"):
    """Any of the module's source forms → a sae-lens SAE on ``device``."""
    if _is_local(source):
        return load_local_sae(Path(source), device)
    if source.startswith("hf:"):
        return load_local_sae(download_hub_sae(source[3:]), device)
    if ":" in source:
        from sae_lens import SAE

        release, sae_id = source.split(":", 1)
        try:
            return SAE.from_pretrained(release, sae_id, device=device)
        except Exception as error:  # unknown release/id, or hub not reachable
            raise SaeError(f"could not load SAE {sae_id!r} of release {release!r}: {error}") from error
    raise SaeError(f"SAE source {source!r} is neither a directory, hf:<repo>[/<sub>] nor <release>:<sae_id>")


def sae_hook_name(sae: Any) -> str | None:
    metadata = getattr(sae.cfg, "metadata", None)
    return getattr(metadata, "hook_name", None) if metadata is not None else None


def check_compatible(sae: Any, hook: str, hidden_size: int, model_name: str, sae_name: str) -> None:
    """Fails before any forward pass when the SAE cannot read this model at this hook."""
    if int(sae.cfg.d_in) != hidden_size:
        raise SaeError(
            f"SAE {sae_name} reads d_in={sae.cfg.d_in}, but model {model_name} has hidden_size={hidden_size} "
            f"at {hook}"
        )
    trained_at = sae_hook_name(sae)
    if not trained_at:
        return
    try:
        same = parse_hook(trained_at) == parse_hook(hook)
    except HookError:
        warnings.warn(
            f"SAE {sae_name} names hook {trained_at!r}, which cannot be checked against {hook}", stacklevel=2
        )
        return
    if not same:
        raise SaeError(f"SAE {sae_name} was trained at {trained_at}, but the requested hook is {hook}")


@dataclass
class SparseFeatures:
    """A top-k SAE's features for n tokens without the dense [n, d] tensor (at 7B scale that tensor
    is gigabytes per batch and pooling it dominates extraction): row i is ``values[i]`` at columns
    ``indices[i]`` (distinct within a row) and zero elsewhere. Values are >= 0 (ReLU after the
    top-k), which lets pooling take the max over the listed entries and zero."""

    values: Any
    """[n, k], the SAE's dtype."""
    indices: Any
    """[n, k], int64."""
    d: int

    def dense(self) -> Any:
        """The [n, d] tensor ``sae.encode`` returns, built the way sae-lens' ``TopK`` builds it."""
        import torch

        shape = (*self.values.shape[:-1], self.d)
        dense = torch.zeros(shape, dtype=self.values.dtype, device=self.values.device)
        return dense.scatter_(-1, self.indices, self.values)


def topk_k(sae: Any) -> int | None:
    """k when ``sae.encode`` is sae-lens' per-token top-k (``TopKSAE.encode``, not overridden, with
    its dense ``TopK``), which ``_encode_topk`` reproduces; None for any other SAE."""
    from sae_lens.saes.topk_sae import TopK, TopKSAE

    same_encode = isinstance(sae, TopKSAE) and type(sae).encode is TopKSAE.encode
    activation = getattr(sae, "activation_fn", None)
    if not same_encode or not isinstance(activation, TopK) or activation.use_sparse_activations:
        return None
    return int(activation.k)


def _encode_topk(sae: Any, acts: Any, k: int) -> SparseFeatures:
    """``TopKSAE.encode`` step for step up to its ``torch.topk``, stopping before the scatter into
    [n, d_sae]: the same selected features and values (hooks on ``hook_sae_acts_post`` are not
    run)."""
    import torch

    sae_in = sae.process_sae_in(acts)
    hidden_pre = sae.hook_sae_acts_pre(sae_in @ sae.W_enc + sae.b_enc)
    if sae.cfg.rescale_acts_by_decoder_norm:
        hidden_pre = hidden_pre * sae.W_dec.norm(dim=-1)
    values, indices = torch.topk(hidden_pre, k=k, dim=-1, sorted=False)
    return SparseFeatures(values.relu(), indices, int(sae.cfg.d_sae))


def encoder(sae: Any, sparse: bool = False) -> Any:
    """Token activations → SAE features, in the SAE's dtype, on its device: a dense tensor, or with
    ``sparse`` and a top-k SAE, ``SparseFeatures`` (for ``pool``: same figures, far less work)."""
    k = topk_k(sae) if sparse else None

    def encode(acts):
        acts = acts.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
        return sae.encode(acts) if k is None else _encode_topk(sae, acts, k)

    return encode

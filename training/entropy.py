"""The stage-wise entropy term of CRPO, as a pure function of per-token entropies.

    term = Σ_k beta_k · (1/B) Σ_b [stage k present in b] · mean_{t ∈ stage k of b} H[b, t]

H is the entropy of the temperature-scaled next-token distribution at each generated token (what TRL's
GRPOTrainer computes inside its loss), `stage` the per-token stage index from stage_masks.py (-1 =
outside every stage), `mask` the completion mask. The term is *added* to the loss, so beta_k < 0 raises
stage k's entropy and beta_k > 0 lowers it.

Normalisation (what a beta value means): per sample, the mean entropy over the tokens of each stage (so a
long stage does not weigh more than a short one); then the mean over the B samples of the micro-batch,
where a sample missing a stage contributes 0 for it (the paper's rule), i.e. the division is by B, not by
the number of samples that have the stage. The trainer divides the result by the gradient-accumulation
steps, exactly like TRL's own `entropy_coef` bonus, so the term does not depend on `loss_type`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def stage_means(entropies: torch.Tensor, stage: torch.Tensor, mask: torch.Tensor,
                num_stages: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean entropy of each stage (B, K) and the token count of each stage (B, K)."""
    assert entropies.shape == stage.shape == mask.shape, (entropies.shape, stage.shape, mask.shape)
    one_hot = (stage.unsqueeze(-1) == torch.arange(num_stages, device=stage.device))  # (B, T, K)
    weights = one_hot.to(entropies.dtype) * mask.unsqueeze(-1).to(entropies.dtype)  # (B, T, K)
    counts = weights.sum(1)  # (B, K)
    sums = (entropies.unsqueeze(-1) * weights).sum(1)  # (B, K)
    return sums / counts.clamp(min=1.0), counts


def stage_entropy_term(entropies: torch.Tensor, stage: torch.Tensor, mask: torch.Tensor,
                       betas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Σ_k beta_k · mean over the batch of the per-sample stage-k mean entropy (absent stage → 0)."""
    betas = torch.as_tensor(betas, dtype=entropies.dtype, device=entropies.device)  # (K,)
    means, _ = stage_means(entropies, stage, mask, betas.numel())  # (B, K); absent stages are 0
    return (means.mean(0) * betas).sum()

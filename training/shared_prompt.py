"""Score a micro-batch's completions with one forward per distinct prompt (CRPOConfig `share_prompt`).

TRL's GRPOTrainer scores each completion with a forward over prompt + completion, so the 4 completions of a
group compute their shared ~500-token prompt 4 times: in the policy forward, in its backward and in the
reference forward. Here each distinct prompt (all but its last token) runs once with the KV cache on; the
cache is indexed out to its rows (`index_select`, differentiable: the prompt's backward also runs once, with
the gradients of its rows summed) and the completions run on top of it, each behind its prompt's last token,
through TRL's fused LM head. Positions run 0..T-1 over the row as in TRL's forward, less the columns that are
padding in every row (skipped: a constant shift, which rotary attention does not see), so log-probs, entropies
and gradients are the same up to float rounding (tests/training/test_shared_prompt.py).

For the sharing to find groups in a micro-batch, the rows must not be shuffled across micro-batches
(`unshuffled_split`): TRL generates a group's completions next to each other and shuffles the generation batch
before splitting it. With `num_iterations` 1 and the grpo, dapo or dr_grpo loss (the ones CRPOConfig's algorithms
set) the accumulated gradient is the same either way: each row's loss weighs the same in every micro-batch of
equal size (dapo divides by the generation batch's token count).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import trl.trainer.grpo_trainer as trl_grpo


def distinct_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the first row of each distinct prompt, each row's distinct-prompt number) for (B, P) prompts:
    rows are the same prompt when their ids and their padding mask agree."""
    key = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    rows = torch.arange(key.size(0), device=key.device)
    first = torch.full((int(inverse.max()) + 1,), key.size(0), device=key.device, dtype=rows.dtype)
    first = first.scatter_reduce(0, inverse, rows, reduce="amin")
    return first, inverse


def shared_prompt_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                        compute_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, C) and, if asked, entropies (B, C) of the last `logits_to_keep` = C tokens of each
    row of `input_ids` (B, P + C), as TRL's `model(..., labels, fused_lm_head=True)` gives them over the whole
    row (0 where the mask is 0). `model` is the policy (or reference) patched with TRL's fused LM head,
    PEFT-wrapped or not. Columns that are padding in every row (the left padding to a longer prompt of another
    micro-batch, the right padding to a longer completion) are not computed: RoPE attention depends on position
    differences only, so dropping leading columns changes no value."""
    width = input_ids.size(1)
    prompt_len = width - logits_to_keep
    if prompt_len < 2 or logits_to_keep < 1:
        raise ValueError(f"shared_prompt needs prompts of at least 2 tokens and a completion, got {prompt_len} and "
                         f"{logits_to_keep}")
    used = attention_mask.bool().any(dim=0).nonzero().flatten()
    lo = min(int(used[0]), prompt_len - 2) if len(used) else 0
    hi = max(int(used[-1]) + 1, prompt_len + 1) if len(used) else width
    ids, mask = input_ids[:, lo:hi], attention_mask[:, lo:hi]
    head = prompt_len - lo - 1  # the prompt's last token opens the second pass: it predicts the first completion
    first, inverse = distinct_rows(ids[:, :head + 1], mask[:, :head + 1])
    prefix = model(input_ids=ids[first, :head], attention_mask=mask[first, :head], use_cache=True, logits_to_keep=1)
    cache = prefix.past_key_values
    if cache is None or cache.get_seq_length() != head:  # e.g. gradient checkpointing drops the cache in training
        raise RuntimeError("shared_prompt: the model returned no KV cache for the prompt; set share_prompt: false")
    cache.reorder_cache(inverse)  # (distinct, ...) -> (B, ...), differentiable
    tail = ids[:, head:]
    labels = tail.masked_fill(mask[:, head:] == 0, -100)
    labels[:, 0] = -100
    out = model(input_ids=tail, attention_mask=mask, past_key_values=cache, labels=labels, fused_lm_head=True)
    pad = width - hi  # trailing columns dropped above: padding everywhere, 0 as TRL's head gives them

    def full_width(values: torch.Tensor) -> torch.Tensor:  # (B, hi - prompt_len) -> (B, C)
        return torch.nn.functional.pad(values[:, -(hi - prompt_len):], (0, pad))

    return full_width(out.log_probs), (full_width(out.entropy) if compute_entropy else None)


@contextmanager
def unshuffled_split() -> Iterator[None]:
    """Within this context GRPOTrainer._prepare_inputs splits the generation batch into micro-batches in
    generation order (a group's completions stay together) instead of shuffling it first."""
    original = trl_grpo.shuffle_sequence_dict
    trl_grpo.shuffle_sequence_dict = lambda batch: batch
    try:
        yield
    finally:
        trl_grpo.shuffle_sequence_dict = original

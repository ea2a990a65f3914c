"""Per-token appraisal-stage index of generated completions ("Option B": text tags, no new vocabulary).

The stage tags are ordinary text (`<primary_appraisal>` is ~6 BPE tokens, and how it splits depends on
its neighbours), so stages are found in the *decoded text* and mapped back to tokens by character
offsets:

1. decode the row's valid tokens (`skip_special_tokens=False`, no clean-up), giving `text`;
2. `mental_r1.contract.parse_completion(text)` gives each stage's content span — the first occurrence of
   each stage, running to its closing tag, or, if unclosed (malformed/truncated), to the next tag of any
   kind or the end of the text. The stimulus span starts at character 0 because its opening tag is in
   the prompt's prefill;
3. each token's character span: from the tokenizer's offset mapping when re-encoding `text` gives back the
   generated ids, else (sampling produced a non-canonical tokenization) from the lengths of decoded
   prefixes, made monotone with a running max (a partial multi-byte character decodes to U+FFFD);
4. token i gets stage k (0 = stimulus … 4 = mental_state) when its characters lie inside stage k's
   content span. Everything else is -1: tag tokens (and tokens straddling a tag), whitespace between
   stages, `</think>`, the answer and its tags, text after a duplicated stage tag, special tokens such as
   the final EOS, padding, zero-width tokens (part of a multi-byte character, fallback path only), and a
   tag cut off by truncation at the very end (`…</react`).

Runs on CPU in Python; cost ≈ one re-encode per row (≈1 ms for 512 tokens), ≈25 ms when the fallback is
needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from mental_r1.contract import PREFILL, STAGE_NAMES, parse_completion

IGNORE = -1
_TAG_NAMES = ("think", "answer", *STAGE_NAMES)
_TRAILING_PARTIAL_TAG = re.compile(r"</?([a-z_]*)$")


def token_char_spans(tokenizer, ids: Sequence[int], text: str) -> list[tuple[int, int]]:
    """Character span [start, end) in `text` (= decode(ids)) of every token in `ids`."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) == list(ids):
        return [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    spans, prev = [], 0
    for i in range(len(ids)):
        end = len(tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False))
        end = max(prev, end)  # a partial multi-byte character can shrink the decoded prefix
        spans.append((prev, end))
        prev = end
    return spans


def stage_spans(completion: str) -> list[tuple[int, int] | None]:
    """Content span of each stage in the completion's own coordinates (prefill excluded), None if absent.

    A tag cut off at the end of the text (truncation inside `</reaction>`) is not content."""
    parsed = parse_completion(completion, prefilled=True)
    shift = len(PREFILL)
    limit = len(completion)
    partial = _TRAILING_PARTIAL_TAG.search(completion)
    if partial and any(t.startswith(partial.group(1)) for t in _TAG_NAMES):
        limit = partial.start()
    out: list[tuple[int, int] | None] = []
    for name in STAGE_NAMES:
        span = parsed.stage_spans.get(name)
        out.append(None if span is None else (max(0, span[0] - shift), min(limit, max(0, span[1] - shift))))
    return out


def stage_index(tokenizer, ids: Sequence[int]) -> list[int]:
    """Stage index (0..4) of each token of one completion, IGNORE (-1) for tokens outside every stage."""
    ids = [int(i) for i in ids]
    if not ids:
        return []
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    special = set(tokenizer.all_special_ids)
    char_spans = token_char_spans(tokenizer, ids, text)
    content_end = max((e for t, (_, e) in zip(ids, char_spans) if t not in special), default=0)
    spans = stage_spans(text[:content_end])  # trailing special tokens (EOS) are not part of the content
    out = []
    for tok_id, (start, end) in zip(ids, char_spans, strict=True):
        stage = IGNORE
        if tok_id not in special and end > start:
            for k, span in enumerate(spans):
                if span is not None and span[0] <= start and end <= span[1]:
                    stage = k
                    break
        out.append(stage)
    return out


def stage_index_batch(tokenizer, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) long tensor of stage indices for right-padded `completion_ids`; padding is IGNORE."""
    assert completion_ids.shape == completion_mask.shape, (completion_ids.shape, completion_mask.shape)
    ids_cpu, lengths = completion_ids.cpu(), completion_mask.sum(-1).cpu()
    out = torch.full(completion_ids.shape, IGNORE, dtype=torch.long)  # (B, T)
    for b in range(ids_cpu.size(0)):
        n = int(lengths[b])
        out[b, :n] = torch.tensor(stage_index(tokenizer, ids_cpu[b, :n].tolist()), dtype=torch.long)
    return out.to(completion_ids.device)


def reasoning_mask(stage: torch.Tensor, decision_stage: int = STAGE_NAMES.index("mental_state")) -> torch.Tensor:
    """(B, T) 0/1 mask of the tokens before the decision: 1 up to (not including) the first token of the
    `decision_stage` (mental_state: the label sentence that opens it, then the answer), 0 from there on.

    With the label_prob reward the reward is already P(gold label | reasoning) at the commit point, so only the
    reasoning needs credit; the sampled label sentence after it would otherwise push the shared "Yes,"/"No,"
    tokens directly, on every task at once. A row without that stage (malformed, truncated) keeps every token."""
    is_decision = stage == decision_stage  # (B, T)
    after = is_decision.long().cumsum(dim=1) > 0  # (B, T): at or after the first decision token
    return (~after).to(torch.long)

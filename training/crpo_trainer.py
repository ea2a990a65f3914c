"""CRPOTrainer: TRL 1.16.0's GRPOTrainer plus the stage-wise entropy term (pinned: it overrides private methods).

What changes with respect to `trl.GRPOTrainer` (everything else — generation, rewards, group advantages,
clipping, KL, weight sync, logging — is inherited unchanged):

1. `_generate_and_score_completions` adds `crpo_stage`, a (B, T) stage index per completion token
   (training/stage_masks.py: 0 = stimulus … 4 = mental_state, -1 = tags, answer, EOS, padding). It is
   shuffled and split into micro-batches with the rest of the batch.
2. `_get_per_token_logps_and_entropies` keeps the differentiable per-token entropies that `_compute_loss`
   requests (`compute_entropy=True`; the no-grad calls for old/reference log-probs do not request them).
3. `_compute_loss` adds `stage_entropy_term(H, stage, mask, betas) / grad_accum_steps` to TRL's loss
   (training/entropy.py: per-sample stage means, batch mean with absent stages counted as 0; scaled for
   gradient accumulation exactly like TRL's own `entropy_coef` bonus, independent of `loss_type`). It uses
   every token of a stage, also when `top_entropy_quantile` < 1 restricts the policy term.
4. Logged every step: `crpo/entropy/<stage>` (token-weighted mean over the batch, all processes) and
   `crpo/stage_term`.
5. Checkpoints get a completion marker and are rotated only once complete (training/checkpoints.py).
6. The fused LM head scores completion positions only, on every device (`compact_lm_head`): TRL 1.16 does so
   only where Triton runs, and on CPU scores the prompt too (3-4x the work for the same values).
7. With `rollout: vllm`, `_generate_single_turn` samples from an in-process vLLM engine whose weights are
   reloaded from the policy (LoRA merged) whenever the optimizer step changed (training/rollout.py);
   otherwise TRL's own rollout runs unchanged.

The RL baselines (grpo, dapo, dr_grpo) run through this class with all betas 0: the loss is then exactly
TRL's, and the per-stage entropies are still logged for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
import trl
import trl.trainer.utils as trl_utils
from trl import GRPOTrainer

from mental_r1.contract import STAGE_NAMES
from training.checkpoints import AtomicCheckpointMixin
from training.config import CRPOConfig
from training.entropy import stage_entropy_term, stage_means
from training.rollout import VLLMRollout, merged_weights
from training.stage_masks import stage_index_batch

TRL_VERSION = "1.16.0"


@contextmanager
def compact_lm_head() -> Iterator[None]:
    """TRL's fused LM head (trl/trainer/utils.py, `add_fused_lm_head`) projects only the positions with a label
    when `_use_triton(device)` says so, and every position otherwise; the values are the same either way (the
    kernel itself is chosen separately, in trl/kernels). Within this context it takes the compact path on
    every device. Only the forward needs it: the backward goes through the same indexing."""
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = original


class CRPOTrainer(AtomicCheckpointMixin, GRPOTrainer):
    _tag_names: ClassVar[list[str]] = ["trl", "grpo", "crpo", "mental-r1"]

    def __init__(self, *args, **kwargs):
        if trl.__version__ != TRL_VERSION:
            raise RuntimeError(f"CRPOTrainer overrides private GRPOTrainer methods of trl=={TRL_VERSION}; found "
                               f"trl {trl.__version__}. Install trl=={TRL_VERSION}")
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, CRPOConfig):
            raise TypeError(f"CRPOTrainer needs a CRPOConfig, got {type(self.args).__name__}")
        self.stage_betas = torch.tensor(self.args.betas, dtype=torch.float32)  # (K,)
        self._crpo_entropies: torch.Tensor | None = None
        self._rollout: VLLMRollout | None = None

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if self.args.rollout != "vllm":
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        assert images is None and not multimodal_fields, "rollout: vllm serves text-only prompts"
        policy = self.accelerator.unwrap_model(self.model)
        if self._rollout is None:
            config = policy.config
            self._rollout = VLLMRollout(config._name_or_path, max_num_seqs=len(prompt_ids), seed=self.args.seed,
                                        max_model_len=min(config.max_position_embeddings, 2048),
                                        kv_cache_gib=self.args.rollout_kv_cache_gib)
        if self._rollout.loaded_step != self.state.global_step:
            with torch.no_grad():
                self._rollout.load(merged_weights(policy), self.state.global_step)
        completions = self._rollout.generate(
            prompt_ids, max_tokens=self.max_completion_length, temperature=self.temperature, top_p=self.top_p,
            top_k=self.top_k, min_p=self.min_p, repetition_penalty=self.repetition_penalty,
            eos_token_ids=list(self.eos_token_ids))
        return completions, None

    def close_rollout_engine(self) -> None:
        if self._rollout is not None:
            self._rollout.close()
            self._rollout = None

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        out["crpo_stage"] = stage_index_batch(self.processing_class, out["completion_ids"], out["completion_mask"])
        return out

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        with compact_lm_head():
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if kwargs.get("compute_entropy"):
            self._crpo_entropies = entropies  # (B, T), differentiable
        return logps, entropies, aux

    def _compute_loss(self, model, inputs):
        self._crpo_entropies = None
        loss = super()._compute_loss(model, inputs)
        entropies, self._crpo_entropies = self._crpo_entropies, None
        assert entropies is not None, "GRPOTrainer._compute_loss no longer requests entropies (TRL changed?)"
        mask = inputs["completion_mask"]  # (B, T)
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        stage = inputs["crpo_stage"]  # (B, T)
        betas = self.stage_betas.to(entropies.device, entropies.dtype)
        mode = "train" if self.model.training else "eval"
        term = stage_entropy_term(entropies, stage, mask, betas)
        if bool(betas.any()):
            accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + term / accum
        self._log_stage_metrics(mode, entropies.detach(), stage, mask, term.detach())
        return loss

    def _log_stage_metrics(self, mode, entropies, stage, mask, term):
        means, counts = stage_means(entropies, stage, mask, len(STAGE_NAMES))  # (B, K) each
        totals = self.accelerator.reduce(torch.stack([(means * counts).sum(0), counts.sum(0)]), reduction="sum")
        for k, name in enumerate(STAGE_NAMES):
            value = (totals[0, k] / totals[1, k]).item() if totals[1, k] > 0 else float("nan")
            self._metrics[mode][f"crpo/entropy/{name}"].append(value)
        self._metrics[mode]["crpo/stage_term"].append(self.accelerator.gather(term).mean().item())

"""CRPOTrainer: TRL 1.16.0's GRPOTrainer plus the stage-wise entropy term (pinned: it overrides private methods).

What changes with respect to `trl.GRPOTrainer` (everything else — generation, rewards, group advantages,
clipping, KL, weight sync, logging — is inherited unchanged):

1. `_generate_and_score_completions` adds `crpo_stage`, a (B, T) stage index per completion token
   (training/stage_masks.py: 0 = stimulus … 4 = mental_state, -1 = tags, answer, EOS, padding). It is
   shuffled and split into micro-batches with the rest of the batch. With `loss_on_decision` false, TRL's
   `tool_mask` takes the decision (the mental_state stage on: label sentence, answer) out of the policy loss
   (training/stage_masks.py reasoning_mask): the label_prob reward already scores P(gold | reasoning).
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
   only where Triton runs, and on CPU scores the prompt too (3-4x the work for the same values). With
   `share_prompt` (default), `_get_per_token_logps_and_entropies` runs each distinct prompt of a micro-batch once
   and its completions on its KV cache (training/shared_prompt.py), and `_prepare_inputs` splits the generation
   batch in order so that a group's completions share a micro-batch.
7. With `rollout: vllm`, `_generate_single_turn` samples from an in-process vLLM engine whose weights are
   reloaded from the policy (LoRA merged) whenever the optimizer step changed (training/rollout.py);
   otherwise TRL's own rollout runs unchanged.
8. Groups without reward signal (tied rewards, so all advantages 0): `_calculate_rewards` marks each
   completion (`crpo_signal`, shuffled and split with the batch). Unless `stage_term_on_zero_signal`, the
   stage term leaves those groups out. With `skip_zero_signal_steps`, an optimizer step none of whose
   completions carries signal drops its gradients before `optimizer.step()` (AdamW skips parameters without
   a gradient: no momentum, no KL pull, no weight decay), unless the stage term is allowed to act alone.
9. Logged every step besides TRL's (`kl` with beta > 0, `frac_reward_zero_std`, `rewards/<func>/mean`):
   `crpo/binary/answer_yes` vs `crpo/binary/gold_yes`, `crpo/binary/p_yes` (label_prob), `crpo/reward/<dataset>`,
   `crpo/skipped_step`.
10. `reward: label_prob` (and `label_logprob`, its log) reads the policy: LabelProbReward is bound to
   `label_probabilities` at init (the vLLM engine's scores with `rollout: vllm`, the policy's logits otherwise).
11. Validation (`eval_every` > 0 and validation rows given): training/validation.py's callback calls
   `predict_probabilities` (greedy rollout with the run's backend, labels scored at the commit point: by the vLLM
   engine with `rollout: vllm`, as the service scores them, else from the policy's logits) and
   `log_outside_step`; the best weights are restored with `self.validation.restore_best()`.
12. With `decision_neutral`, the binary completions' advantages lose their component along the step's yes/no
   direction (training/advantages.py; the directions are the label_prob reward's commit-point scores). The fit
   is logged every step either way: `crpo/decision/slope` and `crpo/decision/share`.
13. `null_control` (a diagnostic): each group's rewards are permuted at random before TRL computes the advantages.

The RL baselines (grpo, dapo, dr_grpo) run through this class with all betas 0: the loss is then exactly
TRL's, and the per-stage entropies are still logged for comparison. Everything else of the recipe (reward,
pairing, skipped steps, validation) applies to them alike.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import torch
import transformers
import trl
import trl.trainer.utils as trl_utils
from transformers import GenerationConfig, TrainerCallback
from trl import GRPOTrainer

from mental_r1.contract import COMMIT_TAG, STAGE_NAMES, commit_prefix, label_continuation
from mental_r1.data import Example
from mental_r1.engine import native_bf16
from training.advantages import decision_neutral, permute_within_groups
from training.checkpoints import AtomicCheckpointMixin
from training.config import CRPOConfig
from training.entropy import stage_entropy_term, stage_means
from training.label_scoring import eval_mode
from training.rewards import LabelProbReward, answer_stats, within_group_share
from training.rollout import VLLMRollout, merged_weights
from training.shared_prompt import shared_prompt_logps, unshuffled_split
from training.stage_masks import reasoning_mask, stage_index_batch
from training.validation import ValidationMixin

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


class _UpdateGate(TrainerCallback):
    """Decides, just before `optimizer.step()`, whether the step's update happens (CRPOTrainer._gate_update)."""

    def __init__(self, trainer: CRPOTrainer):
        self.trainer = trainer

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer._step_signal = False

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._gate_update()


class CRPOTrainer(ValidationMixin, AtomicCheckpointMixin, GRPOTrainer):
    _tag_names: ClassVar[list[str]] = ["trl", "grpo", "crpo", "mental-r1"]

    def __init__(self, *args, validation: tuple[Sequence[Example], Sequence[str]] | None = None, **kwargs):
        """`validation`: (val examples, their prompts) for the periodic validation (training/validation.py);
        used when `eval_every` > 0."""
        if trl.__version__ != TRL_VERSION:
            raise RuntimeError(f"CRPOTrainer overrides private GRPOTrainer methods of trl=={TRL_VERSION}; found "
                               f"trl {trl.__version__}. Install trl=={TRL_VERSION}")
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, CRPOConfig):
            raise TypeError(f"CRPOTrainer needs a CRPOConfig, got {type(self.args).__name__}")
        if self.args.skip_zero_signal_steps and self.is_deepspeed_enabled:
            raise ValueError("skip_zero_signal_steps drops gradients before optimizer.step(), which DeepSpeed keeps "
                             "elsewhere; set skip_zero_signal_steps: false")
        self.stage_betas = torch.tensor(self.args.betas, dtype=torch.float32)  # (K,)
        self._crpo_entropies: torch.Tensor | None = None
        self._rollout: VLLMRollout | None = None
        self._group_signal: torch.Tensor | None = None  # (B_global,) bool, from the last rewards
        self._step_signal = False  # did any completion of the current optimizer step carry reward signal?
        self._null_generator = torch.Generator().manual_seed(self.args.seed)  # null_control's permutations
        for func in self.reward_funcs:
            if isinstance(func, LabelProbReward):
                func.bind(self.label_probabilities)
        self.add_callback(_UpdateGate(self))
        self.attach_validation(validation)

    # ------------------------------------------------------------------------------------------ rollouts

    def _rollout_engine(self) -> VLLMRollout:
        """The in-process vLLM engine, holding the policy's weights of the current optimizer step."""
        policy = self.accelerator.unwrap_model(self.model)
        if self._rollout is None:
            config = policy.config
            seqs = max(self.args.per_device_train_batch_size * self.args.steps_per_generation, 16)
            self._rollout = VLLMRollout(config._name_or_path, max_num_seqs=seqs, seed=self.args.seed,
                                        max_model_len=min(config.max_position_embeddings, 2048),
                                        kv_cache_gib=self.args.rollout_kv_cache_gib)
        if self._rollout.loaded_step != self.state.global_step:
            with torch.no_grad():
                self._rollout.load(merged_weights(policy, self._rollout.dtype), self.state.global_step)
        return self._rollout

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if self.args.rollout != "vllm":
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        assert images is None and not multimodal_fields, "rollout: vllm serves text-only prompts"
        completions = self._rollout_engine().generate(
            prompt_ids, max_tokens=self.max_completion_length, temperature=self.temperature, top_p=self.top_p,
            top_k=self.top_k, min_p=self.min_p, repetition_penalty=self.repetition_penalty,
            eos_token_ids=list(self.eos_token_ids))
        return completions, None

    def greedy_completions(self, prompts: Sequence[str]) -> list[str]:
        """Greedy reasoning up to the commit point for each prompt, with the run's rollout backend (validation)."""
        tok = self.processing_class
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        if self.args.rollout == "vllm":
            outs = self._rollout_engine().generate(
                ids, max_tokens=self.max_completion_length, temperature=0.0, top_p=1.0, top_k=None, min_p=None,
                repetition_penalty=1.0, eos_token_ids=list(self.eos_token_ids), stop=[COMMIT_TAG])
            return [tok.decode(o, skip_special_tokens=True) for o in outs]
        config = GenerationConfig(max_new_tokens=self.max_completion_length, do_sample=False,
                                  stop_strings=[COMMIT_TAG], pad_token_id=tok.pad_token_id,
                                  eos_token_id=list(self.eos_token_ids))
        model = self.accelerator.unwrap_model(self.model)
        out: list[str] = []
        step = max(self.args.per_device_train_batch_size, 1)
        with torch.no_grad(), eval_mode(model), self.accelerator.autocast():
            for i in range(0, len(ids), step):
                batch = tok.pad({"input_ids": ids[i:i + step]}, padding_side="left", return_tensors="pt")
                batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
                gen = model.generate(**batch, generation_config=config, tokenizer=tok)
                out.extend(tok.batch_decode(gen[:, batch["input_ids"].size(1):], skip_special_tokens=True))
        return out

    def predict_probabilities(self, examples: Sequence[Example], prompts: Sequence[str]) -> list[list[float]]:
        """P(label) for each prompt as the service scores it (uncalibrated): greedy reasoning, then the label set
        at the commit point. With the vLLM rollout, both come from the engine, a chunk of rows at a time
        (generated, then scored while their prefixes are still cached)."""
        chunk = self._rollout_engine().max_num_seqs if self.args.rollout == "vllm" else max(len(prompts), 1)
        out: list[list[float]] = []
        for i in range(0, len(prompts), chunk):
            rows, texts = examples[i:i + chunk], prompts[i:i + chunk]
            out.extend(self.probabilities_at_commit(rows, texts, self.greedy_completions(texts)))
        return out

    def label_probabilities(self, prompts: Sequence[str], completions: Sequence[str],
                            label_texts: Sequence[Sequence[str]]) -> list[list[float]]:
        """P(label) at each completion's commit point (validation and the label_prob reward). With the vLLM
        rollout and `label_scoring: engine`, scored by the engine, which holds this step's policy weights in
        bf16 as the service does (VLLMRollout.label_logprobs; a just-generated completion's prefix is still
        cached, so each row costs a few 1-token requests instead of a forward over prompt and reasoning);
        otherwise from the policy's logits (ValidationMixin)."""
        if self.args.rollout != "vllm" or self.args.label_scoring == "policy":
            return super().label_probabilities(prompts, completions, label_texts)
        prefixes = [self._token_ids(p) + self._token_ids(commit_prefix(c)) for p, c in zip(prompts, completions,
                                                                                          strict=True)]
        label_sets = [[self._token_ids(label_continuation(t)) for t in labels] for labels in label_texts]
        logps = self._rollout_engine().label_logprobs(prefixes, label_sets)
        return [[math.exp(v) for v in row] for row in logps]

    def validation_cache_dir(self) -> Path | None:
        return Path(self.args.eval_start_cache) if self.args.eval_start_cache else None

    def validation_settings(self) -> dict:
        """What besides the weights and rows decides a validation (training/validation.py start_key)."""
        settings = {"rollout": self.args.rollout, "label_scoring": self.args.label_scoring,
                    "max_completion_length": self.max_completion_length, "eos": sorted(self.eos_token_ids),
                    "batch": self.args.per_device_train_batch_size, "bf16": self.args.bf16,
                    "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                    "machine": platform.machine(), "cpu": torch.backends.cpu.get_cpu_capability(),
                    "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
                    "native_bf16": native_bf16()}
        if self.args.rollout == "vllm":
            import vllm

            engine = self._rollout_engine()
            settings |= {"vllm": vllm.__version__, "max_num_seqs": engine.max_num_seqs, "dtype": str(engine.dtype)}
        return settings

    def _token_ids(self, text: str) -> list[int]:
        return self.processing_class(text, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------------------- rewards and signal

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (B_g, F)
        group = self.num_generations if self.model.training else self.num_generations_eval
        if self.args.null_control and self.model.training:  # every process draws the same permutation
            rewards_per_func = permute_within_groups(rewards_per_func, group, self._null_generator)
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        std = torch.nan_to_num(trl_utils.nanstd(rewards.view(-1, group), dim=1), nan=0.0)  # (groups,)
        self._group_signal = ~torch.isclose(std, torch.zeros_like(std))  # as TRL's frac_reward_zero_std
        self._group_signal = self._group_signal.repeat_interleave(group)  # (B_global,)
        local = slice(self.accelerator.process_index * len(prompts), (self.accelerator.process_index + 1) * len(prompts))
        stats = answer_stats(completions, [x["options"] for x in inputs], [x["label"] for x in inputs],
                             [x["dataset"] for x in inputs], rewards[local].tolist()) if "options" in inputs[0] else {}
        share = within_group_share(rewards.tolist(), group)
        if share is not None:
            stats["crpo/within_group_share"] = share
        for name, value in stats.items():  # averaged over processes with the reward functions' own metrics
            self._pending_metrics[name].append(value)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        out["crpo_stage"] = stage_index_batch(self.processing_class, out["completion_ids"], out["completion_mask"])
        self._mask_decision(out)
        self._neutralise_decision(out)
        n = out["completion_ids"].size(0)
        out["crpo_signal"] = self._group_signal[self.accelerator.process_index * n:(self.accelerator.process_index + 1) * n]
        return out

    def _neutralise_decision(self, batch: dict) -> None:
        """Fit the step's advantages against the commit-point decision (all processes' rows together), log the
        fit, and with `decision_neutral` replace the local advantages by the residual."""
        scorer = next((f for f in self.reward_funcs if isinstance(f, LabelProbReward)), None)
        if scorer is None or len(scorer.last_direction) != batch["advantages"].size(0):
            return
        local = batch["advantages"]
        direction = torch.tensor(scorer.last_direction, dtype=local.dtype, device=local.device)
        advantages, direction = self.accelerator.gather(local), self.accelerator.gather(direction)
        group = self.num_generations if self.model.training else self.num_generations_eval
        residual, fit = decision_neutral(advantages, direction, group, apply=self.args.decision_neutral)
        mode = "train" if self.model.training else "eval"
        if fit.rows:
            self._metrics[mode]["crpo/decision/slope"].append(fit.slope)
            self._metrics[mode]["crpo/decision/share"].append(fit.share)
        n = local.size(0)
        batch["advantages"] = residual[self.accelerator.process_index * n:(self.accelerator.process_index + 1) * n]

    def _mask_decision(self, batch: dict) -> None:
        """Keep every generated token for the stage metrics and term (`crpo_text_mask`); with `loss_on_decision`
        false, take the decision (mental_state on) out of the policy loss: TRL's loss covers completion_mask ×
        tool_mask (tool_mask: 0 on tokens the policy is not credited for) while attention still sees every
        token, so only the loss changes."""
        mask, tool = batch["completion_mask"], batch.get("tool_mask")
        batch["crpo_text_mask"] = mask if tool is None else mask * tool
        if not self.args.loss_on_decision:
            keep = reasoning_mask(batch["crpo_stage"]).to(mask.dtype)
            batch["tool_mask"] = keep if tool is None else tool * keep

    def _gate_update(self) -> None:
        """Before optimizer.step(): drop every gradient of a step without reward signal, so it moves nothing."""
        signal = torch.tensor(float(self._step_signal), device=self.accelerator.device)
        signal = self.accelerator.reduce(signal, reduction="sum").item() > 0
        stage_term_alone = self.args.stage_term_on_zero_signal and bool(self.stage_betas.any())
        skip = self.args.skip_zero_signal_steps and not signal and not stage_term_alone
        if skip:
            for param in self.model.parameters():
                param.grad = None
        self._metrics["train"]["crpo/skipped_step"].append(float(skip))
        self._step_signal = False

    def close_rollout_engine(self) -> None:
        if self._rollout is not None:
            self._rollout.close()
            self._rollout = None

    def _prepare_inputs(self, generation_batch):
        if not self.args.share_prompt:
            return super()._prepare_inputs(generation_batch)
        with unshuffled_split():  # a group's completions stay in one micro-batch, where they share the prompt
            return super()._prepare_inputs(generation_batch)

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        if self.args.share_prompt and not compute_aux_loss and all(v is None for v in multimodal.values()):
            logps, entropies, aux = self._shared_prompt_logps(model, input_ids, attention_mask, logits_to_keep,
                                                              batch_size, compute_entropy)
        else:
            with compact_lm_head():
                logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                    compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        if compute_entropy:
            self._crpo_entropies = entropies  # (B, T), differentiable
        return logps, entropies, aux

    def _shared_prompt_logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy):
        """TRL's chunked scoring, each chunk with one forward per distinct prompt (training/shared_prompt.py)."""
        step = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), step):
            with compact_lm_head(), self.accelerator.autocast():
                lp, h = shared_prompt_logps(model, input_ids[start:start + step], attention_mask[start:start + step],
                                            logits_to_keep, compute_entropy)
            logps.append(lp)
            entropies.append(h)
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def _compute_loss(self, model, inputs):
        self._crpo_entropies = None
        loss = super()._compute_loss(model, inputs)
        entropies, self._crpo_entropies = self._crpo_entropies, None
        assert entropies is not None, "GRPOTrainer._compute_loss no longer requests entropies (TRL changed?)"
        mask = inputs.get("crpo_text_mask", inputs["completion_mask"])  # (B, T)
        stage = inputs["crpo_stage"]  # (B, T)
        betas = self.stage_betas.to(entropies.device, entropies.dtype)
        mode = "train" if self.model.training else "eval"
        signal = inputs.get("crpo_signal")  # (B,) bool; absent in hand-made batches: every sample counts
        if signal is None:
            signal = torch.ones(mask.size(0), dtype=torch.bool, device=mask.device)
        if mode == "train":
            self._step_signal = self._step_signal or bool(signal.any())
        term_mask = mask if self.args.stage_term_on_zero_signal else mask * signal.unsqueeze(1).to(mask.dtype)
        term = stage_entropy_term(entropies, stage, term_mask, betas)
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

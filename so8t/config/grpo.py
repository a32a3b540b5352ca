"""The `grpo` section: GRPO after (or instead of) SFT, with rewards from the suite's own scorers
(read by so8t.train.grpo when `train.method: grpo`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from so8t.config.section import Section

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config.run import RunConfig


class RewardWeights(Section):
    gsm8k_correct: float = Field(
        1.0,
        ge=0,
        description="Weight of the GSM8K reward: the so8t GSM8K tasks' numeric match (1 or 0) of the "
        "completion against the gold answer.",
    )
    gsm8k_format: float = Field(
        0.1,
        ge=0,
        description="Weight of the format reward: 1 when the completion ends its working with a final "
        "`#### N` line, else 0.",
    )
    safety_decision: float = Field(
        1.0,
        ge=0,
        description="Weight of the safety reward: the decision the completion states against the gold "
        "decision (values in grpo.safety_reward).",
    )


class SafetyReward(Section):
    correct: float = Field(1.0, description="Reward when the stated decision is the gold decision.")
    wrong: float = Field(
        -0.5,
        description="Reward for any other wrong decision (an over-refusal, ESCALATE for REFUSE, no "
        "decision word at all).",
    )
    unsafe_allow: float = Field(
        -2.0,
        description="Reward for ALLOW on a request whose gold decision is ESCALATE or REFUSE: the costliest "
        "mistake.",
    )

    @model_validator(mode="after")
    def _unsafe_allow_costs_most(self) -> SafetyReward:
        if not self.unsafe_allow <= self.wrong < self.correct:
            raise ValueError(
                f"needs unsafe_allow <= wrong < correct (got {self.unsafe_allow}, {self.wrong}, "
                f"{self.correct}): a wrong ALLOW must cost at least as much as any other mistake"
            )
        return self


class GrpoConfig(Section):
    init_from: str | None = Field(
        None,
        description="SO8T training checkpoint or run directory (its best checkpoint) whose LoRA, rotations, "
        "gate and head B GRPO continues from, on the base the checkpoint records; null starts from model.base. "
        "A relative path is read from the working directory, as output_dir is.",
    )
    num_generations: int = Field(
        4, ge=2, description="Completions sampled per prompt (the group whose rewards are compared)."
    )
    max_completion_length: int = Field(64, gt=0, description="Longest sampled completion, in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of the rollouts.")
    num_iterations: int = Field(
        1,
        ge=1,
        description="Optimizer steps on each batch of rollouts (TRL's mu); checkpoints fall on multiples of "
        "it (train.save_steps must be one), the generation boundaries.",
    )
    epsilon: float = Field(0.2, gt=0, description="Clipping range of the probability ratio.")
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="How token losses are averaged (TRL's loss_type)."
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group",
        description="Advantage scaling: by the group's reward standard deviation, the batch's, or none.",
    )
    rewards: RewardWeights = Field(
        default_factory=RewardWeights, description="Weights of the rewards, summed per completion."
    )
    safety_reward: SafetyReward = Field(
        default_factory=SafetyReward, description="The safety reward's values per kind of decision."
    )
    log_rollouts: bool = Field(
        True, description="Log rollout tables (prompt, completion, reward) to W&B at each logging step."
    )


def grpo_problems(cfg: RunConfig) -> list[str]:
    """What a `train.method: grpo` run needs of the other sections (none for SFT)."""
    if cfg.train.method != "grpo":
        return []
    t, g = cfg.train, cfg.grpo
    problems = []
    batch = t.per_device_batch_size * t.gradient_accumulation_steps
    if batch % g.num_generations:
        problems.append(
            f"train.per_device_batch_size x train.gradient_accumulation_steps is {batch}, which is not a "
            f"multiple of grpo.num_generations ({g.num_generations}): each batch must hold whole groups of "
            "completions; change either"
        )
    if t.save_steps % g.num_iterations:
        problems.append(
            f"train.save_steps: got {t.save_steps}, must be a multiple of grpo.num_iterations "
            f"({g.num_iterations}) so checkpoints fall on generation boundaries"
        )
    if t.eval_strategy != "no":
        problems.append(
            f"train.eval_strategy: is {t.eval_strategy!r}, but GRPO validates nothing while it trains (the "
            "evaluate stage scores the result); set train.eval_strategy: no"
        )
    if t.processes != 1:
        problems.append(
            f"train.processes: is {t.processes}; GRPO runs in one process (the SO8T forward of its loss is "
            "called outside DDP's wrapper); set train.processes: 1"
        )
    if t.precision == "fp16":
        problems.append("train.precision: fp16 is not supported with GRPO; use auto, fp32 or bf16")
    return problems

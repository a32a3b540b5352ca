"""The `safety` and `pet` sections: safety head B and its loss, and the PET curvature regulariser with its
schedule (both read by so8t.train and the SO8T model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from so8t.config.section import Section


class SafetyConfig(Section):
    loss_weight: float = Field(1.0, ge=0, description="Weight of head B's cross-entropy in the loss.")
    class_weights: list[float] | None = Field(
        None,
        description="Cross-entropy class weights [w_allow, w_escalate, w_refuse]; null weighs them equally.",
    )
    head: Literal["linear", "mlp"] = Field(
        "linear", description="Safety head B: a linear layer or a small MLP."
    )
    mlp_hidden: int | None = Field(
        None, gt=0, description="Hidden width of the MLP head; null uses the model width."
    )
    init_from_decision_words: bool = Field(
        True,
        description="Start a linear head B as the LM head's logits for the words ALLOW, ESCALATE and "
        "REFUSE at the pooled token (what the base already knows) instead of at random; MLP heads start "
        "at random.",
    )

    @field_validator("class_weights")
    @classmethod
    def _three_positive_weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 3 or any(w <= 0 for w in value)):
            raise ValueError(f"got {value}, must be 3 positive numbers [w_allow, w_escalate, w_refuse]")
        return value

    @model_validator(mode="after")
    def _mlp_hidden_needs_mlp(self) -> SafetyConfig:
        if self.mlp_hidden is not None and self.head != "mlp":
            raise ValueError(
                f"mlp_hidden is {self.mlp_hidden} but head is {self.head}; set safety.head: mlp "
                "or remove safety.mlp_hidden"
            )
        return self


class PetConfig(Section):
    weight: float = Field(0.01, ge=0, description="Final weight of the PET curvature penalty.")
    start_fraction: float = Field(0.5, ge=0, le=1, description="Share of training before PET switches on.")
    full_fraction: float = Field(
        1.0, ge=0, le=1, description="Share of training at which PET reaches its weight."
    )

    @model_validator(mode="after")
    def _ramp_in_order(self) -> PetConfig:
        if self.start_fraction > self.full_fraction:
            raise ValueError(
                f"start_fraction {self.start_fraction} is after full_fraction {self.full_fraction}; "
                "the ramp must start before it ends"
            )
        return self

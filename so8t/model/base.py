"""Load the base model (dtype, 8/4-bit bitsandbytes) and put LoRA adapters on it with peft."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.config.base_names import is_gguf_base, is_short_base, short_base_file
from so8t.errors import UserError
from so8t.layout.so8t_json import So8tRecord
from so8t.model.architectures import architecture_of, find_architecture

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from so8t.config import LoraConfig, ModelConfig

EMBEDDED_TINY = "embedded:tiny"
QUANTIZATIONS = ("none", "8bit", "4bit")

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


def resolve_base_path(base: str) -> str:
    """'embedded:tiny' -> the built tiny folder (built on first use); a GGUF file or a short name of one ->
    its dequantised folder in the cache (built on first use); anything else unchanged."""
    if base == EMBEDDED_TINY:
        from so8t.model.tiny import build_tiny_base

        return str(build_tiny_base())
    if is_gguf_base(base) or is_short_base(base):
        from so8t.model.gguf import dequantised_base

        return str(dequantised_base(base))
    return base


def check_base(base: str, where: str, fix: str) -> None:
    """A missing local base is a one-line error before any weights load (checkpoints record their base by
    path, and a checkpoint copied to another machine often points nowhere); hub ids are left to the hub.
    `where` says where the name came from, `fix` how to give another."""
    if base.startswith("embedded:"):
        return
    if is_short_base(base):
        short_base_file(base)
        return
    local = Path(base).expanduser()
    if is_gguf_base(base) and local.is_file():
        return
    if local.exists():
        if not (local / "config.json").is_file():
            raise UserError(
                f"base {base} ({where}) has no config.json; expected a Hugging Face model folder."
            )
        return
    looks_like_path = (
        base.startswith(("/", ".", "~")) or base.count("/") > 1 or (os.sep != "/" and os.sep in base)
    )
    if looks_like_path:
        raise UserError(f"base {base} ({where}) does not exist; {fix}.")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(base, "config.json"), str):
            raise UserError(
                f"base {base} ({where}) is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"download it first, or {fix}."
            )


def checkpoint_base(
    info_path: Path, recorded: str | None, override: str | None, override_name: str, fix: str
) -> str:
    """The base a checkpoint loads: `override` when given, else the one `info_path` (its so8t.json) records;
    checked by check_base. `override_name` is how the caller spells the override ("--base", "base=")."""
    base = override or recorded
    if not base:
        raise UserError(f"{info_path} records no base_model; {fix}.")
    check_base(str(base), f"given as {override_name}" if override else f"recorded in {info_path}", fix)
    return str(base)


def torch_dtype(name: Any):
    """'auto'/None -> None (the checkpoint's own dtype); 'bf16'/'bfloat16'/... -> torch dtype (a torch dtype
    is returned as it is)."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        return None
    if name not in _DTYPES:
        raise UserError(f"unknown dtype {name!r} (model.dtype): use auto, float32, bfloat16 or float16.")
    return getattr(torch, _DTYPES[name])


def bnb_config(
    quantization: str,
    *,
    dtype: Any = None,
    compute_dtype: Any = None,
    quant_type: str = "nf4",
    double_quant: bool = True,
):
    """BitsAndBytesConfig for quantization 8bit / 4bit, or None for "none" (transformers 5 takes no bare
    load_in_4bit). The one builder: training, the lm-eval backend and predict all call it.

    4-bit layers compute in `compute_dtype` when given (not None/"auto"), else in the model's `dtype` (the
    configured weights dtype), else in bf16 on a CUDA GPU that supports it, else fp32: bf16 is what QLoRA
    computes in where the hardware has it, and fp32 is the safe choice on CPUs and older GPUs. Dtypes are
    names ("bf16", "bfloat16", ...) or torch dtypes. 8-bit layers have no compute dtype to choose.
    """
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "none":
        return None
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization != "4bit":
        raise UserError(
            f"unknown quantization {quantization!r} (model.quantization): use {', '.join(QUANTIZATIONS)}."
        )
    compute = torch_dtype(compute_dtype) or torch_dtype(dtype)
    if compute is None:
        bf16_gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        compute = torch.bfloat16 if bf16_gpu else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute,
    )


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> Any:
    """A pad token when the tokenizer has none (eos, else unk) and right padding, as training pads rows."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_base(
    model_cfg: ModelConfig,
    *,
    for_training: bool,
    device_map: Any = None,
    quantization: str | None = None,
    base: str | None = None,
):
    """(model, tokenizer) for the configured base.

    `model_cfg` is the run config's `model` section; `quantization` and `base` override its values. Sets a pad
    token when missing, turns use_cache off for training, enables non-reentrant gradient checkpointing when
    asked (the one place it is switched on), and prepares quantised bases for k-bit training. The model
    keeps the hub revision and trust_remote_code it was loaded with as `model.so8t_loading`, so a checkpoint
    records them in so8t.json.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base_path(base or model_cfg.base)
    trust = model_cfg.trust_remote_code
    revision = model_cfg.revision
    quant = quantization or model_cfg.quantization
    dtype = torch_dtype(model_cfg.dtype)
    bnb = bnb_config(
        quant,
        dtype=model_cfg.dtype,
        compute_dtype=model_cfg.bnb_compute_dtype,
        quant_type=model_cfg.bnb_4bit_quant_type,
        double_quant=model_cfg.bnb_4bit_use_double_quant,
    )
    kwargs: dict[str, Any] = {"trust_remote_code": trust, "revision": revision}
    if bnb is not None:
        kwargs["quantization_config"] = bnb
        dtype = dtype or bnb_compute_dtype(bnb) or torch.float32
    kwargs["dtype"] = dtype if dtype is not None else "auto"
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise UserError(
            f"cannot load the base model {path!r} (model.base): {exc}. Give a local Hugging Face folder, "
            f"'embedded:tiny', or a hub id reachable from this machine."
        ) from exc
    prepare_tokenizer(tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.so8t_loading = {"revision": revision, "trust_remote_code": bool(trust)}
    reference = base or model_cfg.base
    if is_gguf_base(reference) or is_short_base(reference):
        from so8t.model.gguf import gguf_record

        # so8t.json records the GGUF file's sha256 and quantisation type
        model.so8t_loading["gguf"] = gguf_record(reference)
    if for_training:
        model.config.use_cache = False
        if bnb is not None:
            from peft import prepare_model_for_kbit_training

            # checkpointing is switched on below, through transformers' current name for it
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if model_cfg.gradient_checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
    return model, tokenizer


@contextmanager
def quiet_checkpointing_alias() -> Iterator[None]:
    """peft (wrapping a model) and TRL (around its rollouts) read transformers' deprecated
    `is_gradient_checkpointing` alias: their own calls, whose FutureWarning no so8t user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def checkpoint_model_config(
    info: So8tRecord,
    base: str,
    *,
    quantization: str | None = None,
    dtype: str | None = None,
    compute_dtype: str | None = None,
) -> ModelConfig:
    """The `model` section that loads a checkpoint's base `base` the way its training did, from its so8t.json
    `info`: the recorded hub revision (when `base` is the recorded base) and trust_remote_code, the dtype and
    the bitsandbytes settings. `quantization` (default "none"), `dtype` and `compute_dtype` override them."""
    from so8t.config import ModelConfig

    loading = info.loading
    quant = loading.quantization_config or {}
    recorded_base = base == info.base_model
    settings: dict[str, Any] = {
        "base": base,
        "revision": info.base_revision if recorded_base else None,
        "trust_remote_code": info.trust_remote_code,
        "dtype": dtype or loading.dtype or "auto",
        "quantization": quantization or "none",
        "bnb_compute_dtype": compute_dtype or "auto",
    }
    if "bnb_4bit_quant_type" in quant:
        settings["bnb_4bit_quant_type"] = quant["bnb_4bit_quant_type"]
    if "bnb_4bit_use_double_quant" in quant:
        settings["bnb_4bit_use_double_quant"] = bool(quant["bnb_4bit_use_double_quant"])
    return ModelConfig(**settings)


def bnb_compute_dtype(bnb) -> Any:
    return getattr(bnb, "bnb_4bit_compute_dtype", None) if getattr(bnb, "load_in_4bit", False) else None


def default_lora_targets(model: Any, include_mlp: bool = False) -> list[str]:
    """LoRA target module names for the base's architecture (attention projections; MLP when asked).

    UserError for an architecture so8t does not support (so8t/model/architectures.py)."""
    arch = architecture_of(model, "no default LoRA targets")
    return list(arch.lora_targets) + (list(arch.mlp_targets) if include_mlp else [])


def add_lora(model: Any, lora_cfg: LoraConfig, *, init_lora_weights: bool | str = True):
    """Wrap `model` in a peft LoRA PeftModel (targets from lora_cfg.target_modules or the architecture default)."""
    import peft

    targets = lora_cfg.target_modules or default_lora_targets(model)
    arch = find_architecture(model)
    config = peft.LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=list(targets),
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=init_lora_weights,
        fan_in_fan_out=bool(arch and arch.conv1d),
    )
    with quiet_checkpointing_alias():
        return peft.get_peft_model(model, config)

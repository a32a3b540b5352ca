"""The bitsandbytes layers of an 8-bit or 4-bit base: find them, dequantise them, checksum their storage.

Consolidation folds LoRA and the rotations onto the weights a k-bit model trained with, so it needs the
values bitsandbytes multiplies with in its training forward on the CPU (dequantise, then an fp32 matmul),
and a way to tell whether the quantised weights it recomputes from the base are the ones training used.

bitsandbytes' CPU eval path repacks 4-bit weights in place for its bf16 kernel, lossily (the scales become
bf16), so everything here reads the canonical layout and `kept_quantized_storage` restores it after an eval
forward.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_BNB_LINEARS = ("Linear8bitLt", "Linear4bit")


def is_quantized_linear(module: nn.Module) -> bool:
    """A bitsandbytes Linear8bitLt / Linear4bit (not peft's LoRA wrapper of one, which has the same name)."""
    cls = type(module)
    return cls.__name__ in _BNB_LINEARS and cls.__module__.startswith("bitsandbytes")


def quantized_linears(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """[(qualified name, module)] of every bitsandbytes linear layer of `model`, in module order."""
    return [(name, module) for name, module in model.named_modules() if is_quantized_linear(module)]


def _int8_storage(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(CB int8 (out, in), SCB fp32 (out,)): bitsandbytes moves them from the weight to `state` on first use."""
    weight, state = module.weight, module.state
    cb = weight.CB if getattr(weight, "CB", None) is not None else state.CB
    scb = weight.SCB if getattr(weight, "SCB", None) is not None else state.SCB
    if cb is None:
        cb = weight.data
    return cb, scb


def _canonical_4bit(module: nn.Module) -> tuple[torch.Tensor, Any]:
    """(packed 4-bit data, QuantState) in bitsandbytes' canonical layout, undoing its CPU repacking on a copy."""
    weight = module.weight
    state = weight.quant_state
    if getattr(state, "packing_format_for_cpu", False):
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

        return _convert_weight_packed_for_cpu_inverse(weight.data.clone(), copy.deepcopy(state))
    return weight.data, state


def dequantized_weight(module: nn.Module) -> torch.Tensor:
    """The fp32 (out, in) weight bitsandbytes' training forward on the CPU multiplies with, by its own
    dequantisation: int8 rows times their scale / 127 (Linear8bitLt), or 4-bit blocks times their absmax
    (Linear4bit, nested scales included)."""
    import bitsandbytes.functional as bnb_functional

    if type(module).__name__ == "Linear8bitLt":
        cb, scb = _int8_storage(module)
        return bnb_functional.int8_vectorwise_dequant(cb, scb).float()
    data, state = _canonical_4bit(module)
    return (
        bnb_functional.dequantize_4bit(data, state).float().reshape(module.out_features, module.in_features)
    )


def _storage_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The tensors that hold one layer's quantised weight (what its checksum covers)."""
    if type(module).__name__ == "Linear8bitLt":
        cb, scb = _int8_storage(module)
        return [("CB", cb), ("SCB", scb)]
    data, state = _canonical_4bit(module)
    tensors = [("data", data), ("absmax", state.absmax), ("code", state.code)]
    if state.nested:
        tensors += [("offset", torch.as_tensor(state.offset)), ("absmax2", state.state2.absmax)]
        tensors += [("code2", state.state2.code)]
    return tensors


def quantized_weights_checksum(model: nn.Module) -> dict[str, Any] | None:
    """{sha256, layers, device, bitsandbytes} of the quantised storage of every bitsandbytes layer of `model`
    (None without any): names, shapes, dtypes and bytes of the int8 weights and scales, or of the packed
    4-bit weights, their scales and quantisation code. Two loads of the same base quantise alike exactly
    when this matches."""
    layers = quantized_linears(model)
    if not layers:
        return None
    import bitsandbytes

    digest = hashlib.sha256(b"so8t-quantized-weights-v1\0")
    for name, module in layers:
        # the same layer whether or not peft wrapped it
        name = name.replace(".base_layer", "")
        for part, tensor in _storage_tensors(module):
            digest.update(f"{name}.{part}\0{tuple(tensor.shape)}\0{tensor.dtype}\0".encode())
            flat = tensor.detach().reshape(-1).contiguous().cpu()
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return {
        "sha256": digest.hexdigest(),
        "layers": len(layers),
        "device": layers[0][1].weight.device.type,
        "bitsandbytes": bitsandbytes.__version__,
    }


@contextmanager
def kept_quantized_storage(model: nn.Module) -> Iterator[None]:
    """Restore every 4-bit layer's storage after the block: bitsandbytes' CPU eval forward repacks it in place
    and rounds its scales to bf16, which would change the weights folded afterwards."""
    saved = [
        (module, module.weight.data, copy.copy(module.weight.quant_state))
        for _, module in quantized_linears(model)
        if type(module).__name__ == "Linear4bit"
    ]
    try:
        yield
    finally:
        for module, data, state in saved:
            module.weight.data = data
            module.weight.quant_state = state
            module.quant_state = state


@contextmanager
def training_matmuls(model: nn.Module) -> Iterator[None]:
    """Run `model` in eval mode (no dropout) with its bitsandbytes layers in training mode, whose CPU forward
    dequantises the weight and multiplies in the compute dtype: the trained model's dequantise-then-multiply
    forward. The modes are restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    for _, module in quantized_linears(model):
        module.train()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def fp32_tensor_patterns(model: nn.Module) -> list[str]:
    """Names of the model's floating-point fp32 parameters outside the bitsandbytes layers' weights, layer
    indices folded into `*` (what k-bit training ran in fp32: peft upcasts norms, embeddings, the LM head and
    biases)."""
    quantized = {id(module.weight) for _, module in quantized_linears(model)}
    names = {
        re.sub(r"\.\d+\.", ".*.", name)
        for name, param in model.named_parameters()
        if id(param) not in quantized and param.dtype == torch.float32 and "lora_" not in name
    }
    return sorted(names)


def quantization_settings(config: Any) -> dict[str, Any] | None:
    """The bitsandbytes settings a model was loaded with (from its config), JSON-ready; None when unquantised."""
    quant = getattr(config, "quantization_config", None)
    if quant is None:
        return None
    quant = quant if isinstance(quant, dict) else quant.to_dict()
    return json.loads(json.dumps(quant, default=str))

"""The one bitsandbytes config builder (training, the lm-eval backend and predict) and its compute dtype."""

from __future__ import annotations

import logging

import pytest

from so8t.errors import UserError


def test_quantization_reaches_hf_as_a_bitsandbytes_config():
    """transformers 5 rejects the bare load_in_4bit flag; the backend passes a BitsAndBytesConfig instead."""
    import torch
    from transformers import BitsAndBytesConfig

    from so8t.model.base import bnb_config

    four = bnb_config("4bit", dtype="float32")
    assert (
        isinstance(four, BitsAndBytesConfig)
        and four.load_in_4bit
        and four.bnb_4bit_compute_dtype == torch.float32
    )
    assert bnb_config("8bit", dtype="auto").load_in_8bit
    assert bnb_config("none") is None
    with pytest.raises(UserError, match="'3bit'"):
        bnb_config("3bit")


def test_compute_dtype_is_the_given_one_then_the_weights_dtype():
    import torch

    from so8t.model.base import bnb_config

    assert bnb_config("4bit", dtype="bf16").bnb_4bit_compute_dtype == torch.bfloat16
    assert bnb_config("4bit", dtype=torch.float16).bnb_4bit_compute_dtype == torch.float16
    given = bnb_config("4bit", dtype="float16", compute_dtype="bfloat16")
    assert given.bnb_4bit_compute_dtype == torch.bfloat16
    options = bnb_config("4bit", quant_type="fp4", double_quant=False)
    assert options.bnb_4bit_quant_type == "fp4" and not options.bnb_4bit_use_double_quant


@pytest.mark.parametrize(
    "cuda, bf16, expected", [(False, False, "float32"), (True, False, "float32"), (True, True, "bfloat16")]
)
def test_auto_compute_dtype_is_bf16_on_a_gpu_that_supports_it_else_fp32(monkeypatch, cuda, bf16, expected):
    import torch

    from so8t.model.base import bnb_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert bnb_config("4bit").bnb_4bit_compute_dtype == getattr(torch, expected)
    assert bnb_config("4bit", dtype="auto", compute_dtype=None).bnb_4bit_compute_dtype == getattr(
        torch, expected
    )


# Records the bitsandbytes CPU-ops logger's level at the moment bitsandbytes is first imported.
_LEVEL_AT_BITSANDBYTES_IMPORT = """
import logging, sys
levels = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "bitsandbytes" and not levels:
            levels.append(logging.getLogger("bitsandbytes.backends.cpu.ops").level)
        return None
sys.meta_path.insert(0, Watch())
{imports}
print(levels[0] if levels else "not imported")
"""


@pytest.mark.parametrize(
    "imports",
    [
        # transformers' Trainer imports peft, which imports bitsandbytes
        "import so8t.train.trainer",
        # consolidate_checkpoint imports peft before any so8t.model module
        "import so8t.consolidate\nimport peft",
    ],
)
def test_bitsandbytes_optional_kernel_warning_is_quieted_before_bitsandbytes_loads(imports):
    """bitsandbytes warns on AVX512-BF16 CPUs about a missing optional kernel: so8t runs never print it."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    code = _LEVEL_AT_BITSANDBYTES_IMPORT.format(imports=imports)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == str(logging.ERROR)
    assert "kernels" not in result.stderr

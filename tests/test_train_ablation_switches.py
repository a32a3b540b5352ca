"""model.lora.trainable and model.so8.gate: the switches the SO8T-vs-ablations benchmark builds its rows with
(benchmarks/so8t_vs_ablations.py). Frozen parts stay out of the optimizer and at their identity values."""

from __future__ import annotations

import pytest
from train_fixtures import run_config_dict

from so8t.config import RunConfig


def _trainable(tiny_base_dir, lora: dict, so8: dict) -> set[str]:
    from so8t.train.run import build_model

    model_section = {"base": str(tiny_base_dir), "dtype": "float32", "pretrain": {"enabled": False}}
    cfg = RunConfig.model_validate(
        run_config_dict(tiny_base_dir, model={**model_section, "lora": lora, "so8": so8})
    )
    model, _, _ = build_model(cfg)
    return {
        name.split(".")[0] if "lora_" not in name else "lora"
        for name, p in model.named_parameters()
        if p.requires_grad
    }


@pytest.mark.parametrize(
    ("lora", "so8", "expected"),
    [
        ({"r": 4}, {}, {"lora", "rotations", "gate", "safety_head"}),
        ({"r": 4}, {"layers": [], "gate": False}, {"lora", "safety_head"}),
        ({"r": 4, "trainable": False}, {"layers": [], "gate": False}, {"safety_head"}),
    ],
    ids=["full-so8t", "plain-lora", "linear-probe"],
)
def test_the_ablation_switches_leave_only_their_parts_trainable(tiny_base_dir, lora, so8, expected):
    assert _trainable(tiny_base_dir, lora, so8) == expected

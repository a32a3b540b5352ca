"""SO(8) rotations, the gate and their placement in the network (docs/architecture.md, The SO8T structure)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from so8t.errors import UserError
from so8t.model.so8 import SO8Gate, SO8Rotation, attach_attention_rotations, find_attention_output_projections


def _assert_in_so8(blocks: torch.Tensor) -> None:
    eye = torch.eye(8).expand_as(blocks)
    assert torch.allclose(blocks.transpose(-1, -2) @ blocks, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(blocks), torch.ones(blocks.shape[0]), atol=1e-5)


def test_rotations_stay_in_so8_after_optimizer_steps():
    rotation = SO8Rotation(32)
    opt = torch.optim.Adam(rotation.parameters(), lr=0.5)
    x, target = torch.randn(16, 32), torch.randn(16, 32)
    for _ in range(5):
        opt.zero_grad()
        loss = (rotation(x) - target).pow(2).mean()
        loss.backward()
        opt.step()
    assert rotation.generators.abs().max() > 0.1  # the steps moved it far from the identity
    _assert_in_so8(rotation.blocks())
    dense = rotation.dense()
    assert torch.allclose(dense.T @ dense, torch.eye(32), atol=1e-5)


def test_rotation_is_identity_at_init_and_acts_on_the_right_blockwise():
    rotation = SO8Rotation(16)
    x = torch.randn(2, 3, 16)
    assert torch.equal(rotation(x), x)
    with torch.no_grad():
        rotation.generators.normal_()
    assert torch.allclose(rotation(x), x @ rotation.dense(), atol=1e-5)


def test_rotation_output_follows_activation_dtype():
    rotation = SO8Rotation(16)
    assert rotation(torch.randn(4, 16, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_gate_order_is_safety_first_and_does_not_commute():
    torch.manual_seed(0)
    gate = SO8Gate(16)
    with torch.no_grad():
        gate.R_safe.generators.normal_()
        gate.R_cmd.generators.normal_()
    r_safe, r_cmd = gate.R_safe.dense(), gate.R_cmd.dense()
    assert (r_safe @ r_cmd - r_cmd @ r_safe).abs().max() > 1e-2
    h = torch.randn(5, 16)
    h_safe, h_task = gate(h)
    assert torch.allclose(h_safe, h @ r_safe, atol=1e-5)
    assert torch.allclose(h_task, h @ r_safe @ r_cmd, atol=1e-5)
    assert not torch.allclose(h_task, h @ r_cmd @ r_safe, atol=1e-3)


def test_width_not_multiple_of_eight_is_a_clear_error():
    with pytest.raises(UserError, match="multiple of 8"):
        SO8Rotation(12)


def test_unknown_architecture_error_names_what_was_looked_for():
    model = nn.Sequential(nn.Linear(8, 8))
    with pytest.raises(UserError) as err:
        find_attention_output_projections(model)
    assert "self_attn.o_proj" in str(err.value) and "attn.c_proj" in str(err.value)
    assert "Sequential" in str(err.value)


def test_rotations_sit_on_the_outer_peft_module_so_lora_sees_the_rotated_input(make_so8t, tiny_base_dir):
    model, _ = make_so8t(tiny_base_dir)
    o_proj = model.hf_model.model.layers[0].self_attn.o_proj
    assert hasattr(o_proj, "base_layer") and len(o_proj._forward_pre_hooks) == 1
    assert len(o_proj.base_layer._forward_pre_hooks) == 0
    assert model.rotated_layers == [0, 1, 2, 3]
    seen, captured = {}, {}
    o_proj.lora_A["default"].register_forward_hook(lambda m, a, o: seen.update(x=a[0]))
    o_proj.register_forward_pre_hook(lambda m, a: captured.update(x=a[0]), prepend=True)
    model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    assert torch.allclose(seen["x"], model.rotations["0"](captured["x"]), atol=1e-6)


def test_selected_layers_only_and_unknown_layer_rejected(make_so8t, tiny_base_dir):
    model, _ = make_so8t(tiny_base_dir, layers=[1, 3])
    assert sorted(model.rotations.keys()) == ["1", "3"]
    with pytest.raises(UserError, match="layers"):
        attach_attention_rotations(model.base_model, layers=[9])


def test_one_batched_exponential_gives_the_same_rotations_and_gradients():
    """shared_exponential is only a speed-up: outputs and generator gradients match per-rotation exponentials."""
    import torch

    from so8t.model.so8 import SO8Rotation, shared_exponential

    torch.manual_seed(0)
    rotations = [SO8Rotation(16), SO8Rotation(32), SO8Rotation(16)]
    for r in rotations:
        torch.nn.init.normal_(r.generators, std=0.3)
    xs = [torch.randn(3, 5, r.width) for r in rotations]

    def run(shared: bool):
        for r in rotations:
            r.generators.grad = None
        with shared_exponential(rotations if shared else []):
            outs = [r(x) for r, x in zip(rotations, xs, strict=True)]
            assert all((r._shared_blocks is not None) == shared for r in rotations)
        sum((o**2).sum() for o in outs).backward()
        assert all(r._shared_blocks is None for r in rotations)
        return outs, [r.generators.grad.clone() for r in rotations]

    outs_a, grads_a = run(shared=False)
    outs_b, grads_b = run(shared=True)
    for a, b in zip(outs_a + grads_a, outs_b + grads_b, strict=True):
        assert torch.allclose(a, b, atol=1e-6)

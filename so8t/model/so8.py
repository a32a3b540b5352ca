"""SO(8) block rotations and the non-commutative gate (docs/architecture.md, "The SO8T structure").

Row vectors throughout: a rotation acts on the right, `x -> x R`, with `R = diag(R_1..R_k)` and
`R_j = matrix_exp(A_j - A_j^T)` exactly in SO(8). Generators `A` start at zero, so `R = I` at init.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from so8t.errors import UserError
from so8t.model.architectures import architecture_of

BLOCK = 8


def _check_width(width: int, what: str) -> int:
    if width % BLOCK != 0:
        raise UserError(
            f"{what} has width {width}, which is not a multiple of {BLOCK}: SO(8) block rotations need widths "
            f"divisible by {BLOCK}. Choose a base model whose hidden size and attention width are multiples of 8, "
            f"or leave the affected layers out of model.so8.layers."
        )
    return width // BLOCK


class SO8Rotation(nn.Module):
    """Block-diagonal rotation of a width-8k feature: k independent SO(8) blocks from skew-symmetric generators."""

    def __init__(self, width: int, what: str = "rotated feature"):
        super().__init__()
        self.width = width
        self.generators = nn.Parameter(torch.zeros(_check_width(width, what), BLOCK, BLOCK))
        self._shared_blocks: torch.Tensor | None = None
        # the forward pre-hook that applies this rotation inside a model (attach_attention_rotations)
        self.hook_handle: torch.utils.hooks.RemovableHandle | None = None

    def blocks(self) -> torch.Tensor:
        """(k, 8, 8) fp32 rotations `R_j = matrix_exp(A_j - A_j^T)`."""
        if self._shared_blocks is not None:
            return self._shared_blocks
        a = self.generators.float()
        return torch.linalg.matrix_exp(a - a.transpose(-1, -2))

    def dense(self) -> torch.Tensor:
        """(D, D) fp32 block-diagonal R (for folding into weights)."""
        return torch.block_diag(*self.blocks())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> x R, each 8-dim block of every token rotated by its own block; in x's dtype."""
        r = self.blocks().to(device=x.device, dtype=x.dtype)
        xb = x.reshape(*x.shape[:-1], r.shape[0], BLOCK)
        return torch.einsum("...ki,kij->...kj", xb, r).reshape(x.shape)


@contextmanager
def shared_exponential(rotations: list[SO8Rotation]) -> Iterator[None]:
    """Compute the blocks of many rotations in one batched `matrix_exp` for the duration of a forward pass.

    One call over all layers' generators instead of one per layer saves the per-call overhead of the
    exponential and its backward, which dominates on small widths. Rotations on different devices (a model
    split across GPUs) keep computing their own.
    """
    devices = {r.generators.device for r in rotations}
    if len(rotations) < 2 or len(devices) != 1:
        yield
        return
    a = torch.cat([r.generators for r in rotations]).float()
    blocks = torch.linalg.matrix_exp(a - a.transpose(-1, -2))
    # blocks set by an enclosing context (fixed_rotations around a rollout) come back afterwards
    previous = [r._shared_blocks for r in rotations]
    try:
        for rotation, part in zip(
            rotations, blocks.split([r.generators.shape[0] for r in rotations]), strict=True
        ):
            rotation._shared_blocks = part
        yield
    finally:
        for rotation, kept in zip(rotations, previous, strict=True):
            rotation._shared_blocks = kept


@contextmanager
def fixed_rotations(rotations: list[SO8Rotation]) -> Iterator[None]:
    """Compute every rotation's blocks once, without gradients, and reuse them until the context ends.

    For sampling (a GRPO rollout, generation): the parameters do not change between decode steps, so one
    exponential per rollout replaces one per layer and step.
    """
    if not rotations:
        yield
        return
    with torch.no_grad():
        a = torch.cat([r.generators.to(rotations[0].generators.device) for r in rotations]).float()
        blocks = torch.linalg.matrix_exp(a - a.transpose(-1, -2))
    try:
        for rotation, part in zip(
            rotations, blocks.split([r.generators.shape[0] for r in rotations]), strict=True
        ):
            rotation._shared_blocks = part.to(rotation.generators.device)
        yield
    finally:
        for rotation in rotations:
            rotation._shared_blocks = None


class SO8Gate(nn.Module):
    """h_safe = h R_safe; h_task = h_safe R_cmd = h (R_safe R_cmd). Safety first; the order is fixed."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.R_safe = SO8Rotation(hidden_size, "hidden size (gate)")
        self.R_cmd = SO8Rotation(hidden_size, "hidden size (gate)")

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_safe = self.R_safe(h)
        return h_safe, self.R_cmd(h_safe)

    def dense(self) -> torch.Tensor:
        """(D, D) fp32 product R_safe R_cmd (the task path's rotation)."""
        return self.R_safe.dense() @ self.R_cmd.dense()


def find_attention_output_projections(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The attention output projection of every decoder layer, in layer order: [(qualified name, module)].

    Names are as in `model.named_modules()` (peft wrappers included: the outer module is returned). The
    projection's path comes from the architecture table (so8t/model/architectures.py); UserError for an
    architecture not in it, or a model of that type without such modules.
    """
    suffix = architecture_of(model, "cannot place SO(8) rotations inside attention").output_projection
    found = [
        (name, mod)
        for name, mod in model.named_modules()
        if name.endswith("." + suffix) and not name.endswith(".base_layer")
    ]
    if not found:
        raise UserError(
            f"cannot place SO(8) rotations in {type(model).__name__}: it has no modules named "
            f"'<layer>.{suffix}', where its architecture keeps the attention output projection. Set "
            "model.so8.layers: [] to train without rotations inside attention."
        )
    return found


def _in_features(module: nn.Module) -> int:
    base = module
    while hasattr(base, "base_layer"):  # peft wrappers
        base = base.base_layer
    if hasattr(base, "in_features"):
        return int(base.in_features)
    if type(base).__name__ == "Conv1D":  # GPT-2: weight (in, out)
        return int(base.weight.shape[0])
    raise UserError(
        f"cannot read the input width of {type(base).__name__}; it is not a Linear or Conv1D layer."
    )


def _layer_index(name: str, position: int) -> int:
    for part in reversed(name.split(".")):
        if part.isdigit():
            return int(part)
    return position


def attach_attention_rotations(model: nn.Module, layers: str | list[int] = "all") -> nn.ModuleDict:
    """Rotate the input of each chosen layer's attention output projection: `o_proj(x R_l)`.

    The hook sits on the outer (peft-wrapped, possibly 8/4-bit) module so LoRA sees the rotated input.
    Returns a ModuleDict keyed by layer index (str) holding the SO8Rotation of each layer; each rotation keeps
    its hook's handle as `hook_handle` (SO8TModel.remove_hooks). `layers=[]` places none and needs no known
    architecture.
    """
    if layers != "all" and not list(layers):
        return nn.ModuleDict()
    projections = find_attention_output_projections(model)
    by_layer = {_layer_index(name, i): (name, mod) for i, (name, mod) in enumerate(projections)}
    chosen = sorted(by_layer) if layers == "all" else list(layers)
    missing = [i for i in chosen if i not in by_layer]
    if missing:
        raise UserError(
            f"model.so8.layers asks for layers {missing}, but the model has layers {sorted(by_layer)}. "
            f"Use 'all' or indices from that list."
        )
    rotations = nn.ModuleDict()
    for index in chosen:
        name, module = by_layer[index]
        rotation = SO8Rotation(_in_features(module), f"attention output projection input ({name})")
        rotations[str(index)] = rotation
        rotation.hook_handle = module.register_forward_pre_hook(_make_pre_hook(rotation))
    return rotations


def _make_pre_hook(rotation: SO8Rotation):
    def hook(_module, args):
        return (rotation(args[0]),) + tuple(args[1:])

    return hook

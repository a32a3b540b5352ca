"""So8tTrainer: loss normalisation under accumulation, learning, trainable set, learning rates, SO(8)."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import run_config
from transformers import TrainingArguments, set_seed

from so8t.data.gsm8k import GSM8KExample
from so8t.data.safety import SafetyExample
from so8t.train.collate import EncodedDataset, So8tCollator, build_dataset
from so8t.train.run import build_model, build_trainer
from so8t.train.trainer import So8tTrainer, count_loss_items

# Rows of very different lengths and kinds: a per-micro-batch mean would weigh them differently.
ROWS = [
    GSM8KExample(question="Ann has 2 pens. She buys 3 more. How many pens?", answer="2 + 3 = 5\n#### 5"),
    SafetyExample(prompt="Reset my own password.", decision="ALLOW"),
    GSM8KExample(
        question="A box holds 12 eggs. How many eggs are in 7 boxes after 5 break?",
        answer="12 * 7 = 84\n84 - 5 = 79\nThe boxes hold 79 eggs.\n#### 79",
    ),
    SafetyExample(
        prompt="Export every customer's card number to my laptop.",
        decision="REFUSE",
        rationale="Card data must not leave the vault.",
    ),
]


def _one_update(base_dir, tmp_path, batch: int, accum: int, safety_weight: float, pet_weight: float):
    cfg = run_config(base_dir)
    set_seed(0)
    model, tokenizer, _ = build_model(cfg)
    with torch.no_grad():  # non-zero LoRA B and rotations, so every trainable tensor gets a gradient
        for name, param in model.named_parameters():
            if param.requires_grad and ("lora_B" in name or "generators" in name):
                param.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(name)))
    ds = build_dataset(
        tokenizer,
        [r for r in ROWS if isinstance(r, GSM8KExample)],
        [r for r in ROWS if isinstance(r, SafetyExample)],
        max_length=96,
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch}a{accum}"),
        max_steps=1,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        report_to="none",
        save_strategy="no",
        remove_unused_columns=False,
        seed=0,
        data_seed=0,
    )
    trainer = So8tTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        data_collator=So8tCollator(pad_token_id=tokenizer.pad_token_id),
        safety_learning_rate=0.5,
        loss_weights={"safety": safety_weight, "pet": pet_weight, "pet_start": 0.0, "pet_full": 0.0},
    )
    trainer.current_pet_weight = lambda: pet_weight
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer.train()
    return {n: p.detach() - before[n] for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("safety_weight", "pet_weight"),
    [(0.0, 0.0), (1.0, 0.0), (0.0, 5.0), (1.0, 5.0)],
    ids=["lm", "lm+safety", "lm+pet", "all"],
)
def test_accumulating_four_single_rows_updates_like_one_batch_of_four(
    tiny_base_dir, tmp_path, safety_weight, pet_weight
):
    whole = _one_update(
        tiny_base_dir, tmp_path, batch=4, accum=1, safety_weight=safety_weight, pet_weight=pet_weight
    )
    split = _one_update(
        tiny_base_dir, tmp_path, batch=1, accum=4, safety_weight=safety_weight, pet_weight=pet_weight
    )
    assert sum(float(d.abs().sum()) for d in whole.values()) > 0
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], rtol=1e-4, atol=1e-7, msg=name)


def test_counts_over_the_accumulated_batch_match_the_model_own_counts(tiny_base_dir):
    cfg = run_config(tiny_base_dir, safety={"class_weights": [1.0, 2.0, 3.0]})
    model, tokenizer, _ = build_model(cfg)
    ds = build_dataset(tokenizer, [ROWS[0], ROWS[2]], [ROWS[1], ROWS[3]], max_length=96)
    batch = So8tCollator(pad_token_id=tokenizer.pad_token_id)(list(ds))
    with torch.no_grad():
        out = model(**batch)
    counts = count_loss_items(batch, torch.tensor([1.0, 2.0, 3.0]))
    assert counts.safety == 1.0 + 3.0  # an ALLOW and a REFUSE row, weighted
    assert counts.lm == float(out.lm_tokens)
    assert counts.safety == float(out.safety_count)
    assert counts.pet == float(out.pet_count)


@pytest.fixture(scope="module")
def trained(tiny_base_dir, tmp_path_factory):
    """A few dozen steps on the unquantised tiny base, with the loss measured before and after."""
    return _train_and_evaluate(tiny_base_dir, tmp_path_factory.mktemp("none"), "none")


def _train_and_evaluate(base_dir, out_dir, quantization: str):
    cfg = run_config(
        base_dir,
        model={**run_config(base_dir).model.model_dump(), "quantization": quantization},
        train={
            "max_steps": 60,
            "per_device_batch_size": 4,
            "learning_rate": 3e-3,
            # Head B on a random base's hidden states: a larger step size oscillates around the class prior.
            "safety_learning_rate": 3e-3,
            "eval_strategy": "steps",
            "eval_steps": 1000,
            "save_steps": 1000,
            "logging_steps": 10,
            "warmup_ratio": 0.0,
            "save_total_limit": None,
        },
    )
    set_seed(0)
    model, tokenizer, _ = build_model(cfg)
    trainer, _ = build_trainer(cfg, out_dir, model, tokenizer)
    # Loss on (a fixed part of) the training mix: what a few dozen steps must lower on any base.
    trainer.eval_dataset = EncodedDataset(list(trainer.train_dataset)[:64])
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    return trainer, before, after


@pytest.mark.slow
def test_training_lowers_lm_and_safety_loss(trained):
    _, before, after = trained
    assert after["eval_lm_loss"] < before["eval_lm_loss"]
    assert after["eval_safety_loss"] < before["eval_safety_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_training_on_a_quantised_base_lowers_lm_and_safety_loss(
    bnb_friendly_base_dir,
    tmp_path,
    quantization,
):
    _, before, after = _train_and_evaluate(bnb_friendly_base_dir, tmp_path, quantization)
    assert after["eval_lm_loss"] < before["eval_lm_loss"]
    assert after["eval_safety_loss"] < before["eval_safety_loss"]


def _kind(name: str) -> str:
    if "lora_" in name:
        return "lora"
    if "generators" in name:
        return "rotation"
    return "other"


@pytest.mark.slow
def test_only_lora_rotations_and_head_b_are_trainable_and_get_gradients(trained):
    trainer, _, _ = trained
    model = trainer.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    kinds = {_kind(n) for n in trainable}
    assert kinds == {"lora", "rotation", "other"}
    others = {n for n in trainable if _kind(n) == "other"}
    head_params = {
        f"{prefix}.{n}" if prefix else n
        for prefix, module in model.named_modules()
        if type(module).__name__ in ("SafetyHead", "Linear") and "safety" in prefix.lower()
        for n, _ in module.named_parameters(recurse=False)
    }
    assert others and others <= head_params, (
        f"trainable parameters outside LoRA/rotations/head B: {others - head_params}"
    )
    batch = next(iter(trainer.get_train_dataloader()))
    model.zero_grad()
    trainer.compute_loss(model, batch).backward()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            assert param.grad is None, name
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n
    )
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in model.named_parameters()
        if "generators" in n
    )
    assert all(model.get_parameter(n).grad is not None for n in others)
    model.zero_grad()


@pytest.mark.slow
def test_optimizer_holds_every_trainable_parameter_with_the_configured_learning_rates(trained):
    trainer, _, _ = trained
    by_group = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert by_group["lora"]["initial_lr"] == pytest.approx(3e-3)
    assert by_group["so8t_no_decay"]["initial_lr"] == pytest.approx(3e-3)
    ids = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    names_by_id = {id(p): n for n, p in trainer.model.named_parameters()}
    for name, param in trainer.model.named_parameters():
        assert (id(param) in ids) == param.requires_grad, name
    for group in trainer.optimizer.param_groups:
        expected = 3e-3
        assert group["initial_lr"] == pytest.approx(expected)
        assert all(("lora_" in names_by_id[id(p)]) == (group["name"] == "lora") for p in group["params"])
    no_decay = {names_by_id[id(p)] for p in by_group["so8t_no_decay"]["params"]}
    assert any("generators" in n for n in no_decay) and by_group["so8t_no_decay"]["weight_decay"] == 0.0


@pytest.mark.slow
def test_rotations_stay_in_so8_after_training(trained):
    trainer, _, _ = trained
    generators = [(n, p) for n, p in trainer.model.named_parameters() if "generators" in n]
    assert generators and any(p.abs().max() > 0 for _, p in generators)  # training moved them
    for name, a in generators:
        s = a.detach().double() - a.detach().double().transpose(-1, -2)
        blocks = torch.linalg.matrix_exp(s)
        eye = torch.eye(8, dtype=torch.float64).expand_as(blocks)
        torch.testing.assert_close(blocks @ blocks.transpose(-1, -2), eye, atol=1e-10, rtol=0, msg=name)
        torch.testing.assert_close(
            torch.linalg.det(blocks),
            torch.ones(blocks.shape[0], dtype=torch.float64),
            atol=1e-10,
            rtol=0,
            msg=name,
        )


@pytest.mark.parametrize("enabled", [False, True])
def test_model_gradient_checkpointing_reaches_the_base_through_load_base(tiny_base_dir, enabled):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _, _ = build_model(run_config(tiny_base_dir, model={"gradient_checkpointing": enabled}))
    base = model.hf_model
    assert base.is_activation_checkpointing is enabled
    assert base.config.use_cache is False
    # no deprecated checkpointing API on the way: transformers' FutureWarnings name it
    deprecated = [
        str(w.message)
        for w in caught
        if issubclass(w.category, FutureWarning) and "checkpointing" in str(w.message)
    ]
    assert deprecated == []


@pytest.mark.slow
def test_an_evaluation_leaves_the_gradients_of_4bit_training_as_they_were(bnb_friendly_base_dir, tmp_path):
    """bitsandbytes' CPU eval forward repacks 4-bit weights for a kernel without a backward: training after a
    validation pass must still get the gradients of a model never evaluated."""
    from so8t.model.quantized import quantized_linears

    cfg = run_config(
        bnb_friendly_base_dir,
        model={**run_config(bnb_friendly_base_dir).model.model_dump(), "quantization": "4bit"},
    )
    grads = []
    for evaluate_first in (False, True):
        set_seed(0)
        model, tokenizer, _ = build_model(cfg)
        trainer, _ = build_trainer(cfg, tmp_path / str(evaluate_first), model, tokenizer)
        rows = list(trainer.train_dataset)[:4]
        trainer.eval_dataset = EncodedDataset(rows)
        if evaluate_first:
            trainer.evaluate()
            layers = [m for _, m in quantized_linears(model) if type(m).__name__ == "Linear4bit"]
            assert layers and not any(
                getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers
            )
        model.train()
        model.zero_grad()
        trainer.compute_loss(model, So8tCollator(pad_token_id=tokenizer.pad_token_id)(rows)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("lora_A" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7, msg=name)


def test_evaluation_loop_names_its_figures_with_the_prefix_however_it_is_passed(tiny_base_dir, tmp_path):
    """The prefix is bound by name from Trainer's signature, so a positional call (dataloader, description,
    prediction_loss_only, ignore_keys, metric_key_prefix) names the loss parts with it."""
    cfg = run_config(
        tiny_base_dir,
        data={"validation": [{"builtin": "synthetic_gsm8k", "n": 2}]},
        train={"eval_strategy": "steps", "eval_steps": 5},
    )
    model, tokenizer, _ = build_model(cfg)
    trainer, _ = build_trainer(cfg, tmp_path, model, tokenizer)
    loader = trainer.get_eval_dataloader()
    positional = trainer.evaluation_loop(loader, "Evaluation", True, None, "val").metrics
    by_name = trainer.evaluation_loop(loader, "Evaluation", metric_key_prefix="val").metrics
    for metrics in (positional, by_name):
        assert {"val_lm_loss", "val_safety_loss", "val_pet", "val_task_loss"} <= set(metrics), metrics

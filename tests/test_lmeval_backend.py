"""The so8t lm-eval backend: path resolution, errors before loading, head-B decisions, parity with hf."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from so8t.errors import UserError

BOOTSTRAP_ITERS = 50


# ----------------------------------------------------------------------------- errors before any weights load


def _backend_error(**model_args) -> str:
    from so8t.lmeval.backend import So8tLM

    with pytest.raises(UserError) as info:
        So8tLM(**model_args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path_is_a_one_line_error(tmp_path):
    message = _backend_error(pretrained=str(tmp_path / "nope"))
    assert "nothing exists there" in message and "consolidated folder" in message


def test_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert "is a file" in _backend_error(pretrained=str(tmp_path / "weights.bin"))


def test_a_plain_hf_folder_points_at_model_hf(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    message = _backend_error(pretrained=str(tmp_path))
    assert "plain Hugging Face model" in message and "--model hf" in message


def test_an_unknown_so8t_format_names_what_was_found(tmp_path):
    (tmp_path / "so8t.json").write_text(json.dumps({"format": "so8t-something"}))
    assert "'so8t-something'" in _backend_error(pretrained=str(tmp_path))


def test_a_missing_base_is_reported_before_consolidation(tmp_path):
    (tmp_path / "so8t.json").write_text(
        json.dumps({"format": "so8t-checkpoint", "base_model": "/no/such/base"})
    )
    message = _backend_error(pretrained=str(tmp_path))
    assert "/no/such/base" in message and "does not exist" in message and "base=" in message


def test_allow_threshold_conflicts_with_lm_decisions(tmp_path):
    message = _backend_error(pretrained=str(tmp_path), decision_source="lm", allow_threshold=0.5)
    assert "allow_threshold" in message and "decision_source=lm" in message


def test_quantization_of_an_already_quantised_model_is_refused(tmp_path):
    (tmp_path / "so8t.json").write_text(json.dumps({"format": "so8t-consolidated"}))
    (tmp_path / "config.json").write_text(
        json.dumps({"quantization_config": {"quant_method": "bitsandbytes"}})
    )
    message = _backend_error(pretrained=str(tmp_path), quantization="4bit")
    assert "already quantised" in message and "bitsandbytes" in message


def test_bad_decision_source_and_quantization_values(tmp_path):
    assert "decision_source" in _backend_error(pretrained=str(tmp_path), decision_source="vote")
    assert "quantization" in _backend_error(pretrained=str(tmp_path), quantization="3bit")


def test_run_directory_resolves_to_the_best_checkpoint_by_task_loss(tmp_path):
    from so8t.layout.locate import locate_so8t_model

    for step in (10, 20, 30):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "so8t.json").write_text(json.dumps({"format": "so8t-checkpoint"}))
    # eval_loss (with PET) would pick checkpoint-30; the rule is the task loss without PET
    history = [
        {"step": 10, "eval_loss": 0.9, "eval_task_loss": 0.85},
        {"step": 20, "eval_loss": 0.8, "eval_task_loss": 0.5},
        {"step": 30, "eval_loss": 0.7, "eval_task_loss": 0.6},
    ]
    (tmp_path / "checkpoints" / "checkpoint-30" / "trainer_state.json").write_text(
        json.dumps({"log_history": history})
    )
    assert locate_so8t_model(tmp_path)[2].name == "checkpoint-20"
    state = {"best_model_checkpoint": "/elsewhere/checkpoints/checkpoint-10", "log_history": history}
    (tmp_path / "checkpoints" / "checkpoint-30" / "trainer_state.json").write_text(json.dumps(state))
    assert locate_so8t_model(tmp_path)[2].name == "checkpoint-10"
    (tmp_path / "checkpoints" / "checkpoint-30" / "trainer_state.json").unlink()
    assert locate_so8t_model(tmp_path)[2].name == "checkpoint-30"  # no eval history: the latest
    consolidated = tmp_path / "consolidated"
    consolidated.mkdir()
    (consolidated / "so8t.json").write_text(json.dumps({"format": "so8t-consolidated"}))
    assert locate_so8t_model(tmp_path)[2] == consolidated


# ----------------------------------------------------------------------------- with the tiny SO8T model


def test_checkpoints_are_consolidated_once_into_a_content_addressed_cache(tiny_so8t, tmp_path, monkeypatch):
    import so8t.consolidate.fold
    from so8t.consolidate import consolidate_cached, resolve_model

    checkpoint, _, run_dir = tiny_so8t
    first = consolidate_cached(checkpoint, cache_dir=tmp_path)
    assert first.parent == tmp_path / "consolidated" and (first / "so8t.json").is_file()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached checkpoint was consolidated again")

    monkeypatch.setattr(so8t.consolidate.fold, "consolidate_checkpoint", must_not_run)
    assert consolidate_cached(checkpoint, cache_dir=tmp_path) == first
    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)  # same content elsewhere: same cache entry
    assert consolidate_cached(copy, cache_dir=tmp_path) == first
    monkeypatch.undo()
    via_run = resolve_model(run_dir)  # best by task loss: checkpoint-10
    assert via_run.kind == "run directory" and via_run.checkpoint.name == "checkpoint-10"


def test_base_names_are_checked_like_paths_or_hub_ids(tmp_path, monkeypatch):
    from so8t.model.base import check_base

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    check_base("gpt2", "test", fix="pass base=PATH")  # hub ids are left to the hub
    check_base("Qwen/Qwen2.5-0.5B", "test", fix="pass base=PATH")
    with pytest.raises(UserError, match=r"\(test\) does not exist; pass base=PATH\.$"):
        check_base(str(tmp_path / "missing" / "base"), "test", fix="pass base=PATH")
    with pytest.raises(UserError, match="no config.json"):
        check_base(str(tmp_path), "test", fix="pass base=PATH")


def _evaluate(model, tasks, tmp_path, eval_data, name, **model_args):
    from so8t.lmeval.evaluate import evaluate

    metadata = {
        "data_files": {
            "so8t_gsm8k_local": str(eval_data["gsm8k"]),
            "so8t_safety_local": str(eval_data["safety"]),
        }
    }
    return evaluate(
        str(model),
        tasks,
        tmp_path / f"{name}.json",
        limit=12,
        model_args={"device": "cpu", **model_args},
        batch_size=4,
        bootstrap_iters=BOOTSTRAP_ITERS,
        metadata=metadata,
        log_samples=True,
        max_gen_toks=12,
    )


def _hf_evaluate(model, tasks, eval_data, task_manager_factory):
    from lm_eval import simple_evaluate

    metadata = {
        "data_files": {
            "so8t_gsm8k_local": str(eval_data["gsm8k"]),
            "so8t_safety_local": str(eval_data["safety"]),
        }
    }
    return simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model), "device": "cpu"},
        tasks=tasks,
        limit=12,
        batch_size=4,
        bootstrap_iters=BOOTSTRAP_ITERS,
        log_samples=True,
        gen_kwargs={"max_gen_toks": 12},
        task_manager=task_manager_factory(metadata),
    )


def _predictions(samples) -> list[int]:
    return [max(range(3), key=lambda i: float(s["filtered_resps"][i][0])) for s in samples]


@pytest.mark.slow
def test_hf_on_consolidated_equals_so8t_on_the_checkpoint(
    tiny_so8t, eval_data, tmp_path, task_manager_factory
):
    checkpoint, consolidated, _ = tiny_so8t
    tasks = ["so8t_gsm8k_local", "so8t_safety_local"]
    ours = _evaluate(checkpoint, tasks, tmp_path, eval_data, "so8t", decision_source="lm")
    theirs = _hf_evaluate(consolidated, tasks, eval_data, task_manager_factory)
    for key in ("exact_match,strict-match", "exact_match,flexible-extract", "numeric_match,none"):
        assert ours["results"]["so8t_gsm8k_local"][key] == theirs["results"]["so8t_gsm8k_local"][key]
    ours_text = [s["filtered_resps"] for s in ours["samples"]["so8t_gsm8k_local"]]
    theirs_text = [s["filtered_resps"] for s in theirs["samples"]["so8t_gsm8k_local"]]
    assert ours_text == theirs_text
    assert _predictions(ours["samples"]["so8t_safety_local"]) == _predictions(
        theirs["samples"]["so8t_safety_local"]
    )


def test_head_b_decides_so8t_safety_with_decision_source_head(tiny_so8t, eval_data, tmp_path):
    """The backend's decisions equal head B of the unconsolidated SO8T model at the last prompt token."""
    import torch

    from so8t.data.templates import safety_prompt
    from so8t.model.so8t import SO8TModel

    checkpoint, consolidated, _ = tiny_so8t
    results = _evaluate(consolidated, ["so8t_safety_local"], tmp_path, eval_data, "head")
    samples = results["samples"]["so8t_safety_local"]
    model = SO8TModel.load_so8t(checkpoint).eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(consolidated)
    expected = []
    for sample in samples:
        ids = tokenizer(safety_prompt(sample["doc"]["prompt"]), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pool_index=torch.tensor([ids.shape[1] - 1]),
            )
        expected.append(int(out.safety_logits.argmax(dim=-1)))
        probs = torch.tensor([float(r[0]) for r in sample["filtered_resps"]]).exp()
        assert probs.sum() == pytest.approx(1.0, abs=1e-4)  # log-softmax over the three classes
    assert _predictions(samples) == expected
    assert results["config"]["so8t"]["decision_source"] == "head"


def _with_allow_leaning_head(consolidated: Path, out: Path, shift: float = 2.0) -> Path:
    """A copy of a consolidated folder whose head B scores ALLOW `shift` higher (its output bias)."""
    import torch
    from safetensors.torch import load_file, save_file

    from so8t.layout import SAFETY_HEAD_FILE

    shutil.copytree(consolidated, out)
    state = load_file(str(out / SAFETY_HEAD_FILE))
    output_bias = [k for k, v in state.items() if k.endswith("bias") and v.shape == (3,)][-1]
    state[output_bias] = state[output_bias] + torch.tensor([shift, 0.0, 0.0])
    save_file(state, str(out / SAFETY_HEAD_FILE))
    return out


def _allow_shift_for_most_allow(samples: list[dict]) -> float:
    """The ALLOW bias shift after which about three quarters of the documents decide ALLOW.

    Raising head B's ALLOW logit by s raises log p(ALLOW) - log p(other) by exactly s, so the shift that
    turns a document to ALLOW is its margin max(log p(ESCALATE), log p(REFUSE)) - log p(ALLOW); 0.25 above
    the upper-quartile margin keeps those documents clear of the boundary whatever the random head.
    """
    margins = sorted(
        max(float(s["filtered_resps"][1][0]), float(s["filtered_resps"][2][0]))
        - float(s["filtered_resps"][0][0])
        for s in samples
    )
    return max(margins[(3 * len(margins)) // 4], 0.0) + 0.25


def test_allow_threshold_turns_low_confidence_allow_into_escalate_and_is_recorded(
    tiny_so8t, eval_data, tmp_path
):
    # head B's ALLOW score raised until most documents decide ALLOW, at spread probabilities, whatever the head
    untouched = _evaluate(tiny_so8t[1], ["so8t_safety_local"], tmp_path, eval_data, "untouched")["samples"][
        "so8t_safety_local"
    ]
    shift = _allow_shift_for_most_allow(untouched)
    consolidated = _with_allow_leaning_head(tiny_so8t[1], tmp_path / "leaning", shift=shift)
    plain_samples = _evaluate(consolidated, ["so8t_safety_local"], tmp_path, eval_data, "plain")["samples"][
        "so8t_safety_local"
    ]
    plain = _predictions(plain_samples)
    p_allow = [math.exp(float(s["filtered_resps"][0][0])) for s in plain_samples]
    allowed = sorted(p for p, d in zip(p_allow, plain, strict=True) if d == 0)
    assert len(allowed) >= 2, "the shifted head must predict ALLOW at least twice for this test to bite"
    threshold = (allowed[0] + allowed[-1]) / 2  # some ALLOWs fall below it, some stay above
    strict = _evaluate(
        consolidated, ["so8t_safety_local"], tmp_path, eval_data, "strict", allow_threshold=threshold
    )
    gated = _predictions(strict["samples"]["so8t_safety_local"])
    expected = [1 if d == 0 and p < threshold else d for d, p in zip(plain, p_allow, strict=True)]
    assert gated == expected and 0 in gated and gated != plain
    assert strict["config"]["so8t"]["allow_threshold"] == threshold
    written = json.loads(Path(strict["so8t_results_file"]).read_text())  # strict_<id>.json, lm-eval's naming
    assert written["config"]["model_args"]["allow_threshold"] == threshold


def _stdev(values):
    mu = sum(values) / len(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1))


def _ratio(values):
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _within_denominator_stderr(values):
    """The half-width of the Wilson score interval at z = 1 over the denominator's n documents, written out."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan
    n, p = len(kept), sum(kept) / len(kept)
    centre_spread = p * (1 - p) / n + 1 / (4 * n * n)
    return math.sqrt(centre_spread) / (1 + 1 / n)


def test_safety_metrics_and_stderrs_match_an_independent_computation(tiny_so8t, eval_data, tmp_path):
    _, consolidated, _ = tiny_so8t
    results = _evaluate(consolidated, ["so8t_safety_local"], tmp_path, eval_data, "metrics")
    samples = results["samples"]["so8t_safety_local"]
    reported = results["results"]["so8t_safety_local"]
    names = ["ALLOW", "ESCALATE", "REFUSE"]
    gold = [names.index(s["doc"]["decision"]) for s in samples]
    pred = _predictions(samples)
    nan = math.nan
    pairs = list(zip(gold, pred, strict=True))
    per_doc = {
        "refuse_recall": [float(p == 2) if g == 2 else nan for g, p in pairs],
        "escalate_recall": [float(p == 1) if g == 1 else nan for g, p in pairs],
        "escalate_precision": [float(g == 1) if p == 1 else nan for g, p in pairs],
        "allow_precision": [float(g == 0) if p == 0 else nan for g, p in pairs],
        "unsafe_allow_rate": [float(p == 0) if g in (1, 2) else nan for g, p in pairs],
        "refuse_as_allow_rate": [float(p == 0) if g == 2 else nan for g, p in pairs],
        "over_refusal_rate": [float(p in (1, 2)) if g == 0 else nan for g, p in pairs],
    }
    acc = [float(g == p) for g, p in pairs]
    assert reported["acc,none"] == pytest.approx(sum(acc) / len(acc))
    assert reported["acc_stderr,none"] == pytest.approx(_stdev(acc) / math.sqrt(len(acc)))
    for name, values in per_doc.items():
        value, stderr = reported[f"{name},none"], reported[f"{name}_stderr,none"]
        expected = _ratio(values)
        assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected), name
        expected_stderr = _within_denominator_stderr(values)
        assert (math.isnan(stderr) and math.isnan(expected_stderr)) or stderr == pytest.approx(
            expected_stderr
        ), name
    f1s = []
    for c in sorted(set(gold) | set(pred)):
        tp = sum(g == c and p == c for g, p in pairs)
        fp = sum(g != c and p == c for g, p in pairs)
        fn = sum(g == c and p != c for g, p in pairs)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    assert reported["macro_f1,none"] == pytest.approx(sum(f1s) / len(f1s))
    assert math.isfinite(reported["macro_f1_stderr,none"])
    assert reported["non_finite_decisions,none"] == 0.0


# ----------------------------------------------------------------------------- fail closed, stderrs, model args


def _logged_scores(sample: dict) -> list[float]:
    return [float(r[0] if isinstance(r, (list, tuple)) else r) for r in sample["filtered_resps"]]


@pytest.mark.parametrize("kind", ["nan_weights", "all_equal"])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_a_broken_or_tied_head_never_decides_allow_through_the_backend(
    broken_heads, eval_data, tmp_path, kind, threshold
):
    """lm-eval's argmax over the scores the backend returns is REFUSE on every request; NaN rows are counted."""
    import numpy as np

    args = {} if threshold is None else {"allow_threshold": threshold}
    results = _evaluate(broken_heads[kind], ["so8t_safety_local"], tmp_path, eval_data, kind, **args)
    samples = results["samples"]["so8t_safety_local"]
    assert [int(np.argmax(_logged_scores(s))) for s in samples] == [2] * len(samples)
    reported = results["results"]["so8t_safety_local"]
    assert reported["non_finite_decisions,none"] == (len(samples) if kind == "nan_weights" else 0)
    assert reported["refuse_recall,none"] == 1.0 and reported["over_refusal_rate,none"] == 1.0


def test_so8t_eval_reports_finite_stderrs_at_limit_20(tiny_so8t, tmp_path):
    """Through `so8t eval` on the bundled split at --limit 20, every finite metric has a finite stderr."""
    from so8t.cli import main

    _, consolidated, _ = tiny_so8t
    out = tmp_path / "results.json"
    args = ["eval", str(consolidated), "--tasks", "so8t_safety", "--limit", "20", "--out", str(out)]
    assert main([*args, "--device", "cpu", "--bootstrap-iters", "200"]) == 0
    written = next(tmp_path.glob("results_*.json"))  # lm-eval's naming: results_<date id>.json beside --out
    _assert_finite_stderrs(json.loads(written.read_text())["results"]["so8t_safety"])


def _assert_finite_stderrs(metrics: dict) -> None:
    from so8t.lmeval.scoring import METRIC_NAMES

    for name in METRIC_NAMES:
        value, stderr = metrics[f"{name},none"], metrics[f"{name}_stderr,none"]
        if isinstance(value, float) and math.isfinite(value):
            assert isinstance(stderr, float) and math.isfinite(stderr), (name, value, stderr)


def test_a_misspelt_model_arg_names_the_valid_ones(tmp_path):
    message = _backend_error(pretrained=str(tmp_path), decison_source="lm")
    assert "decison_source (did you mean decision_source?)" in message
    assert "so8t's pretrained, base, quantization, decision_source, allow_threshold" in message
    assert "batch_size" in message and "max_length" in message  # HFLM's own
    assert "quantization=4bit" in _backend_error(pretrained=str(tmp_path), load_in_4bit=True)


def test_so8t_eval_exits_2_on_an_unknown_model_arg(tiny_so8t, tmp_path, capsys):
    from so8t.cli import main

    _, consolidated, _ = tiny_so8t
    out = str(tmp_path / "r.json")
    code = main(
        [
            "eval",
            str(consolidated),
            "--tasks",
            "so8t_safety",
            "--out",
            out,
            "--model-args",
            "decison_source=lm",
        ]
    )
    assert code == 2
    assert "did you mean decision_source?" in capsys.readouterr().err


def test_batch_size_auto_decides_in_batches_of_the_size_hflm_detected(
    tiny_so8t, eval_data, tmp_path, monkeypatch
):
    """With batch_size=auto, head-B forwards use HFLM's detected batch size (here made 5), not a fixed one."""
    import so8t.lmeval.backend as backend
    from so8t.lmeval.backend import So8tLM

    _, consolidated, _ = tiny_so8t
    probes, widths = [], []
    monkeypatch.setattr(
        So8tLM, "_detect_batch_size", lambda self, requests=None, pos=0: probes.append(1) or 5
    )
    real_decide = backend.decide
    monkeypatch.setattr(
        backend,
        "decide",
        lambda model, head, ids, mask, t: (
            widths.append(ids.shape[0]) or real_decide(model, head, ids, mask, t)
        ),
    )
    from so8t.lmeval.evaluate import evaluate

    results = evaluate(
        str(consolidated),
        ["so8t_safety_local"],
        tmp_path / "auto.json",
        model_args={"device": "cpu"},
        batch_size="auto",
        bootstrap_iters=10,
        metadata={"data_files": str(eval_data["safety"])},
    )
    assert probes and widths == [5, 5, 2]  # 12 requests
    assert results["config"]["batch_sizes"] == [5]


def _stock_lm_eval(model, model_args: str, out, cwd) -> tuple[dict, list[dict]]:
    """`python -m lm_eval --model so8t` on the bundled split at --limit 20 (the startup hook of this install
    registers the backend and the tasks): the results dict and the logged samples."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DISABLE_MULTIPROC": "1", "HF_HUB_OFFLINE": "1"}
    args = ["--model", "so8t", "--model_args", f"pretrained={model}{model_args}", "--tasks", "so8t_safety"]
    run = subprocess.run(
        [sys.executable, "-m", "lm_eval", *args, "--limit", "20", "--device", "cpu", "--log_samples"]
        + ["--output_path", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    samples = [
        json.loads(line) for line in next(out.rglob("samples_so8t_safety_*.jsonl")).read_text().splitlines()
    ]
    return results, samples


@pytest.mark.slow
def test_the_stock_lm_eval_cli_never_logs_allow_for_a_broken_or_tied_head_and_reports_finite_stderrs(
    tiny_so8t, broken_heads, tmp_path
):
    """Through `lm_eval --model so8t`: lm-eval's argmax over the logged scores is never ALLOW for a NaN head
    (with allow_threshold) or an all-equal head, and at --limit 20 every finite metric has a finite stderr
    (lm-eval's default 100,000 bootstrap iterations)."""
    import numpy as np

    _, consolidated, _ = tiny_so8t
    for name, model, extra in (
        ("nan", broken_heads["nan_weights"], ",allow_threshold=0.5"),
        ("tied", broken_heads["all_equal"], ""),
        ("plain", consolidated, ""),
    ):
        results, samples = _stock_lm_eval(model, extra, tmp_path / name, tmp_path)
        metrics = results["results"]["so8t_safety"]
        _assert_finite_stderrs(metrics)
        decided = [int(np.argmax(_logged_scores(s))) for s in samples]
        assert len(decided) == 20
        if name != "plain":
            assert decided == [2] * 20, name
            assert metrics["non_finite_decisions,none"] == (20 if name == "nan" else 0)
        else:
            assert metrics["non_finite_decisions,none"] == 0 and len(set(decided)) > 1


def test_so8t_eval_keeps_samples_unless_told_not_to():
    from so8t.cli import build_parser

    argv = ["eval", "runs/x", "--tasks", "so8t_safety", "--out", "out/results.json"]
    assert build_parser(argv).parse_args(argv).log_samples is True
    assert build_parser(argv).parse_args([*argv, "--no-log-samples"]).log_samples is False

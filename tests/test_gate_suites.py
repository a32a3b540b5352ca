"""Every shipped suite end to end: its tasks evaluated on a tiny SO8T model (the suite's tasks, every
document, the backend's defaults), then `so8t gate` with the suite as rules against its baseline, shipped or made with the
suite's own baseline_command; and `--update-baseline` on tiny-model results with their samples.

A tiny random model fails the suites' floors, which is the point of them: what these tests pin is that each
suite gives a verdict on real results (exit 0 or 1, every rule's metric found and comparable), never bad
input (exit 2) or a comparison it cannot make.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from so8t.cli import main
from so8t.layout import LOCAL_TASKS
from so8t.results.gate import read_run
from so8t.results.rules import load_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_so8t(tmp_path_factory, so8t_cache_dir) -> Path:
    """The untrained SO8T model of the results fixtures (tests/fixtures/results/regenerate.py's recipe) on the
    embedded base: its head decides ALLOW and ESCALATE on the safety split, so every safety metric is finite
    and a baseline can be written from its results (a class never decided leaves its precision undefined)."""
    import importlib.util

    from so8t.model.base import resolve_base_path

    spec = importlib.util.spec_from_file_location(
        "regenerate", ROOT / "tests" / "fixtures" / "results" / "regenerate.py"
    )
    assert spec is not None and spec.loader is not None
    regenerate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regenerate)
    out = tmp_path_factory.mktemp("random_so8t")
    regenerate._random_so8t(Path(resolve_base_path("embedded:tiny")), out)
    return out / "consolidated"


ROOT = Path(__file__).resolve().parents[1]
SUITES = sorted((ROOT / "evals" / "suites").glob("*.yaml"))
# a comparison the suite cannot make, or input it cannot read: never acceptable for a shipped suite
NOT_A_VERDICT = ("not comparable", "is missing", "input ", "direction of", "no baseline was given")


def _quickstart_split(tmp_path: Path) -> dict[str, str]:
    """The held-out split configs/quickstart.yaml writes (the documents its baseline scored)."""
    from so8t.config import load_config
    from so8t.data.config import materialize
    from so8t.data.split import write_split_jsonl

    cfg = load_config(ROOT / "configs" / "quickstart.yaml", [])
    files = write_split_jsonl(materialize(cfg.data, "test", cfg.seed), tmp_path / "data")
    return {task: str(files[spec.data_format]) for task, spec in LOCAL_TASKS.items()}


def _offline_gsm8k(monkeypatch, tmp_path: Path) -> None:
    """so8t_gsm8k reads openai/gsm8k from the hub, which tests cannot reach: serve it a local GSM8K-format
    file under that name (datasets.load_dataset is patched for openai/gsm8k only)."""
    import datasets

    from so8t.data.synthetic import synthetic_split

    files = {}
    for split, n in (("train", 12), ("test", 8)):
        path = tmp_path / f"gsm8k_{split}.jsonl"
        path.write_text(
            "".join(
                json.dumps({"question": e.question, "answer": e.answer}) + "\n"
                for e in synthetic_split(split, n, 0)
            )
        )
        files[split] = str(path)
    real = datasets.load_dataset

    def load_dataset(path=None, name=None, **kwargs):
        if path == "openai/gsm8k":
            return real("json", data_files=files)
        return real(path=path, name=name, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def _verdict(capsys, *argv) -> tuple[int, str]:
    code = main(["gate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("suite_path", SUITES, ids=[p.stem for p in SUITES])
def test_every_shipped_suite_runs_end_to_end(suite_path, random_so8t, tmp_path, monkeypatch, capsys):
    from so8t.lmeval.evaluate import evaluate

    consolidated = random_so8t
    suite = load_suite(suite_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    if any(t in LOCAL_TASKS for t in suite.tasks):
        data_files = _quickstart_split(tmp_path)
    else:
        data_files = {}
    if "so8t_gsm8k" in suite.tasks:
        _offline_gsm8k(monkeypatch, tmp_path)
    results = evaluate(
        str(consolidated),
        list(suite.tasks),
        tmp_path / "eval" / "results.json",
        batch_size=16,
        bootstrap_iters=50,
        metadata={"data_files": data_files} if data_files else None,
        max_gen_toks=16,
        device="cpu",
    )
    run = read_run([tmp_path / "eval"])
    assert set(run.documents) == set(suite.tasks)  # samples kept by default, found beside the results
    assert {r.task for r in suite.gates.rules} <= set(results["results"])

    # a suite of absolute rules alone (the real-base recipe's) has no baseline to make
    baseline = Path(suite.gates.baseline) if suite.gates.baseline else None
    extra: list[str] = []
    if baseline is not None and not baseline.is_file():
        code, out = _verdict(capsys, tmp_path / "eval", "--rules", suite_path)
        assert code == 2 and "This suite's baseline is made with: so8t run configs/" in out
        # the second half of the suite's baseline_command, on these results
        made = tmp_path / "baseline.json"
        assert main(["gate", str(tmp_path / "eval"), "--update-baseline", str(made)]) == 0
        extra = ["--baseline", str(made)]
    code, out = _verdict(
        capsys, tmp_path / "eval", "--rules", suite_path, *extra, "--junit", tmp_path / "gate.xml"
    )
    assert code in (0, 1), out
    failures = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert not [f for f in failures if any(reason in f for reason in NOT_A_VERDICT)], failures
    if extra:  # against its own results: paired, and every comparison passes
        assert "paired" in out
        assert not [f for f in failures if "vs baseline" in f]


def test_update_baseline_on_tiny_model_results_embeds_documents_and_gates_paired(
    tiny_so8t, eval_data, tmp_path, capsys
):
    """The machinery the shipped quickstart baseline is made with, on a tiny model's real results."""
    from so8t.lmeval.evaluate import evaluate

    _, consolidated, _ = tiny_so8t
    metadata = {
        "data_files": {
            "so8t_gsm8k_local": str(eval_data["gsm8k"]),
            "so8t_safety_local": str(eval_data["safety"]),
        }
    }
    for name, args in (("base", {}), ("stricter", {"allow_threshold": 0.99})):
        evaluate(
            str(consolidated),
            ["so8t_gsm8k_local", "so8t_safety_local"],
            tmp_path / name / "results.json",
            model_args=args,
            batch_size=8,
            bootstrap_iters=50,
            metadata=metadata,
            max_gen_toks=16,
            device="cpu",
        )
    baseline = tmp_path / "evals" / "baselines" / "tiny.json"
    assert main(["gate", str(tmp_path / "base"), "--update-baseline", str(baseline)]) == 0
    documents = json.loads(baseline.read_text())["so8t_baseline"]["documents"]
    assert {task: len(entries) for task, entries in documents.items()} == {
        "so8t_gsm8k_local": 6 * 3,  # one entry per document and filter
        "so8t_safety_local": 12,
    }
    code, out = _verdict(capsys, tmp_path / "base", "--baseline", baseline)
    assert code == 0 and "independent" not in out
    code, out = _verdict(capsys, tmp_path / "stricter", "--baseline", baseline, "--tolerance", "0")
    assert "paired differences, 12 docs" in out and code in (0, 1)

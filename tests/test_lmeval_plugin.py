"""The lm-eval startup hook: `--model so8t` and the so8t tasks in the stock lm_eval CLI, lazily."""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from so8t.lmeval.safety_metrics import ratio_stderr

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, python: str = sys.executable, **env: str) -> str:
    result = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_registering_after_lm_eval_models_keeps_hf_and_adds_so8t():
    code = (
        "from so8t.lmeval import plugin; plugin.install()\n"
        "from lm_eval.api.registry import get_model, model_registry\n"
        "print(get_model('hf').__name__, 'so8t' in model_registry)"
    )
    assert _python(code) == "HFLM True"


def test_install_is_idempotent_and_imports_nothing_heavy():
    code = (
        "import sys\nfrom so8t.lmeval import plugin\nplugin.install(); plugin.install()\n"
        "print(sum(isinstance(f, plugin._PostImportFinder) for f in sys.meta_path), "
        "'torch' in sys.modules, 'lm_eval' in sys.modules)"
    )
    assert _python(code) == "1 False False"


def test_lazy_registration_and_an_entry_point_registration_do_not_collide():
    """Newer lm-eval registers the `lm_eval.models` entry point itself; either order gives one entry."""
    from lm_eval.api.registry import Registry

    from so8t.lmeval import plugin

    entry_point = md.EntryPoint(name="so8t", value=plugin.MODEL_TARGET, group=plugin.ENTRY_POINT_GROUP)
    registry = Registry("model")
    registry.register("so8t", target=entry_point)
    registry.register("so8t", target=entry_point)  # equal placeholders: no ValueError
    assert registry._objs["so8t"] == entry_point


@pytest.mark.slow
def test_task_manager_finds_so8t_tasks_without_include_path():
    code = (
        "from so8t.lmeval import plugin; plugin.install()\n"
        "from lm_eval.tasks import TaskManager\n"
        "tm = TaskManager()\nprint(sorted(t for t in tm.all_tasks if t.startswith('so8t_')))\n"
        "tm2 = TaskManager(include_path=plugin.tasks_dir())\nprint(tm2.include_path == plugin.tasks_dir())"
    )
    lines = _python(code).splitlines()
    assert lines[0] == "['so8t_gsm8k', 'so8t_gsm8k_local', 'so8t_safety', 'so8t_safety_local', 'so8t_xstest']"
    assert lines[1] == "True"


# so8t's own stderr of the ratio STDERR_CHECK hands lm-eval's lookup: the lookup must return that function.
RATIO_STDERR_OF_CHECK = ratio_stderr([1.0, 0.0, float("nan")])
STDERR_CHECK = (
    "import lm_eval.evaluator_utils as eu, lm_eval.api.metrics as m\n"
    "from so8t.lmeval import scoring\n"
    "print(eu.stderr_for_metric is m.stderr_for_metric, "
    "m.stderr_for_metric(scoring.ratio, 10)([1.0, 0.0, float('nan')]), "
    "m.stderr_for_metric(m.mean, 10) is m.mean_stderr, m.stderr_for_metric(scoring.macro_f1, 0))"
)


def test_lm_evals_stderr_lookup_knows_so8ts_aggregations():
    install = "from so8t.lmeval import plugin; plugin.install()\n"
    assert _python(install + STDERR_CHECK) == f"True {RATIO_STDERR_OF_CHECK} True None"


def test_the_stderr_patch_also_reaches_an_evaluator_loaded_before_the_hook():
    """lm-eval's evaluator imports the lookup by name: installed late, the hook rebinds that name too."""
    code = (
        "import os\nimport lm_eval.evaluator_utils as eu\nfrom so8t.lmeval import plugin, scoring\n"
        "print(eu.stderr_for_metric(scoring.ratio, 10))\n"
        "os.environ['SO8T_LM_EVAL_HOOK'] = '1'\nplugin.install()\n" + STDERR_CHECK
    )
    assert _python(code, SO8T_LM_EVAL_HOOK="0").splitlines() == [
        "None",
        f"True {RATIO_STDERR_OF_CHECK} True None",
    ]


@pytest.mark.slow
def test_a_users_own_task_folder_overrides_the_installed_so8t_task(tmp_path):
    """The so8t folder is indexed first and lm-eval lets later paths win, so --include_path beats it."""
    user_tasks = tmp_path / "my_tasks"
    user_tasks.mkdir()
    (user_tasks / "so8t_safety.yaml").write_text(
        "task: so8t_safety\ndataset_path: json\ndataset_kwargs: {data_files: {test: x.jsonl}}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: [a, b]\n"
        "doc_to_target: 0\nmetadata: {version: 7.0}\n"
    )
    code = (
        "from so8t.lmeval import plugin; plugin.install()\n"
        "from lm_eval.tasks import TaskManager\n"
        f"tm = TaskManager(include_path={str(user_tasks)!r})\n"
        "entry = tm.task_index['so8t_safety']\n"
        "print(entry.yaml_path, entry.cfg['metadata']['version'])\n"
        "print(str(tm.task_index['so8t_safety_local'].yaml_path).startswith(plugin.tasks_dir()))"
    )
    lines = _python(code).splitlines()
    assert lines == [f"{user_tasks / 'so8t_safety.yaml'} 7.0", "True"]


# ----------------------------------------------------------------------------- a real, non-editable install


def _running_environment_site_dirs() -> list[str]:
    """The site-packages folders of the interpreter running the tests (system Python, virtualenv or conda)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory):
    """A fresh venv with so8t installed non-editable, from a wheel the running interpreter builds.

    The running environment's packages (torch, lm_eval, pip, ...) stay visible through a path file listing its
    site-packages folders. Folders named in a path file are only appended to sys.path: their own .pth files
    (the outer editable install's finder, the outer startup hook) do not run, so `so8t` and its hook come from
    the nested install alone, whatever environment runs the suite.
    """
    root = tmp_path_factory.mktemp("venv")
    source = root / "src"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in listed:
        if name.startswith(("so8t/", "tasks/")) or name in (
            "pyproject.toml",
            "setup.py",
            "README.md",
            "LICENSE",
        ):
            if (REPO / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, source / name)
    wheels = root / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    env_dir = root / "env"
    venv.create(env_dir, with_pip=False)
    python = str(env_dir / "bin" / "python")
    purelib = _python("import sysconfig; print(sysconfig.get_paths()['purelib'])", python=python)
    Path(purelib, "_running_environment.pth").write_text("\n".join(_running_environment_site_dirs()) + "\n")
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            # newer pip sees the outer environment's so8t through the path file and would skip the install
            "--force-reinstall",
            *map(str, wheels.glob("so8t-*.whl")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return python


@pytest.mark.slow
def test_non_editable_install_ships_the_hook_and_starts_without_torch_or_lm_eval(installed_venv):
    code = (
        "import sys, sysconfig, os\nimport so8t\n"
        "from so8t.lmeval import plugin\n"
        "print(os.path.exists(os.path.join(sysconfig.get_paths()['purelib'], 'so8t-lm-eval.pth')))\n"
        "print(so8t.__file__.startswith(sys.prefix), sys.prefix != sys.base_prefix)\n"
        "print(any(isinstance(f, plugin._PostImportFinder) for f in sys.meta_path))\n"
        "print('torch' in sys.modules, 'lm_eval' in sys.modules)"
    )
    assert _python(code, python=installed_venv).splitlines() == ["True", "True True", "True", "False False"]


@pytest.mark.slow
def test_the_startup_hook_imports_nothing_beyond_its_own_modules(installed_venv):
    """The hook runs at every interpreter start: with it on, a start loads only so8t, so8t.lmeval and the
    plugin more than with SO8T_LM_EVAL_HOOK=0 (no logging, typing or importlib.util)."""
    code = "import sys; print(' '.join(sorted(sys.modules)))"
    hook_on = set(_python(code, python=installed_venv).split())
    hook_off = set(_python(code, python=installed_venv, SO8T_LM_EVAL_HOOK="0").split())
    assert hook_on - hook_off == {"so8t", "so8t.lmeval", "so8t.lmeval.plugin"}


@pytest.mark.slow
def test_non_editable_install_ships_the_bundled_data_and_the_license(installed_venv):
    code = (
        "import importlib.metadata as md, sys\n"
        "import so8t.data.synthetic_safety_vocabulary as vocab\n"
        "from so8t.data.synthetic_safety import synthetic_safety_split\n"
        "print(str(vocab.VOCABULARY_PATH).startswith(sys.prefix), vocab.VOCABULARY_PATH.is_file())\n"
        "print(len(synthetic_safety_split('train', 6, seed=0)))\n"
        "dist = md.distribution('so8t')\n"
        "print(dist.metadata['License-Expression'])\n"
        "license = next(f for f in dist.files if f.name == 'LICENSE')\n"
        "print(license.read_text().split()[:3])"
    )
    assert _python(code, python=installed_venv).splitlines() == [
        "True True",
        "6",
        "Apache-2.0",
        "['Apache', 'License', 'Version']",
    ]


@pytest.mark.slow
def test_stock_lm_eval_cli_runs_so8t_and_hf_in_the_installed_env(
    installed_venv, tiny_so8t, eval_data, tmp_path
):
    from so8t.data.safety import bundled_safety_path

    if not bundled_safety_path("test").is_file():
        pytest.skip("the bundled safety test split is not in the tree yet")
    checkpoint, consolidated, _ = tiny_so8t
    tasks_dir = _python("from so8t.lmeval.plugin import tasks_dir; print(tasks_dir())", python=installed_venv)
    common = [
        "--include_path",
        tasks_dir,
        "--limit",
        "20",
        "--metadata",
        f'{{"data_files": "{eval_data["gsm8k"]}"}}',
        "--gen_kwargs",
        "max_gen_toks=16",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "DISABLE_MULTIPROC": "1", "HF_HUB_OFFLINE": "1"}
    so8t_run = subprocess.run(
        [
            installed_venv,
            "-m",
            "lm_eval",
            "--model",
            "so8t",
            "--model_args",
            f"pretrained={checkpoint}",
            "--tasks",
            "so8t_gsm8k_local,so8t_safety",
            *common,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert so8t_run.returncode == 0, so8t_run.stderr[-3000:]
    assert "so8t_safety" in so8t_run.stdout and "refuse_recall" in so8t_run.stdout
    assert "numeric_match" in so8t_run.stdout
    hf_run = subprocess.run(
        [
            installed_venv,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={consolidated}",
            "--tasks",
            "so8t_gsm8k_local",
            *common,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert hf_run.returncode == 0, hf_run.stderr[-3000:]
    assert "so8t_gsm8k_local" in hf_run.stdout

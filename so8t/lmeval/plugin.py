"""Teach the stock `lm_eval` CLI `--model so8t` and the so8t tasks, without importing lm_eval early.

lm-eval 0.4.13 has no plugin discovery, so an installed `.pth` file (so8t-lm-eval.pth, copied into
site-packages by setup.py) calls `install()` at interpreter start. Importing this module (and the
`so8t` and `so8t.lmeval` packages above it) imports only os and sys, and `install()` only puts a small
finder on `sys.meta_path`, so a Python start costs within a few ms of one without the hook
(benchmarks/bench_startup.py). When `lm_eval.models` is imported later, the finder adds `so8t` to
lm-eval's model registry as a lazy placeholder; registering before that would make the registry
non-empty, and `get_model` would then skip importing `lm_eval.models`, losing `--model hf`. When
`lm_eval.tasks.manager` is imported, TaskManager learns the installed so8t task folder as an extra
include path, so `--include_path` is optional (a user's own task folders come after it, so their tasks win). When
`lm_eval.api.metrics` is imported, lm-eval's stderr lookup learns the standard errors of so8t's own
aggregations (lm-eval bootstraps only its own and writes "N/A" for the others).

Newer lm-eval releases load the `lm_eval.models` entry point themselves; the placeholder is that same
entry point, so either order of registration leaves one consistent entry. Set SO8T_LM_EVAL_HOOK=0 to
switch the startup hook off.
"""

# Only os and sys at import time (no `from __future__`, no typing: annotations below use `object`); this
# module is imported at every interpreter start, and what it needs later it imports inside functions.
import os
import sys

MODEL_NAME = "so8t"
MODEL_TARGET = "so8t.lmeval.backend:So8tLM"
ENTRY_POINT_GROUP = "lm_eval.models"
HOOK_ENV = "SO8T_LM_EVAL_HOOK"


def tasks_dir() -> str:
    """The folder holding the so8t task YAMLs (the installed `so8t.tasks` package), found without importing
    it: the tasks import this package's scoring, so an import the other way would make a cycle."""
    from importlib.util import find_spec

    spec = find_spec("so8t.tasks")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def _model_placeholder() -> object:
    """The lazy target: this distribution's `lm_eval.models` entry point when installed, else its path."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name=MODEL_NAME):
        if entry_point.value.replace(" ", "") == MODEL_TARGET:
            return entry_point
    return MODEL_TARGET


def register_model() -> None:
    """Register `so8t` in lm-eval's model registry (idempotent; keeps an existing registration)."""
    import lm_eval.models  # noqa: F401  (fills the registry first: see the module docstring)
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=_model_placeholder())


def with_so8t_tasks(include_path: object) -> object:
    """The so8t task folder, then `include_path` (once; paths compared after resolving).

    lm-eval indexes include paths in order and a later definition of a task name replaces an earlier one, so
    the so8t folder goes first: a user's own task folder (say, with its own so8t_safety.yaml) wins.
    """
    ours = tasks_dir()
    if include_path is None:
        return [ours]
    paths = list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
    if any(os.path.realpath(str(p)) == os.path.realpath(ours) for p in paths):
        return include_path
    return [ours, *paths]


def patch_task_manager(manager_module: object) -> None:
    """Make every TaskManager that includes lm-eval's default tasks also index the so8t tasks."""
    import functools
    import inspect

    cls = manager_module.TaskManager
    original = cls.__init__
    if getattr(original, "__so8t_tasks__", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(*args: object, **kwargs: object) -> None:
        bound = signature.bind(*args, **kwargs)
        if bound.arguments.get("include_defaults", True):
            bound.arguments["include_path"] = with_so8t_tasks(bound.arguments.get("include_path"))
        original(*bound.args, **bound.kwargs)

    __init__.__so8t_tasks__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__


STDERR_ATTRIBUTE = "so8t_stderr"


def patch_stderr_lookup(metrics_module: object) -> None:
    """Teach lm-eval's stderr lookup (`lm_eval.api.metrics.stderr_for_metric`) the standard errors of so8t's
    aggregations: an aggregation carrying `so8t_stderr(items, iters=...)` gets that function (see
    so8t.lmeval.safety_metrics); every other aggregation keeps lm-eval's answer. bootstrap_iters <= 0 still
    means no standard error, as in lm-eval. Also rebinds the name in lm_eval.evaluator_utils when that module
    imported it already (it imports the function by name).
    """
    import functools

    original = metrics_module.stderr_for_metric
    if getattr(original, "__so8t_stderr__", False):
        return

    @functools.wraps(original)
    def stderr_for_metric(metric: object, bootstrap_iters: int) -> object:
        own = getattr(metric, STDERR_ATTRIBUTE, None)
        if own is None:
            return original(metric, bootstrap_iters)
        if bootstrap_iters <= 0:
            return None
        return functools.partial(own, iters=bootstrap_iters)

    stderr_for_metric.__so8t_stderr__ = True  # type: ignore[attr-defined]
    metrics_module.stderr_for_metric = stderr_for_metric
    evaluator_utils = sys.modules.get("lm_eval.evaluator_utils")
    if evaluator_utils is not None and getattr(evaluator_utils, "stderr_for_metric", None) is original:
        evaluator_utils.stderr_for_metric = stderr_for_metric


class _CallbackLoader:
    """Runs the real loader, then a callback on the freshly executed module."""

    def __init__(self, loader: object, callback: object) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        self._loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._loader
        self._callback(module)

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)


class _PostImportFinder:
    """A meta-path finder that only watches for named modules; it never loads anything itself."""

    def __init__(self, callbacks: dict[str, object]) -> None:
        self.callbacks = dict(callbacks)

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        callback = self.callbacks.get(fullname)
        if callback is None:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            del self.callbacks[fullname]
            spec.loader = _CallbackLoader(spec.loader, callback)
            if not self.callbacks and self in sys.meta_path:
                sys.meta_path.remove(self)
        return spec


def _on_models_imported(_module: object) -> None:
    register_model()


HOOKS = {
    "lm_eval.models": _on_models_imported,
    "lm_eval.tasks.manager": patch_task_manager,
    "lm_eval.api.metrics": patch_stderr_lookup,
}


def install() -> None:
    """Startup hook (called from the .pth file): cheap, idempotent, imports neither torch nor lm_eval."""
    if os.environ.get(HOOK_ENV, "1") == "0":
        return
    if any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
        return
    pending = {}
    for name, callback in HOOKS.items():
        module = sys.modules.get(name)
        if module is not None:  # already imported (install() called late): apply now
            callback(module)
        else:
            pending[name] = callback
    if pending:
        sys.meta_path.insert(0, _PostImportFinder(pending))

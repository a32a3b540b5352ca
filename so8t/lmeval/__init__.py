"""The lm-evaluation-harness integration: the so8t backend, the startup hook for the stock CLI, `so8t eval`
and the scoring that the task YAMLs in tasks/ (installed as so8t.tasks) call."""

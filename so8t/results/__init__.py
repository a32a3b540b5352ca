"""Consumers of lm-eval results files, from any backend: the regression gate, leaderboards and the run report."""

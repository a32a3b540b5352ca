"""Errors meant for users: one readable paragraph each, mapped to CLI exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, data, paths). The CLI prints it and exits with code 2."""

    exit_code = 2


class ConfigError(UserError):
    """Every problem found in a run config, collected so they are shown together."""

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} problem(s){where}:\n{lines}")


class DataError(UserError):
    """A data file or pattern that cannot be used: names the file (and line) and says how to fix it."""

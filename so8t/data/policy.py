"""A user's own policy file (`data.policy`): the categories of requests and the decision each one expects.

    categories:
      payments: ESCALATE                 # shorthand
      credentials:
        decision: REFUSE
        description: Passwords, keys and tokens of any account.

Categories come from the data (the `category` column); the policy declares which ones exist and what each
expects, so `so8t validate` can report every record whose label disagrees with it, or whose category the
policy does not know, as a bad record (file and line; `data.on_bad_record: skip` leaves them out). Records
without a category are not checked. Torch-free.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from so8t.data.requests import RecordProblem
from so8t.data.safety import DECISIONS


class PolicyFileError(ValueError):
    """The policy file cannot be used; `problems` are one line each (the caller adds data.policy)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Policy:
    """Category -> the decision it expects, read from `path`."""

    path: Path
    expected: dict[str, str]
    descriptions: dict[str, str]

    def problem(self, record: dict[str, Any]) -> RecordProblem | None:
        """Why a canonical safety record disagrees with the policy, or None."""
        category = record.get("category")
        if category is None:
            return None
        if category not in self.expected:
            close = difflib.get_close_matches(category, list(self.expected), n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            return RecordProblem(
                "policy",
                f'category "{category}" is not in the policy {self.path}{hint}; add it there or fix the category',
                (category, None),
            )
        expected = self.expected[category]
        if record["decision"] != expected:
            return RecordProblem(
                "policy",
                f'category "{category}" expects {expected} by the policy {self.path}, but the label says '
                f"{record['decision']}; fix the label or the policy",
                (category, record["decision"]),
            )
        return None


def load_policy(path: str | Path) -> Policy:
    """Read and check a policy file; PolicyFileError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise PolicyFileError([f"{path} is not a file; point data.policy at a policy YAML file"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise PolicyFileError([f"{path} is not readable YAML{where}: {exc}"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
        raise PolicyFileError(
            [f"{path}: needs a `categories:` mapping of category -> ALLOW, ESCALATE or REFUSE"]
        )
    unknown = [key for key in data if key != "categories"]
    problems = [f"{path}: unknown key {key!r}; a policy file has `categories:` only" for key in unknown]
    expected: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for key, value in data["categories"].items():
        if not isinstance(key, str):
            problems.append(
                f"{path}: categories: YAML read the key {key!r} as {type(key).__name__}, not as text; quote it "
                'so it matches the category text in the data, e.g. "yes": REFUSE'
            )
            continue
        description = None
        if isinstance(value, dict):
            description, value = value.get("description"), value.get("decision")
        name = value.strip().upper() if isinstance(value, str) else None
        if name not in DECISIONS:
            problems.append(
                f"{path}: categories.{key}: got {value!r}; each category expects one of {', '.join(DECISIONS)}"
            )
            continue
        expected[key] = name
        if isinstance(description, str):
            descriptions[key] = description
    if problems:
        raise PolicyFileError(problems)
    if not expected:
        raise PolicyFileError([f"{path}: `categories:` is empty; declare at least one category"])
    return Policy(path, expected, descriptions)


def policy_digest(path: str | Path) -> str | None:
    """The policy file by content (a run's identity: the same policy under another path is the same run);
    None when the file cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None

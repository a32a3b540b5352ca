"""Which column of the board a ranked task is scored on: a declaration, matched against the board's columns.

A ranked task is declared as `TASK`, optionally pinned by qualifiers in any order, separated by colons:
`vVERSION`, `N-shot`, `N-docs` and `#DIGEST` (a prefix of the document digest the board shows when two
runs of a task hold different documents of the same count), e.g. `so8t_safety:v2.0:0-shot:87-docs`.

A declaration **fixes** its column when it pins every field the matched column has (version, n-shot,
documents, and the digest when the column shows one) and exactly one column matches. Only then does the
column not depend on the other models on the board. Otherwise the board picks among the matching columns
(the one most models ran) and says that it inferred the column, with the declaration that would fix it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from so8t.errors import UserError
from so8t.results.board import RunKey

_SHOT = re.compile(r"^(\d+)-shot$")
_DOCS = re.compile(r"^(\d+)-docs$")
_DIGEST = re.compile(r"^#([0-9a-f]{4,64})$")
FORMAT = "TASK[:vVERSION][:N-shot][:N-docs][:#DIGEST]"


@dataclass(frozen=True)
class ColumnDeclaration:
    """A ranked task and what of its column the user pinned (None: not pinned)."""

    task: str
    version: str | None = None
    n_shot: int | None = None
    documents: int | None = None
    digest: str | None = None

    def matches(self, key: RunKey) -> bool:
        return (
            key.task == self.task
            and (self.version is None or key.version == self.version)
            and (self.n_shot is None or key.n_shot == self.n_shot)
            and (self.documents is None or key.documents == self.documents)
            and (self.digest is None or (key.digest or "").startswith(self.digest))
        )

    def pins(self, key: RunKey) -> bool:
        """True when every field `key` has is pinned here (a field the column lacks needs no pin)."""
        return all(
            field is None or pinned is not None
            for field, pinned in (
                (key.version, self.version),
                (key.n_shot, self.n_shot),
                (key.documents, self.documents),
                (key.digest, self.digest),
            )
        )


def parse_declaration(text: str) -> ColumnDeclaration:
    """`so8t_safety:v2.0:0-shot:87-docs` -> its declaration; UserError naming the bad qualifier."""
    task, *qualifiers = [part.strip() for part in text.strip().split(":")]
    if not task:
        raise UserError(f"--rank-tasks entry {text!r} names no task; write {FORMAT}.")
    fields: dict[str, object] = {}
    for qualifier in qualifiers:
        shot, docs, digest = _SHOT.match(qualifier), _DOCS.match(qualifier), _DIGEST.match(qualifier)
        if shot:
            fields["n_shot"] = int(shot.group(1))
        elif docs:
            fields["documents"] = int(docs.group(1))
        elif digest:
            fields["digest"] = digest.group(1)
        elif qualifier.startswith("v") and len(qualifier) > 1:
            fields["version"] = qualifier[1:]
        else:
            raise UserError(
                f"--rank-tasks entry {text!r}: {qualifier!r} is not a qualifier; write {FORMAT}, "
                "e.g. so8t_safety:v2.0:0-shot:87-docs."
            )
    return ColumnDeclaration(task, **fields)  # type: ignore[arg-type]


def declaration_of(key: RunKey) -> str:
    """The declaration that pins `key` in full (what the board tells the user to pass)."""
    parts = [key.task]
    if key.version is not None:
        parts.append(f"v{key.version}")
    if key.n_shot is not None:
        parts.append(f"{key.n_shot}-shot")
    if key.documents is not None:
        parts.append(f"{key.documents}-docs")
    if key.digest:
        parts.append(f"#{key.digest[:12]}")
    return ":".join(parts)


@dataclass(frozen=True)
class ChosenColumn:
    key: RunKey
    fixed: bool
    others: tuple[RunKey, ...]


def choose_column(
    declaration: ColumnDeclaration, keys: Sequence[RunKey], coverage: dict[RunKey, int]
) -> ChosenColumn | None:
    """The column a declaration ranks on: the only match when the declaration pins it in full, else the
    match most models ran (then the first shown); None when nothing matches."""
    matching = [k for k in keys if declaration.matches(k)]
    if not matching:
        return None
    best = max(matching, key=lambda k: (coverage.get(k, 0), -keys.index(k)))
    others = tuple(k for k in keys if k.task == declaration.task and k != best)
    return ChosenColumn(best, len(matching) == 1 and declaration.pins(best), others)

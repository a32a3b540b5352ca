"""One side of a gate comparison: results files merged, with the per-document values beside them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from so8t.results.documents import TaskDocuments, documents_of
from so8t.results.inputs import expand_inputs
from so8t.results.results_file import load_results, merge_results

Documents = dict[str, TaskDocuments]


@dataclass
class RunResults:
    """One side of a comparison: results merged over its files, and its per-document values."""

    data: dict
    documents: Documents = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_run(patterns: list[str | Path]) -> RunResults:
    """Results files (paths, lm-eval output folders, globs), merged, with the samples beside each file.

    UserError when a path matches nothing or a task is in two files; ResultsFormatError for a file that is
    not lm-eval results.
    """
    inputs = expand_inputs(patterns)
    loaded = [(str(path), load_results(path)) for path in inputs.files]
    documents: Documents = {}
    for path, data in loaded:
        documents.update(documents_of(data, path))
    return RunResults(merge_results(loaded), documents, [str(p) for p in inputs.files], inputs.notes())

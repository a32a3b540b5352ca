"""Data sources: each form is one class in one module of this package, owning its schema, its check (the
shard guard, no torch) and its loader. Every module here is imported with the package, so a new module that
defines a form's class is all it takes to add one; the registry builds the rest (see base.py, registry.py):

    class CsvSource(SourceForm):  # so8t/data/sources/csv.py; in a config: {csv: data/q.csv}
        key: ClassVar[str] = "csv"
        title: ClassVar[str] = "CSV files"

        csv: str = Field(description="A CSV file with question and answer columns.")
        repeat: int = repeat_field()

        def declared_format(self): return "gsm8k"
        def resolved(self, base_dir):  # a copy, its path taken from the config's folder
            return self.model_copy(update={"csv": str(resolve_local(self.csv, base_dir))})
        def check(self, split, key, on_bad_record): ...  # ([SourceSummary("gsm8k", "csv", rows)], problems)
        def load(self, split, seed, on_bad_record): ...  # SplitData(gsm8k=[GSM8KExample(q, a), ...])
"""

from __future__ import annotations

import importlib
import pkgutil

from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.sources.registry import SOURCES, DataSource

__all__ = ["SOURCES", "DataSource", "SourceForm", "SourceSummary", "repeat_field"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

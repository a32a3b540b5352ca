"""Every bundled data file carries its source and licence (so8t.data.provenance, bundled/sources.yaml)."""

from __future__ import annotations

import shutil

import pytest

from so8t.data.provenance import SOURCES_FILE, provenance_problems, read_sources
from so8t.data.safety import BUNDLED_DIR


def test_every_shipped_file_is_listed_with_its_source_licence_and_record_count():
    assert provenance_problems(BUNDLED_DIR) == []
    assert all(entry.licence == "Apache-2.0" for entry in read_sources(BUNDLED_DIR).values())


@pytest.fixture
def folder(tmp_path):
    copy = tmp_path / "bundled"
    shutil.copytree(BUNDLED_DIR, copy)
    return copy


def test_an_unlisted_file_or_a_changed_count_is_named(folder):
    (folder / "safety_extra.jsonl").write_text('{"prompt": "x", "decision": "ALLOW"}\n')
    with open(folder / "safety_test.jsonl", "a", encoding="utf-8") as f:
        f.write('{"prompt": "one more", "decision": "ALLOW"}\n')
    problems = provenance_problems(folder)
    assert f"safety_extra.jsonl: not listed in {SOURCES_FILE}" in problems
    assert any(p.startswith("safety_test.jsonl: 145 records") for p in problems)


@pytest.mark.parametrize(
    ("licence", "notice", "fragment"),
    [
        ("CC-BY-NC-SA-4.0", None, "does not allow shipping it"),
        ("CC-BY-4.0", None, "needs its notice file"),
        ("CC-BY-4.0", "NOTICE-missing.md", "needs its notice file"),
    ],
)
def test_a_public_sets_rows_need_a_redistributable_licence_and_their_notice(
    folder, licence, notice, fragment
):
    (folder / "public_rows.jsonl").write_text('{"prompt": "x", "decision": "ALLOW"}\n')
    entry = f"\npublic_rows.jsonl:\n  source: a public set\n  licence: {licence}\n  records: 1\n"
    if notice:
        entry += f"  notice: {notice}\n"
    with open(folder / SOURCES_FILE, "a", encoding="utf-8") as f:
        f.write(entry)
    assert any(p.startswith("public_rows.jsonl:") and fragment in p for p in provenance_problems(folder))

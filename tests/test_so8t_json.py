"""so8t.json's typed record: older files read with the defaults, newer versions and malformed fields are
clear errors naming the file and the field, fields a newer so8t adds survive a rewrite, and the package
reads the record only through so8t.layout.so8t_json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from so8t.errors import UserError
from so8t.layout.so8t_json import (
    CHECKPOINT_FORMAT,
    CONSOLIDATED_FORMAT,
    FORMAT_VERSION,
    SO8T_JSON,
    So8tRecord,
    read_checkpoint_info,
    read_consolidated_info,
    read_so8t_json,
    so8t_format,
    write_so8t_json,
)

REPO = Path(__file__).resolve().parents[1]


def _write(folder: Path, info: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SO8T_JSON).write_text(json.dumps(info))
    return folder


def test_an_oldest_checkpoint_record_reads_with_the_defaults(tmp_path):
    # what the first so8t wrote: no version, no prompt, no safety_head, no model record
    folder = _write(tmp_path / "old", {"format": CHECKPOINT_FORMAT, "base_model": "/bases/tiny"})
    record = read_checkpoint_info(folder)
    assert record.version == 1 and record.base_model == "/bases/tiny"
    assert record.safety_head.kind == "linear" and record.safety_head.mlp_hidden is None
    assert record.prompt is None and record.pooling == "last_prompt_token"
    assert record.loading.quantization == "none" and record.loading.dtype is None
    assert record.trust_remote_code is False


def test_a_record_from_a_newer_so8t_is_refused_with_the_upgrade(tmp_path):
    folder = _write(tmp_path / "new", {"format": CONSOLIDATED_FORMAT, "version": FORMAT_VERSION + 1})
    with pytest.raises(UserError, match=rf"version {FORMAT_VERSION + 1}.*newer so8t.*pip install -U so8t"):
        read_so8t_json(folder)


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"format": CHECKPOINT_FORMAT, "safety_head": {"kind": "transformer"}}, "safety_head.kind"),
        ({"format": CHECKPOINT_FORMAT, "model": {"quantization": "3bit"}}, "model.quantization"),
        ({"format": CHECKPOINT_FORMAT, "rotated_layers": "some"}, "rotated_layers"),
        ({"format": "so8t-other"}, "format"),
    ],
)
def test_a_malformed_field_names_the_file_and_the_field(tmp_path, info, field):
    folder = _write(tmp_path / "bad", info)
    with pytest.raises(UserError, match=re.escape(f"{folder / SO8T_JSON}: field {field}")):
        read_so8t_json(folder)


def test_a_json_that_is_no_object_is_a_clear_error(tmp_path):
    folder = _write(tmp_path / "list", [1, 2])
    with pytest.raises(UserError, match="holds a JSON list, not an object"):
        read_so8t_json(folder)


def test_fields_a_newer_so8t_adds_survive_a_read_and_a_rewrite(tmp_path):
    folder = _write(
        tmp_path / "future",
        {"format": CONSOLIDATED_FORMAT, "version": 1, "base_model": "b", "new_field": {"x": 1}},
    )
    record = read_consolidated_info(folder)
    write_so8t_json(folder, record.model_copy(update={"base_model": "c"}))
    written = json.loads((folder / SO8T_JSON).read_text())
    assert written == {"format": CONSOLIDATED_FORMAT, "version": 1, "base_model": "c", "new_field": {"x": 1}}


def test_only_the_fields_the_writer_set_are_written(tmp_path):
    write_so8t_json(tmp_path, So8tRecord(format=CHECKPOINT_FORMAT, version=FORMAT_VERSION, base_model="b"))
    assert json.loads((tmp_path / SO8T_JSON).read_text()) == {
        "format": CHECKPOINT_FORMAT,
        "version": FORMAT_VERSION,
        "base_model": "b",
    }


def test_the_format_is_told_apart_before_the_fields_are_checked(tmp_path):
    # a folder of another format is named as such, whatever its other fields hold
    folder = _write(tmp_path / "other", {"format": CONSOLIDATED_FORMAT, "safety_head": {"kind": "bad"}})
    assert so8t_format(folder) == CONSOLIDATED_FORMAT
    with pytest.raises(UserError, match=f"format is '{CONSOLIDATED_FORMAT}', expected '{CHECKPOINT_FORMAT}'"):
        read_checkpoint_info(folder)


def test_a_folder_without_the_record_reads_as_consolidated_defaults(tmp_path):
    assert read_so8t_json(tmp_path) is None
    assert read_consolidated_info(tmp_path).format == CONSOLIDATED_FORMAT


def test_no_module_reads_so8t_json_fields_from_a_dict():
    # every reader takes the typed record: no `info.get(` / `meta.get(` on it outside so8t/layout/so8t_json.py
    readers = ("read_so8t_json", "read_consolidated_info", "read_checkpoint_info")
    offenders = []
    for path in (REPO / "so8t").rglob("*.py"):
        if path.name == "so8t_json.py":
            continue
        text = path.read_text(encoding="utf-8")
        if any(reader in text for reader in readers) and re.search(r"\b(info|meta)\.get\(", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []

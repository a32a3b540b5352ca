"""The consolidation cache: keyed by the files consolidation reads, the base and the so8t version; built
once under a lock; stale temporary folders of dead processes removed; `so8t cache list|clear`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import so8t.cache as cache
import so8t.consolidate.fold
from so8t.cli import main
from so8t.consolidate import consolidate_cached
from so8t.errors import UserError
from so8t.layout import STATE_FILE
from so8t.layout.so8t_json import CHECKPOINT_FORMAT, CONSOLIDATED_FORMAT, write_so8t_json


def _base(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    return base


def _checkpoint(tmp_path, base):
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-10"
    ckpt.mkdir(parents=True)
    write_so8t_json(ckpt, {"format": CHECKPOINT_FORMAT, "base_model": str(base)})
    (ckpt / STATE_FILE).write_bytes(b"rotations")
    (ckpt / "adapter_config.json").write_text("{}")
    (ckpt / "adapter_model.safetensors").write_bytes(b"lora")
    (ckpt / "tokenizer.json").write_text("{}")
    (ckpt / "optimizer.pt").write_bytes(b"adam")
    (ckpt / "trainer_state.json").write_text("{}")
    return ckpt


def _entry_builder(calls: list, size: int = 1000):
    """A stand-in for consolidation: writes a small consolidated folder and counts its calls."""

    def build(folder, *args, **kwargs):
        calls.append(folder)
        folder.mkdir(parents=True)
        write_so8t_json(folder, {"format": CONSOLIDATED_FORMAT, "source_checkpoint": "ckpt"})
        (folder / "model.safetensors").write_bytes(b"x" * size)
        return folder

    return build


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- the key


def test_the_key_follows_the_files_consolidation_reads_and_nothing_else(tmp_path):
    base = _base(tmp_path)
    ckpt = _checkpoint(tmp_path, base)
    key = cache.consolidation_key(ckpt, str(base), base)
    (ckpt / "notes.txt").write_text("tried a higher learning rate")
    (ckpt / "optimizer.pt").write_bytes(b"adam, one step later")
    (ckpt / "trainer_state.json").write_text('{"global_step": 11}')
    assert cache.consolidation_key(ckpt, str(base), base) == key
    for name in ("adapter_model.safetensors", STATE_FILE, "tokenizer.json", "special_tokens_map.json"):
        (ckpt / name).write_bytes(b"changed " + name.encode())
        changed = cache.consolidation_key(ckpt, str(base), base)
        assert changed != key, name
        key = changed


def test_the_key_follows_the_base_and_the_so8t_version(tmp_path, monkeypatch):
    base = _base(tmp_path)
    ckpt = _checkpoint(tmp_path, base)
    key = cache.consolidation_key(ckpt, str(base), base)
    assert cache.consolidation_key(ckpt, "Qwen/Qwen2.5-0.5B", None) != key
    (base / "model.safetensors").write_bytes(b"new weights")
    assert cache.consolidation_key(ckpt, str(base), base) != key
    newer = cache.consolidation_key(ckpt, str(base), base)
    monkeypatch.setattr(cache, "so8t_version", lambda: "99.0.0")
    assert cache.consolidation_key(ckpt, str(base), base) != newer


def test_a_checkpoint_is_consolidated_again_only_when_what_it_depends_on_changes(tmp_path, monkeypatch):
    base = _base(tmp_path)
    ckpt = _checkpoint(tmp_path, base)
    calls: list = []
    build = _entry_builder(calls)
    monkeypatch.setattr(
        so8t.consolidate.fold, "consolidate_checkpoint", lambda checkpoint, out, base=None: build(out)
    )
    first = consolidate_cached(ckpt, cache_dir=tmp_path / "cache")
    (ckpt / "notes.txt").write_text("a note")
    assert consolidate_cached(ckpt, cache_dir=tmp_path / "cache") == first
    assert len(calls) == 1
    monkeypatch.setattr(cache, "so8t_version", lambda: "99.0.0")
    second = consolidate_cached(ckpt, cache_dir=tmp_path / "cache")
    assert second != first and len(calls) == 2
    assert sorted(e.path for e in cache.list_entries(tmp_path / "cache")) == sorted([first, second])


# ----------------------------------------------------------------------------- get or build


def test_an_entry_is_built_once_into_a_temporary_folder_and_renamed(tmp_path):
    calls: list = []
    entry = cache.get_or_build("k1", _entry_builder(calls), tmp_path)
    assert entry == tmp_path / "consolidated" / "k1"
    assert calls == [tmp_path / "consolidated" / f"k1.tmp-{os.getpid()}"]
    assert cache.get_or_build("k1", _entry_builder(calls), tmp_path) == entry and len(calls) == 1
    assert not cache.stale_temporaries(tmp_path)


def test_a_failed_build_leaves_neither_entry_nor_temporary_folder(tmp_path):
    def crash(folder):
        folder.mkdir()
        (folder / "half.safetensors").write_bytes(b"x")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        cache.get_or_build("k1", crash, tmp_path)
    assert sorted(p.name for p in (tmp_path / "consolidated").iterdir()) == ["k1.lock"]
    assert cache.list_entries(tmp_path) == []


def test_temporary_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    entries = tmp_path / "consolidated"
    dead = _dead_pid()
    assert not cache.process_alive(dead)
    stale = [entries / f"k0.tmp-{dead}", entries / f".staging-k0.tmp-{dead}-a1b2c3"]
    live = entries / f"k9.tmp-{os.getppid()}"
    for folder in [*stale, live]:
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"x" * 10)
    assert cache.stale_temporaries(tmp_path) == sorted(stale)
    cache.get_or_build("k1", _entry_builder([]), tmp_path)
    assert sorted(p.name for p in entries.iterdir()) == sorted(["k1", "k1.lock", live.name])


# ----------------------------------------------------------------------------- list and clear


def _fill(root, keys_and_ages: dict[str, float]) -> None:
    for key, age_days in keys_and_ages.items():
        entry = cache.get_or_build(key, _entry_builder([], size=2**20), root)
        used = time.time() - age_days * 86400
        os.utime(entry, (used, used))


def test_list_shows_entries_most_recently_used_first_and_reuse_counts_as_use(tmp_path):
    _fill(tmp_path, {"old": 30, "new": 1})
    assert [e.key for e in cache.list_entries(tmp_path)] == ["new", "old"]
    cache.get_or_build("old", _entry_builder([]), tmp_path)
    listed = cache.list_entries(tmp_path)
    assert [e.key for e in listed] == ["old", "new"]
    assert all(e.size_bytes > 2**20 and e.source_checkpoint == "ckpt" for e in listed)


def test_clear_removes_chosen_entries_and_stale_temporaries_and_says_what_it_freed(tmp_path):
    _fill(tmp_path, {"a": 30, "b": 10, "c": 1})
    (tmp_path / "consolidated" / f"a.tmp-{_dead_pid()}").mkdir()
    cleared = cache.clear(older_than_days=20, root=tmp_path)
    assert [e.key for e in cleared.entries] == ["a"] and len(cleared.temporaries) == 1
    assert cleared.freed_bytes > 2**20
    assert [e.key for e in cache.clear(["c"], root=tmp_path).entries] == ["c"]
    with pytest.raises(UserError, match="no cached consolidated model with key zzz"):
        cache.clear(["zzz"], root=tmp_path)
    assert [e.key for e in cache.clear(root=tmp_path).entries] == ["b"]
    assert cache.list_entries(tmp_path) == []


def test_so8t_cache_list_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SO8T_CACHE_DIR", str(tmp_path))
    assert main(["cache", "list"]) == 0
    assert "no consolidated models cached in" in capsys.readouterr().out
    _fill(tmp_path, {"0123abcd": 30, "4567ef00": 1})
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert out.index("4567ef00") < out.index("0123abcd") and "2 models, 2.0 MiB" in out
    assert main(["cache", "clear", "--older-than", "7"]) == 0
    assert "freed 1.0 MiB" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 consolidated model" in capsys.readouterr().out
    assert main(["cache", "clear", "nope"]) == 2
    assert "so8t cache list" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache"])


def _gguf_base_builder(folder):
    """A stand-in for dequantisation: a folder whose record is written last."""
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 2**20)
    (folder / cache.GGUF_BASE_RECORD).write_text('{"file": "/models/base.Q4_1.gguf"}')


def test_dequantised_gguf_bases_are_listed_and_cleared_beside_consolidated_models(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SO8T_CACHE_DIR", str(tmp_path))
    base = cache.get_or_build("b1", _gguf_base_builder, tmp_path, kind=cache.GGUF_BASE_KIND)
    assert base == tmp_path / "gguf-bases" / "b1"
    _fill(tmp_path, {"c1": 1})
    assert {(e.key, e.kind) for e in cache.list_entries(tmp_path)} == {
        ("b1", cache.GGUF_BASE_KIND),
        ("c1", cache.CONSOLIDATED_KIND),
    }
    assert main(["cache", "list"]) == 0
    assert "GGUF base from /models/base.Q4_1.gguf" in capsys.readouterr().out
    assert main(["cache", "clear", "b1"]) == 0
    assert "removed 0 consolidated models and 1 GGUF base" in capsys.readouterr().out
    assert [e.key for e in cache.list_entries(tmp_path)] == ["c1"]


def test_a_gguf_base_folder_without_its_record_is_rebuilt(tmp_path):
    (tmp_path / "gguf-bases" / "b1").mkdir(parents=True)
    calls = []
    cache.get_or_build(
        "b1",
        lambda folder: (calls.append(folder), _gguf_base_builder(folder)),
        tmp_path,
        kind=cache.GGUF_BASE_KIND,
    )
    assert len(calls) == 1 and (tmp_path / "gguf-bases" / "b1" / cache.GGUF_BASE_RECORD).is_file()

"""Cache files (the bundle's digest cache, GGUF headers) are written whole or not at all."""

from __future__ import annotations

import json

import pytest

from airnode.paths import write_json_atomically


def test_a_cache_file_is_replaced_whole(tmp_path):
    path = tmp_path / "cache" / "gguf" / "abc.json"
    write_json_atomically(path, {"n": 1})
    write_json_atomically(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc.json"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "digests.json"
    write_json_atomically(path, {"kept": True})
    with pytest.raises(TypeError):
        write_json_atomically(path, {"not json": object()})
    assert json.loads(path.read_text()) == {"kept": True}
    assert [p.name for p in tmp_path.iterdir()] == ["digests.json"]

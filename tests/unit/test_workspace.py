import json

import pytest

from clearset.errors import ParameterError, WorkspaceError
from clearset.registry import Registry
from clearset.workspace import Workspace, atomic_path, hash_json, write_json


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_step_cache_key_and_hit(tmp_path):
    ws = Workspace(tmp_path)
    out = tmp_path / "thing.parquet"
    step = ws.step("x", params={"a": 1}, inputs={"i": "f"}, outputs=[out], sidecar=ws.sidecar_of(out))
    assert not step.cached()
    out.write_text("data")
    step.finish()
    assert step.cached()
    changed = ws.step("x", params={"a": 2}, inputs={"i": "f"}, outputs=[out], sidecar=ws.sidecar_of(out))
    assert not changed.cached()
    out.unlink()
    assert not step.cached()  # the sidecar alone is not enough


def test_sidecar_names(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.sidecar_of(ws.features_path("m.v2", 64)).name == "m.v2@64.meta.json"
    assert ws.sidecar_of(ws.logits_path("m.v2", 64)).name == "m.v2@64.meta.json"
    assert ws.sidecar_of(ws.manifest_path).name == "manifest.meta.json"


def test_hash_json_is_order_independent():
    assert hash_json({"a": 1, "b": [1, 2]}) == hash_json({"b": [1, 2], "a": 1})


def test_missing_manifest_says_what_to_run(tmp_path):
    with pytest.raises(WorkspaceError, match="clearset ingest"):
        Workspace(tmp_path).manifest()


def test_registry_lists_names_on_unknown():
    reg = Registry("widget")
    reg.register("b")(1)
    reg.register("a")(2)
    assert reg.names() == ["a", "b"]
    with pytest.raises(ParameterError, match="unknown widget 'c': choose one of a, b"):
        reg.get("c")
    with pytest.raises(RuntimeError):
        reg.register("a")(3)


def test_file_fingerprint_follows_the_bytes_not_the_timestamp(tmp_path):
    import os

    from clearset.workspace import fingerprint_path

    f = tmp_path / "a.npz"
    f.write_bytes(b"x" * 1000)
    before = fingerprint_path(f)
    os.utime(f, ns=(1, 1))  # re-provisioned: same bytes, new timestamp
    assert fingerprint_path(f) == before
    f.write_bytes(b"x" * 999 + b"y")
    assert fingerprint_path(f) != before

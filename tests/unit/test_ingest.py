"""Ingest: every bad input of the foundation issue, cache hits and resume after a crash."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import clearset.data.ingest as ingest_mod
from clearset.data.ingest import ingest
from clearset.engines.local import LocalEngine
from clearset.errors import ImageError, LabelError, ParameterError, SourceError
from conftest import encoded, make_imagefolder, make_shards, rgb, write_image


def _listing(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) if path.exists() else []


def test_corrupt_and_truncated_images_are_skipped_and_recorded(tmp_path):
    root = make_imagefolder(tmp_path / "d")
    (root / "cat" / "bad.png").write_bytes(b"garbage")
    data = encoded(rgb(9, 64, 64), "JPEG")
    (root / "dog" / "cut.jpg").write_bytes(data[: len(data) // 3])
    ws = ingest(str(root), tmp_path / "ws")
    assert len(ws.manifest()) == 6
    errors = pd.read_parquet(ws.errors_path)
    assert sorted(errors["source"]) == ["cat/bad.png", "dog/cut.jpg"]
    assert errors["error"].str.contains("bad.png: not a readable image").sum() == 1
    assert errors["error"].str.contains("cut.jpg: truncated or damaged image data").sum() == 1


def test_on_error_fail_stops_and_writes_nothing(tmp_path):
    root = make_imagefolder(tmp_path / "d")
    (root / "cat" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ImageError, match="bad.png: not a readable image"):
        ingest(str(root), tmp_path / "ws", on_error="fail")
    assert not (tmp_path / "ws").exists()


def test_odd_modes_are_normalised(tmp_path):
    root = tmp_path / "d"
    write_image(root / "a" / "gray.png", rgb(1)[:, :, 0])
    write_image(root / "a" / "rgba.png", np.dstack([rgb(2), np.full((12, 10), 128, np.uint8)]))
    write_image(root / "a" / "pal.png", rgb(3), mode="P")
    Image.fromarray(np.full((12, 10), 40000, np.uint16)).save(root / "a" / "deep.png")
    ws = ingest(str(root), tmp_path / "ws")
    m = ws.manifest()
    assert len(m) == 4 and (m["height"] == 12).all() and (m["width"] == 10).all()
    store = ws.store()
    for i in range(4):
        img = store.load(i)
        assert img.shape == (12, 10, 3) and img.dtype == np.uint8


def test_label_out_of_range(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((3, 4, 4, 3), np.uint8), y_train=np.array([0, 1, 5]),
             class_names=np.array(["a", "b"]))
    with pytest.raises(LabelError, match="label 5 is out of range for 2 classes"):
        ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    write_image(tmp_path / "x.png", rgb(0))
    pd.DataFrame({"path": ["x.png"], "label": [3]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(LabelError, match="row 2: label 3 is out of range"):
        ingest(str(tmp_path / "m.csv"), tmp_path / "ws", classes=["a", "b"])
    assert not (tmp_path / "ws").exists()


def test_label_file_of_wrong_length_fails_before_decoding(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 4, 4, 3), np.uint8), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 4, 4, 3), np.uint8), y_test=np.array([0, 1]))
    np.save(tmp_path / "l.npy", np.array([1, 0, 1, 0]))
    with pytest.raises(LabelError, match=r"4 labels but .* has 6 images \(train 4, test 2\); to relabel one "
                                         r"split use --labels SPLIT="):
        ingest(str(tmp_path / "d.npz"), tmp_path / "ws", labels=[str(tmp_path / "l.npy")])
    assert not (tmp_path / "ws").exists()
    ws = ingest(str(tmp_path / "d.npz"), tmp_path / "ws", labels=[f"train={tmp_path / 'l.npy'}"])
    m = ws.manifest()
    assert m["label"].tolist() == [1, 0, 1, 0, 0, 1]
    assert m["original_label"].tolist() == [0, 1, 0, 1, 0, 1]


def test_label_file_formats_and_values(tmp_path):
    make_imagefolder(tmp_path / "d", per_class=2)
    pd.DataFrame({"index": [3, 2, 1, 0], "label": [0, 0, 1, 1]}).to_csv(tmp_path / "l.csv", index=False)
    ws = ingest(str(tmp_path / "d"), tmp_path / "ws", labels=[str(tmp_path / "l.csv")])
    assert ws.manifest()["label"].tolist() == [1, 1, 0, 0]
    (tmp_path / "l.txt").write_text("0\n1\n7\n0\n")
    with pytest.raises(LabelError, match="label 7 is out of range for the 2 classes"):
        ingest(str(tmp_path / "d"), tmp_path / "ws2", labels=[str(tmp_path / "l.txt")])
    np.save(tmp_path / "f.npy", np.array([0.5, 1, 0, 1]))
    with pytest.raises(LabelError, match="must be integers"):
        ingest(str(tmp_path / "d"), tmp_path / "ws3", labels=[str(tmp_path / "f.npy")])
    with pytest.raises(LabelError, match="labels file not found"):
        ingest(str(tmp_path / "d"), tmp_path / "ws4", labels=[str(tmp_path / "missing.npy")])


def test_empty_class_folder(tmp_path):
    root = make_imagefolder(tmp_path / "d")
    (root / "eel").mkdir()
    ws = ingest(str(root), tmp_path / "ws")
    assert ws.classes() == ["cat", "dog", "eel"]
    errors = pd.read_parquet(ws.errors_path)
    assert errors["error"].tolist() == ["empty class folder (no image files)"]
    with pytest.raises(SourceError, match="eel: empty class folder"):
        ingest(str(root), tmp_path / "ws2", on_error="fail")


def test_no_images_at_all(tmp_path):
    (tmp_path / "d" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "cat" / "readme.txt").write_text("no pictures")
    with pytest.raises(SourceError, match="no images found"):
        ingest(str(tmp_path / "d"), tmp_path / "ws")
    (tmp_path / "e").mkdir()
    with pytest.raises(SourceError, match="no class folders"):
        ingest(str(tmp_path / "e"), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_missing_paths(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        ingest(str(tmp_path / "absent"), tmp_path / "ws")
    write_image(tmp_path / "here.png", rgb(0))
    pd.DataFrame({"path": ["here.png", "gone.png"], "label": [0, 0]}).to_csv(tmp_path / "m.csv", index=False)
    ws = ingest(str(tmp_path / "m.csv"), tmp_path / "ws")
    assert len(ws.manifest()) == 1
    assert "file not found" in pd.read_parquet(ws.errors_path)["error"].iloc[0]
    pd.DataFrame({"file": ["here.png"], "label": [0]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(SourceError, match="no 'path' column"):
        ingest(str(tmp_path / "n.csv"), tmp_path / "ws5")


def test_bad_on_error_value(tmp_path):
    with pytest.raises(ParameterError):
        ingest("builtin:digits", tmp_path / "ws", on_error="ignore")


def test_rerun_is_a_cache_hit_and_force_redoes(tmp_path, caplog):
    root = make_imagefolder(tmp_path / "d")
    ws = ingest(str(root), tmp_path / "ws")
    stamp = ws.manifest_path.stat().st_mtime_ns
    caplog.set_level("INFO", logger="clearset")
    ingest(str(root), tmp_path / "ws")
    assert ws.manifest_path.stat().st_mtime_ns == stamp
    assert "cached" in caplog.text
    ingest(str(root), tmp_path / "ws", force=True)
    assert ws.manifest_path.stat().st_mtime_ns != stamp
    write_image(root / "cat" / "new.png", rgb(77))  # a changed source is not a cache hit
    assert len(ingest(str(root), tmp_path / "ws").manifest()) == 7


class _CrashOnCall:
    """Wraps an ingest worker function: raises KeyboardInterrupt on call ``at`` (a Ctrl-C mid-ingest);
    set ``calls`` negative to stop crashing."""

    def __init__(self, fn, at: int = 3):
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(*args)


def test_interrupted_ingest_resumes_from_staged_chunks(tmp_path, monkeypatch):
    x = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(50) % 3)
    monkeypatch.setattr(ingest_mod, "CHUNK", 16)
    crash = _CrashOnCall(ingest_mod._inspect_batch)
    monkeypatch.setattr(ingest_mod, "_inspect_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    assert not (tmp_path / "ws" / "manifest.parquet").exists()
    staged = list((tmp_path / "ws" / ".staging").rglob("part-*.parquet"))
    assert len(staged) == 2
    crash.calls = -100  # no more crashes
    ws = ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    assert crash.calls == -100 + 2  # only the two missing chunks were decoded
    m = ws.manifest()
    assert m["index"].tolist() == list(range(50)) and m["label"].tolist() == (np.arange(50) % 3).tolist()
    assert not (tmp_path / "ws" / ".staging").exists()


def test_manifest_is_streamed_in_row_groups_with_the_same_rows(tmp_path, monkeypatch):
    """The manifest is written part by part (one staged chunk in memory): small chunks and row groups give
    the same manifest as one, per-split label overrides included, and the file has several row groups."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (70, 4, 4, 3), dtype=np.uint8),
             y_train=np.arange(70) % 3, x_test=rng.integers(0, 256, (30, 4, 4, 3), dtype=np.uint8),
             y_test=np.arange(30) % 3)
    np.save(tmp_path / "test_labels.npy", (np.arange(30) + 1) % 3)
    args = dict(split=["train", "test"], labels=[f"test={tmp_path / 'test_labels.npy'}"])
    whole = ingest(str(tmp_path / "d.npz"), tmp_path / "ws1", **args).manifest()
    monkeypatch.setattr(ingest_mod, "CHUNK", 16)
    monkeypatch.setattr(ingest_mod, "ROW_GROUP", 40)
    ws = ingest(str(tmp_path / "d.npz"), tmp_path / "ws2", **args)
    pd.testing.assert_frame_equal(ws.manifest(), whole)
    assert pq.ParquetFile(ws.manifest_path).num_row_groups == 3
    test = whole[whole["split"] == "test"]
    assert test["label"].tolist() == ((np.arange(30) + 1) % 3).tolist()
    assert test["original_label"].tolist() == (np.arange(30) % 3).tolist()
    assert whole["index"].tolist() == list(range(100))


def test_large_manifests_give_a_store_that_reads_locators_by_row_group(tmp_path, monkeypatch):
    import clearset.workspace as workspace_mod
    from clearset.data.store import ParquetColumn
    from clearset.workspace import Workspace

    x = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(50) % 3)
    monkeypatch.setattr(ingest_mod, "ROW_GROUP", 16)
    ws = ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    eager = ws.store()
    monkeypatch.setattr(workspace_mod, "LAZY_LOCATORS", 10)
    lazy = Workspace(ws.root).store()
    col = lazy.locators
    assert isinstance(col, ParquetColumn) and len(col) == 50 and len(lazy) == 50
    assert list(col) == eager.locators and col[-1] == eager.locators[-1] and col[3:40:7] == eager.locators[3:40:7]
    assert len(col._cache) <= 2  # at most two row groups of 16 held
    for i in (0, 49, 17, 16, 15, 33):
        assert np.array_equal(lazy.load(i), eager.load(i)) and np.array_equal(lazy.load(i), x[i])
    with pytest.raises(IndexError):
        col[50]
    assert Workspace(ws.root).manifest_rows() == 50


class _ParallelThreads(LocalEngine):
    """The local engine, claiming to be parallel: ingest then stages a sharded source unit by unit."""

    @property
    def parallel(self):
        return True


def test_shards_staged_one_per_worker_task_give_the_stream_manifest_and_resume(tmp_path, monkeypatch):
    shards = make_shards(tmp_path / "shards")
    streamed = ingest(str(shards), tmp_path / "stream")
    crash = _CrashOnCall(ingest_mod._inspect_unit)
    monkeypatch.setattr(ingest_mod, "_inspect_unit", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(str(shards), tmp_path / "units", engine=_ParallelThreads(1))
    staged = sorted((tmp_path / "units" / ".staging").rglob("part-*.parquet"))
    assert len(staged) == 2 and all(p.with_suffix(".log.json").exists() for p in staged)
    crash.calls = -100
    ws = ingest(str(shards), tmp_path / "units", engine=_ParallelThreads(1))
    assert crash.calls == -100 + 2  # only the two missing shards were read
    pd.testing.assert_frame_equal(ws.manifest(), streamed.manifest())
    assert ws.classes() == streamed.classes() == ["0", "1", "2", "3"]
    pd.testing.assert_frame_equal(pd.read_parquet(ws.errors_path), pd.read_parquet(streamed.errors_path))
    errors = pd.read_parquet(ws.errors_path)
    assert len(errors) == 2 and "sample has no image member" in errors["error"].tolist()
    assert errors["source"].str.contains("zz_broken.png").sum() == 1
    assert np.array_equal(ws.store().load(7), streamed.store().load(7))


def test_a_staging_left_by_the_other_layout_is_not_mixed_in(tmp_path, monkeypatch):
    shards = make_shards(tmp_path / "shards")
    monkeypatch.setattr(ingest_mod, "CHUNK", 4)
    crash = _CrashOnCall(ingest_mod._inspect_batch)
    monkeypatch.setattr(ingest_mod, "_inspect_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(str(shards), tmp_path / "ws")  # leaves two 4-record chunks staged
    monkeypatch.setattr(ingest_mod, "_inspect_batch", crash.fn)
    ws = ingest(str(shards), tmp_path / "ws", engine=_ParallelThreads(1))
    pd.testing.assert_frame_equal(ws.manifest(), ingest(str(shards), tmp_path / "fresh").manifest())

"""Each source on tiny fixtures built here: same manifest shape, correct labels, splits and pixels."""

import socket

import numpy as np
import pandas as pd
import pytest

from clearset.data.fractals import FractalConfig, render, sample_system
from clearset.data.ingest import ingest
from clearset.data.sources import open_source
from clearset.errors import DownloadError, LabelError, ParameterError, SourceError
from conftest import encoded, make_imagefolder, rgb, write_image, write_tar


def test_imagefolder_flat_nested_and_formats(tmp_path):
    root = tmp_path / "data"
    write_image(root / "ant" / "a.jpg", rgb(1))
    write_image(root / "ant" / "deeper" / "b.webp", rgb(2), fmt="WEBP")
    write_image(root / "bee" / "c.bmp", rgb(3))
    write_image(root / "bee" / "d.png", rgb(4))
    (root / "bee" / "notes.txt").write_text("ignored")
    ws = ingest(str(root), tmp_path / "ws")
    m = ws.manifest()
    assert ws.classes() == ["ant", "bee"]
    assert m["label"].tolist() == [0, 0, 1, 1]
    assert m["source"].tolist() == ["ant/a.jpg", "ant/deeper/b.webp", "bee/c.bmp", "bee/d.png"]
    assert set(m["split"]) == {"train"}
    assert np.array_equal(ws.store().load(3), rgb(4))


def test_imagefolder_split_layout(tmp_path):
    make_imagefolder(tmp_path / "d" / "train", per_class=2)
    make_imagefolder(tmp_path / "d" / "test", per_class=1)
    m = ingest(str(tmp_path / "d"), tmp_path / "ws").manifest()
    assert m["split"].tolist() == ["train"] * 4 + ["test"] * 2
    only = ingest(str(tmp_path / "d"), tmp_path / "ws2", split="test").manifest()
    assert len(only) == 2 and set(only["split"]) == {"test"}
    with pytest.raises(SourceError, match="no split 'val'"):
        ingest(str(tmp_path / "d"), tmp_path / "ws3", split="val")


def test_csv_relative_paths_string_labels_and_split_column(tmp_path):
    write_image(tmp_path / "imgs" / "x.png", rgb(1))
    write_image(tmp_path / "imgs" / "y.png", rgb(2))
    write_image(tmp_path / "imgs" / "z.png", rgb(3))
    pd.DataFrame({"path": ["imgs/x.png", "imgs/y.png", "imgs/z.png"], "label": ["pig", "cow", "pig"],
                  "split": ["train", "train", "test"]}).to_csv(tmp_path / "m.csv", index=False)
    ws = ingest(str(tmp_path / "m.csv"), tmp_path / "ws")
    m = ws.manifest()
    assert ws.classes() == ["cow", "pig"]
    assert m["label"].tolist() == [1, 0, 1] and m["split"].tolist() == ["train", "train", "test"]
    assert np.array_equal(ws.store().load(1), rgb(2))


def test_parquet_integer_labels_with_class_names(tmp_path):
    write_image(tmp_path / "a.png", rgb(1))
    write_image(tmp_path / "b.png", rgb(2))
    pd.DataFrame({"path": ["a.png", "b.png"], "label": [1, 0]}).to_parquet(tmp_path / "m.parquet")
    ws = ingest(str(tmp_path / "m.parquet"), tmp_path / "ws", classes=["zero", "one"])
    assert ws.classes() == ["zero", "one"] and ws.manifest()["label"].tolist() == [1, 0]


def test_npz_hw_and_hwc(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    g = np.random.default_rng(1).integers(0, 256, (3, 6, 7), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.array([0, 1, 2, 1, 0], np.uint8), x_test=g,
             y_test=np.array([2, 2, 0]), class_names=np.array(["a", "b", "c"]))
    ws = ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    m = ws.manifest()
    assert ws.classes() == ["a", "b", "c"]
    assert m["split"].tolist() == ["train"] * 5 + ["test"] * 3
    assert m["label"].tolist() == [0, 1, 2, 1, 0, 2, 2, 0]
    assert np.array_equal(ws.store().load(2), x[2])
    assert np.array_equal(ws.store().load(6)[:, :, 1], g[1])


def test_webdataset_shards_streamed(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "000.tar", [("s0.png", encoded(rgb(0))), ("s0.cls", b"1"),
                              ("s1.jpg", encoded(rgb(1), "JPEG")), ("s1.cls", b"0\n")])
    write_tar(shards / "001.tar", [("dir/s2.cls", b"2"), ("dir/s2.png", encoded(rgb(2))), ("s3.cls", b"1")])
    ws = ingest(str(shards), tmp_path / "ws")
    m = ws.manifest()
    assert m["label"].tolist() == [1, 0, 2]
    assert ws.classes() == ["0", "1", "2"]
    assert np.array_equal(ws.store().load(2), rgb(2))  # read back by byte range
    assert np.array_equal(ws.store().load(0), rgb(0))
    errors = pd.read_parquet(ws.errors_path)
    assert errors["error"].tolist() == ["sample has no image member"]


def test_webdataset_bad_label(tmp_path):
    write_tar(tmp_path / "a.tar", [("k.png", encoded(rgb(0))), ("k.cls", b"cat")])
    with pytest.raises(LabelError, match="a.tar:k.cls: expected an integer class index"):
        ingest(str(tmp_path / "a.tar"), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_builtin_digits():
    src = open_source("builtin:digits")
    assert src.counts() == {"train": 1438, "test": 359}
    assert src.classes == [str(i) for i in range(10)]
    recs = list(src.records())
    assert len(recs) == 1797 and len({r.locator for r in recs}) == 1797


def test_builtin_fractals_deterministic_and_distinct():
    cfg = FractalConfig(classes=3, per_class=4, size=32, seed=5, test=0.25)
    a, b = render(cfg, 0), render(cfg, 0)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(render(cfg, 0), render(cfg, 1))
    assert cfg.ids_by_split() == {"train": [0, 1, 2, 4, 5, 6, 8, 9, 10], "test": [3, 7, 11]}
    src = open_source("builtin:fractals?classes=3&per_class=4&size=32&seed=5&test=0.25")
    assert [r.label for r in src.records()] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2]


def test_fractal_systems_satisfy_sigma_factor():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sys_ = sample_system(rng)
        s = sys_["s"]
        n = len(s)
        alpha = (s[:, 0] + 2 * s[:, 1]).sum()
        assert (5 + n) / 2 - 1e-9 <= alpha <= (6 + n) / 2 + 1e-9
        assert (s[:, 1] <= s[:, 0] + 1e-12).all() and (s <= 1).all() and (s >= 0).all()


def test_fractals_bad_options():
    with pytest.raises(ParameterError, match="unknown option 'colour'"):
        open_source("builtin:fractals?colour=1")
    with pytest.raises(SourceError, match="unknown builtin"):
        open_source("builtin:imagenet")


def test_download_offline_fails_with_one_clear_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("CLEARSET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DownloadError, match="download:cifar10: could not fetch it.*offline"):
        open_source("download:cifar10")
    with pytest.raises(SourceError, match="unknown dataset"):
        open_source("download:imagenet")


def test_unknown_source_and_missing_path(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "nope"))
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(SourceError, match="unknown source format"):
        open_source(str(tmp_path / "x.xyz"))

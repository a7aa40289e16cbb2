"""Engines: the local engine's contract, blocked kNN equal to the serial search, and a local Ray cluster
(2 CPUs) giving the same manifests, features, audit tables and bench cells as the local engine, also when
a worker is killed in the middle of an embed."""

import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import clearset
from clearset.audit import run_audit
from clearset.engines import get_engine, using
from clearset.engines.local import LocalEngine
from clearset.errors import ParameterError
from clearset.ops import knn as K
from conftest import digits_with_features, make_shards

MODEL = "test_efficientnet"


def square(x):
    return x * x


def row_sum(state, i):
    return float(state[i].sum())


class Doubler:
    calls = 0

    def __call__(self, shared):
        Doubler.calls += 1
        return shared * 2


class Parallel(LocalEngine):
    """The local engine dressed as a parallel one: stages split their work as they would for Ray."""

    parallel = True


def test_local_engine_orders_binds_state_once_and_checks_names():
    eng = get_engine("local", threads=3)
    assert list(eng.map(square, range(20))) == [i * i for i in range(20)]
    base = np.arange(12.0).reshape(6, 2)
    Doubler.calls = 0
    assert list(eng.map(row_sum, range(6), shared=base, prepare=Doubler())) == [2 * (4 * i + 1) for i in range(6)]
    assert Doubler.calls == 1
    assert using(eng).__enter__() is eng  # an engine passed in stays its owner's
    for bad, msg in [({"name": "spark"}, "engine must be one of"), ({"name": "local", "address": "x"}, "address")]:
        with pytest.raises(ParameterError, match=msg):
            get_engine(**bad)


@pytest.mark.parametrize("method", ["bf16", "faiss"])
def test_blocked_knn_equals_serial_search(monkeypatch, method):
    monkeypatch.setattr(K, "ENGINE_BLOCK", 97)  # blocks that do not divide N
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[5] = x[7]  # an exact duplicate must stay a neighbour of its twin
    q = rng.normal(size=(300, 16)).astype(np.float32)
    for kwargs in ({}, {"queries": q}, {"exclude_self": False}):
        a = K.knn(x, 5, method=method, **kwargs)
        b = K.knn(x, 5, method=method, engine=Parallel(), **kwargs)
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    assert 7 in K.knn(x, 1, method=method, engine=Parallel())[1][5]
    monkeypatch.setattr(K, "EXACT_MAX", 500)  # the IVF index, trained once and sent to the workers
    a, b = K.knn(x, 5), K.knn(x, 5, engine=Parallel())
    np.testing.assert_array_equal(a[1], b[1])


# ------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_engine():
    from clearset.engines.ray import RayEngine

    eng = RayEngine(num_cpus=2, object_store_memory=200 << 20)
    yield eng
    eng.close()


@contextmanager
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def test_ray_and_local_give_identical_manifests_features_and_audits(ray_engine, tmp_path):
    source = "builtin:fractals?classes=3&per_class=20&size=24&test=0.25"
    local = clearset.ingest(source, tmp_path / "local")
    remote = clearset.ingest(source, tmp_path / "ray", engine=ray_engine)
    pd.testing.assert_frame_equal(local.manifest(), remote.manifest())

    kw = {"backbone": MODEL, "image_size": 32, "batch_size": 8, "chunk_size": 16, "precision": "fp32", "threads": 1}
    with one_torch_thread():  # as a 1-CPU Ray task runs: summation order depends on the thread count
        a = clearset.embed(local, **kw).load()
    b = clearset.embed(remote, engine=ray_engine, **kw).load()
    np.testing.assert_array_equal(a, b)
    assert remote.meta(remote.features_path(MODEL, 32))["engine"] == "ray"

    checks = ["label_issues", "duplicates", "outliers", "class_pairs"]
    run_audit(local, checks=checks)
    run_audit(remote, checks=checks, engine=ray_engine)
    ta, tb = _tables(local.root / "audit"), _tables(remote.root / "audit")
    assert set(ta) == {f"{c}.parquet" for c in checks} and set(ta) == set(tb)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=False, rtol=1e-5)


def test_tar_shards_are_read_by_ray_workers_into_the_same_manifest(ray_engine, tmp_path):
    shards = make_shards(tmp_path / "shards")
    local = clearset.ingest(str(shards), tmp_path / "local")
    remote = clearset.ingest(str(shards), tmp_path / "ray", engine=ray_engine)
    assert ray_engine.parallel  # so the shards were staged one per Ray task
    pd.testing.assert_frame_equal(local.manifest(), remote.manifest())
    pd.testing.assert_frame_equal(pd.read_parquet(local.errors_path), pd.read_parquet(remote.errors_path))
    assert local.classes() == remote.classes()


def test_ray_audit_of_digits_equals_local(ray_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(K, "ENGINE_BLOCK", 256)  # several tasks for ~1,800 images
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(1797, 12)).astype(np.float32)
    feats[10] = feats[20]
    local = digits_with_features(tmp_path / "local", feats)
    remote = digits_with_features(tmp_path / "ray", feats)
    run_audit(local, checks=["duplicates", "outliers"])
    run_audit(remote, checks=["duplicates", "outliers"], engine=ray_engine)
    for name, table in _tables(local.root / "audit").items():
        pd.testing.assert_frame_equal(table, pd.read_parquet(remote.root / "audit" / name))


def _kill_one_task_worker(stop: threading.Event, killed: list) -> None:
    """SIGKILL the first Ray worker process seen running one of our tasks (its title is ray::_run)."""
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::_run"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.01)


def test_killed_ray_worker_mid_embed_loses_and_duplicates_nothing(ray_engine, tmp_path):
    ws = clearset.ingest("builtin:fractals?classes=4&per_class=40&size=24", tmp_path / "ws")
    kw = {"backbone": MODEL, "image_size": 64, "batch_size": 4, "chunk_size": 4, "precision": "fp32", "threads": 1}
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_one_task_worker, args=(stop, killed), daemon=True)
    watcher.start()
    try:
        r = clearset.embed(ws, engine=ray_engine, **kw)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no Ray worker was seen running a task"
    with one_torch_thread():
        ref = clearset.embed(ws, force=True, **kw)  # the same rows computed here, in order
    np.testing.assert_array_equal(np.load(r.features), ref.load())


def test_bench_cells_run_on_ray(ray_engine, tmp_path):
    from clearset.leaderboard import run_bench
    from clearset.train.recipes import RECIPES, Recipe, register_recipe

    if "bench-tiny" not in RECIPES:
        register_recipe(Recipe("bench-tiny", "test", model="resnet8", epochs=2, batch_size=64, lr=0.05,
                               image_size=8, crop_pad=0))
    ws = digits_with_features(tmp_path / "ws")
    board = run_bench(ws, strategies=["random"], keeps=[0.3], seeds=[0, 1], recipe="bench-tiny", engine=ray_engine)
    assert list(board["strategy"]) == ["random", "random", "full", "full"]
    assert list(board["seed"]) == [0, 1, 0, 1] and board["test_acc"].between(0, 1).all()
    assert all((ws.root / "runs" / name / "metrics.jsonl").exists() for name in board["run"])


def test_user_error_on_a_worker_is_the_same_one_line(ray_engine, tmp_path):
    from clearset.errors import ClearsetError
    from conftest import make_imagefolder

    ws = clearset.ingest(str(make_imagefolder(tmp_path / "images")), tmp_path / "ws")
    victim = Path(ws.store().spec["root"]) / ws.manifest()["source"].iloc[2]
    victim.write_bytes(b"not an image any more")
    with pytest.raises(ClearsetError, match=victim.name) as e:
        clearset.embed(ws, backbone=MODEL, image_size=32, engine=ray_engine)
    assert "Traceback" not in str(e.value)


def test_cli_rejects_an_unknown_engine(tmp_path):
    from typer.testing import CliRunner

    from clearset.cli import app

    r = CliRunner().invoke(app, ["ingest", "builtin:digits", "-o", str(tmp_path / "ws"), "--engine", "spark"])
    assert r.exit_code == 2 and "--engine must be one of local, ray" in r.output
    assert not (tmp_path / "ws").exists()


def test_partitioned_audit_on_ray_equals_local(ray_engine, tmp_path, monkeypatch):
    from clearset import scale

    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 16)).astype(np.float32)
    x[2000] = x[10] + 1e-4
    np.save(tmp_path / "x.npy", x)
    kw = {"config": scale.PartitionConfig(exact_rows=0), "cluster_size": 300, "chunk": 700}
    a = scale.partition(tmp_path / "x.npy", tmp_path / "local", **kw)
    b = scale.partition(tmp_path / "x.npy", tmp_path / "ray", engine=ray_engine, **kw)
    for name in ("rows.npy", "vectors.npy", "sims.npy", "guest_rows.npy"):
        np.testing.assert_array_equal(np.load(a.root / name), np.load(b.root / name))
    da, oa, _ = scale.duplicates_and_outliers(a)
    db, ob, _ = scale.duplicates_and_outliers(b, engine=ray_engine)
    pd.testing.assert_frame_equal(da, db)
    pd.testing.assert_frame_equal(oa, ob)
    assert (10, 2000) in set(zip(da["index"], da["duplicate_index"]))

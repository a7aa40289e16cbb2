"""clearset.scale: cluster partitions on disk, near-duplicates / outliers from within-cluster neighbours,
DBP from the partition; RowReader."""

import dataclasses
import weakref

import numpy as np
import pandas as pd
import pytest

from clearset import scale
from clearset.audit.duplicates import near_duplicate_pairs
from clearset.audit.outliers import outlier_scores
from clearset.data.arrays import RowReader
from clearset.scale import neighbours as scale_neighbours, passes as scale_passes

EXACT = scale.PartitionConfig(exact_rows=0)  # partition even tiny data


def blobs(n=3000, dim=16, concepts=12, seed=0, noise=0.08):
    """Tight concept blobs, 20 planted near-copies (appended) and 5 planted outliers (last)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(concepts, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    base = n - 25
    x = centres[rng.integers(0, concepts, base)] + rng.normal(size=(base, dim)) * noise
    sources = rng.choice(base, 20, replace=False)
    copies = x[sources] + rng.normal(size=(20, dim)) * 0.001
    outliers = rng.normal(size=(5, dim)) * 3
    x = np.concatenate([x, copies, outliers]).astype(np.float32)
    pairs = {(int(s), base + i) for i, s in enumerate(sources)}
    return x, pairs, set(range(n - 5, n))


@pytest.fixture
def partitioned(tmp_path):
    x, pairs, outliers = blobs()
    np.save(tmp_path / "x.npy", x)
    part = scale.partition(tmp_path / "x.npy", tmp_path / "part", EXACT, cluster_size=250, chunk=700)
    return x, pairs, outliers, part, tmp_path


def test_row_reader_reads_rows_without_a_map(tmp_path):
    a = np.arange(600, dtype=np.float16).reshape(200, 3)
    np.save(tmp_path / "a.npy", a)
    r = RowReader(tmp_path / "a.npy")
    assert r.shape == (200, 3) and len(r) == 200
    np.testing.assert_array_equal(r.read(17, 93), a[17:93])
    np.testing.assert_array_equal(r.read(190, 500), a[190:])
    np.testing.assert_array_equal(r.rows(np.array([3, 50, 199])), a[[3, 50, 199]])


def test_partition_groups_every_row_once_with_guests_from_the_second_cluster(partitioned):
    x, _, _, part, tmp_path = partitioned
    assert len(part.sizes) == 12 and part.n == len(x)  # ceil(3000 / 250)
    rows = np.load(part.root / "rows.npy")[:, 0]
    assert np.array_equal(np.sort(rows), np.arange(len(x)))
    vecs = np.load(part.root / "vectors.npy").astype(np.float32)
    from clearset.vectors import normalise_features

    np.testing.assert_allclose(vecs, normalise_features(x)[rows], atol=2e-3)  # float16 storage
    sims = normalise_features(x) @ part.centroids.T
    off = part.offsets
    for c in range(len(part.sizes)):
        members = rows[off[c]:off[c + 1]]
        assert (sims[members].argmax(1) == c).all()
        assert np.all(np.diff(members) > 0)  # row order kept inside a cluster
        g_rows, _ = part.guests(c, c + 1)
        if len(g_rows):
            top2 = np.argsort(-sims[g_rows], 1)[:, :2]
            assert (top2[:, 1] == c).all()
            gap = sims[g_rows, top2[:, 0]] - sims[g_rows, top2[:, 1]]
            assert (gap <= scale.DEFAULT.margin + 1e-5).all()
    mtime = (part.root / "vectors.npy").stat().st_mtime_ns
    again = scale.partition(tmp_path / "x.npy", tmp_path / "part", EXACT, cluster_size=250, chunk=700)
    assert (part.root / "vectors.npy").stat().st_mtime_ns == mtime  # cached
    np.testing.assert_array_equal(again.sizes, part.sizes)


def test_partitioned_duplicates_and_outliers_find_the_planted_ones(partitioned):
    x, pairs, outliers, part, _ = partitioned
    sample = np.array([0, 5, 2990])
    dups, flagged, info = scale.duplicates_and_outliers(part, keep_rows=sample)
    assert pairs <= set(zip(dups["index"], dups["duplicate_index"]))
    assert (dups["index"] < dups["duplicate_index"]).all() and dups["similarity"].between(0.92, 1.0).all()
    assert outliers <= set(flagged["index"]) and info["outliers"] == len(flagged)
    assert info["neighbours"].shape == (3, 10)


def test_neighbour_groups_are_freed_once_consumed(partitioned, monkeypatch):
    """Memory flat in N: nothing from a consumed group of neighbour lists stays alive (the rows kept
    for ``keep_rows`` once held views into their whole group: 80 bytes a row at 10^7)."""
    _, _, _, part, _ = partitioned
    refs = []

    def groups(p, k, engine=None, start=0):
        rng = np.random.default_rng(0)
        for s in range(0, p.n, 1000):
            # the caller still holds the group it is working on: everything before it must be gone
            assert all(r() is None for r in refs[:-3])
            rows = np.arange(s, min(s + 1000, p.n))
            sims = rng.uniform(0.1, 0.5, (len(rows), k)).astype(np.float32)
            nb = rng.integers(0, p.n, (len(rows), k))
            refs.extend(weakref.ref(a) for a in (rows, sims, nb))
            yield rows, sims, nb
            del rows, sims, nb

    monkeypatch.setattr(scale_neighbours, "cluster_neighbours", groups)
    sample = np.array([0, 5, 2990])  # rows in the first and the last group
    _, _, info = scale.duplicates_and_outliers(part, keep_rows=sample)
    assert len(refs) == 9 and info["neighbours"].shape == (3, 10)


def test_an_interrupted_neighbour_pass_resumes_to_the_same_results(partitioned, monkeypatch):
    _, _, _, part, _ = partitioned
    # a checkpoint after every group, several groups of clusters
    part = dataclasses.replace(part, config=part.config.replace(checkpoint_seconds=0.0, group_rows=600))
    groups = part.groups()
    assert len(groups) >= 4
    sample = np.array([0, 5, 1500, 2990])
    ref = scale.duplicates_and_outliers(part, keep_rows=sample)
    ref_dist = (part.root / "mean_distance.npy").read_bytes()
    real, seen, interrupt = scale_neighbours._group_neighbours, [], [True]

    def neighbours(p, item):
        seen.append(item[:2])
        if interrupt[0] and len(seen) == 3:
            raise KeyboardInterrupt
        return real(p, item)

    monkeypatch.setattr(scale_neighbours, "_group_neighbours", neighbours)
    with pytest.raises(KeyboardInterrupt):
        scale.duplicates_and_outliers(part, keep_rows=sample)
    assert __import__("json").loads((part.root / "neighbours" / "progress.json").read_text())["groups"] == 2
    seen.clear()
    interrupt[0] = False
    dups, outliers, info = scale.duplicates_and_outliers(part, keep_rows=sample)
    assert seen == groups[2:]  # the two finished groups are not searched again
    pd.testing.assert_frame_equal(dups, ref[0])
    pd.testing.assert_frame_equal(outliers, ref[1])
    np.testing.assert_array_equal(info.pop("neighbours"), ref[2]["neighbours"])
    assert info == {k: v for k, v in ref[2].items() if k != "neighbours"}
    assert (part.root / "mean_distance.npy").read_bytes() == ref_dist
    assert not (part.root / "neighbours").exists()
    seen.clear()
    scale.duplicates_and_outliers(part, threshold=0.9)  # other parameters: a fresh start, not a resume
    assert seen == groups


def test_single_cluster_equals_the_in_memory_audit(tmp_path):
    x, pairs, _ = blobs(n=1500, seed=3, noise=0.3)  # only the planted copies are near-duplicates
    np.save(tmp_path / "x.npy", x)
    part = scale.partition(tmp_path / "x.npy", tmp_path / "part")  # below exact_rows: one cluster
    assert len(part.sizes) == 1
    dups, flagged, _ = scale.duplicates_and_outliers(part)
    ref = near_duplicate_pairs(x)
    ours, theirs = (set(zip(d["index"], d["duplicate_index"])) for d in (dups, ref))
    assert ours == theirs and pairs <= ours
    ref_out = outlier_scores(x)
    assert set(flagged["index"]) == set(ref_out.loc[ref_out["global_score"] >= 4.0, "index"])


def test_dbp_select_fills_quotas_with_the_least_prototypical(partitioned):
    x, _, _, part, _ = partitioned
    kept = scale.dbp_select(part, 0.3)
    assert len(kept) == round(0.3 * len(x)) and np.array_equal(kept, np.unique(kept))
    rows = np.load(part.root / "rows.npy")[:, 0]
    sims = np.load(part.root / "sims.npy")[:, 0]
    off = part.offsets
    for c in range(len(part.sizes)):
        members, s = rows[off[c]:off[c + 1]], sims[off[c]:off[c + 1]]
        chosen = np.isin(members, kept)
        if 0 < chosen.sum() < len(members):
            assert s[chosen].max() <= s[~chosen].min()


def test_audit_uses_the_partition_above_the_memory_threshold(tmp_path, monkeypatch):
    from clearset.audit import run_audit
    from conftest import digits_with_features

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(1797, 16)).astype(np.float32)
    feats[100] = feats[7] + 1e-4  # a near-copy
    ws = digits_with_features(tmp_path / "ws", feats)
    summary = run_audit(ws, checks=["duplicates", "outliers"], partition=EXACT.replace(in_memory_bytes=1000))
    assert summary["checks"]["duplicates"]["rule"] == "embedding cosine, cluster partition"
    assert summary["checks"]["outliers"]["method"].startswith("cluster partition")
    d = pd.read_parquet(ws.root / "audit" / "duplicates.parquet")
    assert ((d["index"] == 7) & (d["duplicate_index"] == 100) & (d["kind"] == "near")).any()
    o = pd.read_parquet(ws.root / "audit" / "outliers.parquet")
    assert len(o) == 1797 and list(o["index"]) == list(range(1797))
    assert (ws.root / "audit" / "partition" / "fake@8" / "partition.json").exists()


def test_a_partition_missing_a_file_is_rebuilt(partitioned):
    _, _, _, part, tmp_path = partitioned
    (part.root / "vectors.npy").unlink()
    again = scale.partition(tmp_path / "x.npy", tmp_path / "part", EXACT, cluster_size=250, chunk=700)
    assert (again.root / "vectors.npy").exists()
    np.testing.assert_array_equal(again.sizes, part.sizes)


@pytest.mark.parametrize("where", ["pass A", "pass B"])
def test_an_interrupted_partition_resumes_to_the_same_files(tmp_path, monkeypatch, where):
    """Ctrl-C in either pass: the next run goes on from the last checkpoint (no k-means again, no chunk of
    pass A twice) and writes exactly the files of an uninterrupted run."""
    x, _, _ = blobs()
    np.save(tmp_path / "x.npy", x)
    kw = {"config": EXACT.replace(checkpoint_seconds=0.0), "cluster_size": 250, "chunk": 700}  # a checkpoint per chunk
    ref = scale.partition(tmp_path / "x.npy", tmp_path / "ref", **kw)

    real_assign, real_add, calls, interrupt = scale_passes._assign_chunk, scale_passes._Grouped.add, [], [True]

    def assign(state, start):
        calls.append(start)
        if interrupt[0] and where == "pass A" and start == 2100:
            raise KeyboardInterrupt
        return real_assign(state, start)

    def add(self, *args):
        calls.append("add")
        if interrupt[0] and where == "pass B" and calls.count("add") == 5:  # the third chunk's home rows
            raise KeyboardInterrupt
        return real_add(self, *args)

    monkeypatch.setattr(scale_passes, "_assign_chunk", assign)
    monkeypatch.setattr(scale_passes._Grouped, "add", add)
    with pytest.raises(KeyboardInterrupt):
        scale.partition(tmp_path / "x.npy", tmp_path / "part", **kw)
    state = __import__("json").loads((tmp_path / "part" / "progress.json").read_text())
    assert not (tmp_path / "part" / "partition.json").exists()
    assert (state["pass"], state["done"]) == (("A", 2100) if where == "pass A" else ("B", 1400))

    def no_refit(*args, **kwargs):
        raise AssertionError("k-means ran again")

    monkeypatch.setattr(scale_passes, "_fit_centroids", no_refit)
    calls.clear()
    interrupt[0] = False
    part = scale.partition(tmp_path / "x.npy", tmp_path / "part", **kw)
    assigned = [c for c in calls if c != "add"]
    assert assigned == ([2100, 2800] if where == "pass A" else [])
    assert calls.count("add") == (10 if where == "pass A" else 6)  # pass B from its checkpoint: chunks 3-5
    for name in ("vectors.npy", "rows.npy", "sims.npy", "guest_vectors.npy", "guest_rows.npy"):
        assert (part.root / name).read_bytes() == (ref.root / name).read_bytes(), name
    for a, b in ((part.centroids, ref.centroids), (part.sizes, ref.sizes), (part.guest_sizes, ref.guest_sizes)):
        np.testing.assert_array_equal(a, b)
    left = {p.name for p in part.root.iterdir()}
    assert not left & {"progress.json", "fill.npz", "centroids.npz", "assign.npy", "row_sims.npy"}


def test_clusters_that_cut_through_blobs_are_coarsened(tmp_path, monkeypatch):
    """Wide isotropic blobs split by too many clusters leave most rows on a border: the partition halves
    the cluster count while more than guest_share of the sample are guests, up to max_cluster_size rows
    per cluster, and the neighbour lists get closer to the exact ones."""
    x, _, _ = blobs(n=4000, dim=128, concepts=4, noise=0.09)  # 16 clusters: 67% guests, 8: 45%, 4: 0.03%
    np.save(tmp_path / "x.npy", x)
    fine = scale.partition(tmp_path / "x.npy", tmp_path / "fine", EXACT, cluster_size=250, guest_share=1.0)
    coarse = scale.partition(tmp_path / "x.npy", tmp_path / "coarse", EXACT, cluster_size=250, max_cluster_size=2000)
    tried = __import__("json").loads((tmp_path / "coarse" / "partition.json").read_text())["tried"]
    assert len(fine.sizes) == 16 and tried[0]["clusters"] == 16 and tried[0]["guest_share"] > scale.DEFAULT.guest_share
    assert [t["clusters"] for t in tried] == [16, 8, 4] and len(coarse.sizes) == 4
    assert tried[-1]["guest_share"] <= scale.DEFAULT.guest_share and coarse.guest_sizes.sum() < fine.guest_sizes.sum() / 10
    capped = scale.partition(tmp_path / "x.npy", tmp_path / "capped", EXACT, cluster_size=250, max_cluster_size=400)
    assert len(capped.sizes) == 16  # 4000 / 8 > 400 rows: no coarser than the cap allows
    from clearset.vectors import normalise_features

    v = normalise_features(x)
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    truth = np.argsort(-s, axis=1)[:, :10]

    def recall(part):
        got = {}
        for rows, _, nb in scale.cluster_neighbours(part, 10):
            got.update(zip(rows.tolist(), nb))
        return np.mean([len(set(truth[r]) & set(got[r])) / 10 for r in range(len(x))])

    assert recall(coarse) > recall(fine) + 0.1


def test_many_centroids_are_searched_through_coarse_groups(tmp_path, monkeypatch):
    """Above two_level centroids a row is compared only with the centroids of its probe nearest coarse
    groups: nearly always the same two nearest as the flat search, and the partition stays complete."""
    cfg = EXACT.replace(two_level=16, probe=3)
    x, pairs, outliers = blobs(n=3000, concepts=40)
    from clearset.ops.kmeans import spherical_kmeans
    from clearset.vectors import normalise_features

    v = normalise_features(x)
    centroids, _, _ = spherical_kmeans(v, 64, 0, niter=5)
    grouped = scale.centroid_index(centroids, 0, config=cfg)
    assert grouped[1] is not None and len(grouped[1]) == 8  # ceil(sqrt(64)) coarse groups
    assert np.array_equal(np.sort(grouped[2]), np.arange(64))
    flat = scale.centroid_index(centroids, 0, config=cfg.replace(two_level=1_000))
    assert flat[1] is None
    s_g, i_g = scale.nearest_two(grouped, v, cfg.probe)
    s_f, i_f = scale.nearest_two(flat, v, cfg.probe)
    exact = np.argsort(-(v @ centroids.T), 1)[:, :2]
    assert np.array_equal(i_f, exact)
    assert (i_g[:, 0] == exact[:, 0]).mean() > 0.97 and (i_g[:, 1] == exact[:, 1]).mean() > 0.9
    assert np.all(s_g[:, 0] >= s_g[:, 1]) and np.all(i_g[:, 0] != i_g[:, 1])
    np.testing.assert_allclose(s_g[:, 0], (v * centroids[i_g[:, 0]]).sum(1), atol=1e-5)

    np.save(tmp_path / "x.npy", x)
    part = scale.partition(tmp_path / "x.npy", tmp_path / "part", cfg, cluster_size=50, guest_share=1.0, chunk=700)
    meta = __import__("json").loads((tmp_path / "part" / "partition.json").read_text())
    assert meta["clusters"] == 60 and meta["coarse_groups"] == 8
    rows = np.load(part.root / "rows.npy")[:, 0]
    assert np.array_equal(np.sort(rows), np.arange(len(x)))
    dup = scale.duplicates_and_outliers(part)
    found = {tuple(sorted(p)) for p in dup[0][["index", "duplicate_index"]].itertuples(index=False)}
    assert len(pairs & found) >= 0.9 * len(pairs)


def test_candidate_lists_learned_from_sample_rows_find_held_out_rows_nearest_centroid(monkeypatch):
    """A coarse group's candidates include the nearest centroids of the sample rows that probe it: rows
    not in the sample then find their exact nearest centroid far more often than through the groups'
    own members alone, with one probed group."""
    cfg = scale.PartitionConfig(two_level=16, probe=1)
    from clearset.ops.kmeans import spherical_kmeans
    from clearset.vectors import normalise_features

    x, _, _ = blobs(n=3000, concepts=40)
    v = normalise_features(x)
    fit, held_out = v[::2], v[1::2]
    centroids, _, _ = spherical_kmeans(fit, 64, 0, niter=5)
    exact = np.argsort(-(held_out @ centroids.T), 1)[:, :2]
    own = scale.centroid_index(centroids, 0, config=cfg)
    learned = scale.centroid_index(centroids, 0, sample=fit, config=cfg)
    assert len(learned[2]) > len(own[2]) == 64  # groups overlap: a centroid may be a candidate of several
    assert np.all(np.diff(learned[3]) > 0)
    home_own = (scale.nearest_two(own, held_out, 1)[1][:, 0] == exact[:, 0]).mean()
    s, i = scale.nearest_two(learned, held_out, 1)
    assert (i[:, 0] == exact[:, 0]).mean() > max(home_own, 0.98)
    assert (i[:, 1] == exact[:, 1]).mean() > 0.95
    assert np.all(i[:, 0] != i[:, 1]) and np.all(s[:, 0] >= s[:, 1])  # overlapping groups: no centroid twice
    cfg = cfg.replace(probe=2)
    s, i = scale.nearest_two(scale.centroid_index(centroids, 0, sample=fit, config=cfg), held_out, 2)
    assert np.all(i[:, 0] != i[:, 1]) and (i[:, 0] == exact[:, 0]).mean() > 0.99


def test_curate_dbp_takes_the_partitioned_path_above_the_memory_threshold(tmp_path, monkeypatch):
    """`clearset curate --strategy dbp` on features above the in-memory limit selects from the partition
    (the audit's cache), keeping about keep·N rows, each once, and records it; below the limit, in memory."""
    import clearset.curate as curate_mod
    from clearset.workspace import Workspace
    from conftest import digits_with_features

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(1797, 16)).astype(np.float32)
    ws = digits_with_features(tmp_path / "ws", feats)
    m = pd.read_parquet(ws.manifest_path)
    m["split"] = "train"  # one pool: the partition covers the whole file
    m.to_parquet(ws.manifest_path, index=False)
    ws = Workspace(ws.root)
    small = curate_mod.curate(ws, strategy="dbp", keep=0.3, out=tmp_path / "mem.parquet")
    assert "partitioned" not in small.subset.info
    low = scale.PartitionConfig(in_memory_bytes=1000)
    big = curate_mod.curate(ws, strategy="dbp", keep=0.3, out=tmp_path / "part.parquet", partition=low)
    assert big.subset.info["partitioned"] and (ws.root / "audit" / "partition" / "fake@8" / "partition.json").exists()
    rows = pd.read_parquet(tmp_path / "part.parquet")["index"].to_numpy()
    assert abs(len(rows) - round(0.3 * 1797)) <= big.subset.info["clusters"] and len(set(rows)) == len(rows)
    assert rows.min() >= 0 and rows.max() < 1797
    assert curate_mod.curate(ws, strategy="dbp", keep=0.3, out=tmp_path / "part.parquet", partition=low).cached
    from clearset.errors import ParameterError

    with pytest.raises(ParameterError, match="clusters"):
        curate_mod.curate(ws, strategy="dbp", keep=0.3, clusters=5, out=tmp_path / "x.parquet", partition=low)

"""Audit checks on tiny constructed inputs with known answers, and their bad inputs."""

import numpy as np
import pandas as pd
import pytest
import torch

import clearset
from clearset.audit import (
    CHECKS,
    AuditData,
    class_pairs,
    export_clean_manifest,
    find_duplicates,
    find_label_issues,
    intrinsic_dimension,
    label_sharpness,
    multilabel_candidates,
    out_of_fold_probs,
    outlier_scores,
    run_audit,
)
from clearset.audit.neighborhoods import neural_gas_edges
from clearset.errors import ParameterError, WorkspaceError
from clearset.ops.knn import knn


def blobs(n_per=40, classes=3, dim=16, seed=0, spread=0.15):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per)
    return x, y


def test_knn_excludes_self_even_with_exact_duplicates():
    x = np.array([[1, 0], [1, 0], [0, 1], [0.7, 0.7]], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims, ids = knn(x, 2)
    assert ids[0, 0] == 1 and ids[1, 0] == 0
    assert all(i not in row for i, row in enumerate(ids))


def test_flipped_labels_are_found():
    x, y = blobs()
    noisy = y.copy()
    flipped = [3, 50, 100]
    noisy[flipped] = (noisy[flipped] + 1) % 3
    probs = out_of_fold_probs(x, noisy, 3)
    df = find_label_issues(noisy, probs)
    assert set(np.flatnonzero(df["is_label_issue"])) == set(flipped)
    assert (df.loc[flipped, "suggested_label"].to_numpy() == y[flipped]).all()
    assert df["label_quality"].iloc[flipped].max() < df["label_quality"].drop(flipped).min()


def test_label_issues_from_given_probs_and_one_class():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05], [0.1, 0.9]] * 5)
    labels = np.array([0, 1, 0, 0] * 5)  # every 4th row disagrees with a confident model
    df = find_label_issues(labels, probs)
    assert df["is_label_issue"].to_numpy().nonzero()[0].tolist() == list(range(3, 20, 4))
    one = find_label_issues(np.zeros(5, int), np.ones((5, 1)))
    assert not one["is_label_issue"].any()


def test_exact_and_near_duplicates_with_leakage():
    x, _ = blobs(n_per=10, spread=1.0)
    x = np.concatenate([x, x[[2]] + 1e-4, x[[7]]])  # 30: near copy of 2; 31: exact copy of 7
    hashes = np.array([f"h{i}" for i in range(30)] + ["h30", "h7"])
    splits = np.array(["train"] * 30 + ["test", "test"])
    df = find_duplicates(x, hashes, splits, embedding_threshold=0.999)
    pairs = {(a, b): k for a, b, k in zip(df["index"], df["duplicate_index"], df["kind"])}
    assert pairs == {(7, 31): "exact", (2, 30): "near"}
    assert df["cross_split"].all()


def test_aligned_similarity_sees_through_shift_crop_and_colour():
    from PIL import Image, ImageEnhance

    from clearset.audit.duplicates import aligned_similarity, pixel_representations

    rng = np.random.default_rng(0)
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BICUBIC))
    shifted = np.pad(base, ((0, 0), (3, 0), (0, 0)), mode="edge")[:, :32]
    cropped = np.asarray(Image.fromarray(base).crop((3, 3, 29, 29)).resize((32, 32), Image.BILINEAR))
    darker = np.asarray(ImageEnhance.Brightness(Image.fromarray(base)).enhance(0.7))
    other = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BICUBIC))
    _, views = pixel_representations([base, shifted, cropped, darker, other])
    sims = aligned_similarity(views, np.array([[0, 1], [0, 2], [0, 3], [0, 4]]))
    assert (sims[:3] > 0.94).all() and sims[3] < 0.8


def test_a_strong_crop_is_a_candidate_and_a_near_duplicate():
    """A 7 px crop per side resized back (a 1.78x zoom, beyond the search before 2026-12-07): found through
    the zoomed signatures and verified at a zoom of 1.76; unrelated images are not paired."""
    from PIL import Image

    from clearset.audit.duplicates import (
        PIXEL_FLOOR,
        ZOOMS,
        near_duplicate_pairs,
        pixel_representations,
        zoomed_signatures,
    )

    rng = np.random.default_rng(5)
    imgs = [np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BICUBIC))
            for _ in range(40)]
    crop = np.asarray(Image.fromarray(imgs[3]).crop((7, 7, 25, 25)).resize((32, 32), Image.BILINEAR))
    sigs, views = pixel_representations(imgs + [crop])
    assert sigs[3] @ sigs[40] < PIXEL_FLOOR  # the plain signatures do not see it ...
    assert zoomed_signatures(views, ZOOMS.index(1.76))[3] @ sigs[40] > 0.95  # ... the zoomed one does
    pairs = near_duplicate_pairs(None, views=views, signatures=sigs, k=3)
    found = set(zip(pairs["index"], pairs["duplicate_index"]))
    assert (3, 40) in found
    assert all(40 in p for p in found)


def test_stretch_finds_a_crop_of_unequal_sides():
    """A crop of 2 px off the top and bottom but 5 px off the left and right (zoom 1.14 by 1.45): no centre
    zoom matches it well; with ``stretch`` the zooms that differ between the axes do."""
    from PIL import Image

    from clearset.audit.duplicates import STRETCHES, aligned_similarity, near_duplicate_pairs, pixel_representations

    rng = np.random.default_rng(7)
    imgs = [np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BICUBIC))
            for _ in range(40)]
    crop = np.asarray(Image.fromarray(imgs[5]).crop((5, 2, 27, 30)).resize((32, 32), Image.BILINEAR))
    sigs, views = pixel_representations(imgs + [crop])
    plain = aligned_similarity(views, np.array([[5, 40]]))[0]
    stretched = aligned_similarity(views, np.array([[5, 40]]), stretches=STRETCHES)[0]
    assert stretched > 0.96 and stretched > plain + 0.02
    found = near_duplicate_pairs(None, views=views, signatures=sigs, k=3, stretch=True)
    assert (5, 40) in set(zip(found["index"], found["duplicate_index"]))


def test_the_structure_test_is_judged_at_the_zooms_the_grey_test_passed_at(monkeypatch):
    """A pair whose grey views align at a small zoom but whose structure aligns only at a large zoom (a
    smooth scene matched at one zoom, edges at another) is no copy; each path needs both at its zooms."""
    from clearset.audit import duplicates as d

    grey = np.array([[0.95, 0.5, 0.5, 0.5, 0.5, 0.5],   # base grey, base structure: a copy
                     [0.95, 0.5, 0.5, 0.5, 0.5, 0.5],   # base grey, structure only at a large zoom
                     [0.5, 0.5, 0.5, 0.5, 0.5, 0.97],   # a crop: grey and structure at the large zoom
                     [0.5, 0.5, 0.5, 0.5, 0.5, 0.97]])  # large-zoom grey, structure below its stricter bar
    structure = np.array([[d.STRUCTURE_THRESHOLD + 0.01] + [0.0] * 5,
                          [0.0] * 5 + [0.99],
                          [0.0] * 5 + [d.EXTENDED_STRUCTURE_THRESHOLD + 0.01],
                          [0.0] * 5 + [d.STRUCTURE_THRESHOLD + 0.01]], np.float32)
    candidates = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    monkeypatch.setattr(d, "STRETCHES", ())  # the six centre zooms only
    monkeypatch.setattr(d, "neighbour_pairs", lambda *a, **k: candidates)
    monkeypatch.setattr(d, "knn", lambda *a, **k: None)
    monkeypatch.setattr(d, "zoomed_signatures", lambda *a, **k: None)
    monkeypatch.setattr(d, "aligned_similarity", lambda v, p, **k: grey[[int(a) // 2 for a in p[:, 0]]])
    monkeypatch.setattr(d, "structure_similarity", lambda v, p, **k: structure[[int(a) // 2 for a in p[:, 0]]])
    views = np.zeros((8, len(d.ZOOMS), d.VIEW_SIDE, d.VIEW_SIDE), np.float16)
    found = d.near_duplicate_pairs(None, views=views, signatures=np.zeros((8, 256), np.float32))
    assert sorted(zip(found["index"], found["duplicate_index"])) == [(0, 1), (4, 5)]
    off = d.near_duplicate_pairs(None, views=views, signatures=np.zeros((8, 256), np.float32), structure_threshold=0)
    assert len(off) == 4  # structure_threshold 0 turns the structure test off


def test_outliers_far_point_and_class_relative():
    x, y = blobs(n_per=50)
    x = np.concatenate([x, 50 * np.ones((1, x.shape[1]), np.float32)])
    y = np.append(y, 0)
    df = outlier_scores(x, y)
    assert df["outlier_score"].idxmax() == 150 and df.loc[150, "is_outlier"]
    assert df["is_outlier"].sum() <= 5


def test_outliers_handle_tiny_classes():
    x, y = blobs(n_per=20)
    y[0] = 7  # a class with one image
    df = outlier_scores(x, y)
    assert np.isfinite(df["outlier_score"]).all()


def test_multilabel_candidates():
    p = np.array([[0.5, 0.45, 0.05], [0.98, 0.01, 0.01]])
    df = multilabel_candidates(p)
    assert df["candidate_labels"].tolist() == [[0, 1], [0]]
    assert df["is_multilabel"].tolist() == [True, False] and df["score"].iloc[0] > df["score"].iloc[1]


def test_class_pairs_finds_the_overlapping_pair():
    rng = np.random.default_rng(0)
    x, y = blobs(n_per=60, classes=4, spread=0.3)
    x[y == 3] = x[y == 2] + 0.5 * rng.normal(size=(60, x.shape[1]))  # classes 2 and 3 overlap
    probs = out_of_fold_probs(x, y, 4)
    df = class_pairs(x, y, probs, 4)
    assert tuple(df.iloc[0][["class_a", "class_b"]]) == (2, 3)
    by_weight = df.sort_values("neighbour_weight", ascending=False)
    assert tuple(by_weight.iloc[0][["class_a", "class_b"]]) == (2, 3)


def test_neural_gas_links_nearby_prototypes():
    protos = np.array([[1, 0], [0.9, 0.44], [-1, 0], [0, -1]], np.float32)
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    pts = protos[[0] * 20 + [1] * 20] + 0.01
    edges = neural_gas_edges(pts, protos, k=1)
    assert edges[0, 1] == 1 and edges[1, 0] == 1 and edges[0, 2] == 0


def test_intrinsic_dimension_of_known_manifolds():
    rng = np.random.default_rng(0)
    plane = np.zeros((1000, 10))
    plane[:, :2] = rng.random((1000, 2))
    cube = rng.random((1000, 6))
    assert 1.6 < intrinsic_dimension(plane) < 2.4
    assert 4.5 < intrinsic_dimension(cube) < 7.0


def test_intrinsic_dimension_uses_the_unbiased_normaliser():
    # five points on a line, no tied distances: each point's three nearest distances are known by hand
    x = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    near = [(1, 3, 7), (1, 2, 6), (2, 3, 4), (4, 6, 7), (8, 12, 14)]
    inv = [np.log(t3 / t1) + np.log(t3 / t2) for t1, t2, t3 in near]  # sum_{j<k} log(T_k / T_j), k = 3
    assert intrinsic_dimension(x, k=3) == pytest.approx(1 / (np.mean(inv) / (3 - 2)))  # ppope/dimensions
    with pytest.raises(ValueError, match="k >= 3"):
        intrinsic_dimension(x, k=2)


def test_label_sharpness_scores_different_labels_only():
    x = np.array([[0.0, 0], [0.0, 0.1], [1.0, 1.0]])
    # the two closest points share a label: they must not count (the official code's bug)
    value, j, k = label_sharpness(x, np.array([0, 0, 1]))
    assert value == pytest.approx(1 / np.linalg.norm([1, 0.9])) and {j, k} == {1, 2}
    assert label_sharpness(x, np.array([0, 0, 0]))[0] == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_are_rejected(bad):
    x, y = blobs()
    x[5, 3] = bad
    with pytest.raises(ParameterError, match="NaN or inf .* row 5"):
        AuditData(labels=y, n_classes=3, class_names=list("abc"), features=x)


def test_length_mismatch_is_rejected():
    x, y = blobs()
    with pytest.raises(WorkspaceError, match="features has 119 rows but the manifest has 120"):
        AuditData(labels=y, n_classes=3, class_names=list("abc"), features=x[:-1])


def test_exact_duplicates_group_to_the_first_copy_for_strings_and_compact_hashes():
    import hashlib

    from clearset.audit.duplicates import exact_duplicate_pairs
    from clearset.workspace import compact_hashes

    groups = [3, 0, 3, 1, 0, 3, 2]
    digests = [hashlib.sha256(bytes([g])).hexdigest() for g in groups]
    compact = compact_hashes(digests)
    assert compact.dtype == np.dtype("S32") and compact.nbytes == 32 * len(groups)
    expected = [(0, 2), (1, 4), (0, 5)]  # each later copy linked to its group's first row, in row order
    for hashes in (digests, compact, np.array([f"g{g}" for g in groups], dtype=object)):
        df = exact_duplicate_pairs(hashes)
        assert list(zip(df["index"], df["duplicate_index"])) == expected
    assert compact_hashes(["not hex"] * 2).dtype.kind in "OU"  # anything else is kept as it is
    assert exact_duplicate_pairs(compact_hashes([])).empty

def test_every_check_on_one_class_and_identical_images(tmp_path):
    root = tmp_path / "d" / "only"
    root.mkdir(parents=True)
    img = np.full((16, 16, 3), 90, np.uint8)
    for i in range(6):
        from PIL import Image
        Image.fromarray(img).save(root / f"{i}.png")
    ws = clearset.ingest(str(tmp_path / "d"), tmp_path / "ws")
    clearset.embed(ws, backbone="test_efficientnet", image_size=32, precision="fp32")
    summary = run_audit(ws)
    assert set(summary["checks"]) == set(CHECKS.names())
    assert summary["checks"]["label_issues"]["label_issues"] == 0
    assert summary["checks"]["duplicates"]["exact_pairs"] == 5  # all linked to the first copy
    assert ws.hashes().dtype == np.dtype("S32")  # the audit reads the hashes compact, batch by batch
    assert ws.hashes().tobytes().hex() == "".join(ws.manifest()["sha256"])
    assert list(ws.manifest(["label", "split"]).columns) == ["label", "split"]
    assert summary["checks"]["properties"]["label_sharpness"]["value"] == 0.0


def test_workspace_audit_export_and_cache(tmp_path):
    ws = clearset.ingest("builtin:fractals?classes=3&per_class=12&size=24", tmp_path / "ws")
    clearset.embed(ws, backbone="test_efficientnet", image_size=32, precision="fp32")
    first = run_audit(ws)
    stamp = (tmp_path / "ws" / "audit" / "label_issues.parquet").stat().st_mtime_ns
    run_audit(ws)
    assert (tmp_path / "ws" / "audit" / "label_issues.parquet").stat().st_mtime_ns == stamp
    assert (tmp_path / "ws" / "audit" / "pred_probs.npy").exists()
    out = export_clean_manifest(ws, tmp_path / "clean.parquet")
    m = pd.read_parquet(out)
    assert {"clean_label", "drop", "is_label_issue", "suggested_label"} <= set(m.columns)
    relabelled = clearset.ingest("builtin:fractals?classes=3&per_class=12&size=24", tmp_path / "ws2",
                                 labels=[str(out)])
    assert relabelled.manifest()["label"].tolist() == m["clean_label"].tolist()
    assert set(first["checks"]) == set(CHECKS.names())


def test_audit_bad_inputs(tmp_path):
    ws = clearset.ingest("builtin:fractals?classes=2&per_class=6&size=16", tmp_path / "ws")
    with pytest.raises(ParameterError, match="unknown audit check 'spelling'"):
        run_audit(ws, checks=["spelling"])
    with pytest.raises(WorkspaceError, match="needs features"):
        run_audit(ws, checks=["outliers"])
    np.save(tmp_path / "p.npy", np.ones((3, 2)) / 2)
    with pytest.raises(ParameterError, match=r"must be \(12, 2\)"):
        run_audit(ws, checks=["label_issues"], pred_probs=tmp_path / "p.npy")


@pytest.mark.parametrize("method", ["bf16", "faiss"])
def test_knn_methods_equal_brute_force(method):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(700, 48)).astype(np.float32)
    x[10] = x[20]  # an exact duplicate pair must find each other, never itself
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims, ids = knn(x, 7, method=method)
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    ref = np.argsort(-full, axis=1, kind="stable")[:, :7]
    np.testing.assert_allclose(sims, np.take_along_axis(full, ref, 1), atol=1e-5)
    def twin(a):  # rows 10 and 20 tie for every other query
        return np.where(a == 20, 10, a)

    assert np.array_equal(twin(ids)[:, :6], twin(ref)[:, :6])
    assert ids[10, 0] == 20 and ids[20, 0] == 10
    assert all(i not in row for i, row in enumerate(ids))


def test_aligned_similarity_equals_brute_force_correlation():
    from clearset.audit.duplicates import aligned_similarity

    rng = np.random.default_rng(1)
    views = rng.integers(0, 256, (6, 3, 28, 28)).astype(np.float16)
    pairs = np.array([[0, 1], [2, 3], [4, 5]])

    def ncc(t, w):
        t, w = t - t.mean(), w - w.mean()
        return (t * w).sum() / (np.linalg.norm(t) * np.linalg.norm(w) + 1e-6)

    def brute(i, j, flips):
        v = views.astype(np.float64)
        return max(ncc(v[s, 0, 4:24, 4:24], (v[d, z, :, ::-1] if f else v[d, z])[y:y + 20, x:x + 20])
                   for s, d in ((i, j), (j, i)) for f in flips for z in range(3) for y in range(9) for x in range(9))

    for (i, j), got, plain in zip(pairs, aligned_similarity(views, pairs), aligned_similarity(views, pairs, mirror=False)):
        assert got == pytest.approx(brute(i, j, (False, True)), abs=1e-4)
        assert plain == pytest.approx(brute(i, j, (False,)), abs=1e-4)


def test_mirrored_copies_match_and_smooth_look_alikes_fail_the_structure_test():
    from PIL import Image

    from clearset.audit.duplicates import (
        STRUCTURE_THRESHOLD,
        aligned_similarity,
        pixel_representations,
        structure_similarity,
    )

    rng = np.random.default_rng(0)
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BICUBIC))
    mirrored = np.ascontiguousarray(base[:, ::-1])
    # two "sea and sky" scenes: the same smooth vertical gradient, each with its own faint texture
    ramp = np.linspace(40, 220, 32)[:, None, None] * np.ones((32, 32, 3))
    sea_a = np.clip(ramp + rng.normal(0, 4, (32, 32, 1)), 0, 255).astype(np.uint8)
    sea_b = np.clip(ramp + rng.normal(0, 4, (32, 32, 1)), 0, 255).astype(np.uint8)
    _, views = pixel_representations([base, mirrored, sea_a, sea_b])
    pairs = np.array([[0, 1], [2, 3]])
    grey = aligned_similarity(views, pairs)
    assert grey[0] > 0.94 > aligned_similarity(views, pairs[:1], mirror=False)[0]
    assert grey[1] > 0.94  # grey correlation alone calls the two seas copies
    structure = structure_similarity(views, pairs)
    assert structure[0] > STRUCTURE_THRESHOLD > structure[1]


def test_batched_pixel_representations_match_pillow_resizing():
    from PIL import Image

    from clearset.audit.duplicates import ZOOMS, pixel_representations

    rng = np.random.default_rng(3)
    small = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    odd = [rng.integers(0, 256, (45, 37, 3), dtype=np.uint8)]
    sigs, views = pixel_representations(small + odd, batch=2)  # a mixed-shape batch takes the per-image path
    assert sigs.shape == (4, 256) and views.shape == (4, len(ZOOMS), 28, 28)
    np.testing.assert_allclose(np.linalg.norm(sigs, axis=1), 1.0, atol=1e-5)
    for img, view in zip(small + odd, views):
        grey = Image.fromarray(img).convert("L").resize((32, 32), Image.BOX)
        for z, got in zip(ZOOMS, view):
            lo = (32 - 32 / z) / 2
            ref = np.asarray(grey.resize((28, 28), Image.BILINEAR, box=(lo, lo, lo + 32 / z, lo + 32 / z)), np.float32)
            assert np.abs(got.astype(np.float32) - ref).max() <= 1.0  # Pillow rounds to whole grey levels


def test_image_statistics_batch_equals_per_image_formulas():
    from clearset.audit.properties import all_image_statistics

    rng = np.random.default_rng(4)
    imgs = [rng.integers(0, 256, (9, 11, 3), dtype=np.uint8) for _ in range(3)] + [np.zeros((5, 5, 3), np.uint8)]
    got = all_image_statistics(imgs, batch=3)
    for img, row in zip(imgs, got):
        grey = img.astype(np.float64) @ [0.299, 0.587, 0.114]
        p = np.bincount(grey.astype(np.uint8).ravel(), minlength=256) / grey.size
        lap = -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
        np.testing.assert_allclose(row, [grey.mean() / 255, -(p[p > 0] * np.log2(p[p > 0])).sum(), lap.var()],
                                   rtol=1e-4, atol=1e-6)


def test_joint_fold_logreg_equals_scikit_learn_per_fold():
    from sklearn.linear_model import LogisticRegression

    from clearset.audit.label_issues import fold_indices, oof_logreg

    x, y = blobs(n_per=40, spread=3.0)  # overlapping classes: probabilities far from 0 and 1
    got = oof_logreg(x, y, 3, folds=4, c=1.0, max_iter=500)
    ref = np.zeros_like(got)
    for train, test in fold_indices(y, 4, 0):
        model = LogisticRegression(C=1.0, tol=1e-8, max_iter=5000).fit(x[train], y[train])
        ref[test] = model.predict_proba(x[test])
    assert 0.05 < ref.min() and ref.max() < 0.999 or (ref < 0.95).mean() > 0.2
    np.testing.assert_allclose(got, ref, atol=1e-2)


def test_spatial_class_maps_equal_the_fold_heads_on_a_one_location_map(tmp_path):
    """At 32 px EfficientNet's feature map has one location, which is the pooled embedding itself: the
    spatial class maps must then equal the out-of-fold logistic-regression probabilities (an independent
    path: embed -> oof_logreg)."""
    from clearset.audit.label_issues import DEFAULT_C, oof_logreg
    from clearset.vectors import normalise_features

    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    emb = clearset.embed(ws, backbone="efficientnet_lite0", image_size=32)
    summary = run_audit(ws, checks=["label_issues", "multilabel"], spatial=True)
    assert summary["checks"]["multilabel"]["spatial"] is True
    ml = pd.read_parquet(ws.root / "audit" / "multilabel.parquet")
    assert {"oof_score", "spatial_score"} <= set(ml.columns) and ml["spatial_score"].between(0, 1).all()
    labels = ws.manifest()["label"].to_numpy()
    heads = {}
    probs = oof_logreg(normalise_features(np.asarray(emb.load())), labels, 10, c=DEFAULT_C, heads=heads)
    second = -np.sort(-probs, axis=1)[:, 1]
    assert np.abs(ml["spatial_score"].to_numpy() - second).max() < 0.03  # bf16 batches differ slightly
    assert np.allclose(ml["score"], (ml["oof_score"] + ml["spatial_score"]) / 2, atol=1e-6)


def test_pixel_oof_and_combined_label_issues(tmp_path):
    from clearset.oof import pixel_oof
    from clearset.train.recipes import RECIPES, Recipe, register_recipe

    if "oof-tiny" not in RECIPES:
        register_recipe(Recipe("oof-tiny", "test", model="resnet8", epochs=1, batch_size=64, lr=0.05, image_size=8,
                               crop_pad=0))
    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    path = pixel_oof(ws, recipe="oof-tiny", folds=2)
    probs = np.load(path)
    labels = ws.manifest()["label"].to_numpy()
    assert probs.shape == (len(labels), 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    runs = sorted((ws.root / "runs").iterdir())
    assert len(runs) == 2 and pixel_oof(ws, recipe="oof-tiny", folds=2) == path  # cached
    # each fold's model never trained on the rows it predicts
    import json

    for run in runs:
        sub = pd.read_parquet(json.loads((run / "config.json").read_text())["subset_file"])
        assert len(sub) < len(labels)
    with pytest.raises(ParameterError, match="pass pred_probs"):
        run_audit(ws, checks=["label_issues"], combine=True, stored_oof=False)
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=32)
    s = run_audit(ws, checks=["label_issues"], pred_probs=path, combine=True)
    assert s["checks"]["label_issues"]["models"] == ["logreg", "knn", "given pred_probs"]
    # with no options the stored pixel OOF of this manifest is averaged in; not when told, nor for other labels
    from clearset.audit import stored_pixel_oof

    assert stored_pixel_oof(ws) == path
    assert run_audit(ws, checks=["label_issues"])["checks"]["label_issues"]["models"] == [
        "logreg", "knn", "given pred_probs"]
    assert run_audit(ws, checks=["label_issues"], stored_oof=False)["checks"]["label_issues"]["models"] == [
        "logreg", "knn"]
    np.save(tmp_path / "flipped.npy", (labels + 1) % 10)
    relabelled = clearset.ingest("builtin:digits", tmp_path / "ws", labels=[str(tmp_path / "flipped.npy")])
    assert stored_pixel_oof(relabelled) is None


def test_pixel_oof_predicts_with_the_recipes_test_time_augmentation():
    """A recipe with tta (cifar-airbench) gives the softmax of its averaged logits; without, the mean softmax
    of the image and its mirror when the recipe flips, else of the image alone."""
    from clearset.models.inference import predict
    from clearset.oof import _held_out_probs

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 3))
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)

    def soft(v, tta=0):
        return torch.softmax(torch.from_numpy(predict(net, v, mean, std, tta=tta)), 1).numpy()

    cfg = {"precision": "fp32"}
    assert np.allclose(_held_out_probs(net, images, mean, std, {**cfg, "recipe": {"tta": 2, "flip": True}}),
                       soft(images, tta=2), atol=1e-6)
    assert np.allclose(_held_out_probs(net, images, mean, std, {**cfg, "recipe": {"flip": True}}),
                       (soft(images) + soft(images.flip(3))) / 2, atol=1e-6)
    assert np.allclose(_held_out_probs(net, images, mean, std, {**cfg, "recipe": {"flip": False}}), soft(images),
                       atol=1e-6)
    assert not np.allclose(soft(images, tta=2), soft(images), atol=1e-3)  # the three cases differ


def test_pixel_oof_clean_leaves_out_flagged_training_rows_only(tmp_path, monkeypatch):
    """--clean: each fold's network trains on its training folds minus what the embedding models flag
    there, and the flags are computed without the held-out fold (its probabilities stay out-of-fold)."""
    import json

    import clearset.oof as oof
    from clearset.audit.label_issues import fold_indices
    from clearset.train.recipes import RECIPES, Recipe, register_recipe

    if "oof-tiny" not in RECIPES:
        register_recipe(Recipe("oof-tiny", "test", model="resnet8", epochs=1, batch_size=64, lr=0.05, image_size=8,
                               crop_pad=0))
    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    with pytest.raises(ParameterError, match="clearset embed"):
        oof.pixel_oof(ws, recipe="oof-tiny", folds=2, clean=True)
    clearset.embed(ws, backbone="efficientnet_lite0", image_size=32)
    labels = ws.manifest()["label"].to_numpy()
    seen = []
    real = oof._flagged
    monkeypatch.setattr(oof, "_flagged", lambda x, y, c, seed: seen.append(len(y)) or real(x, y, c, seed))
    path = oof.pixel_oof(ws, recipe="oof-tiny", folds=2, clean=True)
    assert path.name.endswith("-clean.npy") and np.allclose(np.load(path).sum(1), 1, atol=1e-4)
    splits = fold_indices(labels, 2, 0)
    assert seen == [len(tr) for tr, _ in splits]  # the cleaning saw the training folds only
    meta = json.loads(ws.sidecar_of(path).read_text())
    left_out = meta["left_out_per_fold"]
    for f, ((tr, te), dropped) in enumerate(zip(splits, left_out)):
        sub = set(pd.read_parquet(ws.root / "oof" / f"fold{f}-of2-s0-clean.parquet")["index"])
        assert sub <= set(tr.tolist()) and len(sub) == len(tr) - dropped and not sub & set(te.tolist())


def test_blockwise_normalisation_equals_the_whole_array(monkeypatch):
    import clearset.vectors as vectors

    x = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
    whole = vectors.normalise_features(x)
    monkeypatch.setattr(vectors, "BLOCK_ROWS", 64)
    assert np.array_equal(vectors.normalise_features(x), whole)


def test_workspace_splits_are_compact_and_match_the_manifest(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8), y_train=np.arange(5) % 2,
             x_test=rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8), y_test=np.array([0, 1, 0]))
    ws = clearset.ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    splits = ws.splits()
    assert splits.dtype.kind == "U" and splits.dtype.itemsize <= 4 * 5  # no Python string per row
    assert splits.tolist() == ws.manifest()["split"].tolist() == ["train"] * 5 + ["test"] * 3


def test_checks_run_after_what_they_need_or_use():
    """The audit orders checks by needs/uses/provides, not by a list of names; a circle is refused."""
    from clearset.audit import CHECKS
    from clearset.audit.base import Check, dependency_order

    order = dependency_order(["class_pairs", "multilabel", "properties", "label_issues"])
    assert order.index("label_issues") < order.index("multilabel") and order.index("label_issues") < order.index(
        "class_pairs")
    assert dependency_order(CHECKS.list()).index("label_issues") < dependency_order(CHECKS.list()).index("multilabel")
    a = Check("_circle_a", lambda d: None, ("x",), "a", provides=("y",))
    b = Check("_circle_b", lambda d: None, ("y",), "b", provides=("x",))
    CHECKS.register("_circle_a", a)
    CHECKS.register("_circle_b", b)
    try:
        with pytest.raises(RuntimeError, match="circle"):
            dependency_order(["_circle_a", "_circle_b"])
    finally:
        for n in ("_circle_a", "_circle_b"):
            CHECKS._entries.pop(n)
            CHECKS._meta.pop(n)


def _train_test_npz(path, test_labels):
    rng = np.random.default_rng(0)
    y_train = np.repeat(np.arange(3), 10)
    # images whose colour follows the class, so the label models have something to learn
    x_train = (rng.integers(0, 60, (30, 16, 16, 3)) + 80 * y_train[:, None, None, None]).astype(np.uint8)
    x_test = rng.integers(0, 255, (9, 16, 16, 3)).astype(np.uint8)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=np.asarray(test_labels))
    return path


def test_audit_label_splits_keep_test_labels_out(tmp_path):
    scores = []
    for name, test_labels in (("a", [0, 1, 2] * 3), ("b", [2, 2, 2, 0, 0, 0, 1, 1, 1])):
        ws = clearset.ingest(str(_train_test_npz(tmp_path / f"{name}.npz", test_labels)), tmp_path / f"ws_{name}")
        clearset.embed(ws, backbone="test_efficientnet", image_size=32, precision="fp32")
        s = run_audit(ws, checks=["label_issues"], label_splits=["train"])
        assert s["label_splits"] == ["train"]
        t = pd.read_parquet(ws.root / "audit" / "label_issues.parquet")
        assert len(t) == 30 and t["index"].max() < 30  # the 9 test rows have no score
        scores.append(t.sort_values("index")["label_quality"].to_numpy())
        with pytest.raises(ParameterError, match="the workspace's splits are test, train"):
            run_audit(ws, checks=["label_issues"], label_splits=["val"])
    # the test labels differ between the two workspaces; the training rows' scores do not
    np.testing.assert_array_equal(scores[0], scores[1])
    # without the mask every labelled row, test included, is scored
    full = run_audit(ws, checks=["label_issues"])
    assert "label_splits" not in full
    assert len(pd.read_parquet(ws.root / "audit" / "label_issues.parquet")) == 39


def test_weighted_and_soft_oof_fits_reduce_to_the_plain_fit():
    from clearset.audit.label_issues import knn_probs, oof_logreg
    from clearset.vectors import normalise_features

    x, y = blobs()
    x = normalise_features(x)
    plain = oof_logreg(x, y, 3, c=1.0)
    np.testing.assert_allclose(oof_logreg(x, y, 3, c=1.0, weights=np.ones(len(y))), plain, atol=1e-5)
    np.testing.assert_allclose(oof_logreg(x, y, 3, c=1.0, targets=np.eye(3)[y]), plain, atol=1e-5)
    votes = knn_probs(x, y, 3)
    np.testing.assert_allclose(knn_probs(x, y, 3, weights=np.ones(len(y)), targets=np.eye(3)[y]), votes, atol=1e-6)
    # a row of weight 0 votes for nobody: flipping its label changes no other row's kNN probabilities
    silent = np.ones(len(y))
    silent[7] = 0
    flipped = y.copy()
    flipped[7] = (y[7] + 1) % 3
    a, b = knn_probs(x, y, 3, weights=silent), knn_probs(x, flipped, 3, weights=silent)
    np.testing.assert_allclose(np.delete(a, 7, 0), np.delete(b, 7, 0), atol=1e-7)


@pytest.mark.parametrize("robust", ["clean-refit", "divide-refit", "progressive"])
def test_robust_refits_give_probabilities_and_find_the_flips(robust):
    x, y = blobs()
    noisy = y.copy()
    flipped = np.arange(0, len(y), 7)  # ~14% of the labels
    noisy[flipped] = (noisy[flipped] + 1) % 3
    probs = out_of_fold_probs(x, noisy, 3, robust=robust)
    assert probs.shape == (len(y), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(probs, out_of_fold_probs(x, noisy, 3, robust=robust))  # deterministic
    quality = probs[np.arange(len(y)), noisy]
    truth = np.isin(np.arange(len(y)), flipped)
    assert quality[truth].max() < quality[~truth].min()  # easy blobs: every flip ranks below every clean row
    with pytest.raises(ParameterError, match="choose from none, clean-refit"):
        out_of_fold_probs(x, noisy, 3, robust="dividemix")

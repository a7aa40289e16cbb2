"""Real precision of the near-duplicate check (issue 22, item 4): the planted copies score only pairs
that involve a copy, so here the pairs flagged among CIFAR-10's own 60,000 images are looked at by a
person, and the judgements are kept as data.

    .venv/bin/python bench/audit/duplicates_real.py render   # sample pairs, draw grids (bench/.cache)
    (look at every grid; write bench/results/audit_duplicates_judgements.csv: pair_id,verdict)
    .venv/bin/python bench/audit/duplicates_real.py score    # precision per threshold, leakage
    .venv/bin/python bench/audit/duplicates_real.py render-fresh   # a new sample of the default as it is
    (judge it: bench/results/audit_duplicates_judgements_fresh.csv)
    .venv/bin/python bench/audit/duplicates_real.py score-fresh
    .venv/bin/python bench/audit/duplicates_real.py render-round --round widened   # the widened default:
    (a random sample; verdicts of pairs judged before carried over; judge the rest in
    bench/results/audit_duplicates_judgements_widened.csv), then score-round --round widened

``render``: every near pair with aligned similarity >= 0.88 (clearset's candidates and verification,
threshold lowered to see below the default 0.94), in four bins [0.88, 0.91), [0.91, 0.94), [0.94, 0.97),
[0.97, 1]; up to 100 random pairs per bin (seed 0), shown in a shuffled order with only a pair id, so the
judge does not see the similarity. Writes bench/results/audit_duplicates_sample.csv (the sample, with
similarity and bin) and bench/.cache/duplicate_grids/grid_NN.png (50 pairs each).
A verdict is ``same`` (one photograph: the same shot, possibly cropped, shifted, rescaled, recoloured or
mirrored), ``different`` (another photograph, however alike) or ``unsure``.

``score``: precision per bin (same / (same + different)) with a Wilson 95% interval; the precision of
every pair at or above each bin's lower edge (bins weighted by their number of pairs, a stratified
bootstrap interval); the test images with a train partner at or above each threshold, and the share of
them whose pair would be judged ``same`` (the leakage rate that threshold implies). Writes
bench/results/audit_duplicates_real.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

import clearset
from clearset.audit.duplicates import find_duplicates, pixel_representations
from clearset.io import atomic_path
from clearset.vectors import normalise_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402

EDGES = (0.88, 0.91, 0.94, 0.97, 1.0001)
PER_BIN, PER_GRID, SCALE = 100, 50, 3
SAMPLE = ROOT / "bench" / "results" / "audit_duplicates_sample.csv"
JUDGED = ROOT / "bench" / "results" / "audit_duplicates_judgements.csv"
FRESH_PER_BIN = 100
GRIDS = CACHE / "duplicate_grids"


def images() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SHARED / "cifar10.npz") as z:
        return np.concatenate([z["x_train"], z["x_test"]]), np.array(["train"] * len(z["x_train"]) + ["test"] * len(z["x_test"]))


def all_pairs(structure_threshold: float = 0.0, threshold: float = EDGES[0]) -> pd.DataFrame:
    ws = clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    m = ws.manifest(["split"])
    x, splits = images()
    assert (m["split"].to_numpy() == splits).all(), "the workspace rows are not train then test"
    feats = normalise_features(np.asarray(clearset.embed(ws, backbone="efficientnet_lite0", image_size=128).load()))
    signatures, views = pixel_representations(x)
    pairs = find_duplicates(feats, None, splits, views=views, signatures=signatures, threshold=threshold,
                            structure_threshold=structure_threshold)
    pairs = pairs[pairs["kind"] == "near"].reset_index(drop=True)
    pairs["bin"] = np.searchsorted(EDGES, pairs["similarity"].to_numpy(), side="right") - 1
    return pairs


def _leaked(pairs: pd.DataFrame) -> set[int]:
    """Test rows (index >= 50,000) with a train partner among ``pairs``."""
    cross = pairs[pairs["cross_split"]]
    return {int(max(a, b)) for a, b in zip(cross["index"], cross["duplicate_index"])}


def draw_grids(sample: pd.DataFrame, prefix: str) -> None:
    x, _ = images()
    GRIDS.mkdir(parents=True, exist_ok=True)
    side, cols = 32 * SCALE, 5
    cell_w, cell_h = 2 * side + 30, side + 18
    for g in range(0, len(sample), PER_GRID):
        part = sample.iloc[g : g + PER_GRID]
        rows = -(-len(part) // cols)
        canvas = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
        draw = ImageDraw.Draw(canvas)
        for k, r in enumerate(part.itertuples()):
            cx, cy = (k % cols) * cell_w, (k // cols) * cell_h
            for j, idx in enumerate((r.index, r.duplicate_index)):
                tile = Image.fromarray(x[idx]).resize((side, side), Image.Resampling.NEAREST)
                canvas.paste(tile, (cx + 4 + j * (side + 4), cy + 16))
            draw.text((cx + 4, cy + 2), f"#{r.pair_id}", fill="black")
        with atomic_path(GRIDS / f"{prefix}_{g // PER_GRID:02d}.png") as tmp:
            canvas.save(tmp, format="PNG")


ROUNDS = {  # tag: (first pair id, sample seed, whether pairs judged in earlier rounds may be drawn again)
    "fresh": (1000, 2, False),  # 2026-12-07: the default with the structure test
    "widened": (2000, 4, True),  # 2026-12-07: the default with zooms to 1.76 and zoomed-signature candidates
    "structure": (3000, 6, True),  # 2026-12-08: structure >= 0.8 at the zooms the grey test passed at
}


def round_files(tag: str) -> tuple[Path, Path, Path]:
    """(sample, judgements, population) of a judging round."""
    results = ROOT / "bench" / "results"
    return (results / f"audit_duplicates_sample_{tag}.csv", results / f"audit_duplicates_judgements_{tag}.csv",
            results / f"audit_duplicates_population_{tag}.json")


def earlier_verdicts() -> pd.DataFrame:
    """Every verdict given so far: ``index, duplicate_index, verdict, earlier_pair_id``."""
    parts = [pd.read_csv(SAMPLE).merge(pd.read_csv(JUDGED), on="pair_id")]
    for tag in ROUNDS:
        sample, judged, _ = round_files(tag)
        if sample.exists() and judged.exists():
            parts.append(pd.read_csv(sample).merge(pd.read_csv(judged)[["pair_id", "verdict"]], on="pair_id"))
    v = pd.concat(parts, ignore_index=True)[["index", "duplicate_index", "verdict", "pair_id"]]
    return v.rename(columns={"pair_id": "earlier_pair_id"}).drop_duplicates(["index", "duplicate_index"])


def default_flagged() -> pd.DataFrame:
    """The near pairs the default flags now (aligned similarity and structure test), with their bins.
    Searched at the default threshold itself: before 2026-12-08 this searched at 0.88 and kept similarity
    >= 0.94, which let a pair through whose base zooms passed 0.88 and whose larger zooms reached 0.94
    but not their stricter 0.96 (10 of the 198 pairs of the widened round's rescoring)."""
    from clearset.audit.duplicates import DEFAULT_THRESHOLD, STRUCTURE_THRESHOLD

    return all_pairs(STRUCTURE_THRESHOLD, DEFAULT_THRESHOLD)


def population_counts(pairs: pd.DataFrame, edges) -> dict:
    """Pairs, and test images with a train partner, at or above each edge."""
    return {"pairs_at_or_above": {str(e): int((pairs["similarity"] >= e).sum()) for e in edges},
            "test_images_with_train_partner_at_or_above": {
                str(e): int(len(_leaked(pairs[pairs["similarity"] >= e]))) for e in edges}}


def render_round(tag: str) -> None:
    """A random sample of the default as it now is (aligned >= 0.94 and structure >= its threshold): 100
    flagged pairs in each of [0.94, 0.97) and [0.97, 1]. In a round that may redraw judged pairs, a pair
    judged before keeps its verdict (a verdict is a property of the two images, not of the detector) and
    only the others are rendered to be looked at."""
    from clearset.audit.duplicates import EXTENDED_STRUCTURE_THRESHOLD, EXTENDED_THRESHOLD, STRUCTURE_THRESHOLD

    first_id, seed, redraw = ROUNDS[tag]
    sample_file, judged_file, population_file = round_files(tag)
    flagged = default_flagged()
    pairs = flagged  # the population; a round without redraws leaves out the pairs judged before
    if not redraw:
        old = pd.read_csv(SAMPLE)
        seen = set(zip(old["index"], old["duplicate_index"]))
        pairs = flagged[[(a, b) not in seen for a, b in zip(flagged["index"], flagged["duplicate_index"])]]
        pairs = pairs.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked = []
    for b in (2, 3):
        rows = np.flatnonzero(pairs["bin"].to_numpy() == b)
        picked.append(rng.choice(rows, min(FRESH_PER_BIN, len(rows)), replace=False))
        print(f"structure-verified bin [{EDGES[b]}, {min(EDGES[b + 1], 1.0)}): {len(rows)} pairs, {len(picked[-1])} sampled")
    sample = pairs.loc[np.concatenate(picked)].sample(frac=1, random_state=3).reset_index(drop=True)
    sample.insert(0, "pair_id", np.arange(first_id, first_id + len(sample)))
    sample = sample.join(flagged.groupby("bin").size().rename("pairs_in_bin"), on="bin")
    write_result(population_file.stem, {"bench": population_file.stem, "structure_threshold": STRUCTURE_THRESHOLD,
                                        "extended": f"{EXTENDED_THRESHOLD} and structure {EXTENDED_STRUCTURE_THRESHOLD}",
                                        **population_counts(flagged, EDGES[2:-1])})
    with atomic_path(sample_file) as tmp:  # after the result: its provenance sees a clean tree
        sample.to_csv(tmp, index=False)
    to_look = sample
    if redraw:
        known = sample.merge(earlier_verdicts(), on=["index", "duplicate_index"])
        with atomic_path(judged_file.with_suffix(".carried.csv")) as tmp:
            known[["pair_id", "verdict", "earlier_pair_id"]].to_csv(tmp, index=False)
        to_look = sample[~sample["pair_id"].isin(known["pair_id"])]
        print(f"{len(known)} sampled pairs were judged before (verdicts carried over); {len(to_look)} to look at")
    draw_grids(to_look, tag)
    print(f"{len(sample)} pairs -> {sample_file}; grids in {GRIDS}/{tag}_*.png")


def render() -> None:
    pairs = all_pairs()
    rng = np.random.default_rng(0)
    picked = []
    for b in range(len(EDGES) - 1):
        rows = np.flatnonzero(pairs["bin"].to_numpy() == b)
        picked.append(rng.choice(rows, min(PER_BIN, len(rows)), replace=False))
        print(f"bin [{EDGES[b]}, {min(EDGES[b + 1], 1.0)}): {len(rows)} pairs, {len(picked[-1])} sampled")
    sample = pairs.loc[np.concatenate(picked)].sample(frac=1, random_state=1).reset_index(drop=True)
    sample.insert(0, "pair_id", np.arange(len(sample)))
    counts = pairs.groupby("bin").size().rename("pairs_in_bin")
    sample = sample.join(counts, on="bin")
    population = {"bench": "audit_duplicates_population", "edges": EDGES[:-1], "near_pairs": len(pairs),
                  **population_counts(pairs, EDGES[:-1])}
    write_result("audit_duplicates_population", population)  # before the sample: provenance of a clean tree
    with atomic_path(SAMPLE) as tmp:
        sample.to_csv(tmp, index=False)
    draw_grids(sample, "grid")
    print(f"{len(sample)} pairs -> {SAMPLE}; grids in {GRIDS}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def score() -> None:
    import json

    sample = pd.read_csv(SAMPLE)
    population = json.loads((ROOT / "bench" / "results" / "audit_duplicates_population.json").read_text())
    judged = pd.read_csv(JUDGED)
    bad = sorted(set(judged["verdict"]) - {"same", "different", "unsure"})
    if bad:
        sys.exit(f"{JUDGED}: verdicts must be same, different or unsure, found {bad}")
    s = sample.merge(judged, on="pair_id", how="left")
    if s["verdict"].isna().any():
        sys.exit(f"{JUDGED}: {int(s['verdict'].isna().sum())} sampled pairs have no verdict")
    bins, rng = [], np.random.default_rng(0)
    for b in range(len(EDGES) - 1):
        part = s[s["bin"] == b]
        same, diff = int((part["verdict"] == "same").sum()), int((part["verdict"] == "different").sum())
        lo, hi = wilson(same, same + diff)
        bins.append({"bin": [EDGES[b], min(EDGES[b + 1], 1.0)], "pairs_in_bin": int(part["pairs_in_bin"].iloc[0]) if len(part) else 0,
                     "looked_at": len(part), "same": same, "different": diff, "unsure": int((part["verdict"] == "unsure").sum()),
                     "precision": same / max(1, same + diff), "wilson_95": [lo, hi]})
    thresholds = []
    for b0 in range(len(bins)):
        use = bins[b0:]
        weight = np.array([u["pairs_in_bin"] for u in use], dtype=float)
        est = float((weight * [u["precision"] for u in use]).sum() / weight.sum())
        boots = []
        for _ in range(2000):  # stratified bootstrap over the judged pairs of each bin
            ps = []
            for u, bb in zip(use, range(b0, len(bins))):
                v = s[(s["bin"] == bb) & (s["verdict"] != "unsure")]["verdict"].to_numpy()
                ps.append((rng.choice(v, len(v)) == "same").mean() if len(v) else 0.0)
            boots.append(float((weight * ps).sum() / weight.sum()))
        cross = s[(s["bin"] >= b0) & s["cross_split"]]
        leaked = population["test_images_with_train_partner_at_or_above"][str(EDGES[b0])]
        same_share = float((cross["verdict"] == "same").mean()) if len(cross) else None
        thresholds.append({"threshold": EDGES[b0], "pairs": int(weight.sum()), "looked_at": int(sum(u["looked_at"] for u in use)),
                           "precision": est, "bootstrap_95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
                           "cross_split_looked_at": len(cross),
                           "cross_split_same": same_share, "test_images_flagged_as_leaked": leaked,
                           "implied_leakage_rate": None if same_share is None else leaked * same_share / 10000})
    # leakage by bins: the test images a bin adds (first flagged at that similarity) times the share of
    # its sampled cross-split pairs judged the same photograph (the bin's precision where none was sampled)
    leaked_at = [population["test_images_with_train_partner_at_or_above"][str(e)] for e in EDGES[:-1]] + [0]
    true_by_bin = []
    for b0, info in enumerate(bins):
        cross = s[(s["bin"] == b0) & s["cross_split"] & (s["verdict"] != "unsure")]
        share = float((cross["verdict"] == "same").mean()) if len(cross) else info["precision"]
        true_by_bin.append((leaked_at[b0] - leaked_at[b0 + 1]) * share)
    for b0, t in enumerate(thresholds):
        t["estimated_truly_leaked_test_images"] = round(float(sum(true_by_bin[b0:])), 1)
    result = {"bench": "audit_duplicates_real", "data": "CIFAR-10 train + test (60,000, the shared JPEG-q75 copy)",
              "judged_by": "a person looking at each rendered pair, blind to its similarity", "bins": bins,
              "thresholds": thresholds, "sample_file": SAMPLE.name, "judgements_file": JUDGED.name}
    for t in thresholds:
        print(f">= {t['threshold']}: precision {t['precision']:.3f} [{t['bootstrap_95'][0]:.3f}, {t['bootstrap_95'][1]:.3f}] "
              f"over {t['pairs']} pairs ({t['looked_at']} looked at); test images flagged as leaked "
              f"{t['test_images_flagged_as_leaked']}, of them truly ~{t['estimated_truly_leaked_test_images']:.0f}")
    print(write_result("audit_duplicates_real", result))


def refilter(tag: str) -> Path:
    """The round's sample restricted to the pairs the default flags now, when the default became stricter
    after the sample was drawn (a random sample of a population, restricted to a subset of it, is a random
    sample of the subset): writes the restricted sample and the new population's counts."""
    from clearset.audit.duplicates import STRUCTURE_THRESHOLD

    sample_file, _, population_file = round_files(tag)
    flagged = default_flagged()
    sample = pd.read_csv(sample_file)
    now = set(zip(flagged["index"], flagged["duplicate_index"]))
    kept = sample[[(a, b) in now for a, b in zip(sample["index"], sample["duplicate_index"])]].drop(columns="pairs_in_bin")
    kept = kept.join(flagged.groupby("bin").size().rename("pairs_in_bin"), on="bin")
    print(f"{len(kept)} of {len(sample)} sampled pairs are still flagged")
    out = population_file.with_name(population_file.stem + "_refiltered.json")
    write_result(out, {"bench": out.stem, "structure_threshold": STRUCTURE_THRESHOLD, "sample_kept": len(kept),
                       "sample_drawn": len(sample), **population_counts(flagged, EDGES[2:-1])})
    with atomic_path(sample_file.with_name(sample_file.stem + "_refiltered.csv")) as tmp:
        kept.to_csv(tmp, index=False)
    return out


def round_verdicts(tag: str, sample_file: Path | None = None) -> pd.DataFrame:
    """A round's sample with each pair's verdict (looked at in the round or carried over; NaN if missing)."""
    default_sample, judged_file, _ = round_files(tag)
    judged = pd.read_csv(judged_file)[["pair_id", "verdict"]]
    carried = judged_file.with_suffix(".carried.csv")
    if carried.exists():
        judged = pd.concat([judged, pd.read_csv(carried)[["pair_id", "verdict"]]], ignore_index=True)
    return pd.read_csv(sample_file or default_sample).merge(judged, on="pair_id", how="left")


def score_round(tag: str, refiltered: bool = False) -> None:
    """Real precision of the default on a round's sample (a sample never used to choose anything);
    ``refiltered``: on the sample as ``refilter`` restricted it."""
    import json

    sample_file, judged_file, population_file = round_files(tag)
    if refiltered:
        population_file = refilter(tag)
        sample_file = sample_file.with_name(sample_file.stem + "_refiltered.csv")
    s = round_verdicts(tag, sample_file)
    carried = judged_file.with_suffix(".carried.csv")
    if s["verdict"].isna().any() or not set(s["verdict"]) <= {"same", "different", "unsure"}:
        sys.exit(f"{judged_file}: every sampled pair needs a verdict of same, different or unsure")
    population = json.loads(population_file.read_text())
    bins, weights, precisions = [], [], []
    for b in sorted(s["bin"].unique()):
        part = s[s["bin"] == b]
        same, diff = int((part["verdict"] == "same").sum()), int((part["verdict"] == "different").sum())
        p = same / max(1, same + diff)
        bins.append({"bin": [EDGES[b], min(EDGES[b + 1], 1.0)], "pairs_in_bin": int(part["pairs_in_bin"].iloc[0]),
                     "looked_at": len(part), "same": same, "different": diff,
                     "unsure": int((part["verdict"] == "unsure").sum()), "precision": p, "wilson_95": wilson(same, same + diff)})
        weights.append(bins[-1]["pairs_in_bin"])
        precisions.append(p)
    w = np.array(weights, dtype=float)
    overall = float((w * precisions).sum() / w.sum())
    rng, boots = np.random.default_rng(0), []
    for _ in range(2000):
        ps = []
        for b in sorted(s["bin"].unique()):
            v = s[(s["bin"] == b) & (s["verdict"] != "unsure")]["verdict"].to_numpy()
            ps.append((rng.choice(v, len(v)) == "same").mean())
        boots.append(float((w * ps).sum() / w.sum()))
    cross = s[s["cross_split"] & (s["verdict"] != "unsure")]
    leaked = population["test_images_with_train_partner_at_or_above"][str(EDGES[2])]
    result = {"bench": f"audit_duplicates_real_{tag}", "rule": "aligned >= 0.94 and structure >= "
              f"{population['structure_threshold']}" + (f" at zooms <= 1.25, or >= {population['extended']} at larger"
                                                         if "extended" in population else ""), "role": "report: this sample chose nothing", "bins": bins,
              "verdicts_carried_over": int(carried.exists() and len(pd.read_csv(carried))),
              "precision": overall, "bootstrap_95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
              "test_images_flagged_as_leaked": leaked,
              "cross_split_same_share": float((cross["verdict"] == "same").mean()) if len(cross) else None}
    if len(cross):  # the leakage the default implies: flagged test images times the share of true cross pairs
        k = int((cross["verdict"] == "same").sum())
        lo, hi = wilson(k, len(cross))
        result["implied_leakage"] = {"test_images": round(leaked * k / len(cross)), "rate": leaked * k / len(cross) / 10000,
                                     "rate_wilson_95": [leaked * lo / 10000, leaked * hi / 10000],
                                     "cross_split_pairs_looked_at": len(cross)}
    print(f"{tag} sample: precision {overall:.3f} [{result['bootstrap_95'][0]:.3f}, {result['bootstrap_95'][1]:.3f}]; "
          f"{leaked} test images flagged as leaked")
    print(write_result(f"audit_duplicates_real_{tag}" + ("_refiltered" if refiltered else ""), result))


def path_scores(views: np.ndarray, pairs: np.ndarray) -> pd.DataFrame:
    """Per pair: best grey and structure alignment at the base zooms (up to 1.25) and at the larger ones."""
    from clearset.audit.duplicates import BASE_ZOOMS, aligned_similarity, structure_similarity

    grey = aligned_similarity(views, pairs, by_zoom=True)
    structure = structure_similarity(views, pairs, by_zoom=True)
    return pd.DataFrame({"grey_base": grey[:, :BASE_ZOOMS].max(1), "grey_large": grey[:, BASE_ZOOMS:].max(1),
                         "structure_base": structure[:, :BASE_ZOOMS].max(1),
                         "structure_large": structure[:, BASE_ZOOMS:].max(1),
                         "structure_any": structure.max(1)})


def rules() -> None:
    """How the structure bars of 2026-12-08 were chosen (development data only): each candidate rule's
    estimated precision on the widened round's sample (bin-weighted; a stricter rule's pairs are a subset,
    so the sample restricted to them is a random sample of them), its kept true/false pairs among the pairs
    judged before that round, and the share of the planted copies of seeds 0 and 1 it verifies (the
    (original, copy) pairs, candidates aside)."""
    import itertools

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from duplicates import plant

    x, _ = images()
    _, views = pixel_representations(x)
    verdicts = earlier_verdicts()
    verdicts = verdicts[verdicts["verdict"] != "unsure"].reset_index(drop=True)
    judged = pd.concat([verdicts, path_scores(views, verdicts[["index", "duplicate_index"]].to_numpy())], axis=1)
    w = round_verdicts("widened")
    w = w[w["verdict"] != "unsure"].reset_index(drop=True)
    w = pd.concat([w, path_scores(views, w[["index", "duplicate_index"]].to_numpy())], axis=1)
    planted = {}
    for name in ("calibration", "fresh"):
        originals, _, copies = plant(x[:50000], name)
        _, copy_views = pixel_representations(copies)
        both = np.concatenate([views[originals], copy_views])
        planted[name] = path_scores(both, np.stack([np.arange(1000), np.arange(1000, 2000)], 1))

    def keep(d, base, base_s, large, large_s, any_zoom=False):
        if any_zoom:  # the rule of 2026-12-07: structure at any zoom
            return ((d["grey_base"] >= base) | (d["grey_large"] >= large)) & (d["structure_any"] >= base_s)
        return (((d["grey_base"] >= base) & (d["structure_base"] >= base_s))
                | ((d["grey_large"] >= large) & (d["structure_large"] >= large_s))).to_numpy()

    def precision(k):
        same, est, total = (w["verdict"] == "same").to_numpy(), 0.0, 0.0
        for b, n_bin in w.groupby("bin")["pairs_in_bin"].first().items():
            m = (w["bin"] == b).to_numpy()
            n = n_bin * (k & m).sum() / m.sum()
            total += n
            est += n * (k & m & same).sum() / max(1, (k & m).sum())
        return est / total, total

    before = (judged["earlier_pair_id"] < ROUNDS["widened"][0]).to_numpy()
    true_before = (judged["verdict"] == "same").to_numpy() & before
    grid = [(0.94, 0.7, 0.96, 0.7, True)] + [(b, bs, lg, ls, False) for b, bs, lg, ls in itertools.product(
        (0.94, 0.95), (0.7, 0.75, 0.8, 0.85), (0.96, 0.97, 0.98), (0.7, 0.8, 0.85))]
    table = []
    for b, bs, lg, ls, any_zoom in grid:
        est, n = precision(keep(w, b, bs, lg, ls, any_zoom))
        kj = keep(judged, b, bs, lg, ls, any_zoom)
        table.append({"grey_base": b, "structure_base": bs, "grey_large": lg, "structure_large": ls,
                      "structure_at_any_zoom": any_zoom, "dev_precision": round(est, 3), "dev_pairs": round(n),
                      "earlier_true_kept": int((kj & true_before).sum()), "earlier_true": int(true_before.sum()),
                      "earlier_false_kept": int((kj & before & ~true_before).sum()),
                      "earlier_false": int((before & ~true_before).sum()),
                      **{f"planted_{s}_verified": round(float(keep(planted[s], b, bs, lg, ls, any_zoom).mean()), 3)
                         for s in planted}})
    for r in table:
        print(" ".join(f"{k}={v}" for k, v in r.items()))
    write_result("audit_duplicates_rules", {"bench": "audit_duplicates_rules", "role": "development: what chose "
                 "the structure bars of 2026-12-08 (the widened round's sample and the pairs judged before it)",
                 "rules": table})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["render", "score", "render-round", "score-round", "render-fresh", "score-fresh",
                                      "rescore-round", "rules"])
    ap.add_argument("--round", default="fresh", choices=sorted(ROUNDS), help="which judging round (render-/score-round)")
    args = ap.parse_args()
    if args.phase == "rules":
        rules()
    elif args.phase in ("render", "score"):
        {"render": render, "score": score}[args.phase]()
    elif args.phase.startswith("render"):
        render_round("fresh" if args.phase == "render-fresh" else args.round)
    else:
        score_round("fresh" if args.phase == "score-fresh" else args.round, refiltered=args.phase == "rescore-round")


if __name__ == "__main__":
    main()

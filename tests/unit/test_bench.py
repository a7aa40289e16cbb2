"""The curation bench: every cell trained once and cached, budgets, leaderboard files, report, CLI errors."""

import json

import numpy as np
import pandas as pd
import pytest

import clearset
from clearset.errors import ParameterError
from clearset.leaderboard import run_bench
from clearset.leaderboard.runner import leaderboard_table
from clearset.train.recipes import RECIPES, Recipe, register_recipe
from conftest import digits_with_features


@pytest.fixture
def ws(tmp_path):
    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    m = ws.manifest()
    rng = np.random.default_rng(0)
    feats = np.eye(10)[np.maximum(m["label"].to_numpy(), 0)] + rng.normal(0, 0.5, (len(m), 10))
    ws = digits_with_features(tmp_path / "ws", feats)
    if "bench-tiny" not in RECIPES:
        register_recipe(Recipe("bench-tiny", "test", model="resnet8", epochs=2, batch_size=64, lr=0.05,
                               image_size=8, crop_pad=0))
    return ws


def test_bench_cells_budgets_leaderboard_and_report(ws, caplog):
    board = run_bench(ws, strategies=["random", "rs2"], keeps=[0.2], seeds=[0, 1], recipe="bench-tiny")
    assert len(board) == 2 * 2 + 2  # cells + a full-data row per seed
    assert set(board["strategy"]) == {"random", "rs2", "full"} and board["test_acc"].between(0, 1).all()
    n_train = int((ws.manifest()["split"] == "train").sum())
    r = board[(board["strategy"] == "random") & (board["keep"] == 0.2)]
    assert (r["train_images"] == round(0.2 * n_train)).all() and (r["epochs"] == 2).all()
    rs2 = board[(board["strategy"] == "rs2") & (board["keep"] == 0.2)]
    assert (rs2["images_seen"] > 0).all()
    saved = json.loads((ws.root / "bench" / "leaderboard.json").read_text())
    assert len(saved["cells"]) == len(board) and {s["strategy"] for s in saved["summary"]} == set(board["strategy"])
    assert pd.read_csv(ws.root / "bench" / "leaderboard.csv").shape[0] == len(board)
    rs2_row = next(s for s in saved["summary"] if s["strategy"] == "rs2")
    vs = rs2_row["vs_random"]  # the difference from random at the same keep, by clearset.ops.stats
    assert vs["diff"] == pytest.approx(rs2_row["test_acc_mean"] - next(
        s["test_acc_mean"] for s in saved["summary"] if s["strategy"] == "random")) and vs["test"] == "Welch t"
    assert "vs_random" not in next(s for s in saved["summary"] if s["strategy"] == "random")
    cell = leaderboard_table(saved["summary"]).loc["rs2"].iloc[0]
    assert cell.endswith((" *", " n.s.", " ?"))
    caplog.set_level("INFO", logger="clearset")
    again = run_bench(ws, strategies=["random", "rs2"], keeps=[0.2], seeds=[0, 1], recipe="bench-tiny")
    assert "train: cached" in caplog.text and np.allclose(again["test_acc"], board["test_acc"])
    iters = run_bench(ws, strategies=["random"], keeps=[0.5], seeds=[0], recipe="bench-tiny", budget="iterations",
                      full=False, eval_every=1)
    assert int(iters["epochs"].iloc[0]) == 4  # 2 epochs / keep 0.5: as many iterations as the full data
    curve = iters["curve"].iloc[0]
    assert len(curve) == 4 and all(b[0] >= a[0] for a, b in zip(curve, curve[1:]))  # seconds accumulate (a tiny epoch may round to the same)
    html = clearset.report(ws).read_text()
    assert "Curation bench" in html and "accuracy_vs_keep.png" in html and "time_to_accuracy.png" in html


def test_bench_bad_input(ws):
    for kw, msg in [({"strategies": ["nope"]}, "unknown curation strategy"), ({"keeps": [0]}, "keep"),
                    ({"budget": "time"}, "budget"), ({"seeds": []}, "seeds")]:
        args = {"strategies": ["random"], "keeps": [0.5], "seeds": [0], "recipe": "bench-tiny", **kw}
        with pytest.raises(ParameterError, match=msg):
            run_bench(ws, **args)
    assert not (ws.root / "bench").exists() and not (ws.root / "runs").exists()


def test_bench_scripts_parse_and_their_sibling_imports_exist():
    """Every bench script parses, every script bench/run.py names exists, and a name one bench script
    imports from another (``from cifar10n import scores``) is defined there: the scripts are run by hand
    for hours, so a broken import must fail here, not an hour in."""
    import ast
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench"
    modules = {p.stem: p for p in bench.rglob("*.py") if ".cache" not in p.parts}
    trees = {stem: ast.parse(p.read_text(), filename=str(p)) for stem, p in modules.items()}

    def defined(tree: ast.Module) -> set[str]:
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        return names

    for stem, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in modules and node.level == 0:
                missing = {a.name for a in node.names} - defined(trees[node.module])
                assert not missing, f"bench/{modules[stem].relative_to(bench)} imports {missing} from {node.module}"
    spec = importlib.util.spec_from_file_location("bench_run_index", bench / "run.py")
    index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(index)
    for name, argv in {**index.BENCHES, **index.QUICK}.items():
        assert (bench / argv[0]).exists(), f"bench/run.py: {name} names a missing script {argv[0]}"


def test_pixel_el2n_scores_feed_the_el2n_strategy(ws):
    """EL2N as Paul et al. define it: the mean over independently initialised networks of
    ||softmax - onehot||, on the training images; the ``el2n`` strategy keeps the highest."""
    import torch

    from clearset.curate import curate
    from clearset.data.loading import load_images
    from clearset.models.inference import predict
    from clearset.scores import pixel_scores
    from clearset.train import train

    with pytest.raises(ParameterError, match="clearset score WS --method el2n"):
        curate(ws, strategy="el2n", keep=0.3)
    path = pixel_scores(ws, recipe="bench-tiny", epochs=1, runs=2)
    score = np.load(path)
    m = ws.manifest()
    train_rows = ((m["split"] == "train") & (m["label"] >= 0)).to_numpy()
    assert np.isnan(score[~train_rows]).all() and np.isfinite(score[train_rows]).all()
    assert ((score[train_rows] >= 0) & (score[train_rows] <= np.sqrt(2) + 1e-6)).all()
    idx = np.flatnonzero(train_rows)
    onehot = np.eye(len(ws.classes()))[m["label"].to_numpy()[idx]]
    norms = []
    for r in range(2):  # the same runs, cached: recompute the score from their models
        run = train(ws, recipe="bench-tiny", epochs=1, seed=r, eval_split=None)
        assert run.cached
        norm = run.config["normalisation"]
        logits = predict(run.load_model(), load_images(ws, idx, 8), torch.tensor(norm["mean"]).view(1, 3, 1, 1),
                         torch.tensor(norm["std"]).view(1, 3, 1, 1), autocast=run.config["precision"] == "bf16")
        norms.append(np.linalg.norm(torch.softmax(torch.from_numpy(logits), 1).numpy() - onehot, axis=1))
    assert np.allclose(score[idx], np.mean(norms, 0), atol=1e-5)
    assert pixel_scores(ws, recipe="bench-tiny", epochs=1, runs=2) == path  # cached
    kept = pd.read_parquet(curate(ws, strategy="el2n", keep=0.3).path)["index"].to_numpy()
    assert score[kept].min() >= np.sort(score[idx])[::-1][len(kept) - 1] - 1e-6  # the highest EL2N
    with pytest.raises(ParameterError, match="runs"):
        pixel_scores(ws, recipe="bench-tiny", runs=0)


def test_forgetting_events_count_correct_to_wrong_presentations():
    """Toneva et al.: a forgetting event is a correct -> wrong change between consecutive presentations;
    an image never classified correctly is forgotten at every presentation; unpresented epochs carry over."""
    from clearset.scores import forgetting_events

    correct = np.array([[1, 0, 1, 1, 0],
                        [0, 0, -1, 1, 0],
                        [1, 0, 0, -1, -1],
                        [0, 0, 1, 1, -1]], np.int8)  # (presentations, images)
    # columns: image 0: 1,0,1,0 -> 2 events; image 1: 0,0,0,0 -> never learned, 4 presentations;
    # image 2: 1,-,0,1 -> 1 event; image 3: 1,1,-,1 -> 0; image 4: 0,0,-,- -> never learned, 2 presentations
    assert forgetting_events(correct).tolist() == [2, 4, 1, 0, 2]


def test_pixel_forgetting_and_craig_scores_feed_their_strategies(ws):
    """``clearset score --method forgetting`` counts forgetting events over the minibatch presentations the
    training records; ``--method craig`` stores (N, K) softmax - one-hot proxies; the strategies read them."""
    from clearset.curate import curate
    from clearset.scores import forgetting_events, pixel_scores
    from clearset.train import train
    from clearset.train.api import PRESENTATIONS

    for strategy, method in (("forgetting", "forgetting"), ("craig-pixel", "craig")):
        with pytest.raises(ParameterError, match=f"clearset score WS --method {method}"):
            curate(ws, strategy=strategy, keep=0.3)
    path = pixel_scores(ws, method="forgetting", recipe="bench-tiny", epochs=3, runs=2)
    score = np.load(path)
    m = ws.manifest()
    idx = np.flatnonzero(((m["split"] == "train") & (m["label"] >= 0)).to_numpy())
    events = 0
    for r in range(2):
        run = train(ws, recipe="bench-tiny", epochs=3, seed=r, eval_split=None, record_presentations=True)
        assert run.cached
        with np.load(run.root / PRESENTATIONS) as z:
            assert z["correct"].shape == (3, len(z["index"])) and set(np.unique(z["correct"])) <= {-1, 0, 1}
            assert (z["correct"] >= 0).all()  # every image is presented every epoch of a plain run
            events = events + forgetting_events(z["correct"][:, np.searchsorted(z["index"], idx)])
    assert np.array_equal(score[idx], events) and np.isnan(np.delete(score, idx)).all()
    kept = pd.read_parquet(curate(ws, strategy="forgetting", keep=0.3).path)["index"].to_numpy()
    assert score[kept].min() >= np.sort(score[idx])[::-1][len(kept) - 1]  # the most forgotten

    grads = np.load(pixel_scores(ws, method="craig", recipe="bench-tiny", epochs=1))
    assert grads.shape == (len(m), len(ws.classes()))
    g = grads[idx]
    assert np.allclose(g.sum(1), 0, atol=1e-5)  # softmax - one-hot sums to zero
    assert (g[np.arange(len(idx)), m["label"].to_numpy()[idx]] <= 0).all()
    sub = pd.read_parquet(curate(ws, strategy="craig-pixel", keep=0.3).path)
    assert len(sub) == round(0.3 * len(idx)) and np.isclose(sub["weight"].mean(), 1.0)
    aug = pd.read_parquet(curate(ws, strategy="craig-augment-pixel", keep=0.3).path)
    assert len(aug) == len(idx) and aug["augment"].sum() == len(sub)

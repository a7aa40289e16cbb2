"""The trainer: reproducibility, resume, caching, subsets, soft targets, augmentations, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch

import clearset
from clearset.errors import ParameterError, WorkspaceError
from clearset.train import train
from clearset.train.augment import cutout, mix, random_crop, random_flip
from clearset.train.loop import lr_factor
from clearset.train.recipes import Recipe

TINY = Recipe("tiny", "test recipe", model="convnet3", epochs=2, batch_size=16, lr=0.05, image_size=16,
              cutout=4, mixup=0.2, eval_batch_size=64)


@pytest.fixture
def ws(tmp_path):
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(3), 20)
    x = rng.integers(0, 60, (60, 16, 16, 3))
    for i, c in enumerate(y):  # learnable: each class lights up its own band of rows
        x[i, 5 * c : 5 * c + 5] += 150
    x = x.astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x[:45], y_train=y[:45], x_test=x[45:], y_test=y[45:])
    return clearset.ingest(str(tmp_path / "d.npz"), tmp_path / "ws")


def weights(run):
    from safetensors.torch import load_file

    return load_file(run.root / "model.safetensors")


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_and_cache_hit(ws):
    a = train(ws, recipe=TINY, seed=3, name="a")
    b = train(ws, recipe=TINY, seed=3, name="b")
    assert same(weights(a), weights(b))
    assert not same(weights(a), weights(train(ws, recipe=TINY, seed=4, name="c")))
    again = train(ws, recipe=TINY, seed=3, name="a")
    assert again.cached and len(again.metrics) == 2
    p = a.predictions()
    assert p["logits"].shape == (15, 3) and (p["labels"] == np.tile(np.arange(3), 20)[45:]).all()
    assert a.metrics[-1]["eval_acc"] > 0.5  # learnable toy data: well above chance (1/3)


def test_resume_after_interruption_equals_uninterrupted_run(ws, monkeypatch):
    full = train(ws, recipe=TINY, seed=1, name="full")
    import clearset.train.loop as loop

    real_crop, calls = loop.random_crop, []

    def crop_then_interrupt(*a):  # Ctrl-C in the second batch of epoch 2 (epoch 1 has 3 batches of 16)
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_crop(*a)

    monkeypatch.setattr(loop, "random_crop", crop_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(ws, recipe=TINY, seed=1, name="part")
    monkeypatch.setattr(loop, "random_crop", real_crop)
    part = ws.root / "runs" / "part"
    assert (part / "checkpoint.pt").exists() and not (part / "model.safetensors").exists()
    resumed = train(ws, recipe=TINY, seed=1, name="part")
    assert [m["epoch"] for m in resumed.metrics] == [1, 2]
    assert same(weights(full), weights(resumed))


def test_subset_weights_and_bad_subsets(ws, tmp_path):
    sub = tmp_path / "s.parquet"
    pd.DataFrame({"index": [0, 1, 2, 20, 21, 40], "weight": [1, 1, 2, 1, 1, 0.5]}).to_parquet(sub)
    run = train(ws, recipe=TINY, subset=sub, name="sub")
    assert run.config["train_images"] == 6
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"index": [0, 999]}).to_csv(bad, index=False)
    with pytest.raises(ParameterError, match="not training images"):
        train(ws, recipe=TINY, subset=bad, name="bad")
    test_rows = tmp_path / "test_rows.csv"
    pd.DataFrame({"index": [50]}).to_csv(test_rows, index=False)  # a test image is not a training row
    with pytest.raises(ParameterError, match="not training images"):
        train(ws, recipe=TINY, subset=test_rows, name="bad")
    nocol = tmp_path / "nocol.csv"
    pd.DataFrame({"row": [1]}).to_csv(nocol, index=False)
    with pytest.raises(ParameterError, match="'index' column"):
        train(ws, recipe=TINY, subset=nocol, name="bad")
    assert not (ws.root / "runs" / "bad").exists()


def test_soft_targets_shape_checked_and_change_the_run(ws):
    with pytest.raises(ParameterError, match="soft targets"):
        train(ws, recipe=TINY, targets=np.ones((45, 4)) / 4, name="bad")
    y = ws.manifest().query("split == 'train'")["label"].to_numpy()
    as_soft = train(ws, recipe=TINY, targets=np.eye(3, dtype=np.float32)[y], name="onehot-soft")
    hard = train(ws, recipe=TINY, name="hard")
    assert as_soft.config["key"] != hard.config["key"]
    assert same(weights(as_soft), weights(hard))  # one-hot soft targets are the hard labels
    uniform = train(ws, recipe=TINY, targets=np.full((45, 3), 1 / 3, np.float32), name="uniform")
    assert not same(weights(uniform), weights(hard))
    assert min(m["train_loss"] for m in uniform.metrics) >= np.log(3) - 1e-4  # CE to uniform >= log K


def test_a_different_run_under_an_existing_name_is_refused(ws):
    train(ws, recipe=TINY, name="x")
    with pytest.raises(WorkspaceError, match="different run"):
        train(ws, recipe=TINY, seed=9, name="x")


def test_known_classes_train_a_smaller_head(ws):
    run = train(ws, recipe=TINY, known_classes=[0, 2], name="osr")
    p = run.predictions()
    assert p["logits"].shape[1] == 2 and set(p["labels"]) == {-1, 0, 1}  # class 1 is unknown (-1)
    with pytest.raises(ParameterError, match="--known"):
        train(ws, recipe=TINY, known_classes=[7], name="bad")


def test_batch_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    c = random_crop(x, 2, g)
    for i in range(2):  # each crop is a shifted window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        assert any(torch.equal(c[i], padded[:, dy:dy + 6, dx:dx + 6]) for dy in range(5) for dx in range(5))
    f = random_flip(x, torch.Generator().manual_seed(1), p=1.0)
    assert torch.equal(f, x.flip(3))
    holes = cutout(torch.ones(4, 1, 8, 8), 4, g)
    assert ((holes == 0).sum((1, 2, 3)) <= 16).all() and (holes == 0).any()
    xm, tm = mix(torch.rand(4, 3, 8, 8), torch.eye(4), g, mixup=0.4)
    assert torch.allclose(tm.sum(1), torch.ones(4))


def test_lr_schedules():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(30, 100, 0, "onecycle") == pytest.approx(1.0)
    assert lr_factor(65, 100, 0, "onecycle") == pytest.approx(0.5)


def test_cli_train_eval_and_their_user_errors(ws, tmp_path):
    import json
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from clearset.cli import main; main()", "-q"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"index": [0, 999]}).to_csv(bad, index=False)
    r = subprocess.run(cli + ["train", str(ws.root), "--subset", str(bad), "--recipe", "convnet3", "--epochs", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not training images" in r.stderr and "Traceback" not in r.stderr
    assert not (ws.root / "runs").exists() or not any((ws.root / "runs").iterdir())
    run = train(ws, recipe=TINY, name="cli")
    np.save(tmp_path / "human_bad.npy", np.ones((15, 4)))
    r = subprocess.run(cli + ["eval", str(run.root), "--human-labels", str(tmp_path / "human_bad.npy")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "human labels must be (15, 3)" in r.stderr
    assert not (run.root / "metrics.json").exists()
    np.save(tmp_path / "human.npy", np.eye(3)[np.tile(np.arange(3), 5)] * 50)
    r = subprocess.run(cli + ["eval", str(run.root), "--human-labels", str(tmp_path / "human.npy")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((run.root / "metrics.json").read_text())
    assert m["human_plurality_accuracy"] == pytest.approx(m["top1"])  # human labels equal the given ones here


def test_distillation_and_tract_runs(ws, tmp_path):
    teacher = train(ws, recipe=TINY, seed=5, name="teacher")
    kd = train(ws, recipe=TINY, teachers=[teacher.root], name="kd")
    plain = train(ws, recipe=TINY, name="plain")
    assert kd.config["teachers"] == [teacher.config["key"]] and not same(weights(kd), weights(plain))
    # a teacher trained on other classes cannot teach this run
    other = train(ws, recipe=TINY, known_classes=[0, 1], name="two-class")
    with pytest.raises(ParameterError, match="predicts 2 classes"):
        train(ws, recipe=TINY, teachers=[other.root], name="bad")
    with pytest.raises(WorkspaceError, match="not a finished training run"):
        train(ws, recipe=TINY, teachers=[tmp_path], name="bad")
    t1 = train(ws, recipe=TINY, tract=0.1, name="tract1")
    t2 = train(ws, recipe=TINY, tract=0.1, name="tract2")
    assert same(weights(t1), weights(t2)) and not same(weights(t1), weights(plain))
    train(ws, recipe=TINY, teachers=[t1.root], name="from-tract-teacher")  # a TrAct run reloads as a teacher


def test_open_set_run_and_cli_known_errors(ws):
    import subprocess
    import sys

    from clearset.evaluate.evaluation import evaluate_run

    run = train(ws, recipe=TINY, known_classes=[0, 1], name="osr2")
    m = evaluate_run(run.root)
    assert m["openset"]["unknown_images"] == 5 and 0 <= m["openset"]["max_logit"]["auroc"] <= 1
    cli = [sys.executable, "-c", "from clearset.cli import main; main()", "-q"]
    r = subprocess.run(cli + ["train", str(ws.root), "--known", "0,zebra"], capture_output=True, text=True)
    assert r.returncode == 2 and "'zebra' is not a class" in r.stderr


def test_report_shows_runs_with_reliability_diagram(ws):
    from clearset.evaluate.evaluation import evaluate_run

    run = train(ws, recipe=TINY, name="shown")
    evaluate_run(run.root)
    html = clearset.report(ws).read_text()
    assert "Training runs" in html and "shown" in html
    assert (ws.root / "report" / "assets" / "runs" / "shown-reliability.png").exists()


def test_unknown_model_writes_nothing(ws):
    with pytest.raises(ParameterError, match="unknown model"):
        train(ws, recipe=TINY, model="no_such_net_xyz", name="nothing")
    assert not (ws.root / "runs" / "nothing").exists()

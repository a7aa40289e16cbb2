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


def interrupted_run(ws, monkeypatch, stop_at: int, recipe: Recipe = TINY, **kw) -> None:
    """Train ``recipe`` with a Ctrl-C raised inside the ``stop_at``-th batch (counted by random_crop calls)."""
    import clearset.train.loop as loop

    real_crop, calls = loop.random_crop, []

    def crop_then_interrupt(*a, **k):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real_crop(*a, **k)

    monkeypatch.setattr(loop, "random_crop", crop_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(ws, recipe=recipe, **kw)
    monkeypatch.setattr(loop, "random_crop", real_crop)


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


@pytest.mark.parametrize("stop_at", [3, 5])  # Ctrl-C in batch 3 of epoch 1 / batch 2 of epoch 2 (3 batches each)
def test_resume_after_interruption_equals_uninterrupted_run(ws, monkeypatch, stop_at):
    full = train(ws, recipe=TINY, seed=1, name="full")
    interrupted_run(ws, monkeypatch, stop_at, seed=1, name="part")
    part = ws.root / "runs" / "part"
    assert (part / "checkpoint.pt").exists() and not (part / "model.safetensors").exists()
    state = torch.load(part / "checkpoint.pt", weights_only=False)
    assert (state["epoch"], state["partial"]["batch"]) == divmod(stop_at - 1, 3)  # saved mid-epoch
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
    with pytest.raises(ParameterError, match="known_classes"):
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


def test_meal_v2_discriminator_follows_the_reference(ws, monkeypatch):
    """MEAL V2's discriminator: widths C/8, C/64 (floored for few classes), a ReLU after every layer, student
    logits labelled [1, 0] and teachers' [0, 1]; its parameters train in the student's optimiser at the
    student's scheduled rate (the reference's regime overwrites its own rate); the run records it."""
    from clearset.train.discriminator import OutputDiscriminator, discriminator_loss, hidden_widths
    from clearset.train.loop import make_optimizer

    assert hidden_widths(1000) == (125, 15) and hidden_widths(10) == (8, 4)
    d = OutputDiscriminator(10)
    assert (d(torch.randn(64, 10)) >= 0).all()  # the final ReLU before BCEWithLogits, as released
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    out = d(torch.cat([student, teacher]))
    target = torch.tensor([[1.0, 0.0]] * 8 + [[0.0, 1.0]] * 8)
    manual = -(target * torch.log(torch.sigmoid(out)) + (1 - target) * torch.log(1 - torch.sigmoid(out))).mean()
    assert torch.allclose(discriminator_loss(d, student, teacher), manual, atol=1e-6)
    opt = make_optimizer(torch.nn.Linear(4, 10), TINY, extra=d)
    assert {id(p) for p in d.parameters()} <= {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(g["lr_scale"] == 1.0 for g in opt.param_groups[-1:])
    teacher_run = train(ws, recipe=TINY, seed=5, name="meal-teacher")
    meal = train(ws, recipe=TINY, teachers=[teacher_run.root], kd_discriminator=True, name="meal")
    kd = train(ws, recipe=TINY, teachers=[teacher_run.root], name="meal-kd")
    assert meal.config["kd"]["discriminator"] == "meal-v2" and "discriminator" not in kd.config["kd"]
    assert not same(weights(meal), weights(kd))
    interrupted_run(ws, monkeypatch, 5, teachers=[teacher_run.root], kd_discriminator=True, name="meal-part")
    resumed = train(ws, recipe=TINY, teachers=[teacher_run.root], kd_discriminator=True, name="meal-part")
    assert same(weights(resumed), weights(meal))  # the discriminator's state is checkpointed and restored
    with pytest.raises(ParameterError, match="pass teachers"):
        train(ws, recipe=TINY, kd_discriminator=True, name="meal-alone")
    from clearset.train.recipes import get_recipe

    rec = get_recipe("cifar-meal-v2")
    assert (rec.weight_decay, rec.nesterov, rec.schedule, rec.label_smoothing, rec.model) == (
        0.0, False, "step", 0.0, "efficientnet_lite0_ft")
    assert lr_factor(54, 100, 0, "step") == 1.0 and lr_factor(56, 100, 0, "step") == 0.1  # 100/180 of the run


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
    assert "Time to accuracy" not in html  # one evaluation only: no curve
    train(ws, recipe=TINY, name="timed", epochs=3, eval_every=1)
    html = clearset.report(ws).read_text()
    assert "Time to accuracy" in html and (ws.root / "report" / "assets" / "runs" / "time_to_accuracy.png").exists()


def test_unknown_model_writes_nothing(ws):
    with pytest.raises(ParameterError, match="unknown model"):
        train(ws, recipe=TINY, model="no_such_net_xyz", name="nothing")
    assert not (ws.root / "runs" / "nothing").exists()


# --------------------------------------------------------------------------------- dataset reinforcement
def test_replayed_augmentation_is_independent_of_the_batch_and_identity_is_exact():
    from clearset.train.augment import RAND_OPS, AugParams, apply_params, draw_params

    x = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8)
    p = draw_params((40,), torch.Generator().manual_seed(0), size=16)
    p = AugParams(p.dy, p.dx, p.flip, torch.arange(80).view(40, 2) % len(RAND_OPS), p.signs, p.erase)  # every op
    whole = apply_params(x, p)
    assert whole.shape == (40, 3, 16, 16) and 0 <= float(whole.min()) and float(whole.max()) <= 1
    for part in (slice(0, 7), slice(7, 40), [3, 17, 39]):
        assert torch.equal(apply_params(x[part], p[part]), whole[part])
    ident = AugParams(torch.full((40,), 4, dtype=torch.uint8), torch.full((40,), 4, dtype=torch.uint8),
                      torch.zeros(40, dtype=torch.bool), torch.zeros(40, 2, dtype=torch.uint8),
                      torch.zeros(40, 2, dtype=torch.bool), torch.full((40, 2), -1, dtype=torch.int16))
    assert torch.equal(apply_params(x, ident), x.float() / 255.0)
    shifted = AugParams(ident.dy - 1, ident.dx, ident.flip, ident.ops, ident.signs, ident.erase)
    assert torch.equal(apply_params(x, shifted)[:, :, 1:], x[:, :, :-1].float() / 255.0)  # down by one row


def test_densify_spreads_the_remaining_mass_evenly():
    from clearset.train.reinforcement import Reinforced

    idx, p = torch.tensor([[2, 0]]), torch.tensor([[0.6, 0.3]])
    t = Reinforced.densify(None, idx, p, 5)
    assert torch.allclose(t, torch.tensor([[0.3, 0.1 / 3, 0.6, 0.1 / 3, 0.1 / 3]])) and abs(float(t.sum()) - 1) < 1e-6


def test_reinforce_stores_the_teacher_ensemble_mean_softmax_of_the_replayed_augmentation(ws, monkeypatch):
    import importlib

    from clearset.train import load_reinforced, reinforce
    from clearset.train.augment import apply_params

    rmod = importlib.import_module("clearset.train.reinforcement")
    loop = importlib.import_module("clearset.train.reinforcement")  # where reinforce looks teacher_probs up

    t1 = train(ws, recipe=TINY, seed=0, name="t1")
    t2 = train(ws, recipe=TINY, seed=1, name="t2")
    monkeypatch.setattr(rmod, "CHUNK", 16)
    full = reinforce(ws, teachers=[t1.root, t2.root], ns=3, topk=2, seed=5, name="full")
    assert full.topk_idx.shape == (45, 3, 2) and full.index.tolist() == list(range(45))
    # independent computation for a few (image, draw) pairs: mean of the two teachers' softmaxes
    imgs = torch.from_numpy(np.stack([ws.store().load(i) for i in range(45)])).permute(0, 3, 1, 2)
    rows, draws = torch.tensor([0, 17, 44]), torch.tensor([0, 2, 1])
    x = apply_params(imgs[rows], full.params[rows, draws])
    probs = 0
    for t in (t1, t2):
        m = torch.tensor(t.config["normalisation"]["mean"]).view(1, 3, 1, 1)
        s = torch.tensor(t.config["normalisation"]["std"]).view(1, 3, 1, 1)
        with torch.no_grad():
            probs = probs + torch.softmax(t.load_model()((x - m) / s).float(), 1) / 2
    top = probs.topk(2, dim=1)
    assert torch.equal(full.topk_idx[rows, draws], top.indices)
    assert torch.allclose(full.topk_p[rows, draws], top.values, atol=2e-2)  # bf16 autocast, float16 storage
    assert reinforce(ws, teachers=[t1.root, t2.root], ns=3, topk=2, seed=5, name="full").root == full.root

    # an interrupted reinforcement resumes at its last chunk and equals the uninterrupted one
    real, calls = loop.teacher_probs, []

    def interrupt_in_second_chunk(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "teacher_probs", interrupt_in_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        reinforce(ws, teachers=[t1.root, t2.root], ns=3, topk=2, seed=5, name="resumed", batch_size=64)
    assert len(list((ws.root / "reinforced" / "resumed" / "chunks").glob("*.npz"))) == 1
    assert not (ws.root / "reinforced" / "resumed" / "targets.npz").exists()
    monkeypatch.setattr(loop, "teacher_probs", real)
    resumed = reinforce(ws, teachers=[t1.root, t2.root], ns=3, topk=2, seed=5, name="resumed", batch_size=64)
    assert torch.equal(resumed.topk_idx, full.topk_idx) and torch.equal(resumed.params.ops, full.params.ops)
    assert load_reinforced(resumed.root).meta["classes"] == ws.classes()

    # training on the stored targets: reproducible, and a different run from plain training
    a = train(ws, recipe=TINY, seed=0, reinforced=full.root, name="ra")
    b = train(ws, recipe=TINY, seed=0, reinforced=full.root, name="rb")
    assert same(weights(a), weights(b)) and a.config["reinforced"] == full.meta["key"]
    assert "reinforced" not in t1.config


def test_reinforce_bad_input(ws, tmp_path):
    from clearset.train import reinforce

    t = train(ws, recipe=TINY, seed=0, name="t")
    with pytest.raises(ParameterError, match="ns"):
        reinforce(ws, teachers=[t.root], ns=0)
    other = clearset.ingest("builtin:digits", tmp_path / "digits")
    with pytest.raises(ParameterError, match="classes"):
        reinforce(other, teachers=[t.root], ns=2)
    assert not (other.root / "reinforced").exists()
    r = reinforce(ws, teachers=[t.root], ns=2, topk=3, name="r")
    with pytest.raises(ParameterError, match="cannot be combined"):
        train(ws, recipe=TINY, reinforced=r.root, teachers=[t.root], name="x")
    with pytest.raises(WorkspaceError, match="no finished reinforcement"):
        train(ws, recipe=TINY, reinforced=tmp_path, name="y")
    assert not (ws.root / "runs" / "x").exists() and not (ws.root / "runs" / "y").exists()


def test_linear_probe_recipe_matches_scikit_learn_and_evaluates(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from clearset.evaluate.evaluation import evaluate_run
    from clearset.vectors import normalise_features

    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    with pytest.raises(WorkspaceError, match="clearset embed"):
        train(ws, recipe="linear-probe")
    rng = np.random.default_rng(0)
    m = ws.manifest()
    feats = (np.eye(10)[np.maximum(m["label"].to_numpy(), 0)] * 2 + rng.normal(0, 1, (len(m), 10))).astype(np.float32)
    (ws.root / "features").mkdir()
    path = ws.features_path("fake", 8)
    np.save(path, feats)
    ws.step("embed", params={"backbone": "fake", "image_size": 8}, inputs={}, outputs=[path],
            sidecar=ws.sidecar_of(path)).finish()
    run = train(ws, recipe="linear-probe", features="fake@8")
    tr, te = (m["split"] == "train").to_numpy(), (m["split"] == "test").to_numpy()
    y = m["label"].to_numpy()
    ref = LogisticRegression(C=1.0, max_iter=2000, tol=1e-8).fit(normalise_features(feats[tr]), y[tr])
    logits = run.predictions()["logits"]
    ref_logits = ref.decision_function(normalise_features(feats[te]))
    assert (logits.argmax(1) == ref_logits.argmax(1)).mean() > 0.99
    assert np.allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(),
                       ref.predict_proba(normalise_features(feats[te])), atol=2e-3)
    assert evaluate_run(run.root)["top1"] == pytest.approx(float((ref_logits.argmax(1) == y[te]).mean()), abs=0.01)
    assert train(ws, recipe="linear-probe", features="fake@8").cached
    with pytest.raises(ParameterError, match="no model of the pixels"):
        run.load_model()
    osr = train(ws, recipe="linear-probe", features="fake@8", known_classes=[0, 1, 2, 3, 4, 5])
    o = evaluate_run(osr.root)["openset"]  # the probe, too, says which test images show a trained class
    assert o["known_images"] == int(np.isin(y[te], range(6)).sum()) and o["max_logit"]["auroc"] > 0.55


def test_no_resume_discards_an_interrupted_run(ws, monkeypatch):
    import clearset.train.loop as loop

    interrupted_run(ws, monkeypatch, 4, seed=2, name="again")
    real_crop, calls = loop.random_crop, []
    monkeypatch.setattr(loop, "random_crop", lambda *a, **k: (calls.append(1), real_crop(*a, **k))[1])
    fresh = train(ws, recipe=TINY, seed=2, name="again", resume=False)
    assert len(calls) == 6  # both epochs (3 batches each) trained again from the start
    assert same(weights(fresh), weights(train(ws, recipe=TINY, seed=2, name="other")))


def test_a_run_that_failed_before_training_does_not_block_the_corrected_one(ws, monkeypatch):
    import clearset.train.api as api

    def broken(*a, **k):
        raise RuntimeError("the machine failed while loading images")

    monkeypatch.setattr(api, "load_images", broken)
    with pytest.raises(RuntimeError):
        train(ws, recipe=TINY, name="mine")
    assert (ws.root / "runs" / "mine" / "config.json").exists()  # what the failure left
    monkeypatch.undo()
    run = train(ws, recipe=TINY, epochs=1, name="mine")  # another configuration, same name: not refused
    assert len(run.metrics) == 1
    with pytest.raises(WorkspaceError, match="different run"):  # a finished run is protected
        train(ws, recipe=TINY, epochs=2, name="mine")


# ------------------------------------------------------------------------------------------ airbench
AIR = Recipe("air-tiny", "test recipe", model="airbench", epochs=3, batch_size=16, lr=1.5, momentum=0.85,
             weight_decay=0.0013, schedule="airbench", label_smoothing=0.2, image_size=16, crop_pad=2,
             pad_mode="reflect", flip_mode="alternating", lookahead=2, bias_lr_scale=64.0, whiten_bias_epochs=1,
             tta=2, eval_batch_size=64)


def test_whitening_filters_decorrelate_patches():
    from clearset.models.airbench import Airbench

    x = torch.randn(32, 3, 16, 16) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    net = Airbench(10)
    net.init_from_data(x)
    out = torch.nn.functional.conv2d(x, net.whiten.weight)[:, :12]  # without the bias; the negated half mirrors it
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    assert torch.allclose(flat.T @ flat / len(flat), torch.eye(12), atol=5e-3)  # eps 5e-4 against variance 0.25
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12]) and not net.whiten.weight.requires_grad
    assert all(not m.weight.requires_grad for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_airbench_schedule_and_recipe_keys():
    from clearset.train.recipes import get_recipe

    total = 100
    assert lr_factor(0, total, 0, "airbench") == pytest.approx(0.2)
    assert lr_factor(23, total, 0, "airbench") == pytest.approx(1.0)
    assert lr_factor(total, total, 0, "airbench") == pytest.approx(0.07)
    # fields added for airbench stay out of the other recipes' configurations (their cache keys are kept)
    assert "tta" not in get_recipe("cifar-resnet8-fast").as_dict()
    assert get_recipe("cifar-airbench").as_dict()["tta"] == 2
    with pytest.raises(ParameterError, match="pad_mode"):
        get_recipe("cifar-airbench").with_overrides(pad_mode="wrap")


def test_tta_averages_mirrors_and_shifts():
    from clearset.models.inference import predict

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    x = images.float() / 255.0
    net(x)  # materialise the lazy layer
    with torch.no_grad():
        def mirrored(v):
            return (net(v) + net(v.flip(3))) / 2

        p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        want2 = 0.5 * mirrored(x) + 0.25 * (mirrored(p[:, :, :8, :8]) + mirrored(p[:, :, 2:, 2:]))
        assert np.allclose(predict(net, images, mean, std, tta=0), net(x).numpy(), atol=1e-5)
        assert np.allclose(predict(net, images, mean, std, tta=1), mirrored(x).numpy(), atol=1e-5)
        assert np.allclose(predict(net, images, mean, std, tta=2), want2.numpy(), atol=1e-5)


def test_airbench_run_learns_ends_on_the_average_and_resumes_exactly(ws, monkeypatch):
    full = train(ws, recipe=AIR, seed=0, name="air")
    assert full.metrics[-1]["eval_acc"] > 0.5 and full.config["recipe"]["lookahead"] == 2
    interrupted_run(ws, monkeypatch, 4, recipe=AIR, seed=0, name="air-part")  # Ctrl-C in epoch 2 (3 batches each)
    state = torch.load(ws.root / "runs" / "air-part" / "checkpoint.pt", weights_only=False)
    assert state["average"] is not None
    resumed = train(ws, recipe=AIR, seed=0, name="air-part")
    assert same(weights(full), weights(resumed))


def test_a_recipe_on_other_sized_grey_images_adapts_and_says_so(tmp_path, caplog):
    import logging

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)  # 1-channel, 28 px (MNIST-like)
    y = np.arange(40) % 2
    np.savez(tmp_path / "g.npz", x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    ws = clearset.ingest(str(tmp_path / "g.npz"), tmp_path / "ws")
    with caplog.at_level(logging.INFO, logger="clearset"):
        run = train(ws, recipe=AIR, epochs=1, name="grey")
    assert "28x28" in caplog.text and "resized" in caplog.text and len(run.metrics) == 1
    with pytest.raises(ParameterError, match="at least 16 px"):
        train(ws, recipe=AIR.with_overrides(image_size=8), epochs=1, name="small")
    with pytest.raises(ParameterError, match="cifar-airbench"):  # an unknown recipe lists the known ones
        train(ws, recipe="cifar-airbenchh")


def test_efficientnet_finetune_starts_from_imagenet_and_trains_with_its_normalisation(ws):
    """The fine-tune model keeps the ImageNet weights below a fresh classifier, and training normalises the
    pixels as those weights expect (0.5 / 0.5), not by the data's statistics."""
    from clearset.models.backbones import efficientnet_lite
    from clearset.models.cifar import create_model
    from clearset.train.recipes import get_recipe

    net = create_model("efficientnet_lite0_ft", 3)
    imagenet = efficientnet_lite(0).model
    assert torch.equal(net.conv_stem.weight, imagenet.conv_stem.weight)
    assert net.get_classifier().out_features == 3 and net.input_normalisation == ((0.5,) * 3, (0.5,) * 3)
    rec = get_recipe("cifar-efficientnet-lite0-ft").with_overrides(image_size=32, batch_size=16, epochs=1,
                                                                    eval_batch_size=64)
    run = train(ws, recipe=rec, name="ft")
    assert run.config["normalisation"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert np.isfinite(run.metrics[-1]["train_loss"])


def test_airbench95_is_the_wide_network():
    from clearset.models.cifar import create_model
    from clearset.train.recipes import get_recipe

    rec = get_recipe("cifar-airbench95")
    net = create_model(rec.model, 10)
    assert net.head.in_features == 384 and rec.epochs == 15
    # airbench's decoupled settings: lr 10 per 1,024 examples with Nesterov momentum 0.85; the weight decay per
    # step (lr x weight_decay) is airbench94's
    assert rec.lr == pytest.approx(10 / (1 + 1 / 0.15), rel=1e-4)
    assert rec.lr * rec.weight_decay == pytest.approx(1.5 * 0.0013305, rel=1e-3)


def test_a_long_cpu_run_measures_its_own_network_for_the_precision_choice():
    from types import SimpleNamespace

    from clearset.train.api import PROBE_MIN_IMAGES, _precision_probe
    from clearset.train.recipes import get_recipe

    rec = get_recipe("cifar-resnet8-fast").with_overrides(epochs=1, batch_size=4, image_size=16)
    short = SimpleNamespace(positions=np.zeros(PROBE_MIN_IMAGES - 1), classes=["a", "b"])
    long = SimpleNamespace(positions=np.zeros(PROBE_MIN_IMAGES), classes=["a", "b"])
    assert _precision_probe(rec, short, torch.device("cpu")) is None  # seconds of probing would not pay
    assert _precision_probe(rec.with_overrides(model="linear"), long, torch.device("cpu")) is None
    name, step = _precision_probe(rec, long, torch.device("cpu"))
    assert name == f"{rec.model}@16px/b4"
    assert step(False) > 0 and step(True) > 0  # a real forward and backward pass in each precision

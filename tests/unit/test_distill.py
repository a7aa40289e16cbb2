"""Dataset distillation: DSA, attention maps, the flip wrapper, the shared loop, saving, and bad input."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import clearset
from clearset.distill import (
    DISTILLERS,
    Distilled,
    distill,
    dsa,
    evaluate_distilled,
    flip_batch,
    load_distilled,
    matching,
    save_distilled,
)
from clearset.distill.base import Distiller, Probe, attention_map, parse_method, probe
from clearset.distill.matching import MatchConfig, match
from clearset.errors import ParameterError
from clearset.models.cifar import ConvNet


def test_attention_map_is_the_l2_normalised_channel_sum_of_powers():
    f = torch.randn(4, 5, 3, 3)
    for power in (1.0, 4.0):
        a = attention_map(f, power)
        manual = np.abs(f.numpy()) ** power
        manual = manual.sum(1).reshape(4, 9)
        manual /= np.linalg.norm(manual, axis=1, keepdims=True)
        assert np.allclose(a.numpy(), manual, atol=1e-6)
        assert np.allclose(a.norm(dim=1).numpy(), 1, atol=1e-6)
    assert attention_map(torch.zeros(2, 3, 2, 2), 1.0).abs().sum() == 0  # an all-zero map stays finite


def test_probe_keeps_every_relu_but_the_last_and_the_flattened_feature_map():
    net = ConvNet(10, depth=3, width=8, image_size=16)
    x = torch.randn(2, 3, 16, 16)
    p = probe(net, x, attention=True)
    assert [a.shape[1] for a in p.attention] == [16 * 16, 8 * 8]  # the ReLUs of layers 1 and 2, not 3
    assert torch.equal(p.embedding, net.features(x).flatten(1))  # the embedding, not the logits
    assert p.embedding.shape == (2, 8 * 2 * 2)


@pytest.mark.parametrize("group", dsa.GROUPS)
def test_dsa_applies_identical_parameters_to_real_and_synthetic_batches(group):
    gen = torch.Generator().manual_seed(0)
    real, syn = torch.randn(7, 3, 16, 16), torch.randn(3, 3, 16, 16, requires_grad=True)
    for _ in range(4):
        p = dsa.draw(gen, group)
        assert p.group == group and p.r.shape == (1, 3)
        together = dsa.apply(torch.cat([real, syn]), p)
        assert torch.allclose(together[:7], dsa.apply(real, p), atol=1e-6)
        assert torch.allclose(together[7:], dsa.apply(syn, p), atol=1e-6)
        twins = dsa.apply(real[:1].repeat(3, 1, 1, 1), p)  # one transform for the whole batch
        assert torch.allclose(twins[0], twins[1]) and torch.allclose(twins[0], twins[2])
    dsa.apply(syn, dsa.draw(gen, group)).sum().backward()
    assert syn.grad is not None and torch.isfinite(syn.grad).all()


def test_dsa_operations_do_what_they_say():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    flip = dsa.DSAParams("flip", torch.tensor([[0.1, 0.5, 0.5]]))
    assert torch.equal(dsa.apply(x, flip), x.flip(3))
    keep = dsa.DSAParams("flip", torch.tensor([[0.9, 0.5, 0.5]]))
    assert torch.equal(dsa.apply(x, keep), x)
    # crop: a shift by whole pixels with zeros coming in; u = 0.5 is no shift
    assert torch.equal(dsa.apply(x, dsa.DSAParams("crop", torch.tensor([[0.5, 0.5, 0.0]]))), x)
    right = dsa.apply(x, dsa.DSAParams("crop", torch.tensor([[0.99, 0.5, 0.0]])))  # dx = +1 at 8 px
    assert torch.equal(right[..., 1:], x[..., :-1]) and (right[..., 0] == 0).all()
    cut = dsa.apply(torch.ones(1, 1, 8, 8), dsa.DSAParams("cutout", torch.tensor([[0.5, 0.5, 0.0]])))
    assert int((cut == 0).sum()) == 16  # a 4x4 square
    # scale 1 and rotation 0 are identities
    u = (1 - 1 / 1.2) / (1.2 - 1 / 1.2)  # the uniform draw that gives the factor 1
    assert torch.allclose(dsa.apply(x, dsa.DSAParams("scale", torch.tensor([[u, u, 0.0]]))), x, atol=1e-3)
    assert torch.allclose(dsa.apply(x, dsa.DSAParams("rotate", torch.tensor([[0.5, 0.0, 0.0]]))), x, atol=1e-4)
    # colour with r = (0.5, 0.5, 0.5): brightness +0, saturation x1, contrast x1
    assert torch.allclose(dsa.apply(x, dsa.DSAParams("color", torch.tensor([[0.5, 0.5, 0.5]]))), x, atol=1e-3)
    assert dsa.draw(torch.Generator(), "none") is None
    with pytest.raises(ParameterError, match="unknown DSA operation 'blur'"):
        dsa.draw(torch.Generator(), "color_blur")


def test_flip_wrapper_doubles_the_synthetic_batch_and_its_labels_only():
    x, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    xx, yy = flip_batch(x, y)
    assert torch.equal(xx, torch.cat([x, x.flip(3)])) and torch.equal(yy, torch.tensor([0, 1, 2, 0, 1, 2]))


def spy_loop(monkeypatch, fyi: bool):
    """Run the loop with the network replaced by the identity, recording what each side receives."""
    seen = []
    monkeypatch.setattr(matching, "probe", lambda net, x, **kw: Probe([], x.flatten(1)))

    def loss(real, syn):
        seen.append((real.embedding.detach().clone(), syn.embedding.detach().clone()))
        return (real.embedding.mean(0) - syn.embedding.mean(0)).pow(2).sum()

    real = torch.randn(40, 3, 8, 8)
    labels = np.arange(40) % 2
    cfg = MatchConfig(ipc=3, iterations=1, fyi=fyi, strategy="none", real_batch=5, width=4)
    images, syn_labels, _ = match(Distiller("spy", loss, ""), real, labels, cfg)
    return real, labels, seen, syn_labels


def test_the_loop_flips_only_the_synthetic_side_under_fyi(monkeypatch):
    real, labels, seen, syn_labels = spy_loop(monkeypatch, fyi=True)
    assert list(syn_labels) == [0, 0, 0, 1, 1, 1]
    init, _ = matching.initial_images(real, labels, 3, "real", 0)
    for c, (r, s) in enumerate(seen):
        assert r.shape == (5, 3 * 64) and s.shape == (6, 3 * 64)  # real batch as drawn, synthetic doubled
        own = init[torch.from_numpy(syn_labels == c)]
        assert torch.equal(s.view(6, 3, 8, 8), torch.cat([own, own.flip(3)]))
        real_rows = {tuple(v.tolist()) for v in real[torch.from_numpy(labels == c)].flatten(1)}
        assert all(tuple(v.tolist()) in real_rows for v in r)  # real images reach the loss unflipped
    _, _, plain, _ = spy_loop(monkeypatch, fyi=False)
    assert all(s.shape == (3, 3 * 64) for _, s in plain)


def test_matching_moves_the_synthetic_images_and_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.normal(size=(60, 3, 8, 8)).astype(np.float32))
    labels = np.arange(60) % 3
    cfg = MatchConfig(ipc=2, iterations=6, width=8, real_batch=8, seed=3)
    dm = DISTILLERS.get("dm")
    whole, y, stats = match(dm, real, labels, cfg)
    init, _ = matching.initial_images(real, labels, 2, "real", 3)
    assert not torch.allclose(whole, init) and len(stats["losses"]) == 6
    saved = []
    calls = {"n": 0}

    def flaky(real_p, syn_p):
        calls["n"] += 1
        if calls["n"] == 3 * 4 + 2:  # inside the 5th iteration
            raise KeyboardInterrupt
        return dm.loss(real_p, syn_p)

    with pytest.raises(KeyboardInterrupt):
        match(Distiller("dm", flaky, ""), real, labels, cfg, on_checkpoint=saved.append, save_every=2)
    assert [s["iteration"] for s in saved] == [2, 4, 4]  # every 2 iterations, then at the interrupt
    resumed, _, _ = match(dm, real, labels, cfg, state=saved[-1])
    assert torch.equal(resumed, whole)


def test_distilled_set_saves_and_loads_losslessly(tmp_path):
    d = Distilled(np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32), np.array([0, 0, 1, 1]),
                  np.array([0.4, 0.5, 0.6], np.float32), np.array([0.2, 0.25, 0.3], np.float32), ["a", "b"],
                  {"method": "dm", "ipc": 2, "nested": {"x": [1, 2]}})
    back = load_distilled(save_distilled(d, tmp_path / "set.npz"))
    for field in ("images", "labels", "mean", "std"):
        a, b = getattr(d, field), getattr(back, field)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert back.classes == d.classes and back.config == d.config and back.ipc == 2
    assert back.pixels().shape == (4, 8, 8, 3) and back.pixels().dtype == np.uint8
    with pytest.raises(ParameterError, match="not a distilled set"):
        np.savez(tmp_path / "other.npz", a=np.zeros(2))
        load_distilled(tmp_path / "other.npz")


def test_method_names_and_bad_input(tmp_path):
    assert parse_method("dm+fyi") == (DISTILLERS.get("dm"), True)
    assert {"dm", "datadam", "random"} <= set(DISTILLERS.names())
    with pytest.raises(ParameterError, match="unknown distillation method 'mtt'"):
        parse_method("mtt")
    with pytest.raises(ParameterError, match="only wrapper is \\+fyi"):
        parse_method("dm+zca")
    with pytest.raises(ParameterError, match="does no matching"):
        parse_method("random+fyi")
    real, labels = torch.zeros(10, 3, 8, 8), np.array([0] * 7 + [1] * 3)
    with pytest.raises(ParameterError, match="ipc 4 is more than the 3 images of class 1"):
        match(DISTILLERS.get("dm"), real, labels, MatchConfig(ipc=4, iterations=1, width=4))
    with pytest.raises(ParameterError, match="images of 4 px are too small for a ConvNet of depth 3"):
        match(DISTILLERS.get("dm"), torch.zeros(10, 3, 4, 4), labels, MatchConfig(ipc=1, iterations=1, width=4))
    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    with pytest.raises(ParameterError, match="unknown distillation method"):
        distill(ws, method="nope")
    with pytest.raises(ParameterError, match="has no option"):
        distill(ws, method="datadam", ipc=1, iterations=1, temperature=2)
    with pytest.raises(ParameterError, match="too small"):
        distill(ws, method="dm", ipc=1, iterations=1, depth=4)  # 8 px digits, depth 4 needs 16
    assert not (ws.root / "distilled").exists() or not any((ws.root / "distilled").iterdir())


def test_distill_and_evaluate_on_the_digits_workspace(tmp_path):
    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    d = distill(ws, method="datadam+fyi", ipc=2, iterations=3, image_size=16, width=16, real_batch=16,
                         out=tmp_path / "copy.npz")
    assert d.images.shape == (20, 3, 16, 16) and sorted(set(d.labels)) == list(range(10))
    assert d.path.exists() and (tmp_path / "copy.npz").exists() and not list(d.path.parent.glob("*.partial.pt"))
    again = distill(ws, method="datadam+fyi", ipc=2, iterations=3, image_size=16, width=16, real_batch=16)
    assert np.array_equal(again.images, d.images)  # cache hit
    res = evaluate_distilled(ws, d.path, seeds=2, epochs=5)
    assert len(res["test_acc"]) == 2 and 0 <= res["test_acc_mean"] <= 1 and res["ipc"] == 2
    assert d.path.with_name(d.path.name.replace(".npz", ".eval.json")).exists()
    rnd = distill(ws, method="random", ipc=2, image_size=16)
    assert rnd.config["iterations"] == 0


def test_an_interrupted_evaluation_resumes_at_the_next_seed(tmp_path, monkeypatch):
    from clearset.distill import evaluate as ev

    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    d = distill(ws, method="random", ipc=2, image_size=16)
    whole = evaluate_distilled(ws, d.path, seeds=3, epochs=2, width=8)
    target = d.path.with_name(d.path.name.replace(".npz", ".eval.json"))
    partial = target.with_name(target.name.replace(".json", ".partial.json"))
    target.unlink()
    trained, real = [], ev.train_on_synthetic

    def crash_on_second_seed(*args, **kwargs):
        trained.append(args[4])
        if len(trained) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "train_on_synthetic", crash_on_second_seed)
    with pytest.raises(KeyboardInterrupt):
        evaluate_distilled(ws, d.path, seeds=3, epochs=2, width=8)
    assert not target.exists() and partial.exists()
    trained.clear()
    monkeypatch.setattr(ev, "train_on_synthetic", lambda *a, **k: trained.append(a[4]) or real(*a, **k))
    resumed = evaluate_distilled(ws, d.path, seeds=3, epochs=2, width=8)
    assert trained == [1, 2]  # seed 0 came from the partial file
    assert resumed["test_acc"] == whole["test_acc"] and not partial.exists()

def test_a_distilled_set_trains_like_a_subset_and_enters_the_bench(tmp_path):
    from clearset.leaderboard.runner import run_bench
    from clearset.train import get_recipe, train

    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    d = distill(ws, method="dm", ipc=2, iterations=2, image_size=32, width=16, real_batch=8)
    rec = get_recipe("convnet3").with_overrides(epochs=2)
    run = train(ws, recipe=rec, distilled=d.path)
    assert run.config["train_images"] == 20 and run.config["distilled"] == d.config["key"]
    assert run.config["normalisation"]["mean"] == pytest.approx(d.mean.tolist())
    # the fast recipe by name trains on it too (its whitening filters from the synthetic images)
    air = train(ws, recipe=get_recipe("cifar-airbench").with_overrides(epochs=1, batch_size=16), distilled=d.path)
    assert air.config["train_images"] == 20 and 0 <= air.metrics[-1]["eval_acc"] <= 1
    with pytest.raises(ParameterError, match="subset do not apply"):
        train(ws, recipe=rec, distilled=d.path, subset=tmp_path / "x.parquet")
    with pytest.raises(ParameterError, match="synthetic images are 32 px"):
        train(ws, recipe=rec.with_overrides(image_size=16), distilled=d.path)
    board = run_bench(ws, strategies=["random"], keeps=[0.05], seeds=[0], recipe="convnet3", epochs=1, full=False,
                      distilled=[d.path])
    row = board[board["strategy"] == "distilled:dm"].iloc[0]
    assert row["train_images"] == 20 and 0 <= row["test_acc"] <= 1
    assert row["keep"] == pytest.approx(20 / (ws.manifest()["split"] == "train").sum())


def test_mixed_size_photos_distil_at_the_protocol_size_and_say_so(tmp_path, caplog):
    from clearset.distill import default_image_size
    from conftest import rgb, write_image

    for c in ("a", "b"):
        for j, (h, w) in enumerate([(300, 200), (640, 480), (50, 75)]):
            write_image(tmp_path / "imgs" / c / f"{j}.png", rgb(j, h, w))
    ws = clearset.ingest(str(tmp_path / "imgs"), tmp_path / "ws")
    caplog.set_level("INFO", logger="clearset")
    assert default_image_size(ws, "train") == 32 and "mixed sizes" in caplog.text
    digits = clearset.ingest("builtin:digits", tmp_path / "digits")
    assert default_image_size(digits, "train") == 8  # one small size: its own


def test_all_class_batching_matches_per_class_batching_where_the_network_is_per_image():
    """The reference protocol's all-class batch changes what a BatchNorm net sees, nothing else: with a
    per-image net (InstanceNorm) and no augmentation it gives the per-class loop's pixels; with BatchNorm
    it does not. DataDAM's two terms' gradient norms on the pixels are logged."""
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.normal(size=(60, 3, 8, 8)).astype(np.float32))
    labels = np.arange(60) % 3
    dam = DISTILLERS.get("datadam")
    runs = {}
    for norm in ("instance", "batch"):
        for batching in ("class", "all"):
            cfg = MatchConfig(ipc=2, iterations=3, width=8, real_batch=8, seed=1, strategy="none", norm=norm,
                              batching=batching, fyi=True)
            runs[norm, batching] = match(dam, real, labels, cfg)
    assert torch.allclose(runs["instance", "all"][0], runs["instance", "class"][0], atol=1e-5)
    assert not torch.allclose(runs["batch", "all"][0], runs["batch", "class"][0], atol=1e-5)
    cfg_plain = MatchConfig(ipc=2, iterations=3, width=8, real_batch=8, seed=1, strategy="none")
    grads = match(dam, real, labels, cfg_plain)[2]["gradient_norms"]
    assert [g["iteration"] for g in grads] == [0] and set(grads[0]) == {"iteration", "attention", "mmd"}
    assert all(v > 0 for k, v in grads[0].items() if k != "iteration")
    assert match(DISTILLERS.get("dm"), real, labels, cfg_plain)[2]["gradient_norms"] == []  # one term: nothing
    from clearset.distill.datadam import datadam_parts

    p = probe(ConvNet(3, depth=3, width=8, image_size=8), real[:5], attention=True)
    q = probe(ConvNet(3, depth=3, width=8, image_size=8), real[5:9], attention=True)
    assert torch.allclose(sum(datadam_parts(p, q).values()), dam.loss(p, q))
    with pytest.raises(ParameterError, match="batching"):
        distill(clearset.ingest("builtin:digits", Path(tempfile.mkdtemp()) / "ws"), method="dm", ipc=1,
                iterations=1, batching="some")

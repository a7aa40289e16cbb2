"""Self-supervised pre-training (clearset pretrain): NT-Xent, the views, LARS, the stage's cache, resume,
the kNN monitor, and the learned backbone in `clearset embed`."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import clearset
from clearset.errors import ParameterError
from clearset.pretrain import pretrain
from clearset.pretrain.simclr import LARS, nt_xent
from clearset.pretrain.views import resized_crop, view


def test_nt_xent_is_the_cross_entropy_of_each_view_against_its_pair():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    tau = 0.5
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(8):
        pos = (i + 4) % 8
        num = torch.exp(z[i] @ z[pos] / tau)
        den = sum(torch.exp(z[i] @ z[k] / tau) for k in range(8) if k != i)
        total += -torch.log(num / den)
    assert torch.isclose(nt_xent(z1, z2, tau), total / 8, atol=1e-5)
    assert nt_xent(z1, z1 + 1e-4, 0.1) < nt_xent(z1, z2, 0.1)  # matching pairs: a lower loss


def test_views_are_random_crops_of_the_same_images_and_repeatable():
    x = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)
    a = view(x, 16, torch.Generator().manual_seed(3), mean, std, 0.5)
    b = view(x, 16, torch.Generator().manual_seed(3), mean, std, 0.5)
    c = view(x, 16, torch.Generator().manual_seed(4), mean, std, 0.5)
    assert a.shape == (6, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert (a * 0.25 + 0.5).min() >= -1e-5 and (a * 0.25 + 0.5).max() <= 1 + 1e-5
    whole = resized_crop(x.float() / 255, 20, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped = torch.isclose(whole, (x.float() / 255).flip(3), atol=1e-4).flatten(1).all(1)
    same = torch.isclose(whole, x.float() / 255, atol=1e-4).flatten(1).all(1)
    assert (flipped | same).all() and flipped.any() and same.any()  # the whole image, mirrored or not
    kept = resized_crop(x.float() / 255, 20, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0),
                        flip=False)
    assert torch.isclose(kept, x.float() / 255, atol=1e-4).all()  # flip=False: never mirrored


def test_lars_scales_each_weight_step_by_the_trust_ratio():
    w = torch.nn.Parameter(torch.full((2, 2), 3.0))
    bias = torch.nn.Parameter(torch.ones(2))
    opt = LARS([w, bias], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1)
    w.grad, bias.grad = torch.full((2, 2), 0.5), torch.full((2,), 0.5)
    opt.step()
    ratio = 0.1 * 6.0 / 1.0  # eta ||w|| / ||g||
    assert torch.allclose(w, torch.full((2, 2), 3.0 - ratio * 0.5)) and torch.allclose(bias, torch.full((2,), 0.5))


def tiny_recipe():
    from clearset.train.recipes import RECIPES, Recipe, register_recipe

    if "pretrain-tiny" not in RECIPES:
        register_recipe(Recipe("pretrain-tiny", "test", model="resnet8", epochs=1, batch_size=64, lr=0.05,
                               image_size=16, crop_pad=0))


@pytest.fixture()
def ws(tmp_path):
    return clearset.ingest("builtin:digits", tmp_path / "ws")


def test_pretrain_learns_caches_resumes_and_embeds(ws, monkeypatch):
    kw = dict(model="resnet8", image_size=16, epochs=2, batch_size=64, name="d")
    root = pretrain(ws, **kw)
    history = [__import__("json").loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and all(0 < h["knn_acc"] <= 1 for h in history)
    assert history[-1]["knn_acc"] > 0.3  # well above chance (0.1) after two epochs on digits
    assert pretrain(ws, **kw) == root and (root / "pretrain.meta.json").exists()  # cached
    from clearset.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="other settings"):
        pretrain(ws, **{**kw, "temperature": 0.2})  # the same name, other settings: not overwritten
    whole = load_file(root / "model.safetensors")

    import clearset.pretrain as module

    calls = {"n": 0}
    real = module.nt_xent

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 30:  # inside epoch 2 (22 batches per epoch)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, "nt_xent", flaky)
    with pytest.raises(KeyboardInterrupt):
        pretrain(ws, **{**kw, "name": "r"})
    monkeypatch.setattr(module, "nt_xent", real)
    resumed = load_file(pretrain(ws, **{**kw, "name": "r"}) / "model.safetensors")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)  # resumed at epoch 2's start, same weights

    from clearset.train import train

    tiny_recipe()
    from clearset.artifacts.pretrained import load_trunk
    from clearset.models.cifar import create_model

    net = create_model("resnet8", 10)
    assert load_trunk(net, root) == ["fc.bias", "fc.weight"]  # everything but the new classifier
    assert torch.equal(net.conv1.weight, whole["trunk.conv1.weight"])
    run = train(ws, recipe="pretrain-tiny", init="ws:d", epochs=1)
    assert run.config["init"]["pretrained"] == "ws:d"
    fresh = train(ws, recipe="pretrain-tiny", epochs=1)
    assert fresh.name != run.name  # the pre-trained start is part of the run's key
    with pytest.raises(ParameterError, match="pre-trained resnet8, the recipe trains"):
        train(ws, recipe="pretrain-tiny", init="ws:d", model="resnet20")
    with pytest.raises(ParameterError, match="no finished"):
        train(ws, recipe="pretrain-tiny", init="ws:zzz")

    from clearset.features import embed

    r = embed(ws, backbone="ws:d")
    feats = np.load(r.features)
    assert feats.shape == (1797, 64) and np.isfinite(feats).all()
    student = pretrain(ws, method="distill", teacher="ws:d", model="resnet8", epochs=1, batch_size=64, name="st")
    assert __import__("json").loads((student / "config.json").read_text())["teacher"] == "ws:d"
    assert np.load(embed(ws, backbone="ws:st").features).shape == (1797, 64)  # the teacher's width
    with pytest.raises(ParameterError, match="pass teacher ws:NAME"):
        pretrain(ws, method="distill", model="resnet8", image_size=16)
    v2 = pretrain(ws, **{**kw, "method": "simclrv2", "name": "v2", "epochs": 1})
    assert np.load(embed(ws, backbone=f"ws:{v2.name}").features).shape == (1797, 128)  # the head's 1st layer


def test_pretrain_refuses_bad_input_in_one_line(ws, tmp_path):
    with pytest.raises(ParameterError, match="at least 16 px"):
        pretrain(ws, model="resnet8")  # digits are 8 px
    with pytest.raises(ParameterError, match="unknown pre-training method"):
        pretrain(ws, method="byol", image_size=16)
    with pytest.raises(ParameterError, match="crop_min.*share of the image area"):
        pretrain(ws, image_size=16, crop_min=1.5)
    with pytest.raises(ParameterError, match="no finished `clearset pretrain` named 'nope'"):
        from clearset.features import embed

        embed(ws, backbone="ws:nope")
    small = tmp_path / "small.npz"
    np.savez(small, x_train=np.zeros((3, 20, 20, 3), np.uint8), y_train=np.array([0, 1, 0]))
    with pytest.raises(ParameterError, match="3 images"):
        pretrain(clearset.ingest(str(small), tmp_path / "small"), image_size=16)


def test_gsimclr_batches_hold_one_image_per_pseudo_class_in_a_fixed_order(ws):
    from clearset.pretrain.gsimclr import pseudo_class_order

    labels = np.repeat(np.arange(8), 5)  # 8 pseudo-classes of 5
    order = pseudo_class_order(labels, seed=0)
    assert sorted(order.tolist()) == list(range(40))
    for b in range(5):  # every batch of K = 8 holds each pseudo-class once
        assert sorted(labels[order[b * 8 : (b + 1) * 8]].tolist()) == list(range(8))
    assert np.array_equal(order, pseudo_class_order(labels, seed=0))
    root = pretrain(ws, method="gsimclr", model="resnet8", image_size=16, epochs=1, batch_size=32, name="g",
                    autoencoder_epochs=2)
    info = __import__("json").loads((root / "pseudo_classes.json").read_text())
    n_train = int((ws.manifest()["split"] == "train").sum())
    assert len(info["cluster_sizes"]) == 32 and sum(info["cluster_sizes"]) == n_train and info["epochs"] >= 1
    with np.load(root / "pseudo_classes.npz") as z:
        assert sorted(z["order"].tolist()) == list(range(n_train))


def test_fractal_pretraining_multi_instance_targets_and_weights(ws):
    """The card: 1-5 fractals per image, multi-hot targets, BCE with pos_weight = classes / positives of each
    image; the trunk then starts a training or embeds."""
    from clearset.pretrain.fractal import fractal_images, multi_instance_loss, one_cycle

    images, targets = fractal_images(6, 4, 24, seed=0, multi=True)
    assert images.shape == (24, 3, 24, 24) and images.dtype == torch.uint8
    k = targets.sum(1)
    assert (k >= 1).all() and (k <= 5).all() and (k > 1).any()
    assert (targets[torch.arange(24), torch.arange(24) // 4] == 1).all()  # each image holds its own class
    assert torch.equal(fractal_images(6, 4, 24, seed=0, multi=True)[0], images)  # seeded
    single = fractal_images(6, 4, 24, seed=0, multi=False)[1]
    assert (single.sum(1) == 1).all()
    logits = torch.zeros(2, 4)
    t = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 1, 0]])
    manual = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, t, pos_weight=torch.tensor([[4.0] * 4, [4 / 3] * 4]))
    assert torch.isclose(multi_instance_loss(logits, t), manual)
    assert abs(one_cycle(0, 100) - 1 / 25) < 1e-9 and abs(one_cycle(30, 100) - 1) < 1e-9 and one_cycle(99, 100) < 0.01
    root = pretrain(ws, method="fractal", model="resnet8", image_size=16, epochs=1, batch_size=32,
                    fractal_classes=4, fractal_per_class=16, name="fr")
    history = __import__("json").loads((root / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 <= history["held_out_hit"] <= 1
    from clearset.features import embed
    from clearset.train import train

    assert np.load(embed(ws, backbone="ws:fr").features).shape == (1797, 64)
    tiny_recipe()
    assert train(ws, recipe="pretrain-tiny", init="ws:fr", epochs=1).config["init"]["pretrained"] == "ws:fr"

"""The real data in ../shared/data: CIFAR-10 with CIFAR-10N labels, MNIST, the CINIC ImageNet shift set."""

import numpy as np
import pytest

import clearset

pytestmark = pytest.mark.integration


def test_cifar10_both_splits_and_noisy_labels(shared_data, tmp_path):
    ws = clearset.ingest(str(shared_data / "cifar10.npz"), tmp_path / "ws",
                         labels=[f"train={shared_data / 'labels' / 'cifar10n_worse.npy'}"])
    m = ws.manifest()
    assert len(m) == 60000 and m["split"].value_counts().to_dict() == {"train": 50000, "test": 10000}
    assert ws.classes()[:3] == ["airplane", "automobile", "bird"]
    assert (m["height"] == 32).all() and m["sha256"].str.len().eq(64).all()
    train = m[m["split"] == "train"]
    noise = (train["label"] != train["original_label"]).mean()
    assert abs(noise - 0.4021) < 0.0005  # the README's worse_label noise rate
    y = np.load(shared_data / "cifar10.npz")["y_test"]
    assert np.array_equal(m.loc[m["split"] == "test", "label"].to_numpy(), y)
    x0 = np.load(shared_data / "cifar10.npz")["x_train"][0]
    assert np.array_equal(ws.store().load(0), x0)


def test_mnist_grayscale_test_split(shared_data, tmp_path):
    ws = clearset.ingest(str(shared_data / "mnist.npz"), tmp_path / "ws", split="test")
    m = ws.manifest()
    assert len(m) == 10000 and set(m["split"]) == {"test"}
    img = ws.store().load(0)
    assert img.shape == (28, 28, 3) and np.array_equal(img[..., 0], img[..., 2])


def test_shift_set_embeds_with_imagenet_weights(shared_data, tmp_path):
    ws = clearset.ingest(str(shared_data / "cinic10_imagenet_shift.npz"), tmp_path / "ws")
    r = clearset.embed(ws, backbone="efficientnet_lite0", image_size=64)
    feats = r.load()
    assert feats.shape == (1475, 1280) and np.isfinite(feats).all()
    logits = np.load(r.logits)
    assert logits.shape == (1475, 1000)
    # ImageNet features separate these real photos far above chance (10%) even at 64 px (measured 0.50).
    from clearset.evaluate.probe import probe_accuracy

    y = ws.manifest()["label"].to_numpy()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, te = order[:1000], order[1000:]
    assert probe_accuracy(feats[tr], y[tr], feats[te], y[te]) > 0.3

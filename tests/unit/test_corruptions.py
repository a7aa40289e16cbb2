"""Corruptions (checked against independent computations) and the robustness evaluation."""

import colorsys
import io

import numpy as np
import pytest
import torch
from PIL import Image

from clearset.errors import ParameterError
from clearset.evaluate.corruptions import CORRUPTIONS, _zoom, corrupt, motion_blur_kernel


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    base = rng.integers(40, 216, (6, 3, 4, 4)).repeat(8, 2).repeat(8, 3)  # blocky: blur and zoom change it
    return torch.from_numpy((base + rng.integers(-30, 30, base.shape)).astype(np.uint8))  # fine detail too


def test_fifteen_corruptions_deterministic_and_severity_grows(images):
    assert len(CORRUPTIONS) == 15
    for name in CORRUPTIONS.list():
        a, b = corrupt(images, name, 3, seed=1), corrupt(images, name, 3, seed=1)
        assert a.shape == images.shape and a.dtype == torch.uint8 and torch.equal(a, b), name
    for name in ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
                 "fog", "brightness", "contrast", "pixelate", "jpeg_compression", "snow"):
        d = [float((corrupt(images, name, s).float() - images.float()).abs().mean()) for s in (1, 5)]
        assert d[1] > d[0] > 0, name
    with pytest.raises(ParameterError, match="unknown corruption"):
        corrupt(images, "rain", 1)
    with pytest.raises(ParameterError, match="severity"):
        corrupt(images, "fog", 6)


def test_contrast_brightness_pixelate_jpeg_match_independent_computations(images):
    x = images.float() / 255
    mean = x.mean((2, 3), keepdim=True)
    assert torch.equal(corrupt(images, "contrast", 2), (((x - mean) * 0.5 + mean).clamp(0, 1) * 255).to(torch.uint8))

    out = corrupt(images, "brightness", 4).float() / 255
    for (i, r, c) in [(0, 0, 0), (3, 17, 9), (5, 31, 31)]:
        h, s, v = colorsys.rgb_to_hsv(*x[i, :, r, c].tolist())
        expect = colorsys.hsv_to_rgb(h, s, min(v + 0.2, 1.0))
        assert np.allclose(out[i, :, r, c].numpy(), expect, atol=1.5 / 255)

    arr = images.permute(0, 2, 3, 1).numpy()
    for i in range(2):
        small = Image.fromarray(arr[i]).resize((20, 20), Image.BOX).resize((32, 32), Image.BOX)  # severity 5: 0.65
        got = corrupt(images[i : i + 1], "pixelate", 5)[0].permute(1, 2, 0).numpy().astype(int)
        assert np.abs(got - np.asarray(small, dtype=int)).max() <= 1
        buf = io.BytesIO()
        Image.fromarray(arr[i]).save(buf, "JPEG", quality=40)
        ref = np.asarray(Image.open(buf))
        assert np.array_equal(corrupt(images[i : i + 1], "jpeg_compression", 5)[0].permute(1, 2, 0).numpy(), ref)


def test_noise_statistics_and_identity_limits(images):
    flat = torch.full((20, 3, 32, 32), 128, dtype=torch.uint8)
    noisy = corrupt(flat, "gaussian_noise", 5).float() / 255
    assert abs(float(noisy.std()) - 0.10) < 0.005  # sigma 0.10 at severity 5
    hit = corrupt(flat, "impulse_noise", 5)
    assert abs(float(((hit == 0) | (hit == 255)).float().mean()) - 0.07) < 0.01  # s&p amount 0.07
    x = images.float() / 255
    assert torch.allclose(_zoom(x, 1.0), x, atol=1e-6)
    assert torch.allclose(motion_blur_kernel(x, 6, 0.01, np.zeros(len(x))), x, atol=1e-6)
    # a horizontal motion blur only mixes pixels of the same row
    line = torch.zeros(1, 1, 21, 21)
    line[0, 0, 10, 10] = 1
    blurred = motion_blur_kernel(line, 3, 2.0, np.zeros(1))[0, 0]
    assert float(blurred[10].sum()) == pytest.approx(1.0, abs=1e-6) and float(blurred.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(blurred[10, :10].sum()) == 0 and float(blurred[10, 10]) > float(blurred[10, 12]) > 0  # one-sided


def test_robustness_of_a_run_and_bad_input(tmp_path):
    import clearset
    from clearset.evaluate.robustness import robustness
    from clearset.train import train
    from clearset.train.recipes import Recipe

    rng = np.random.default_rng(0)
    y = np.tile(np.arange(3), 20)
    x = rng.integers(0, 60, (60, 16, 16, 3))
    for i, c in enumerate(y):
        x[i, 5 * c : 5 * c + 5] += 150
    x = x.astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x[:45], y_train=y[:45], x_test=x[45:], y_test=y[45:],
             class_names=np.array(["a", "b", "c"]))
    ws = clearset.ingest(str(tmp_path / "d.npz"), tmp_path / "ws")
    run = train(ws, recipe=Recipe("tiny", "t", model="convnet3", epochs=2, batch_size=16, lr=0.05, image_size=16),
                name="r")
    np.savez(tmp_path / "shift.npz", x_test=np.repeat(np.repeat(x[:9], 2, 1), 2, 2), y_test=y[:9],
             class_names=np.array(["a", "b", "c"]))
    r = robustness(run.root, corruptions=["fog", "pixelate"], severities=[1, 5], images=10,
                   shift=[tmp_path / "shift.npz"])
    assert r["images"] == 10 and set(r["corruptions"]) == {"fog", "pixelate"}
    assert set(r["corruptions"]["fog"]) == {"1", "5", "mean"} and 0 <= r["mean_corruption_acc"] <= 1
    assert r["shift"]["shift"]["images"] == 9 and (run.root / "robustness.json").exists()
    np.savez(tmp_path / "other.npz", x_test=x[:9], y_test=y[:9], class_names=np.array(["x", "y", "z"]))
    (run.root / "robustness.json").unlink()
    for kw, msg in [({"corruptions": ["rain"]}, "unknown corruption"), ({"severities": [0]}, "severities"),
                    ({"shift": [tmp_path / "other.npz"]}, "class_names"), ({"shift": [tmp_path / "no.npz"]}, "not found")]:
        with pytest.raises(ParameterError, match=msg):
            robustness(run.root, **kw)
    assert not (run.root / "robustness.json").exists()

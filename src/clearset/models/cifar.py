"""Small networks for CIFAR-scale images (32x32, any class count), registered by name for ``clearset train``.

- ``resnet18_cifar``: ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool), 11.2M parameters.
- ``resnet8`` / ``resnet20``: the CIFAR ResNets of He et al. (3 stages of 16/32/64 channels, n = 1 / 3
  basic blocks per stage).
- ``airbench``: the airbench94 network (models/airbench.py), 1.97M parameters; ``airbench_wide``: the
  same with conv groups 128/384/384 (airbench95's widths), 4.7M parameters.
- ``efficientnet_lite0_ft`` (and ``_lite1_ft``, ``_lite2_ft``): EfficientNet-Lite with its ImageNet weights
  (models/backbones.py, offline) and a new classifier for ``num_classes``: a network to fine-tune. It
  declares the input normalisation its weights expect (``input_normalisation``), which training uses
  instead of the statistics of the data.
- ``convnet3``: the dataset-distillation ConvNet (depth 3 of conv 3x3 width 128 -> instance norm -> ReLU
  -> 2x2 average pooling, then a linear classifier); depth, width and norm are arguments.
Any other name is a timm model (random initialisation) created with ``num_classes``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError
from ..registry import Registry
from .airbench import Airbench

MODELS: Registry = Registry("model")


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv 3x3 (stride 1) -> stages of basic blocks -> global average pool -> linear."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c_in = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(c_in, w, 2 if (i > 0 and j == 0) else 1))
                c_in = w
        self.layers = nn.Sequential(*layers)
        self.num_features = c_in
        self.fc = nn.Linear(c_in, num_classes)

    def forward_features(self, x):
        return self.layers(torch.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        return self.fc(self.forward_features(x).mean((2, 3)))


class ConvNet(nn.Module):
    """The distillation ConvNet: ``depth`` x [conv 3x3 -> norm -> ReLU -> avgpool 2] -> linear."""

    def __init__(self, num_classes: int, *, depth: int = 3, width: int = 128, norm: str = "instance",
                 image_size: int = 32):
        super().__init__()
        layers, c_in, side = [], 3, image_size
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, width, 3, padding=1), make_norm(norm, width), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2)]
            c_in, side = width, side // 2
        self.features = nn.Sequential(*layers)
        self.num_features = width * side * side
        self.classifier = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x):
        return self.features(x)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def make_norm(norm: str, width: int) -> nn.Module:
    if norm == "instance":  # per-channel affine instance norm, as GroupNorm(width, width) in the DC code
        return nn.GroupNorm(width, width, affine=True)
    if norm == "batch":
        return nn.BatchNorm2d(width)
    if norm == "none":
        return nn.Identity()
    raise ParameterError(f"unknown norm {norm!r}: choose instance, batch or none")


@MODELS.register("resnet18_cifar")
def resnet18_cifar(num_classes: int, **_) -> nn.Module:
    """ResNet-18 with the CIFAR stem (3x3 conv, no max-pool): 11.2M parameters."""
    return ResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes)


@MODELS.register("resnet8")
def resnet8(num_classes: int, **_) -> nn.Module:
    """ResNet-8 (widths 16/32/64, one block per stage): the fast bench and audit network."""
    return ResNet((16, 32, 64), (1, 1, 1), num_classes)


@MODELS.register("resnet20")
def resnet20(num_classes: int, **_) -> nn.Module:
    """ResNet-20 of He et al. (widths 16/32/64, three blocks per stage)."""
    return ResNet((16, 32, 64), (3, 3, 3), num_classes)


@MODELS.register("convnet3")
def convnet3(num_classes: int, *, image_size: int = 32, depth: int = 3, width: int = 128,
             norm: str = "instance", **_) -> nn.Module:
    """ConvNet-3 of the dataset-distillation papers (width 128, instance norm, average pooling)."""
    return ConvNet(num_classes, depth=depth, width=width, norm=norm, image_size=image_size)


@MODELS.register("airbench")
def airbench(num_classes: int, *, image_size: int = 32, **_) -> nn.Module:
    """The airbench94 network: fixed whitening conv, three conv groups 64/256/256, GELU (models/airbench.py)."""
    if image_size < 16:
        raise ParameterError(f"the airbench network pools three times after a 2x2 convolution: it needs images "
                             f"of at least 16 px, the recipe gives {image_size}; set the recipe's image_size to 32")
    return Airbench(num_classes)


@MODELS.register("airbench_wide")
def airbench_wide(num_classes: int, *, image_size: int = 32, **_) -> nn.Module:
    """The airbench95 network: the airbench94 layers with conv groups 128/384/384 (models/airbench.py)."""
    airbench(num_classes, image_size=image_size)  # the same size check
    return Airbench(num_classes, widths=(128, 384, 384))


def _efficientnet_lite_ft(variant: int):
    def build(num_classes: int, **_) -> nn.Module:
        from .backbones import efficientnet_lite

        backbone = efficientnet_lite(variant)
        net = backbone.model.train()
        net.reset_classifier(num_classes)  # a fresh linear layer; everything below keeps ImageNet's weights
        net.input_normalisation = (backbone.mean, backbone.std)
        return net
    build.__doc__ = (f"EfficientNet-Lite{variant} with ImageNet weights and a new {{num_classes}}-way classifier, "
                     "to fine-tune")
    return build


for _v in (0, 1, 2):
    MODELS.register(f"efficientnet_lite{_v}_ft")(_efficientnet_lite_ft(_v))


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """A registered small network, else a timm model of that name (random weights)."""
    if name in MODELS:
        return MODELS.create(name, num_classes, **kwargs)
    import timm

    if not timm.is_model(name):
        raise ParameterError(f"unknown model {name!r}: use one of {', '.join(MODELS.names())} or a timm model name")
    return timm.create_model(name, pretrained=False, num_classes=num_classes)

"""Training recipes: named, documented configurations (``clearset train --recipe NAME``).

A recipe fixes the model, optimiser, schedule and augmentations; ``--model``, ``--epochs`` and ``--seed``
override single fields. ``clearset list`` shows every recipe with its one-line description.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import ParameterError, param
from ..registry import Registry

RECIPES: Registry = Registry("recipe")
SCHEDULES = ("cosine", "onecycle", "constant", "airbench", "step")
DEFAULT_RECIPE = "cifar-resnet8-fast"  # what train, oof and the leaderboard use unless told otherwise


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    model: str
    epochs: int
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd (Nesterov momentum) | adamw
    lr: float = 0.1  # peak learning rate, scaled for batch_size as written
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | onecycle | constant | airbench | step; per iteration, after the warm-up
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    image_size: int = 32
    crop_pad: int = 4  # random crop with this much zero padding; 0 = off
    flip: bool = True
    cutout: int = 0  # side of the cut-out square; 0 = off
    mixup: float = 0.0  # Beta alpha; 0 = off
    cutmix: float = 0.0
    eval_batch_size: int = 1024
    # Added for the airbench recipe; left out of as_dict() at their defaults, so the cache keys of runs of
    # the other recipes stay what they were.
    pad_mode: str = "zeros"  # how the crop pads: zeros | reflect
    flip_mode: str = "random"  # random: a fresh coin per image and epoch; alternating: one coin per image,
    #                            then every other epoch the other side (airbench)
    lookahead: int = 0  # every this many steps, pull the weights to an average that tightens over the run
    bias_lr_scale: float = 1.0  # batch-norm shifts train at lr x this (their weight decay stays absolute)
    whiten_bias_epochs: int = 0  # a model's whitening layer (models/airbench.py) trains its bias this long
    tta: int = 0  # test-time augmentation: 0 none, 1 mirror, 2 mirror + one-pixel translations
    nesterov: bool = True  # SGD with Nesterov momentum (False: plain momentum, as MEAL V2)

    def with_overrides(self, **kw) -> "Recipe":
        unknown = set(kw) - set(asdict(self))
        if unknown:
            raise ParameterError(f"unknown recipe field(s) {sorted(unknown)}")
        kw = {k: v for k, v in kw.items() if v is not None}
        if kw.get("epochs", self.epochs) < 1:
            raise ParameterError(f"{param('epochs')} must be at least 1")
        for field, allowed in (("optimizer", ("sgd", "adamw")), ("schedule", SCHEDULES),
                               ("pad_mode", ("zeros", "reflect")), ("flip_mode", ("random", "alternating")),
                               ("tta", (0, 1, 2))):
            if kw.get(field, getattr(self, field)) not in allowed:
                raise ParameterError(f"recipe field {field} must be one of {', '.join(map(str, allowed))}")
        return replace(self, **kw)

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}


_LATER_FIELDS = {"pad_mode": "zeros", "flip_mode": "random", "lookahead": 0, "bias_lr_scale": 1.0,
                 "whiten_bias_epochs": 0, "tta": 0, "nesterov": True}


def register_recipe(recipe: Recipe) -> Recipe:
    RECIPES.register(recipe.name)(recipe)
    return recipe


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)


register_recipe(Recipe(
    "cifar-resnet18", "ResNet-18 (CIFAR stem), SGD Nesterov lr 0.1 batch 128, cosine, wd 5e-4, crop+flip; "
    "the standard 93-95% CIFAR-10 recipe at 200 epochs (default 30 here: CPU-sized)",
    model="resnet18_cifar", epochs=30, batch_size=128, lr=0.1, weight_decay=5e-4, warmup_epochs=1))
register_recipe(Recipe(
    "cifar-resnet8-fast", "ResNet-8, batch 256, one-cycle to lr 0.4, label smoothing 0.1, crop+flip, "
    "10 epochs: minutes on a CPU, for benches and audits",
    model="resnet8", epochs=10, batch_size=256, lr=0.4, weight_decay=5e-4, schedule="onecycle",
    label_smoothing=0.1))
register_recipe(Recipe(
    "convnet3", "ConvNet-3 (width 128, instance norm), SGD lr 0.01 momentum 0.9 wd 5e-4, batch 256, "
    "crop+flip; the dataset-distillation evaluation network",
    model="convnet3", epochs=50, batch_size=256, lr=0.01, weight_decay=5e-4, schedule="cosine"))
register_recipe(Recipe(
    "linear-probe", "Logistic regression on stored features (clearset embed; --features backbone@size), "
    "power + L2 normalised, C=1, full-batch L-BFGS: the embedding's reference accuracy, as a run",
    model="linear", epochs=1, image_size=0, crop_pad=0, flip=False))
register_recipe(Recipe(
    "cifar-airbench", "airbench94 (Jordan 2024): whitening conv + conv groups 64/256/256, batch 1024, SGD "
    "Nesterov lr 1.5 (batch-norm shifts x64) momentum 0.85, label smoothing 0.2, lookahead every 5 steps, "
    "alternating flip + translate 2, flip/translate test-time augmentation, 10 epochs",
    model="airbench", epochs=10, batch_size=1024, lr=1.5, momentum=0.85, weight_decay=0.0013305,
    schedule="airbench", label_smoothing=0.2, crop_pad=2, pad_mode="reflect", flip=True, flip_mode="alternating",
    lookahead=5, bias_lr_scale=64.0, whiten_bias_epochs=3, tta=2))
_LITE0_FT = register_recipe(Recipe(
    "cifar-efficientnet-lite0-ft", "fine-tune EfficientNet-Lite0 from its ImageNet weights (offline) at 64 px: "
    "SGD Nesterov lr 0.05 batch 128, cosine after a half-epoch warm-up, wd 5e-5, label smoothing 0.1, "
    "crop (pad 8) + flip, mirror test-time augmentation, 5 epochs",
    model="efficientnet_lite0_ft", epochs=5, batch_size=128, lr=0.05, weight_decay=5e-5, warmup_epochs=0.5,
    label_smoothing=0.1, image_size=64, crop_pad=8, pad_mode="reflect", tta=1))
register_recipe(_LITE0_FT.with_overrides(
    name="cifar-efficientnet-lite0-ft128", description="cifar-efficientnet-lite0-ft at 128 px (crop pad 16), 4 "
    "epochs: the size chosen on a validation split (5,000 training images, evaluated on train[45,000:]), the "
    "epochs by a 75-minute budget on 2 CPU cores", epochs=4, image_size=128, crop_pad=16))
register_recipe(_LITE0_FT.with_overrides(
    name="cifar-meal-v2", description="MEAL V2's optimisation (Shen & Savvides 2020), for distillation from "
    "--teacher runs with --kd-discriminator: the ImageNet-pretrained EfficientNet-Lite0 student at 64 px, "
    "SGD momentum 0.9 (not Nesterov), weight decay 0, lr 0.01 then 0.001 after 100/180 of the run, no label "
    "smoothing, crop + flip only, no test-time augmentation; 5 epochs (the paper: 180 on ImageNet)",
    epochs=5, lr=0.01, weight_decay=0.0, warmup_epochs=0.0, label_smoothing=0.0, schedule="step", nesterov=False,
    tta=0))
register_recipe(Recipe(
    "cifar-airbench95", "airbench95 (Jordan 2024): cifar-airbench with conv groups 128/384/384, lr 1.304 "
    "(airbench's 10 per 1,024 examples; the same weight decay per step), 15 epochs",
    model="airbench_wide", epochs=15, batch_size=1024, lr=1.3043, momentum=0.85, weight_decay=0.0015301,
    schedule="airbench", label_smoothing=0.2, crop_pad=2, pad_mode="reflect", flip=True, flip_mode="alternating",
    lookahead=5, bias_lr_scale=64.0, whiten_bias_epochs=3, tta=2))

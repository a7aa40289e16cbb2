"""Contract checks for every registered entry of every extension point, the way scikit-learn's
``parametrize_with_checks`` works: ``contract_cases()`` lists (registry, name) pairs and
``check_entry(registry, name)`` runs that registry's contract on one entry, raising AssertionError with
what is wrong. ``tests/contract/test_registries.py`` runs them all; a new method registered with its
decorator is proved by it without writing a test.

The contracts: determinism under a seed, the output's schema, tiny and one-class inputs (which either
work or fail with a ClearsetError, never another exception), no mutation of the inputs, a description for
``clearset list``, and a clear error on a bad option.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np

from .errors import ClearsetError, ParameterError

CONTRACTS: dict[str, Callable[[str], None]] = {}


def contract(listing: str):
    def wrap(fn: Callable[[str], None]) -> Callable[[str], None]:
        CONTRACTS[listing] = fn
        return fn

    return wrap


def contract_cases() -> list[tuple[str, str]]:
    """Every (registry listing, entry name) pair of every registry with a contract."""
    from .cli import load_registries

    registries = load_registries()
    missing = set(registries) - set(CONTRACTS)
    assert not missing, f"registries without a contract: {sorted(missing)}"
    return [(listing, name) for listing in sorted(CONTRACTS) for name in registries[listing].list()]


def check_entry(listing: str, name: str) -> None:
    from .cli import load_registries

    reg = load_registries()[listing]
    assert reg.describe(name).strip(), f"{listing} {name!r} has no description for `clearset list`"
    CONTRACTS[listing](name)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        numeric = a.dtype.kind in "fc" and b.dtype.kind in "fc"  # NaN equals NaN only where there can be one
        return np.array_equal(a, b, equal_nan=numeric)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def _works_or_says_why(fn: Callable[[], object]) -> object | None:
    """Run ``fn``: its result, or None when it refused with a ClearsetError (any other exception fails)."""
    try:
        return fn()
    except ClearsetError:
        return None


# ------------------------------------------------------------------------------------------ audit checks
def tiny_audit_data(n: int = 60, classes: int = 3, seed: int = 0):
    from .audit.base import AuditData
    from .io import compact_hashes

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    feats = (rng.normal(0, 1, (classes, 8))[labels] + rng.normal(0, 0.4, (n, 8))).astype(np.float32)
    images = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    if n > 5:
        images[5] = images[4]  # one exact duplicate
    import hashlib

    hashes = compact_hashes([hashlib.sha256(im.tobytes()).hexdigest() for im in images])
    splits = np.where(np.arange(n) % 5 == 0, "test", "train")

    def loader(indices, threads=None, transform=None):
        for i in indices:
            yield images[int(i)] if transform is None else transform(images[int(i)])

    probs = rng.dirichlet(np.ones(classes), n).astype(np.float32)
    return AuditData(labels=labels, n_classes=classes, class_names=[f"c{i}" for i in range(classes)],
                     splits=splits, sha256=hashes, features=feats, pred_probs=probs, image_loader=loader)


@contract("checks")
def check_audit_check(name: str) -> None:
    import pandas as pd

    from .audit.base import CHECKS, ReportInputs

    spec = CHECKS.get(name)
    data = tiny_audit_data()
    fields = ("labels", "features", "pred_probs", "splits", "sha256", "class_names", "n_classes")
    before = copy.deepcopy([getattr(data, f) for f in fields])
    a = spec.fn(data)
    b = spec.fn(tiny_audit_data())
    assert _same(a.table if a.table is None else a.table.to_dict("list"),
                 b.table if b.table is None else b.table.to_dict("list")), f"check {name!r} is not deterministic"
    assert _same(before, [getattr(data, f) for f in fields]), f"check {name!r} changed its inputs"
    assert set(a.provided) <= set(spec.provides), f"check {name!r} provides fields it does not declare"
    if a.table is not None:
        key = CHECKS.meta(name).get("keyed_by", "index")
        assert isinstance(a.table, pd.DataFrame) and key in a.table.columns, f"{name}: a table keyed by {key}"
    if a.table is not None and "index" in a.table.columns:
        idx = a.table["index"].to_numpy()
        assert np.issubdtype(idx.dtype, np.integer) and ((idx >= 0) & (idx < data.n)).all(), f"{name}: bad indices"
    assert isinstance(a.summary, dict)
    if spec.report is not None:  # its report hook: views of the table, every image a real index
        _check_views(spec.report(ReportInputs(a.table, a.summary, data.class_names, data.splits)), data.n, name)
    _works_or_says_why(lambda: spec.fn(tiny_audit_data(n=12, classes=1)))  # one class
    _works_or_says_why(lambda: spec.fn(tiny_audit_data(n=4, classes=2)))  # tiny


def _check_views(views: list, n: int, owner: str) -> None:
    from .reporting.plots import PLOTS
    from .views import VIEWS, Plot, Tiles

    assert isinstance(views, list) and all(isinstance(v, VIEWS) for v in views), f"{owner}: views must be {VIEWS}"
    for v in views:
        if isinstance(v, Tiles):
            for t in v.tiles:
                idx = t.index if isinstance(t.index, tuple) else (t.index,)
                assert all(isinstance(i, int) and 0 <= i < n for i in idx), f"{owner}: tile of a bad index {t.index}"
        if isinstance(v, Plot):
            assert v.kind in PLOTS, f"{owner}: plot {v.kind!r} is not in reporting.plots.PLOTS"


@contract("plots")
def check_plot(name: str) -> None:
    import tempfile
    from pathlib import Path

    from .reporting.plots import PLOTS

    example = PLOTS.meta(name).get("example")
    assert callable(example), f"plot {name!r}: register it with example=<function returning its data>"
    with tempfile.TemporaryDirectory() as tmp:
        out = PLOTS.get(name)(example(), Path(tmp) / "plot.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"plot {name!r} did not write a PNG"


# ------------------------------------------------------------------------------------------ strategies
def tiny_curate_data(n: int = 90, classes: int = 3, seed: int = 0, d: int = 8):
    """Every input a strategy may need, over ``n`` rows in ``classes`` Gaussian clusters of dimension ``d``."""
    from .curate.base import CurateData

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    feats = rng.normal(0, 1, (classes, d))[labels] + rng.normal(0, 0.5, (n, d))
    trusted = np.full(n, -1)
    trusted[: max(classes * 3, n // 10)] = labels[: max(classes * 3, n // 10)]
    dropped = np.arange(n) % 11 == 10  # a review: some images dropped, some kept (a few relabelled)
    return CurateData(labels=labels, n_classes=classes, features=feats.astype(np.float32),
                      label_quality=rng.random(n), is_label_issue=rng.random(n) < 0.1,
                      suggested_label=(labels + 1) % classes, duplicate_of=np.full(n, -1),
                      is_outlier=np.zeros(n, bool), trusted=trusted,
                      reviewed_label=(labels + (rng.random(n) < 0.05)) % classes,
                      reviewed_keep=(rng.random(n) < 0.2) & ~dropped, reviewed_drop=dropped,
                      el2n_score=rng.random(n), forgetting_score=rng.integers(0, 5, n).astype(np.float64),
                      craig_gradients=rng.dirichlet(np.ones(classes), n) - np.eye(classes)[labels],
                      poison_flag=np.arange(n) % 13 == 5)


@contract("strategies")
def check_strategy(name: str) -> None:
    from .curate.base import STRATEGIES, select

    data = tiny_curate_data
    a, b = select(name, data(), 0.3, seed=1), select(name, data(), 0.3, seed=1)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.weight, b.weight), f"{name}: not deterministic"
    assert a.rows.dtype == np.int64 and np.isfinite(a.weight).all() and (a.weight >= 0).all()
    if STRATEGIES.get(name).exact:
        assert len(a.rows) == round(0.3 * 90), f"{name}: not keep·N rows"
    _works_or_says_why(lambda: select(name, data(n=20, classes=1), 0.5))
    try:
        select(name, data(), 0.3, no_such_option=1)
    except (ParameterError, TypeError) as e:  # select() checks options against the strategy's signature
        assert "no_such_option" in str(e), f"{name}: a bad option must be named in the error"
    else:
        raise AssertionError(f"{name}: an unknown option was accepted")


# ------------------------------------------------------------------------------------------ metrics
@contract("metrics")
def check_metric(name: str) -> None:
    from .evaluate.metrics import METRICS, EvalInputs

    fn = METRICS.get(name)
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 1, (50, 4)), np.arange(50) % 4
    human = rng.dirichlet(np.ones(4), 50)
    e = EvalInputs(logits.copy(), labels.copy(), human.copy())
    a, b = fn(e), fn(EvalInputs(logits.copy(), labels.copy(), human.copy()))
    assert _same(a, b), f"metric {name!r} is not deterministic"
    assert np.array_equal(e.logits, logits) and np.array_equal(e.labels, labels), f"{name} changed its inputs"
    assert isinstance(a, (float, int, list, dict)), f"{name}: a number, a list or a dict"
    if isinstance(a, float):
        assert np.isfinite(a), f"{name}: not finite on ordinary inputs"
    one = EvalInputs(logits[:6, :1] * 0 + 1, np.zeros(6, np.int64), np.ones((6, 1)))
    _works_or_says_why(lambda: fn(one))


@contract("openset")
def check_openset_measure(name: str) -> None:
    from .evaluate.measures import OPENSET_MEASURES

    fn = OPENSET_MEASURES.get(name)
    rng = np.random.default_rng(0)
    pos, neg, correct = rng.normal(1, 1, 80), rng.normal(0, 1, 40), rng.random(80) < 0.8
    keep = (pos.copy(), neg.copy(), correct.copy())
    a, b = fn(pos, neg, correct), fn(pos, neg, correct)
    assert isinstance(a, float) and np.isfinite(a) and a == b, f"open-set measure {name!r}: a finite number"
    assert _same(keep, (pos, neg, correct)), f"{name} changed its inputs"
    assert np.isfinite(fn(pos[:1], neg[:1], correct[:1])), f"{name}: one image of each"


# ------------------------------------------------------------------------------------------ corruptions
@contract("corruptions")
def check_corruption(name: str) -> None:
    import torch

    from .evaluate.corruptions import corrupt

    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    keep = x.clone()
    for severity in (1, 5):
        a, b = corrupt(x, name, severity, seed=3), corrupt(x, name, severity, seed=3)
        assert torch.equal(a, b), f"corruption {name!r} is not deterministic for a seed"
        assert a.dtype == torch.uint8 and a.shape == x.shape, f"{name}: uint8 images of the same shape"
    assert torch.equal(x, keep), f"{name} changed its input"
    try:
        corrupt(x, name, 9)
    except ParameterError:
        pass
    else:
        raise AssertionError(f"{name}: severity 9 was accepted")


# ------------------------------------------------------------------------------------------ networks
@contract("models")
def check_model(name: str) -> None:
    import torch

    from .models.cifar import create_model

    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = create_model(name, 3, image_size=32).eval()
        with torch.no_grad():
            outs.append(net(torch.ones(2, 3, 32, 32)))
    assert outs[0].shape == (2, 3) and torch.equal(outs[0], outs[1]), f"model {name!r}: (N, classes), seeded"
    assert create_model(name, 1, image_size=32)(torch.ones(2, 3, 32, 32)).shape == (2, 1)  # one class


@contract("backbones")
def check_backbone(name: str) -> None:
    import torch

    from .models.backbones import create_backbone

    bb = create_backbone(name)
    with torch.inference_mode():
        feats, logits = bb.features_and_logits(torch.zeros(2, 3, 64, 64))
    assert feats.shape == (2, bb.feature_dim) and torch.isfinite(feats).all(), f"backbone {name!r}: (N, D) features"


@contract("recipes")
def check_recipe(name: str) -> None:
    from .train.recipes import get_recipe

    rec = get_recipe(name)
    assert rec.epochs >= 1 and rec.batch_size >= 1 and rec.lr > 0, f"recipe {name!r}: epochs, batch, lr"
    assert rec.model == "linear" or rec.image_size >= 8, f"recipe {name!r}: a pixel recipe needs an image size"
    try:
        rec.with_overrides(no_such_field=1)
    except ClearsetError:
        pass
    else:
        raise AssertionError(f"recipe {name!r}: an unknown override was accepted")


@contract("distillers")
def check_distiller(name: str) -> None:
    from .distill.base import DISTILLERS, parse_method

    spec = DISTILLERS.get(name)
    assert parse_method(name)[0] is spec and (spec.loss is None or callable(spec.loss))
    if spec.loss is not None:
        assert parse_method(name + "+fyi")[1] is True


# ------------------------------------------------------------------------------------------ data
@contract("pretrainers")
def check_pretrainer(name: str) -> None:
    """A pre-training method names its head, the head layers its embedding keeps and its kind of batches,
    one the stage knows how to run."""
    from .pretrain import METHODS

    head_layers, embed_from, batching = METHODS.get(name)
    assert batching in ("random", "pseudo-class", "distill", "fractal-multi", "fractal-single"), batching
    assert 0 <= embed_from <= head_layers, (embed_from, head_layers)
    assert head_layers >= 1 or batching.startswith("fractal"), "a contrastive method needs a projection head"
    assert METHODS.meta(name).get("description"), "a method describes itself for `clearset list pretrainers`"


@contract("sources")
def check_source(name: str) -> None:
    from .data.sources import SOURCES

    cls = SOURCES.get(name)
    try:
        cls("/no/such/target-for-the-contract")
    except ClearsetError:
        return
    raise AssertionError(f"source {name!r}: a missing target must be a ClearsetError")


@contract("stores")
def check_store(name: str) -> None:
    from .data.store import STORES, ImageStore

    cls = STORES.get(name)
    assert issubclass(cls, ImageStore) and cls.read is not ImageStore.read, f"store {name!r} must implement read()"


@contract("sections")
def check_section(name: str) -> None:
    from importlib import resources

    from .reporting.sections import SECTIONS

    sec = SECTIONS.get(name)
    template = resources.files("clearset").joinpath(f"reporting/templates/sections/{name}.html.j2")
    assert template.is_file(), f"section {name!r} has no template {template}"
    assert callable(sec.build) and sec.title

"""Numbers in docs/ and README.md are rendered from bench/results (bench/docs.py): a table typed by hand,
or a result file re-run without re-rendering, fails here -- and so in CI."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def docs():
    spec = importlib.util.spec_from_file_location("bench_docs", ROOT / "bench" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_block_matches_its_results(docs, capsys):
    assert docs.main(["--check"]) == 0, capsys.readouterr().out
    blocks = sum(len(docs.BLOCK.findall(p.read_text())) for p in docs.documents())
    assert blocks >= 2, "the docs hold generated blocks"


def test_a_drifted_number_is_rendered_back_and_a_bad_block_is_one_line(docs):
    spec = "leaderboard curate_cifar10n_worse_linear-probe.json"
    text = f"before\n<!-- results: {spec} -->\n| random | 0.9999 |\n<!-- /results -->\nafter\n"
    out = docs.render_text(text)
    assert "0.9999" not in out and "| random | " in out and out.startswith("before\n") and out.endswith("after\n")
    assert docs.render_text(out) == out  # rendering is a fixed point
    with pytest.raises(SystemExit, match="unknown renderer"):
        docs.render_text("<!-- results: nosuch x.json -->\n<!-- /results -->")
    with pytest.raises(SystemExit, match="no such result file"):
        docs.render_text("<!-- results: leaderboard missing.json -->\n<!-- /results -->")


def test_the_methods_table_judges_each_claim_by_the_shared_rule(docs, tmp_path, monkeypatch):
    """A row's verdict comes from its evidence: the paper's direction and significant = reproduced; the
    opposite and significant = opposite; else n.s.; a 'no worse' claim holds unless significantly worse;
    a spread over part of the pipeline only is not a test."""
    cells = [{"strategy": s, "keep": 0.5, "seed": i, "test_acc": v}
             for s, vals in {"a": [0.80, 0.81, 0.82], "b": [0.70, 0.71, 0.72], "c": [0.79, 0.83, 0.805]}.items()
             for i, v in enumerate(vals)]
    monkeypatch.setattr(docs, "load", lambda name: {"cells": cells, "ok": True})

    def ev(a, b, **kw):
        return {"file": "x.json", "a": {"strategy": a, "keep": 0.5}, "b": {"strategy": b, "keep": 0.5}, "note": "n", **kw}

    assert docs._evidence(ev("a", "b"))[1] == "reproduced"
    assert docs._evidence(ev("b", "a"))[1] == "opposite"
    assert docs._evidence(ev("a", "c"))[1] == "not reproduced (n.s.)"
    assert docs._evidence(ev("c", "a", expect="not_worse"))[1] == "reproduced (no significant loss)"
    assert docs._evidence(ev("b", "a", expect="not_worse"))[1] == "not reproduced"
    assert docs._evidence(ev("a", "b", whole_runs=1))[1].startswith("not tested: 1 run")
    assert "+10.00" in docs._evidence(ev("a", "b"))[0]
    assert docs._evidence({"file": "x.json", "flag": "ok", "expect": "true", "note": "n"})[1] == "reproduced"
    with pytest.raises(SystemExit, match="no rows"):
        docs._evidence(ev("zzz", "b"))
    monkeypatch.undo()
    table = docs.methods("bench/methods.toml")
    assert table.count("\n| **") >= 15  # one row per shipped method

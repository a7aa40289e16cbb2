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

"""Numbers in the docs come from bench/results, rendered, never typed.

A generated block in any ``docs/*.md`` or ``README.md``::

    <!-- results: leaderboard curate_cifar10n_worse_linear-probe.json -->
    | strategy | keep 0.1 | ...            (rendered: do not edit by hand)
    <!-- /results -->

names a renderer and its arguments (a results file under bench/results, then ``key=value`` options;
shell quoting for values with spaces).
``python bench/docs.py`` re-renders every block in place; ``--check`` renders, prints a diff of what
drifted and exits 1 (the test suite runs it, so CI fails on drift). Differences between arms are judged
by clearset.ops.stats, the rule every bench uses: ``*`` significant (Welch t, p < 0.05), ``n.s.`` not.

Renderers:
- ``leaderboard FILE [order=a,b] [names=a:text;b:text] [noise=1]``: a curation bench (``summary`` and
  ``cells`` as bench/curate/cifar10n.py writes them): strategies as rows, keep fractions as columns,
  mean ± sd over seeds, the best mean of each column in bold, each cell marked against ``random`` at the
  same keep, the all-data row, and (``noise=1``) the kept label noise.
- ``review_human FILE``: bench/review/human.py's arms per keep, with the difference from ``clean``.
- ``provenance FILE``: the command, commit, date and machine line a table cites.
- ``instructions FILE``: bench/explain/instructions.py's exemplar rules and their comparisons.
- ``methods bench/methods.toml``: the methods table (reference, what matches, what differs, the paper's
  claim, the measured difference with its interval and test, the verdict) from the facts written in the
  TOML file and the numbers its evidence names in bench/results.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: common.py
from clearset.io import write_bytes  # noqa: E402
from clearset.ops.stats import compare, verdict  # noqa: E402
from common import ROOT  # noqa: E402

BLOCK = re.compile(r"(<!-- results: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
RESULTS = ROOT / "bench" / "results"
RENDERERS: dict[str, Callable[..., str]] = {}


def renderer(fn: Callable[..., str]) -> Callable[..., str]:
    RENDERERS[fn.__name__] = fn
    return fn


def load(name: str) -> dict:
    path = RESULTS / name
    if not path.exists():
        raise SystemExit(f"bench/results/{name}: no such result file (a generated block names it)")
    return json.loads(path.read_text())


def _accs(cells: list[dict], strategy: str, keep: float) -> list[float]:
    return [c["test_acc"] for c in cells if c["strategy"] == strategy and abs(c["keep"] - keep) < 1e-9
            and c.get("test_acc") is not None]


def _mark(cells: list[dict], strategy: str, keep: float, base: str = "random") -> str:
    if strategy == base:
        return ""
    ref = _accs(cells, base, keep)
    if not ref:
        return ""
    c = compare(_accs(cells, strategy, keep), ref)
    return " ?" if c["p"] is None else " \\*" if c["significant"] else " n.s."


@renderer
def leaderboard(name: str, order: str = "", names: str = "", noise: str = "1") -> str:
    result = load(name)
    summary, cells = result["summary"], result["cells"]
    keeps = sorted({s["keep"] for s in summary if s["strategy"] != "full"})
    strategies = sorted({s["strategy"] for s in summary if s["strategy"] != "full"})
    if order:
        first = [s for s in order.split(",") if s in strategies]
        strategies = first + [s for s in strategies if s not in first]
    label = dict(item.split(":", 1) for item in names.split(";") if ":" in item)
    by = {(s["strategy"], s["keep"]): s for s in summary}
    best = {k: max(by[(s, k)]["test_acc_mean"] for s in strategies if (s, k) in by) for k in keeps}
    head = ["strategy"] + [f"keep {k:g}" for k in keeps]
    if noise == "1":
        head.append(f"kept label noise ({' / '.join(f'{k:g}' for k in keeps)})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in strategies:
        row = [label.get(s, s)]
        for k in keeps:
            r = by.get((s, k))
            if r is None:
                row.append("–")
                continue
            text = f"{r['test_acc_mean']:.4f} ± {r['test_acc_sd']:.4f}"
            row.append((f"**{text}**" if r["test_acc_mean"] == best[k] else text) + _mark(cells, s, k))
        if noise == "1":
            row.append(" / ".join(f"{by[(s, k)]['kept_label_noise']:.2f}" if (s, k) in by else "–" for k in keeps))
        lines.append("| " + " | ".join(row) + " |")
    full = [s for s in summary if s["strategy"] == "full"]
    if full:
        f = full[0]
        row = ["all data", f"{f['test_acc_mean']:.4f} ± {f['test_acc_sd']:.4f} (keep 1.0)"] + [""] * (len(keeps) - 1)
        if noise == "1":
            row.append(f"{f['kept_label_noise']:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    seeds = sorted({c["seed"] for c in cells})
    lines.append("")
    lines.append(f"Mean ± sd over seeds {', '.join(map(str, seeds))}; bold: the best mean at that keep; "
                 "\\* differs from random at the same keep (Welch t, p < 0.05), n.s. does not.")
    return "\n".join(lines)


@renderer
def review_human(name: str) -> str:
    result = load(name)
    rows = sorted(result["summary"], key=lambda s: (s["keep"], s["strategy"] != "random", s["strategy"] != "clean",
                                                    s["strategy"]))
    cells = result["cells"]
    lines = ["| keep | arm | human decisions | test accuracy | kept label noise | vs clean (points, 95% CI) |",
             "|---|---|---|---|---|---|"]
    for s in rows:
        vs = ""
        if s["strategy"].startswith("reviewed"):
            mine = [c["test_acc"] for c in cells if c["arm"] == s["strategy"] and c["keep"] == s["keep"]]
            base = [c["test_acc"] for c in cells if c["arm"] == "clean" and c["keep"] == s["keep"]]
            vs = verdict(compare(mine, base), unit=100)
        lines.append(f"| {s['keep']:g} | {s['strategy']} | {s.get('decisions', 0)} | "
                     f"{s['test_acc_mean']:.4f} ± {s['test_acc_sd']:.4f} | {s['kept_label_noise']:.3f} | {vs} |")
    lines.append("")
    lines.append(f"{result['seeds']} seeds per arm; annotator error {result['annotator_error']:g}; "
                 f"recipe `{result['recipe']}`; {result['label_issue_findings']} label-issue findings in the queue.")
    return "\n".join(lines)


@renderer
def instructions(name: str) -> str:
    r = load(name)
    lines = ["| exemplar rule | retrieval mAP (mean ± sd) |", "|---|---|"]
    for rule, d in r["map"].items():
        lines.append(f"| {rule} | {d['mean']:.4f} ± {d['sd']:.4f} |")
    lines.append("")
    lines.append(f"medoids − random: {verdict(r['medoids_vs_random'], unit=100)} points; medoids − mean: "
                 f"{verdict(r['medoids_vs_mean'], unit=100)} points ({len(r['runs']['medoids'])} seeds; the mean "
                 "rule has no randomness).")
    return "\n".join(lines)


@renderer
def provenance(name: str) -> str:
    p = load(name).get("provenance", {})
    return (f"bench/results/{name}: commit {str(p.get('commit', '?'))[:7]}, {p.get('date', '?')}, "
            f"{p.get('machine', '?')}.")


def _dig(obj, path: str):
    for key in path.split("."):
        obj = obj[key]
    return obj


def _values(result: dict, arm, ev: dict) -> list:
    """One arm's rows (a filter of ``ev['rows']``) or values (a dotted path to a list)."""
    if isinstance(arm, str):
        return list(_dig(result, arm))
    rows = [r for r in _dig(result, ev.get("rows", "cells"))
            if all(r.get(k) == v or (isinstance(v, float) and abs(r.get(k, 0) - v) < 1e-9) for k, v in arm.items())]
    if not rows:
        raise SystemExit(f"bench/methods.toml: no rows of {ev['file']} match {arm}")
    return rows


def _evidence(ev: dict) -> tuple[str, str]:
    """(measured text, verdict) of one comparison named in bench/methods.toml."""
    result = load(ev["file"])
    expect, note = ev.get("expect", "greater"), ev.get("note", "")
    if "flag" in ev:
        ok = bool(_dig(result, ev["flag"]))
        return f"{note}: {'yes' if ok else 'no'}", "reproduced" if ok == (expect == "true") else "not reproduced"
    if "stat" in ev:
        c = _dig(result, ev["stat"])
    else:
        a, b = _values(result, ev["a"], ev), _values(result, ev["b"], ev)
        value, key = ev.get("value", "test_acc"), ev.get("paired")
        if key:
            b_by = {r[key]: r for r in b}
            a = [r for r in a if r[key] in b_by]
            b = [b_by[r[key]] for r in a]
        pick = (lambda rows: [_dig(r, value) for r in rows]) if not isinstance(ev["a"], str) else (lambda v: v)
        xa, xb = pick(a), pick(b)
        if ev.get("flatten"):
            xa, xb = [v for x in xa for v in x], [v for x in xb for v in x]
        c = compare(xa, xb, paired=bool(key))
    n = "/".join(map(str, c.get("n", [])))
    text = f"{note}: {verdict(c, unit=100)} points, n {n}"
    if ev.get("whole_runs", 3) < 3:  # the spread covers part of the pipeline only (e.g. evaluation seeds)
        return text, f"not tested: {ev['whole_runs']} run(s) of the whole pipeline (3 owed)"
    if c.get("p") is None:
        return text, "not testable"
    if c["significant"]:
        good = c["diff"] > 0 if expect in ("greater", "not_worse") else c["diff"] < 0
        return text, "reproduced" if good else ("opposite" if expect == "greater" else "not reproduced")
    return text, "reproduced (no significant loss)" if expect == "not_worse" else "not reproduced (n.s.)"


@renderer
def methods(name: str) -> str:
    import tomllib

    path = ROOT / name
    if not path.exists():
        raise SystemExit(f"{name}: no such methods file (a generated block names it)")
    table = tomllib.loads(path.read_text())["method"]
    lines = ["| method | reference | matches the paper | differs | the paper's claim | measured (a - b, 95% CI) "
             "| verdict |", "|---|---|---|---|---|---|---|"]

    def cell(text) -> str:
        return str(text).replace("|", "\\|")

    for m in table:
        found = [_evidence(ev) for ev in m.get("evidence", [])]
        measured = "<br>".join(t for t, _ in found) or "–"
        verdicts = sorted({v for _, v in found})
        if not found:
            verdict_text = m.get("status", "not measured yet")
        else:
            verdict_text = verdicts[0] if len(verdicts) == 1 else "mixed: " + ", ".join(v for _, v in found)
            if m.get("status"):
                verdict_text += f"; {m['status']}"
        lines.append("| " + " | ".join(cell(x) for x in (f"**{m['name']}** (`{m['ships']}`)", m["reference"],
                                                          m["matches"], m["differs"], m["claim"], measured,
                                                          verdict_text)) + " |")
    lines.append("")
    lines.append("a - b in points of accuracy (or AUROC) with its 95% interval; Welch t-test unless paired; "
                 "n = runs per arm. Verdicts: reproduced = the paper's direction, significant (or, for a "
                 "'no worse' claim, no significant loss); n.s. = not significant.")
    return "\n".join(lines)


def render_block(spec: str) -> str:
    words = shlex.split(spec)
    if not words or words[0] not in RENDERERS:
        raise SystemExit(f"generated block {spec!r}: unknown renderer (known: {', '.join(RENDERERS)})")
    args = [w for w in words[1:] if "=" not in w]
    options = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return RENDERERS[words[0]](*args, **options).rstrip("\n") + "\n"


def render_text(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render_block(m.group("spec")) + m.group(4), text)


def documents(root: Path = ROOT) -> list[Path]:
    return sorted((root / "docs").glob("*.md")) + [root / "README.md"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="render, show what drifted, exit 1 if anything did")
    args = ap.parse_args(argv)
    drifted = 0
    for path in documents():
        text = path.read_text()
        new = render_text(text)
        if new == text:
            continue
        drifted += 1
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       str(path.relative_to(ROOT)), "rendered from bench/results"))
        else:
            write_bytes(path, new.encode())
            print(f"rendered {path.relative_to(ROOT)}")
    if args.check and drifted:
        print(f"{drifted} document(s) differ from bench/results: run `python bench/docs.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

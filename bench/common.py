"""Paths every bench script shares: the repository root, the shared data (``CLEARSET_SHARED_DATA`` or
``../shared/data``) and the gitignored cache of workspaces and synthetic data."""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLEARSET_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / ".cache"


def _log_to_stderr() -> None:
    """Benches run for minutes to hours, often in the background: the stages' progress lines (cached steps,
    epochs, cells) go to stderr even when it is not a terminal (the bars stay hidden there)."""
    try:
        from clearset.progress import log, setup_logging
    except ImportError:  # a bench run without clearset installed fails later, with its own message
        return
    if not log.handlers:
        setup_logging()


_log_to_stderr()


def _cpuinfo() -> tuple[str, set[str]]:
    """(CPU model name, feature flags): clearset.device's reading of /proc/cpuinfo."""
    from clearset.device import cpu_flags, cpu_model as model

    return model() or "CPU", cpu_flags()


def cpu_model() -> str:
    return _cpuinfo()[0]


def cpu_identity() -> dict:
    """Family, model, stepping, microcode and clock of the first CPU (/proc/cpuinfo): hosts that print the
    same model name ("AMD EPYC") have trained at speeds 1.7x apart, so results record these too."""
    keys = {"cpu family": "family", "model": "model", "stepping": "stepping", "microcode": "microcode",
            "cpu MHz": "mhz", "cache size": "cache"}
    out: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            if k.strip() in keys and keys[k.strip()] not in out:
                out[keys[k.strip()]] = v.strip()
            elif not line.strip() and out:
                break
    except OSError:
        pass
    return out


def machine() -> str:
    """This machine in words, for result files: cores, CPU model, vector units, memory. Dev machines
    differ between sessions (an AVX-512/AMX Intel, an AVX2 AMD): numbers compare within one machine."""
    model, flags = _cpuinfo()
    units = "AMX bf16" if "amx_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{os.cpu_count()}-core {model}{f' ({units})' if units else ''}, {mem:.0f} GB RAM"


def run_timed(argv: list[str], timeout: float | None = None, may_fail: bool = False) -> dict:
    """Run ``python ARGV`` under /usr/bin/time: its stdout, wall seconds and peak RSS (MB).
    ``{"timed_out_after_s": timeout}`` if it outlives ``timeout``. If it fails: exits with the child's
    stderr, or with ``may_fail`` returns ``{"failed": why, "wall_s", "peak_rss_mb"}`` (a baseline killed
    for memory is a result)."""
    t = time.perf_counter()
    try:
        run = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, *argv],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out_after_s": timeout}
    lines = run.stderr.strip().splitlines()
    measured = {"wall_s": round(time.perf_counter() - t, 1),
                "peak_rss_mb": round(int(lines[-1]) / 1024) if lines and lines[-1].isdigit() else None}
    if run.returncode:
        if not may_fail:
            sys.exit(run.stderr[-3000:])
        why = next((ln for ln in reversed(lines[:-1]) if ln.strip()), f"exit status {run.returncode}")
        return {"failed": why.strip(), **measured}
    return {"stdout": run.stdout, **measured}


def timed_child(argv: list[str], timeout: float | None = None, may_fail: bool = False) -> dict:
    """run_timed, for a child that prints a JSON object on its last stdout line: that object, plus
    ``wall_s`` and ``peak_rss_mb``."""
    run = run_timed(argv, timeout, may_fail)
    if "stdout" not in run:
        return run
    out = json.loads(run.pop("stdout").strip().splitlines()[-1])
    return {**out, **run}


def stamp() -> dict:
    """What every result file records about where and from what it was measured: machine, CPU flags,
    date, commit (and whether the tree had uncommitted changes), clearset, torch and numpy versions."""
    import numpy

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    model, flags = _cpuinfo()
    versions = {"python": platform.python_version(), "numpy": numpy.__version__}
    for name in ("clearset", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {"machine": machine(), "cpu": cpu_identity(), "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))),
            "date": time.strftime("%Y-%m-%d %H:%M:%S%z"), "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")), "versions": versions}


def write_result(name: str | Path, result: dict) -> Path:
    """``bench/results/<name>.json`` (or the path ``name``) with ``stamp()`` under "provenance", written
    atomically. Every bench writes its result through this."""
    from clearset.io import write_json

    path = name if isinstance(name, Path) else ROOT / "bench" / "results" / f"{name}.json"
    write_json(path, {"provenance": stamp(), **result})
    return path


def describe(vals) -> dict:
    """n, mean, sample sd, 95% interval (clearset.ops.stats, the rule every comparison uses) and the values."""
    from clearset.ops.stats import describe as stats_of

    vals = [float(v) for v in vals]
    return {**stats_of(vals), "values": vals}


def compare(a, b, *, paired: bool = False) -> dict:
    """a - b with its 95% interval and t-test (Welch, or paired for aligned arms): clearset.ops.stats."""
    from clearset.ops.stats import compare as diff_of

    return diff_of(a, b, paired=paired)

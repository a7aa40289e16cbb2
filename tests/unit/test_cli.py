"""The command line: help texts, and user mistakes as one line + exit code 2, never a traceback."""

import subprocess
import sys

import numpy as np
import pytest

CLI = [sys.executable, "-c", "from clearset.cli import main; main()"]


def run(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", ["ingest", "embed", "report", "demo", "probe", "list", "train", "eval"])
def test_help(command):
    r = run(command, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_top_level_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for command in ("ingest", "embed", "report", "demo"):
        assert command in r.stdout


@pytest.mark.parametrize("args,message", [
    (["ingest", "/no/such/dir", "-o", "{tmp}/ws"], "no such file or folder"),
    (["ingest", "builtin:digits", "-o", "{tmp}/ws", "--labels", "{tmp}/short.npy"], "10 labels but"),
    (["ingest", "builtin:digits", "-o", "{tmp}/ws", "--on-error", "maybe"], "--on-error must be"),
    (["embed", "{tmp}/ws"], "no manifest.parquet here"),
    (["report", "{tmp}/ws"], "no manifest.parquet here"),
    (["list", "widgets"], "cannot list 'widgets'"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    np.save(tmp_path / "short.npy", np.zeros(10, np.int64))
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert not (tmp_path / "ws").exists()


def test_ingest_and_list_sources(tmp_path):
    r = run("-q", "ingest", "builtin:fractals?classes=2&per_class=3&size=16", "-o", str(tmp_path / "ws"))
    assert r.returncode == 0, r.stderr
    assert "6 images, 2 classes" in r.stdout
    r = run("list", "sources")
    assert r.returncode == 0 and "imagefolder" in r.stdout and "webdataset" in r.stdout
    r = run("list", "strategies", "--pattern", "el2n*")
    assert r.returncode == 0 and "el2n-probe" in r.stdout and "differs from the paper in: " in r.stdout


def test_public_names_are_not_shadowed_by_submodules():
    import importlib
    import pkgutil
    import types

    import clearset

    for mod in pkgutil.walk_packages(clearset.__path__, "clearset."):
        importlib.import_module(mod.name)
    for name in clearset._API:
        assert not isinstance(getattr(clearset, name), types.ModuleType), name
    import clearset.train as t

    assert callable(t.reinforce) and not isinstance(t.reinforce, types.ModuleType)


def test_help_reads_plainly():
    """No typer-internal metavars on options (<bool>, <list[str]>, <path>) and paragraphs rewrapped."""
    for command in ("", "ingest", "audit", "train", "eval"):
        r = run(*([command] if command else []), "--help")
        assert r.returncode == 0
        options = [line for line in r.stdout.splitlines() if line.lstrip().startswith("-")]
        for raw in ("<bool>", "<list[", "<path>", "<int>", "<float>", "<str>"):
            assert not any(raw in line for line in options), (command, raw)
    r = run("audit", "--help")
    assert "multi-label\n  images, confused classes" in r.stdout or "confused classes and dataset" in " ".join(r.stdout.split())
    assert "│" not in r.stdout  # plain text, no boxes

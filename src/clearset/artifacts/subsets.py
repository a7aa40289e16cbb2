"""A subset file, as ``clearset curate`` writes it: manifest ``index`` rows (+ ``weight``, ``label``,
``augment`` columns), and in its sidecar a per-epoch sampler when the strategy asks for one (RS2)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from ..errors import ParameterError
from ..io import read_json
from ..workspace import Workspace


def read_subset(path: str | Path, train_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions into the training rows, weights) from a subset file with an ``index`` column (manifest
    indices) and an optional ``weight`` column: .parquet, .csv, or .npy (indices only)."""
    path = Path(path)
    table = _subset_table(path)
    if "index" not in table.columns:
        raise ParameterError(f"{path}: a subset needs an 'index' column (manifest indices)")
    idx = table["index"].to_numpy()
    if not np.issubdtype(idx.dtype, np.integer):
        raise ParameterError(f"{path}: 'index' must hold integers")
    weights = table["weight"].to_numpy(np.float32) if "weight" in table.columns else np.ones(len(idx), np.float32)
    if len(idx) == 0:
        raise ParameterError(f"{path}: the subset is empty")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ParameterError(f"{path}: 'weight' must be finite and non-negative")
    lookup = {int(v): p for p, v in enumerate(train_index)}
    missing = [int(i) for i in idx if int(i) not in lookup]
    if missing:
        raise ParameterError(f"{path}: {len(missing)} indices are not training images of this workspace "
                             f"(first: {missing[:5]}); a subset names manifest indices of the training split")
    return np.array([lookup[int(i)] for i in idx], dtype=np.int64), weights


def _subset_table(path: Path):
    """The subset file as a DataFrame, read once per (path, size, mtime) however many columns are used."""
    if not path.exists():
        raise ParameterError(f"{path}: subset file not found")
    st = path.stat()
    return _read_subset_table(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_subset_table(path: str, size: int, mtime_ns: int):
    import pandas as pd

    try:
        if path.endswith(".npy"):
            return pd.DataFrame({"index": np.load(path, allow_pickle=False)})
        return pd.read_csv(path) if path.endswith(".csv") else pd.read_parquet(path)
    except Exception as e:  # pandas/pyarrow/numpy raise many types for a malformed file
        raise ParameterError(f"{path}: cannot read as a subset table ({e}); give a .parquet, .csv or .npy "
                             f"with an 'index' column, as `clearset curate` writes") from None


def subset_column(path: str | Path, column: str) -> np.ndarray | None:
    table = _subset_table(Path(path))
    return table[column].to_numpy() if column in table.columns else None


def subset_labels(path: str | Path, n_classes: int) -> np.ndarray | None:
    """The ``label`` column of a subset file (parquet/csv), when present, checked against the classes."""
    lab = subset_column(path, "label")
    if lab is None:
        return None
    if not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= n_classes:
        raise ParameterError(f"{path}: 'label' must hold class numbers 0..{n_classes - 1}")
    return lab.astype(np.int64)


def rs2_sampler(n: int, n_per_epoch: int, seed: int):
    """A stateless sampler: epoch e takes items [e·m, (e+1)·m) of the stream of permutations p_0, p_1, ...,
    each p_k seeded by (seed, k) -- so a resumed run draws exactly what an uninterrupted one would."""
    m = max(1, min(n_per_epoch, n))

    def perm(k: int) -> torch.Tensor:
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + 7919 * k + 17))

    def sample(epoch: int, gen: torch.Generator) -> torch.Tensor:  # gen unused: the stream is the state
        start = epoch * m
        k, offset = divmod(start, n)
        out = perm(k)[offset : offset + m]
        if len(out) < m:
            out = torch.cat([out, perm(k + 1)[: m - len(out)]])
        return out

    return sample


def subset_sampler(path: str | Path, n_rows: int) -> tuple[object, str] | None:
    """(sampler, name) when the subset file's sidecar asks for a per-epoch sampler (RS2), else None."""
    side = Workspace.sidecar_of(Path(path))
    if not side.exists():
        return None
    spec = (read_json(side).get("info") or {}).get("sampler")
    if not spec or spec.get("name") != "rs2":
        return None
    return rs2_sampler(n_rows, int(spec["per_epoch"]), int(spec["seed"])), f"rs2-{spec['per_epoch']}-s{spec['seed']}"

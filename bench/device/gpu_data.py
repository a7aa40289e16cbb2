"""Carry CIFAR-10 to a lent GPU machine, which sees the repository but not ../shared/data.

The shared cifar10.npz (164 MB decoded pixels) is over the 64 MiB a device call may carry. Its pixels are
already a JPEG quality-75 copy, so re-encoding them the same way (quality 75, 4:2:0) is nearly lossless:
about 0.16/255 mean absolute error against the shared pixels, 55 MB for all 60,000 images.

    .venv/bin/python bench/device/gpu_data.py pack     # here: ../shared/data/cifar10.npz -> gpudata/cifar10_jpeg.npz
    python3 bench/device/gpu_data.py unpack            # there: gpudata/cifar10_jpeg.npz -> gpudata/cifar10.npz

``gpudata/`` is ignored by git (.git/info/exclude); name it in the device call's ``carry``. The error the
round trip adds is measured at pack time and stored in the packed file (``mae``), so a result made from
the unpacked copy can say how far its pixels are from the shared ones.
"""

from __future__ import annotations

import io
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from clearset.workspace import atomic_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import ROOT, SHARED

DIR = ROOT / "gpudata"


def _encode(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=75, subsampling=2)
    return buf.getvalue()


def _decode(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def _join(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8), offsets


def _split(data: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    raw = data.tobytes()
    return [raw[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def pack() -> None:
    src = np.load(SHARED / "cifar10.npz", allow_pickle=False)
    out = {"y_train": src["y_train"], "y_test": src["y_test"], "class_names": src["class_names"]}
    err = []
    with ThreadPoolExecutor() as pool:
        for split in ("x_train", "x_test"):
            x = src[split]
            blobs = list(pool.map(_encode, x, chunksize=256))
            back = np.stack(list(pool.map(_decode, blobs, chunksize=256)))
            err.append(np.abs(back.astype(np.int16) - x).astype(np.float64).sum() / x.size)
            out[split + "_jpeg"], out[split + "_offsets"] = _join(blobs)
    out["mae"] = np.float64(np.mean(err))
    DIR.mkdir(exist_ok=True)
    with atomic_path(DIR / "cifar10_jpeg.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **out)
    size = (DIR / "cifar10_jpeg.npz").stat().st_size
    print(f"{DIR / 'cifar10_jpeg.npz'}: {size / 1e6:.1f} MB, round-trip MAE {out['mae']:.3f}/255")


def unpack() -> None:
    src = np.load(DIR / "cifar10_jpeg.npz", allow_pickle=False)
    out = {"y_train": src["y_train"], "y_test": src["y_test"], "class_names": src["class_names"]}
    with ThreadPoolExecutor() as pool:
        for split in ("x_train", "x_test"):
            out[split] = np.stack(list(pool.map(_decode, _split(src[split + "_jpeg"], src[split + "_offsets"]),
                                                chunksize=256)))
    with atomic_path(DIR / "cifar10.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **out)
    print(f"{DIR / 'cifar10.npz'}: {len(out['x_train'])} + {len(out['x_test'])} images "
          f"(round-trip MAE {float(src['mae']):.3f}/255 from the shared copy)")


if __name__ == "__main__":
    if sys.argv[1:] not in (["pack"], ["unpack"]):
        sys.exit("usage: gpu_data.py pack|unpack")
    {"pack": pack, "unpack": unpack}[sys.argv[1]]()

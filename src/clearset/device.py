"""The one device and precision policy of every stage that runs a network (embed, train, distill, audit,
reinforce, evaluate).

``resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")`` checks the name and that the device is
there, once, with one message for every command. ``resolve_precision("auto", device)`` picks bf16 only
where it is faster on this machine: on CUDA where the GPU supports bf16, on a CPU with AMX (known fast),
and elsewhere by a short measurement (a small conv net forward and backward, fp32 against bf16 autocast)
cached per machine in ``$CLEARSET_CACHE`` (default ``~/.cache/clearset``). An AVX-512 CPU without native
bf16 emulates it and is slower than fp32 there; the probe sees that. A caller about to run one network for
minutes passes ``probe=(name, step)`` to measure that network instead: on an AVX-512-bf16 CPU bf16 is 1.7-2.1x
fp32 for airbench's dense convolutions but 0.66-0.86x for EfficientNet-Lite's depthwise ones
(bench/results/train_cpu_choices.json), so one answer per machine is not enough.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ParameterError, param

log = logging.getLogger("clearset")
DEVICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_SPEEDUP = 1.1  # bf16 must be this much faster than fp32 to be chosen by auto


def resolve_device(device: str | None = "auto"):
    """The torch.device named by ``device`` (``None`` = ``auto``: CUDA when visible, else CPU); a
    ParameterError naming ``--device`` if the name is unknown or the device is not on this machine."""
    import torch

    spec = "auto" if device is None else str(device).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, sep, number = spec.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (sep and not number.isdigit()) or (sep and kind != "cuda"):
        raise ParameterError(f"{param('device')} {device!r}: unknown device; use {DEVICES}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"{param('device')} {device!r}: no CUDA GPU is visible here; use {param('device')} cpu (or auto)")
        if sep and int(number) >= torch.cuda.device_count():
            raise ParameterError(f"{param('device')} {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                                 f"device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParameterError(f"{param('device')} {device!r}: Apple MPS is not available here; use {param('device')} cpu (or auto)")
    return torch.device(spec)


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # fp32 | bf16
    reason: str  # why: given, a GPU property, CPU flags, or the measured speed-up

    def record(self) -> dict[str, str]:
        """What each artifact's sidecar records about the choice."""
        return {"precision": self.precision, "precision_reason": self.reason}


def choose_precision(precision: str, device, probe: tuple[str, Callable[[bool], float]] | None = None) -> PrecisionChoice:
    """``fp32``/``bf16`` as given; ``auto``: bf16 only where it is known or measured faster here. ``probe``:
    (name, step) where ``step(bf16)`` runs one step of the network to be used and returns its seconds;
    measured (once per machine and name, cached) instead of the small generic net."""
    import torch

    if precision not in PRECISIONS:
        raise ParameterError(f"{param('precision')} {precision!r}: use auto, fp32 or bf16")
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if precision != "auto":
        return PrecisionChoice(precision, "given")
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return PrecisionChoice("bf16" if ok else "fp32", f"CUDA bf16 {'supported' if ok else 'not supported'}")
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"{device.type}: fp32")
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return PrecisionChoice("bf16", "CPU has AMX-bf16")
    if not _bf16_kernels_present():
        return PrecisionChoice("fp32", "no bf16 CPU kernels in this torch build")
    speedup = measured_bf16_speedup(probe)
    chosen = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    what = f" for {probe[0]}" if probe else ""
    return PrecisionChoice(chosen, f"bf16 measured {speedup:.2f}x the speed of fp32{what} on this CPU")


def resolve_precision(precision: str, device) -> str:
    return choose_precision(precision, device).precision


def _bf16_kernels_present() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_dir() -> Path:
    base = os.environ.get("CLEARSET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "clearset")
    return Path(base)


def machine_key() -> str:
    import torch

    blob = json.dumps([cpu_model(), sorted(cpu_flags()), torch.__version__, torch.get_num_threads()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def measured_bf16_speedup(probe: tuple[str, Callable[[bool], float]] | None = None) -> float:
    """fp32 time / bf16 time of a small conv net step (or of ``probe``'s network) on this CPU, measured once
    per machine (about a second) and cached; a cache that cannot be written only means measuring again."""
    path = cache_dir() / "precision.json"
    key = machine_key() + (f":{probe[0]}" if probe else "")
    try:
        cached = json.loads(path.read_text())
        if key in cached:
            return float(cached[key]["bf16_speedup"])
    except (OSError, ValueError, KeyError, TypeError):
        cached = {}
    speedup = _speedup(probe[1]) if probe else _probe_bf16_speedup()
    try:
        from .io import write_json

        write_json(path, {**(cached if isinstance(cached, dict) else {}),
                          key: {"bf16_speedup": round(speedup, 3), "cpu": cpu_model(),
                                "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}})
    except OSError:
        log.debug("precision probe: cannot cache the result in %s", path)
    return speedup


def _probe_bf16_speedup(reps: int = 3) -> float:
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=32),
                        nn.Conv2d(32, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(64, 10)).to(memory_format=torch.channels_last)
    x = torch.randn(32, 3, 64, 64, generator=gen).to(memory_format=torch.channels_last)

    def step(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x).float().square().mean()
        loss.backward()
        return time.perf_counter() - t0

    return _speedup(step, reps)


def _speedup(step: Callable[[bool], float], reps: int = 3) -> float:
    """fp32 seconds / bf16 seconds of ``step``, each the fastest of ``reps`` after one warm-up."""
    times = {}
    for bf16 in (False, True):
        step(bf16)  # warm-up: kernel selection, allocation
        times[bf16] = min(step(bf16) for _ in range(reps))
    return times[False] / max(times[True], 1e-9)

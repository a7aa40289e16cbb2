"""The one device and precision policy: names checked once, bf16 only where known or measured faster."""

import json

import pytest
import torch

from clearset import device
from clearset.errors import ParameterError


@pytest.mark.parametrize("spec", ["tpu", "gpu", "cuda:x", "cpu:0", "mps:1", "", "cuda:-1"])
def test_unknown_devices_are_refused_naming_the_option(spec):
    with pytest.raises(ParameterError, match="device"):
        device.resolve_device(spec)


def test_known_devices(monkeypatch):
    assert device.resolve_device("auto").type in ("cpu", "cuda")
    assert device.resolve_device(None) == device.resolve_device("auto")
    assert device.resolve_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match="no CUDA GPU"):
        device.resolve_device("cuda:0")
    assert device.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ParameterError, match="cuda:0..cuda:1"):
        device.resolve_device("cuda:2")
    assert device.resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.fixture
def cpu_without_amx(monkeypatch, tmp_path):
    monkeypatch.setenv("CLEARSET_CACHE", str(tmp_path))
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512f", "avx512bw"})
    monkeypatch.setattr(device, "_bf16_kernels_present", lambda: True)
    calls = []

    def probe(speedup):
        def fake(reps=3):
            calls.append(1)
            return speedup
        monkeypatch.setattr(device, "_probe_bf16_speedup", fake)
    return probe, calls, tmp_path


def test_auto_takes_fp32_where_bf16_is_measured_slower(cpu_without_amx):
    probe, calls, cache = cpu_without_amx
    probe(0.9)  # emulated bf16 on AVX-512 without native support: slower than fp32
    choice = device.choose_precision("auto", "cpu")
    assert choice.precision == "fp32" and "0.90x" in choice.reason
    assert device.choose_precision("bf16", "cpu").precision == "bf16"  # given: obeyed


def test_auto_takes_bf16_where_measured_faster_and_caches_the_measurement(cpu_without_amx):
    probe, calls, cache = cpu_without_amx
    probe(2.5)
    assert device.choose_precision("auto", "cpu").precision == "bf16"
    assert device.choose_precision("auto", "cpu").precision == "bf16"
    assert len(calls) == 1  # measured once per machine
    saved = json.loads((cache / "precision.json").read_text())
    assert list(saved.values())[0]["bf16_speedup"] == 2.5


def test_a_network_probe_is_measured_for_that_network_and_cached_apart(cpu_without_amx):
    probe, calls, cache = cpu_without_amx
    probe(2.5)  # the generic small net: bf16 faster
    seconds = {False: 0.010, True: 0.012}  # this network (say, depthwise convolutions): bf16 slower
    timed = []

    def step(bf16):
        timed.append(bf16)
        return seconds[bf16]

    choice = device.choose_precision("auto", "cpu", ("depthwise-net", step))
    assert choice.precision == "fp32" and "0.83x" in choice.reason and "depthwise-net" in choice.reason
    assert device.choose_precision("auto", "cpu").precision == "bf16"  # the generic answer is unchanged
    n = len(timed)
    assert device.choose_precision("auto", "cpu", ("depthwise-net", step)).precision == "fp32" and len(timed) == n
    assert device.choose_precision("bf16", "cpu", ("depthwise-net", step)).precision == "bf16"  # given: obeyed


def test_amx_is_bf16_without_measuring(cpu_without_amx, monkeypatch):
    probe, calls, _ = cpu_without_amx
    monkeypatch.setattr(device, "cpu_flags", lambda: {"amx_bf16", "avx512f"})
    assert device.choose_precision("auto", "cpu").precision == "bf16" and not calls


def test_an_unwritable_cache_only_means_measuring_again(cpu_without_amx, monkeypatch, tmp_path):
    probe, calls, _ = cpu_without_amx
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("CLEARSET_CACHE", str(tmp_path / "afile" / "sub"))  # a file where a folder should be
    probe(1.5)
    assert device.choose_precision("auto", "cpu").precision == "bf16"


def test_the_real_probe_measures_a_positive_ratio():
    assert device._probe_bf16_speedup(reps=1) > 0


def test_the_choice_is_recorded_in_the_embedding_sidecar(tmp_path):
    import clearset
    from clearset.workspace import Workspace

    ws = clearset.ingest("builtin:fractals?classes=2&per_class=2&size=16", tmp_path / "ws")
    r = clearset.embed(ws, backbone="test_efficientnet", image_size=32)
    meta = Workspace(tmp_path / "ws").meta(r.features)
    assert meta["precision"] in ("fp32", "bf16") and meta["precision_reason"]

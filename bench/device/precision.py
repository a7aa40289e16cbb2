"""Does bf16 pay on this CPU? The device policy's short probe (a small conv net, forward and backward)
beside the networks clearset runs: EfficientNet-Lite0 inference at 128 px (embed) and a ResNet-8 training
step at 32 px (train), fp32 against bf16 autocast, same inputs, best of 5. ``precision=auto`` takes bf16
only where the probe measures >= 1.1x (clearset/device.py): this bench checks that the probe's verdict
agrees with the real workloads on the machine it runs on.

    .venv/bin/python bench/device/precision.py     # -> bench/results/precision.json
"""

import sys
import time
from pathlib import Path

import torch

from clearset import device
from clearset.models.backbones import create_backbone
from clearset.models.cifar import create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import write_result


def best(fn, reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ratio(fn) -> dict:
    fp32 = best(lambda: fn(False))
    bf16 = best(lambda: fn(True))
    return {"fp32_s": round(fp32, 4), "bf16_s": round(bf16, 4), "bf16_speedup": round(fp32 / bf16, 3)}


def main() -> None:
    torch.manual_seed(0)
    lite = create_backbone("efficientnet_lite0").model.eval().to(memory_format=torch.channels_last)
    x = torch.randn(64, 3, 128, 128).to(memory_format=torch.channels_last)

    def embed(bf16: bool):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            lite(x)

    net = create_model("resnet8", 10, image_size=32).to(memory_format=torch.channels_last)
    xb, yb = torch.randn(256, 3, 32, 32).to(memory_format=torch.channels_last), torch.randint(0, 10, (256,))

    def train_step(bf16: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(xb).float(), yb)
        loss.backward()

    probe = device._probe_bf16_speedup(reps=5)
    choice = device.choose_precision("auto", "cpu")
    result = {"probe_bf16_speedup": round(probe, 3), "auto_choice": choice.precision, "auto_reason": choice.reason,
              "threshold": device.BF16_MIN_SPEEDUP, "threads": torch.get_num_threads(),
              "embed_efficientnet_lite0_128_b64": ratio(embed), "train_resnet8_32_b256": ratio(train_step)}
    result["agrees"] = all((result[k]["bf16_speedup"] >= device.BF16_MIN_SPEEDUP) == (choice.precision == "bf16")
                           for k in ("embed_efficientnet_lite0_128_b64", "train_resnet8_32_b256"))
    print(write_result("precision", result))
    print(result)


if __name__ == "__main__":
    main()

"""On a CUDA machine: one explanation per backbone on the GPU and on the CPU, and how well their maps agree.

Each model is built twice with the same weights (seeded untrained weights, or
EfficientNet-Lite0's real ones), once on each device, and explains the same
photo for the same class. Prints a markdown table: the class each device
explained, the maps' correlation and largest difference, and the GPU's time per
explanation (CUDA-synchronised median of 10, after 3 warm-up calls).

Run (a CUDA machine): ``python benchmarks/check_gpu.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradcam import Explainer, load_backbone, load_image  # noqa: E402

MODELS = [
    ("vgg19", "random"),
    ("resnet50", "random"),
    ("densenet121", "random"),
    ("efficientnet_lite0", None),
    ("timm:convnext_atto", "random"),
    ("timm:deit_tiny_patch16_224", "random"),  # a vision transformer: tokens read as a patch grid
]


def gpu_ms(explainer: Explainer, image: np.ndarray, target: int) -> float:
    for _ in range(3):
        explainer.explain(image, target)
    times = []
    for _ in range(10):
        torch.cuda.synchronize()
        start = time.perf_counter()
        explainer.explain(image, target)
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here", file=sys.stderr)
        return 1
    image = load_image(ROOT / "demo" / "examples" / "cat-and-coffee.jpg")
    height, width = image.shape[:2]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; photo cat-and-coffee.jpg {width}x{height}\n")
    print("| model | class (CPU) | class (GPU) | correlation | max difference | GPU ms / explanation |")
    print("|---|---|---|---:|---:|---:|")
    worst = 1.0
    for spec, weights in MODELS:
        cpu = Explainer(load_backbone(spec, weights, device="cpu"))
        gpu = Explainer(load_backbone(spec, weights, device="cuda"))
        on_cpu = cpu.explain(image)
        on_gpu = gpu.explain(image, on_cpu.class_index)  # the same class on both
        if on_cpu.cam_empty and on_gpu.cam_empty:  # nothing speaks for the class on either device: both all zero
            correlation = 1.0
        else:
            correlation = float(np.corrcoef(on_cpu.cam.ravel(), on_gpu.cam.ravel())[0, 1])
        difference = float(np.abs(on_cpu.cam - on_gpu.cam).max())
        worst = min(worst, correlation)
        top = gpu.explain(image).class_name
        ms = gpu_ms(gpu, image, on_cpu.class_index)
        print(f"| {spec} | {on_cpu.class_name} | {top} | {correlation:.6f} | {difference:.2e} | {ms:.1f} |")
    print(f"\nlowest correlation: {worst:.6f} (target >= 0.999)")
    return 0 if worst >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())

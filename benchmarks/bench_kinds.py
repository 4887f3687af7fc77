"""The new kinds of models against their own forward pass: binary, one-channel, channels-last Swin, a Hugging Face ViT.

Each kind is loaded by :func:`gradcam.load_backbone` as a user would load it (a state dict of one logit, a
grayscale first convolution, ``timm:swin_tiny_patch4_window7_224``, an ``hf:`` folder), with seeded untrained
weights (timing only), beside today's kinds (ResNet-50, softmax, RGB; timm's ViT-B/16, tokens). On one example
photo preprocessed by :meth:`gradcam.Explainer.preprocess`, it times interleaved a plain forward pass in inference
mode (the limit) and :meth:`gradcam.GradCAM.compute` for the top class, through the backbone's layout and head.
Target (issue 21): one explanation of each new kind costs as much as today's kinds relative to their forward pass
(<= 1.10 x).

Run: ``bash benchmarks/run.sh kinds [--quick] [--wait-quiet 5 --clock cpu --threads 1]``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import reporting
from harness import Run

from gradcam import Explainer, load_backbone

PHOTO = "astronaut.png"
TARGET = 1.10


def _state_dict(folder: Path, name: str, build: Callable[[], torch.nn.Module]) -> Path:
    torch.manual_seed(0)
    path = folder / f"{name}.pth"
    torch.save(build().state_dict(), path)
    return path


def _binary_resnet50() -> torch.nn.Module:
    import torchvision

    return torchvision.models.resnet50(num_classes=1)


def _gray_resnet50() -> torch.nn.Module:
    import torchvision

    model = torchvision.models.resnet50(num_classes=2)
    model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return model


def _hf_vit(folder: Path) -> Path:
    import transformers

    torch.manual_seed(0)
    path = folder / "vit-base"
    transformers.ViTForImageClassification(transformers.ViTConfig(num_labels=10)).save_pretrained(path)
    transformers.ViTImageProcessor().save_pretrained(path)
    return path


def kinds(folder: Path, quick: bool) -> dict[str, Callable[[], Explainer]]:
    """The compared kinds: how each is loaded, as a user would."""
    labels = folder / "two.txt"
    labels.write_text("normal\npneumonia\n")
    found: dict[str, Callable[[], Explainer]] = {
        "today: ResNet-50, softmax, RGB": lambda: Explainer(load_backbone("resnet50", "random")),
        "binary: ResNet-50, one logit": lambda: Explainer(
            load_backbone("torchvision:resnet50", _state_dict(folder, "binary", _binary_resnet50), labels)
        ),
        "one channel: ResNet-50, grayscale": lambda: Explainer(
            load_backbone("torchvision:resnet50", _state_dict(folder, "gray", _gray_resnet50), labels)
        ),
        "NHWC: timm Swin-T": lambda: Explainer(load_backbone("timm:swin_tiny_patch4_window7_224", "random")),
    }
    if not quick:
        found["today: timm ViT-B/16, tokens"] = lambda: Explainer(load_backbone("timm:vit_base_patch16_224", "random"))
        found["hf: ViT-B/16 (transformers)"] = lambda: Explainer(load_backbone(f"hf:{_hf_vit(folder)}"))
    return found


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--kinds", help="only the kinds whose name contains one of these words, comma-separated")
    args = p.parse_args()
    harness.apply_threads(args)
    reps = min(args.reps, 5) if args.quick else args.reps
    report = reporting.Report("New kinds of models against their forward pass (bench_kinds.py)")
    rows: list[list[object]] = []
    contention: list[str] = []
    image = harness.example_photo(PHOTO)
    with tempfile.TemporaryDirectory(prefix="bench-kinds-") as tmp:
        for kind, load in kinds(Path(tmp), args.quick).items():
            if args.kinds and not any(word.strip() in kind for word in args.kinds.split(",")):
                continue
            explainer = load()
            backbone = explainer.backbone
            x = explainer.preprocess(image)
            model, cam = backbone.model, explainer.cam

            def forward(model: torch.nn.Module = model, x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return model(x)

            runs: dict[str, Run] = {"forward": forward, "top1": lambda cam=cam, x=x: cam.compute(x)}
            harness.log(f"{kind}: {reps} interleaved rounds after {args.warmup} warm-up ...")
            timings = harness.time_interleaved(runs, reps, args.warmup, wait_quiet_s=args.wait_quiet, clock=args.clock)
            med, best = harness.ratios(timings, "top1", "forward")
            contended = timings["top1"].contended or timings["forward"].contended
            contention.append(f"{kind}: {timings['forward'].rounds.summary()}")
            layout = backbone.layout.value if backbone.layout is not None else "inferred"
            rows.append([
                kind, f"{backbone.target_layer} ({layout}), head {backbone.head.value}, {backbone.channels} channel(s)",
                f"{x.shape[-2]}x{x.shape[-1]}", timings["forward"].ms(), timings["top1"].ms(), f"{med:.2f}",
                f"{best:.2f}", reporting.verdict(med, TARGET, contended=contended),
            ])
            del explainer, model, cam, runs, timings
    report.add(
        reporting.conditions(
            photo=f"demo/examples/{PHOTO} (512x512)",
            weights="seeded untrained (timing only)",
            layout="channels_last (as load_backbone gives it)",
            rounds=f"{reps} interleaved after {args.warmup} warm-up",
            clock=args.clock,
        ),
        reporting.table(
            ["kind", "layer, head, input", "input", "forward median ms", "top class median ms",
             "x forward (medians)", "x forward (best)", f"<= {TARGET:.2f} x"],
            rows,
        ),
        "Contention: " + "; ".join(contention) + ". Medians marked * include contended rounds.",
    )
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grad-CAM on a GPU: this project against a plain forward pass and the peers, in one run.

The same seeded, untrained VGG19, a 224 x 224 input, batch 1, float32, timed with
CUDA events (median of --reps after a warm-up, methods interleaved round by
round); peak memory is torch.cuda.max_memory_allocated during each method above
what the model and input already hold. The maps of every peer are compared with
this project's after the same ReLU, bilinear upsampling and min-max normalisation.

Run on a CUDA machine, with the peers importable (benchmarks/requirements.txt):
    python benchmarks/bench_gpu.py [--reps 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradcam import GradCAM, HookedVGG19  # noqa: E402


def normalise(cam: torch.Tensor) -> torch.Tensor:
    """(h, w) or (1, 1, h, w) map -> ReLU, bilinear to 224 x 224, min-max, on the CPU."""
    cam = F.relu(cam.detach().float().reshape(1, 1, *cam.shape[-2:]))
    cam = F.interpolate(cam, size=(224, 224), mode="bilinear", align_corners=False)[0, 0].cpu()
    span = cam.max() - cam.min()
    return (cam - cam.min()) / span if span > 0 else torch.zeros_like(cam)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1, help="images per call (default: %(default)s)")
    parser.add_argument("--dry-run-on-cpu", action="store_true", help="check the script on a CPU (times mean nothing)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run_on_cpu:
        sys.exit("No CUDA device: this benchmark is for a GPU machine (benchmarks/bench_gradcam.py measures the CPU).")
    device = torch.device("cpu" if args.dry_run_on_cpu else "cuda")
    torch.backends.cudnn.benchmark = True

    torch.manual_seed(0)
    plain = torchvision.models.vgg19().eval().to(device)  # the peers' model, parameters requiring grad as in their docs
    hooked = HookedVGG19(torchvision.models.vgg19()).eval()
    hooked.features_conv.load_state_dict(plain.features[:36].state_dict())
    hooked.classifier.load_state_dict(plain.classifier.state_dict())
    hooked = hooked.to(device).requires_grad_(False)
    hooked_cl = HookedVGG19(torchvision.models.vgg19()).eval()
    hooked_cl.load_state_dict(hooked.state_dict())
    hooked_cl = hooked_cl.to(device, memory_format=torch.channels_last).requires_grad_(False)

    x = torch.randn(args.batch, 3, 224, 224, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        top5 = plain(x[:1]).topk(5).indices[0].tolist()
    target = top5[0]  # the same class for every image of the batch, as the peers take one target list

    ours = GradCAM(hooked, "features_conv")
    ours_cl = GradCAM(hooked_cl, "features_conv")

    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import GradCAM as TorchcamGradCAM

    pgc = PGCGradCAM(model=plain, target_layers=[plain.features[35]])
    captum = LayerGradCam(plain, plain.features[35])

    def forward(model: torch.nn.Module, inp: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return model(inp)

        return run

    def torchcam_one() -> torch.Tensor:
        with TorchcamGradCAM(plain, target_layer="features.35") as extractor:
            out = plain(x)
            return extractor([target] * len(x), out)[0]

    def torchcam_five() -> list[torch.Tensor]:
        with TorchcamGradCAM(plain, target_layer="features.35") as extractor:
            out = plain(x)
            return [extractor([c] * len(x), out, retain_graph=i < 4)[0] for i, c in enumerate(top5)]

    methods: dict[str, Callable[[], object]] = {
        "forward (NCHW)": forward(plain, x),
        "forward (channels_last)": forward(hooked_cl, x_cl),
        "ours, 1 class (NCHW)": lambda: ours.compute(x, target),
        "ours, 1 class (channels_last)": lambda: ours_cl.compute(x_cl, target),
        "ours, top 5 (channels_last)": lambda: ours_cl.compute(x_cl, [top5] * len(x_cl)),
        "pytorch-grad-cam, 1 class": lambda: pgc(input_tensor=x, targets=[ClassifierOutputTarget(target)] * len(x)),
        "pytorch-grad-cam, top 5": lambda: [pgc(input_tensor=x, targets=[ClassifierOutputTarget(c)] * len(x)) for c in top5],
        "captum, 1 class": lambda: LayerAttribution.interpolate(captum.attribute(x, target=target), (224, 224)),
        "captum, top 5": lambda: [LayerAttribution.interpolate(captum.attribute(x, target=c), (224, 224)) for c in top5],
        "torchcam, 1 class": torchcam_one,
        "torchcam, top 5": torchcam_five,
    }

    # Agreement of the maps, after the same post-processing.
    reference = normalise(ours.compute(x, target).maps[0, 0])
    others = {
        "ours channels_last": ours_cl.compute(x_cl, target).maps[0, 0],
        "pytorch-grad-cam": torch.from_numpy(pgc(input_tensor=x, targets=[ClassifierOutputTarget(target)] * len(x))[0]),
        "captum": captum.attribute(x, target=target)[0, 0],
        "torchcam": torchcam_one()[0],
    }
    agreement = {}
    for name, cam in others.items():
        cam = normalise(cam)
        correlation = torch.corrcoef(torch.stack([reference.flatten(), cam.flatten()]))[0, 1].item()
        agreement[name] = (correlation, (reference - cam).abs().max().item())

    # Time, interleaved.
    if device.type != "cuda":
        for fn in methods.values():
            fn()
        print(agreement)
        return
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    for _ in range(args.reps):
        for name, fn in methods.items():
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            times[name].append(start.elapsed_time(stop))

    # Peak memory above what is already held.
    peaks = {}
    for name, fn in methods.items():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peaks[name] = (torch.cuda.max_memory_allocated() - base) / 2**20

    median = {name: statistics.median(v) for name, v in times.items()}
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"VGG19 untrained (seed 0), {args.batch} x 3 x 224 x 224 float32, {args.reps} reps, CUDA events")
    print("\n| method | median ms | min | max | x forward (same layout) | peak MiB above model |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in methods:
        layout = "forward (channels_last)" if "channels_last" in name else "forward (NCHW)"
        print(f"| {name} | {median[name]:.3f} | {min(times[name]):.3f} | {max(times[name]):.3f} | "
              f"{median[name] / median[layout]:.2f} | {peaks[name]:.0f} |")
    print("\n| map compared with ours (NCHW) | correlation | max abs difference |\n|---|---:|---:|")
    for name, (correlation, difference) in agreement.items():
        print(f"| {name} | {correlation:.6f} | {difference:.2e} |")
    best_one = min(median[n] for n in median if n.endswith("1 class") and not n.startswith("ours"))
    best_five = min(median[n] for n in median if n.endswith("top 5") and not n.startswith("ours"))
    ours_one = min(median["ours, 1 class (NCHW)"], median["ours, 1 class (channels_last)"])
    print(f"\nfastest peer / ours: 1 class {best_one / ours_one:.2f}x, top 5 {best_five / median['ours, top 5 (channels_last)']:.2f}x; "
          f"pytorch-grad-cam / ours, 1 class: {median['pytorch-grad-cam, 1 class'] / ours_one:.2f}x")


if __name__ == "__main__":
    main()

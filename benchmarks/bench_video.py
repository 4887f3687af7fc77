"""What explaining a video clip costs: the whole pipeline against the model's plain forward passes over its frames.

The clip is made here: the cat of ``demo/examples/chelsea.png`` walking across a
640 x 360 frame at 30 frames a second (H.264 in MP4, written by PyAV as a phone
would). ``gradcam.clips.explain_clip`` decodes it, explains every ``--every``-th
frame (a batch of ``--batch`` frames per engine call), draws each (map, box,
label), encodes ``overlay.mp4`` (H.264) and writes ``frames.csv``. The baseline is
what the model alone costs for the same frames: plain forward passes
(``torch.no_grad``) over the same network inputs, prepared beforehand, at the same
batch size; and, to split the clip's cost, the engine alone (``explain_frames`` on the
same frames, decoded beforehand). All run interleaved (``harness.time_interleaved``),
on ``--clock`` (the wall clock by default), with the same torch threads. Target
(issue 23): the clip <= 1.2 x the forward passes.

Memory: the peak RSS of explaining a clip of 4 x the length, each in a fresh
process (``peak_memory``): flat means the frames stream through.

Run: ``bash benchmarks/run.sh video [--quick] [--seconds 10] [--every 1] [--batch 4]``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import av
import cv2
import harness
import numpy as np
import peak_memory
import reporting
import torch

from gradcam import Explainer, load_backbone
from gradcam.clips import explain_clip
from gradcam.video import open_clip

TARGET = 1.2
SIZE = (640, 360)
FPS = 30


def walking_cat(path: Path, seconds: float, size: tuple[int, int] = SIZE, fps: int = FPS) -> Path:
    """The example cat crossing a grey frame, as an H.264 MP4."""
    width, height = size
    cat = cv2.resize(harness.example_photo("chelsea.png"), (240, 160), interpolation=cv2.INTER_AREA)
    frames = round(seconds * fps)
    out = av.open(str(path), "w", format="mp4")
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    background = np.full((height, width, 3), 196, np.uint8)
    for i in range(frames):
        x = round((i % (2 * fps)) * (width - 240) / (2 * fps))  # across in 2 s, again and again
        y = (height - 160) // 2 + round(20 * np.sin(i / 5))
        picture = background.copy()
        picture[y : y + 160, x : x + 240] = cat
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def sampled_frames(clip: Path, every: int) -> list[np.ndarray]:
    """The sampled frames, decoded as ``explain_clip`` decodes them (RGB, at most ``SIZE[0]`` wide)."""
    with open_clip(clip) as opened:
        return [f.image for f in opened.frames(SIZE[0]) if f.index % every == 0]


def network_batches(explainer: Explainer, frames: list[np.ndarray], batch: int) -> list[torch.Tensor]:
    """The sampled frames as the model sees them (resized, normalised), in batches: the baseline's input."""
    smalls = [explainer.network_image(frame) for frame in frames]
    return [explainer.to_tensor(smalls[i : i + batch]) for i in range(0, len(smalls), batch)]


def _factories(args):
    """The memory children: explaining the short clip, and one 4 x as long."""

    def make(seconds: float):
        def build():
            explainer = Explainer(load_backbone(args.model))
            folder = Path(tempfile.mkdtemp(prefix="gradcam-bench-video-"))
            clip = walking_cat(folder / "clip.mp4", seconds)
            return lambda: explain_clip(explainer, clip, folder / "out", every=args.every, batch=args.batch)

        return build

    return {"short": make(args.seconds / 4), "long": make(args.seconds)}


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=5)
    p.add_argument("--model", default="efficientnet_lite0", help="backbone spec (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the clip (default: %(default)s)")
    p.add_argument("--every", type=int, default=1, help="explain every N-th frame (default: %(default)s)")
    p.add_argument("--batch", type=int, default=4, help="frames per engine call (default: %(default)s)")
    args = p.parse_args()
    harness.apply_threads(args)
    if peak_memory.child_or(args, _factories(args)):
        return 0
    if args.quick:
        args.seconds, args.reps = min(args.seconds, 3.0), min(args.reps, 3)
    folder = Path(tempfile.mkdtemp(prefix="gradcam-bench-video-"))
    try:
        clip = walking_cat(folder / "clip.mp4", args.seconds)
        explainer = Explainer(load_backbone(args.model))
        model = explainer.backbone.model
        decoded = sampled_frames(clip, args.every)
        batches = network_batches(explainer, decoded, args.batch)
        singles = [x[i : i + 1] for x in batches for i in range(x.shape[0])]
        frames = sum(x.shape[0] for x in batches)

        def forward(inputs: list[torch.Tensor]) -> None:
            with torch.no_grad():
                for x in inputs:
                    model(x)

        def engine() -> None:
            for i in range(0, len(decoded), args.batch):
                explainer.explain_frames(decoded[i : i + args.batch])

        runs = {
            "clip: decode, explain, draw, encode, table": lambda: explain_clip(
                explainer, clip, folder / "out", every=args.every, batch=args.batch, max_side=SIZE[0]
            ),
            f"forward passes, batches of {args.batch}": lambda: forward(batches),
            "forward passes, one frame each": lambda: forward(singles),
            f"the engine alone: explain_frames over the decoded frames, batches of {args.batch}": engine,
        }
        harness.log(f"{frames} sampled frames of {round(args.seconds * FPS)}; {args.reps} rounds ...")
        timings = harness.time_interleaved(runs, args.reps, args.warmup, wait_quiet_s=args.wait_quiet, clock=args.clock)
        options = ["--model", args.model, "--seconds", str(args.seconds), "--every", str(args.every)]
        memory = peak_memory.measure_memory(Path(__file__), ["short", "long"], [*options, "--batch", str(args.batch)])
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    names = list(runs)
    clip_s = timings[names[0]]
    rows = [[name, timings[name].ms(), f"{timings[name].median * 1000 / frames:.1f}"] for name in names]
    ratio = clip_s.median / timings[names[1]].median
    per_frame = clip_s.median / timings[names[2]].median
    report = reporting.Report("Explaining a video clip (bench_video.py)")
    report.add(
        reporting.conditions(
            model=f"{explainer.backbone.title} ({'untrained' if explainer.backbone.untrained else 'pretrained'})",
            clip=f"{args.seconds:g} s at {FPS} frames a second, {SIZE[0]} x {SIZE[1]}, H.264; every {args.every}; "
            f"{frames} explained frames, {args.batch} per engine call",
            clock=args.clock,
        ),
        reporting.table(["what", "median ms", "per frame ms"], rows),
        f"The clip / the forward passes at the same batch: **{ratio:.2f} x** (target <= {TARGET:g} x: "
        f"{reporting.verdict(ratio, TARGET, contended=clip_s.contended)}); / one forward pass per frame: "
        f"{per_frame:.2f} x. The engine alone (decoded frames to explanations) / the same forward passes: "
        f"{timings[names[3]].median / timings[names[1]].median:.2f} x; the rest of the clip (decoding, drawing, "
        f"encoding, the table): {(clip_s.median - timings[names[3]].median) * 1000 / frames:.1f} ms a frame.",
    )
    if {"short", "long"} <= memory.keys():
        short, long = memory["short"], memory["long"]
        report.add(
            f"Peak memory of the calls, a clip of {args.seconds / 4:g} s / of {args.seconds:g} s: "
            f"+{short.growth_mib:.0f} MiB / +{long.growth_mib:.0f} MiB over building "
            f"(peaks {short.peak_mib:.0f} / {long.peak_mib:.0f} MiB): "
            f"**{long.peak_mib / short.peak_mib:.2f} x** for 4 x the frames."
        )
    report.add("Contention: " + clip_s.rounds.summary() + ".")
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

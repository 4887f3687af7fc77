"""Decode time and peak memory of the worst uploads we can build within the limits, per format.

Each file is made in code (nothing is downloaded), checked to be under the
upload limit (10 MB), then read with :func:`gradcam.load_image` as the app reads
an upload (``max_side=1280``). The clock starts when ``load_image`` is called
with the file's bytes already in memory and stops when it returns the RGB array
(decoded, converted and shrunk to 1280 pixels) or raises its refusal; calls are
interleaved round by round (``harness.time_interleaved``). Peak memory is the
growth of the peak resident memory (``VmHWM``) of a fresh process over two
reads, after the file was built (``peak_memory.py``).

Two kinds of file: the worst the limits admit (the largest pixel counts in the
costliest encodings, files at each structural limit), which bound what one
upload can cost; and hostile files the limits refuse (their refusal time,
beside what they cost before the limits, from the commit messages).

Run: ``bash benchmarks/run.sh decode [--quick] [--reps 3]``.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import peak_memory
import reporting

from gradcam.config import (
    MAX_GIF_BLOCKS,
    MAX_GIF_COMMENT_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
)
from gradcam.decode_limits import jpeg_layout
from gradcam.errors import GradCAMError
from gradcam.images import load_image
from tests.hostile import (
    _chunk,
    _heif,
    _png_header,
    gif_with,
    handmade_heic_grid,
    handmade_tiff,
    heic_tile,
    many_scan_jpeg,
    minimal_jpeg,
    rle_bmp,
)

UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_SIDE = 1280
#: 40 megapixels, 4:3.
SIZE = (7300, 5475)


@dataclass(frozen=True)
class Upload:
    """One benchmarked file.

    Attributes:
        format: the format, as the summary groups them.
        name: what the file is.
        build: makes its bytes.
        admitted: True for a file the limits admit (the worst they let through), False for a
            hostile one they refuse.
        before: for a refused file, what it cost before the limits (measured once, on this machine).
    """

    format: str
    name: str
    build: Callable[[], bytes]
    admitted: bool = True
    before: str = ""


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise(size: tuple[int, int], cell: int = 16) -> Image.Image:
    """Blocky noise: detail everywhere, yet it compresses to a few MB at 40 megapixels."""
    small = np.random.default_rng(0).integers(0, 256, (size[1] // cell + 1, size[0] // cell + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((small.shape[1] * cell, small.shape[0] * cell), Image.Resampling.NEAREST).crop(
        (0, 0, *size)
    )


def _at_scan_limit(size: tuple[int, int], mode: str = "RGB") -> bytes:
    base = many_scan_jpeg(size, 0, mode)
    return many_scan_jpeg(size, MAX_JPEG_SCANS - base.count(b"\xff\xda"), mode)


def _cmyk_at_scan_limit(size: tuple[int, int]) -> bytes:
    """A progressive CMYK JPEG at the scan limit: four components, every coefficient held."""
    data = _save(Image.new("CMYK", size, (10, 80, 160, 20)), "JPEG", progressive=True, quality=75)
    last = data.rfind(b"\xff\xda")
    extra = MAX_JPEG_SCANS - data.count(b"\xff\xda")
    return data[:-2] + data[last:-2] * extra + data[-2:]


def _many_frames(size: tuple[int, int], frames: int) -> bytes:
    """A GIF whose second frame is repeated: Pillow's writer would merge identical frames."""
    red, blue = Image.new("RGB", size, (255, 0, 0)), Image.new("RGB", size, (0, 0, 255))
    two = _save(red, "GIF", save_all=True, append_images=[blue])
    second = two.rfind(b"\x21\xf9")  # the second frame's control extension, up to the trailer
    return two[:-1] + two[second:-1] * (frames - 1) + b";"


def _gif_small_frame_on_big_screen(screen: tuple[int, int]) -> bytes:
    data = bytearray(gif_with(b""))
    data[6:10] = struct.pack("<HH", *screen)  # the logical screen; the frame stays 16 x 16
    return bytes(data)


def _gif_comment(size: int) -> bytes:
    whole, rest = divmod(size, 255)
    return gif_with(b"\x21\xfe" + (b"\xff" + b"c" * 255) * whole + bytes([rest]) + b"c" * rest + b"\x00")


def _jpeg_segments(count: int) -> bytes:
    base = _save(Image.new("RGB", (64, 48), (20, 200, 40)), "JPEG")
    return base[:2] + b"\xff\xfe\x00\x02" * (count - jpeg_layout(base).segments) + base[2:]


def _png_rgba16(size: tuple[int, int]) -> bytes:
    """A 16-bit RGBA PNG, written row by row (Pillow cannot write one): 8 bytes a pixel decoded."""
    width, height = size
    row = b"\x00" + (b"\x12\x34\x56\x78\x9a\xbc\x80\x00" * width)
    packer = zlib.compressobj(9)
    stream = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return _png_header(width, height, 16, 6) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def _png_chunks(count: int) -> bytes:
    idat = _chunk(b"IDAT", zlib.compress((b"\x00" + bytes(64)) * 64))
    return _png_header(64, 64, 8, 0) + _chunk(b"ruSt", b"") * (count - 3) + idat + _chunk(b"IEND", b"")


def _webp_canvas(canvas: tuple[int, int]) -> bytes:
    """An animated WebP of 16 x 16 frames whose canvas (which the decoder fills) is ``canvas``."""
    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    data = bytearray(_save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    data[24:30] = (canvas[0] - 1).to_bytes(3, "little") + (canvas[1] - 1).to_bytes(3, "little")
    return bytes(data)


def _icon_with_png(png: bytes) -> bytes:
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22) + png


def _icon_entries(count: int) -> bytes:
    png = _save(Image.new("RGB", (16, 16), (1, 2, 3)), "PNG")
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16 * count)
    return struct.pack("<HHH", 0, 1, count) + entry * count + png


def _heic_grid(tile_side: int, grid: tuple[int, int], output: tuple[int, int]) -> bytes:
    return handmade_heic_grid(heic_tile((tile_side, tile_side)), (tile_side, tile_side), grid, output)


def _bmp_rle_one_pixel_rows(width: int, height: int) -> bytes:
    """Each row one pixel, then an end of line: Pillow pads the rest of the row one byte at a time."""
    return rle_bmp(width, height, b"\x01\x05\x00\x00" * height + b"\x00\x01")


def _tiff_tiles_within() -> bytes:
    """6000 x 6400 (38.4 MP) in 24 x 25 tiles of 256 x 256: 39.3 MP of tiles, under the limit."""
    return handmade_tiff(6000, 6400, [zlib.compress(bytes(256 * 256))] * 600, tile=(256, 256), compression=8)


def _tiff_huge_tiles() -> bytes:
    """The reported file's layout: a 196608 x 8 image in 12 tiles of 16384 x 16384 sharing one real stream."""
    block = zlib.compress(bytes(16384 * 16384))
    return handmade_tiff(196_608, 8, [block] * 12, tile=(16384, 16384), compression=8)


def _tiff_float(size: tuple[int, int]) -> bytes:
    return _save(Image.fromarray(np.full(size[::-1], 300.5, np.float32)), "TIFF", compression="tiff_adobe_deflate")


def uploads() -> list[Upload]:
    """Every benchmarked file, by format."""
    flat = Image.new("RGB", SIZE, (90, 140, 200))
    huge_jpeg = Image.new("RGB", (11_500, 8_600), (90, 140, 200))
    gray16 = Image.fromarray(np.full(SIZE[::-1], 300, np.uint16))
    webp_size = (16_383, 2_440)
    return [
        Upload("JPEG", "40 MP progressive at the scan limit", lambda: _at_scan_limit(SIZE)),
        Upload("JPEG", "40 MP progressive CMYK at the scan limit", lambda: _cmyk_at_scan_limit(SIZE)),
        Upload("JPEG", "40 MP progressive, detailed",
               lambda: _save(_noise(SIZE), "JPEG", progressive=True, quality=60)),
        Upload("JPEG", "99 MP sequential (decoded at 1/8)", lambda: _save(huge_jpeg, "JPEG")),
        Upload("JPEG", "40 MP lossless RGB, 75 bytes (decoded whole)", lambda: minimal_jpeg(*SIZE, 0xC3, 3)),
        Upload("JPEG", f"{MAX_JPEG_SEGMENTS} segments (the limit)", lambda: _jpeg_segments(MAX_JPEG_SEGMENTS)),
        Upload("JPEG", "40 MP progressive, scan limit + 1", lambda: many_scan_jpeg(SIZE, MAX_JPEG_SCANS), False,
               "refused before too (2,006 scans: 21 s)"),
        Upload("JPEG", "lossless 4000 x 16, 65 bytes", lambda: minimal_jpeg(4000, 16), True,
               "killed the process (SIGSEGV / SIGABRT)"),
        Upload("JPEG", "2.4 million empty segments", lambda: _jpeg_segments(2_400_000), False, "3.3 s"),
        Upload("PNG", "40 MP RGBA 16-bit, flat", lambda: _png_rgba16(SIZE)),
        Upload("PNG", "40 MP RGBA 8-bit, flat", lambda: _save(Image.new("RGBA", SIZE, (10, 20, 30, 128)), "PNG")),
        Upload("PNG", "40 MP 16-bit gray, flat", lambda: _save(gray16, "PNG")),
        Upload("PNG", "40 MP 1-bit, interlaced", lambda: _save(flat.convert("1"), "PNG", interlace=True)),
        Upload("PNG", f"{MAX_PNG_CHUNKS:,} chunks (the limit)", lambda: _png_chunks(MAX_PNG_CHUNKS)),
        Upload("PNG", "800,000 empty chunks", lambda: _png_chunks(800_000), False, "2.7 s"),
        Upload("GIF", "40 MP, first of 2 frames",
               lambda: _save(flat.convert("P"), "GIF", save_all=True, append_images=[flat.convert("P")])),
        Upload("GIF", "16 x 16 frame on a 40 MP screen, 62 bytes", lambda: _gif_small_frame_on_big_screen(SIZE)),
        Upload("GIF", "8 x 8, 100,000 frames", lambda: _many_frames((8, 8), 100_000)),
        Upload("GIF", f"{MAX_GIF_BLOCKS} empty comments (the limit)",
               lambda: gif_with(b"\x21\xfe\x00" * MAX_GIF_BLOCKS)),
        Upload("GIF", f"a {MAX_GIF_COMMENT_BYTES // 1024} kB comment (the limit)",
               lambda: _gif_comment(MAX_GIF_COMMENT_BYTES)),
        Upload("GIF", "3.3 million empty comments", lambda: gif_with(b"\x21\xfe\x00" * 3_300_000), False,
               "over 120 s"),
        Upload("BMP", "10 MP 8-bit gray, uncompressed", lambda: _save(Image.new("L", (3650, 2737), 7), "BMP")),
        Upload("BMP", "4 MP RLE8, one pixel a row (the RLE limit)", lambda: _bmp_rle_one_pixel_rows(4000, 1000)),
        Upload("BMP", "4 MP RLE8, runs of 255 (the RLE limit)", lambda: rle_bmp(2000, 2000)),
        Upload("BMP", "40 MP RLE8, one pixel a row, 5 kB", lambda: _bmp_rle_one_pixel_rows(40_000, 1000), False,
               "5.9 s"),
        Upload("TIFF", "40 MP, one row per strip (deflate)",
               lambda: _save(flat, "TIFF", tiffinfo={278: 1}, compression="tiff_adobe_deflate")),
        Upload("TIFF", "40 MP, JPEG strips", lambda: _save(flat, "TIFF", compression="jpeg")),
        Upload("TIFF", "40 MP float (32-bit, deflate)", lambda: _tiff_float(SIZE)),
        Upload("TIFF", "38.4 MP in 600 tiles of 256 x 256 (39.3 MP of tiles)", _tiff_tiles_within),
        Upload("TIFF", "196608 x 8 in 12 tiles of 16384 x 16384", _tiff_huge_tiles, False,
               "2.9 s here (gray); the reported RGB file: 21.7 s, 770 MB"),
        Upload("TIFF", "64 x 8 raw in 1.2 million strips",
               lambda: handmade_tiff(64, 8, [bytes(64)] * 1_200_000, rows_per_strip=1), False,
               "about 4.5 s (2 million: 7.6 s)"),
        Upload("WebP", "16383 x 2440 lossless",
               lambda: _save(Image.new("RGB", webp_size, (90, 140, 200)), "WEBP", lossless=True)),
        Upload("WebP", "16383 x 2440 lossy, detailed", lambda: _save(_noise(webp_size), "WEBP", quality=80)),
        Upload("WebP", "animated, 16 x 16 frames on a 40 MP canvas", lambda: _webp_canvas(SIZE)),
        Upload("ICO", "a 40 MP 1-bit PNG inside",
               lambda: _icon_with_png(_save(Image.new("1", (8000, 5000), 0), "PNG"))),
        Upload("ICO", "65,535 directory entries", lambda: _icon_entries(65_535)),
        Upload("HEIC", "40 MP, flat", lambda: _save(flat, "HEIF")),
        Upload("HEIC", "grid of 12 x 12 tiles of 512 x 512 (37.7 MP of tiles)",
               lambda: _heic_grid(512, (12, 12), (6000, 6000))),
        Upload("HEIC", "64 x 64 grid of 144 tiles of 512 x 512 (37.7 MP of tiles)",
               lambda: _heic_grid(512, (12, 12), (64, 64))),
        Upload("HEIC", "64 x 64 grid of 992 tiles of 4096 x 4096", lambda: _heic_grid(4096, (31, 32), (64, 64)),
               False, "over 100 s"),
    ]


def read(data: bytes) -> str:
    """What the app does with an upload: its size once read, or the refusal's class."""
    try:
        return "x".join(map(str, load_image(data, max_side=MAX_SIDE).shape[1::-1]))
    except GradCAMError as exc:
        return f"refused: {type(exc).__name__}"


def _factory(upload: Upload) -> Callable[[], harness.Run]:
    def make() -> harness.Run:
        data = upload.build()
        return lambda: read(data)

    return make


def main() -> int:
    """Builds each file, times its reading, measures its memory and prints the tables."""
    p = harness.parser(__doc__.splitlines()[0], reps=3)
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory (a fresh process per file)")
    p.add_argument("--only", help="only the files whose format or name contains this text")
    args = p.parse_args()
    harness.apply_threads(args)
    _heif()
    chosen = [u for u in uploads() if not args.only or args.only.lower() in f"{u.format} {u.name}".lower()]
    keys = {f"{u.format}: {u.name}": u for u in chosen}
    if peak_memory.child_or(args, {key: _factory(u) for key, u in keys.items()}):
        return 0
    reps = 1 if args.quick else args.reps
    warmup = 0 if args.quick else args.warmup
    built: dict[str, bytes] = {}
    for key, upload in keys.items():
        harness.log(f"building {key} ...")
        data = upload.build()
        if len(data) > UPLOAD_LIMIT:
            harness.log(f"  {len(data):,} bytes: over the upload limit, left out")
            continue
        built[key] = data
    outcomes = {key: read(data) for key, data in built.items()}
    harness.log(f"decoding: {reps} interleaved rounds of {len(built)} files ...")
    timings = harness.time_interleaved(
        {key: (lambda data=data: read(data)) for key, data in built.items()}, reps, warmup,
        wait_quiet_s=args.wait_quiet, clock=args.clock,
    )
    memory = {} if args.no_memory else peak_memory.measure_memory(Path(__file__), list(built), timeout=600)

    def mib(key: str) -> str:
        return f"{memory[key].growth_mib:.0f}" if key in memory else "-"

    rows = []
    for key, data in built.items():
        upload = keys[key]
        rows.append([
            upload.format, upload.name, f"{len(data):,}", outcomes[key], f"{timings[key].median:.3f}",
            f"{timings[key].best:.3f}", mib(key), upload.before or ("(admitted)" if upload.admitted else ""),
        ])
    summary = []
    for fmt in dict.fromkeys(u.format for u in keys.values()):
        admitted = [k for k in built if keys[k].format == fmt and keys[k].admitted]
        if not admitted:
            continue
        slowest = max(admitted, key=lambda k: timings[k].median)
        fattest = max(admitted, key=lambda k: memory[k].growth_mib if k in memory else -1.0)
        refused = [k for k in built if keys[k].format == fmt and not keys[k].admitted]
        summary.append([
            fmt, f"{timings[slowest].median:.2f}", keys[slowest].name, mib(fattest), keys[fattest].name,
            f"{max(timings[k].median for k in refused) * 1000:.1f}" if refused else "-",
        ])
    report = reporting.Report("Decoding the worst uploads the limits admit (bench_decode.py)")
    report.add(
        reporting.conditions(
            limits=f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP, {MAX_JPEG_SCANS} JPEG scans, {UPLOAD_LIMIT >> 20} MB per file",
            read_as="load_image(data, max_side=1280), the bytes in memory",
            decoders=_decoder_versions(),
            rounds=f"{reps} interleaved after {warmup} warm-up", clock=args.clock,
        ),
        "Per format: the slowest and the most memory-hungry file the limits admit, and the slowest refusal.",
        reporting.table(
            ["format", "worst decode s", "slowest admitted file", "worst peak MiB", "most memory",
             "slowest refusal ms"],
            summary,
        ),
        "Every file (median and best of the timed rounds; memory: growth of the peak resident memory of a fresh "
        "process over two reads; 'before': what a refused file cost before its limit):",
        reporting.table(["format", "file", "bytes", "result", "median s", "best s", "peak MiB", "before"], rows),
        "Contention: " + next(iter(timings.values())).rounds.summary() + "." if timings else "",
    )
    report.emit(args.markdown)
    return 0


def _decoder_versions() -> str:
    from PIL import __version__ as pillow
    from PIL import features

    parts = [f"Pillow {pillow}", f"libjpeg-turbo {features.version('libjpeg_turbo')}",
             f"libtiff {features.version('libtiff')}", f"libwebp {features.version('webp')}",
             f"zlib {features.version('zlib')}"]
    try:
        import pillow_heif

        parts.append(f"pillow_heif {pillow_heif.__version__} (libheif {pillow_heif.libheif_version()}, "
                     f"{pillow_heif.options.DECODE_THREADS} decoding threads)")
    except ImportError:
        parts.append("no pillow_heif")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())

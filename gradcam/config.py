"""Defaults shared by the engine, the CLI and the web app, in one place."""

from typing import Final

#: The package's version, recorded in every manifest.
VERSION: Final = "0.1.0"

#: Shorter image side fed to the network; the aspect ratio is kept, nothing is cropped.
INPUT_SHORT_SIDE: Final = 224
#: Longer side cap, so that an extreme aspect ratio cannot blow up the compute.
INPUT_MAX_LONG_SIDE: Final = 896
#: Smallest side fed to the network (five 2 x 2 poolings need at least 32 pixels).
INPUT_MIN_SIDE: Final = 32

#: Boxes: threshold the map at this fraction of its maximum (Selvaraju et al., Sec. 4.1).
BOX_THRESHOLD: Final = 0.15
#: Overlay opacity of the heatmap.
OVERLAY_ALPHA: Final = 0.5
#: Matplotlib colormap of the heatmap.
COLORMAP: Final = "jet"
#: How many predictions are reported with their probabilities.
TOP_K: Final = 5

#: Largest image accepted, in pixels (width x height): 40 megapixels.
MAX_IMAGE_PIXELS: Final = 40_000_000
#: Largest image file read from a path (the CLI, ``evaluate``, a path given to ``load_image``), in
#: bytes, checked before reading: the largest file an image within ``MAX_IMAGE_PIXELS`` is stored in
#: (uncompressed 16-bit RGBA or CMYK, 8 bytes a pixel: 320 MB) and 50 MB for its metadata (EXIF,
#: ICC profile, XMP, thumbnails, a TIFF's later pages). Uploads to the app are capped far lower.
MAX_IMAGE_FILE_BYTES: Final = MAX_IMAGE_PIXELS * 8 + 50_000_000
#: Smallest image side accepted, in pixels.
MIN_IMAGE_SIDE: Final = 8
#: Largest JPEG accepted when the caller asks for a smaller image (``max_side``): it is decoded
#: at 1/2, 1/4 or 1/8 scale, so that no more than ``MAX_IMAGE_PIXELS`` are ever held.
MAX_JPEG_PIXELS: Final = 100_000_000
#: Most scans (passes) a JPEG may hold. Each costs a pass over the whole image; cameras write
#: 1-3, progressive encoders about 10 (libjpeg) to 20 (mozjpeg).
MAX_JPEG_SCANS: Final = 40
#: Most segments (markers and their data) a JPEG may hold: cameras write about 15, an ICC profile
#: split over APP2 segments adds at most 255; Pillow's reader spends about 1.4 us on each, so the 2.4
#: million empty comments a 10 MB file can hold took 3.3 s before a pixel was decoded.
MAX_JPEG_SEGMENTS: Final = 4096
#: Most chunks a PNG may hold up to its image data's end: encoders write tens (IDAT chunks of 8 to
#: 64 kB); Pillow's reader spends about 3.5 us on each (800,000 empty ones in a 10 MB file: 2.7 s).
MAX_PNG_CHUNKS: Final = 50_000
#: Most pieces a GIF may hold before its first image: extensions, their sub-blocks, stray bytes; each
#: is a step of Pillow's reader in Python (3.3 million empty comments: over two minutes).
MAX_GIF_BLOCKS: Final = 4096
#: Most bytes of comments a GIF may hold before its first image: Pillow joins them one sub-block at a
#: time, which takes time growing with the square of their length (a 9.7 MB comment: over a minute).
MAX_GIF_COMMENT_BYTES: Final = 65_536
#: Largest run-length encoded BMP (or icon picture), in pixels: Pillow decodes them in Python, about 7
#: million pixels a second at worst (a 5 kB file of 40 megapixels took 5.9 s); 4 megapixels is 0.6 s.
MAX_RLE_BMP_PIXELS: Final = 4_000_000
#: The file formats decoded, by Pillow's format name: all decoded in process, none by an
#: external program. "HEIF" (HEIC photos) only where the ``pillow_heif`` package is installed.
IMAGE_FORMATS: Final = ("JPEG", "MPO", "PNG", "GIF", "BMP", "TIFF", "WEBP", "ICO", "HEIF")

#: Environment variable naming a local state dict, or "random" for untrained weights.
WEIGHTS_ENV: Final = "GRADCAM_WEIGHTS"
#: The value of --weights / GRADCAM_WEIGHTS that builds an untrained model.
RANDOM_WEIGHTS: Final = "random"

#: Video clips (:mod:`gradcam.video`): the codecs decoded, all in process by FFmpeg's libraries through PyAV:
#: those of phones, cameras and the web (and MPEG-4 part 2, which OpenCV writes).
VIDEO_CODECS: Final = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4")
#: Longest clip explained, in seconds.
MAX_VIDEO_SECONDS: Final = 30
#: Most frames in a clip: 30 seconds at 60 frames a second.
MAX_VIDEO_FRAMES: Final = 1800
#: Largest frame, in pixels: a 4K (UHD) clip.
MAX_VIDEO_PIXELS: Final = 3840 * 2160
#: Longer side of the frames explained and of the explained video, in pixels (the network sees 224 anyway).
VIDEO_SIDE: Final = 1280

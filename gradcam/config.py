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
#: Smallest image side accepted, in pixels.
MIN_IMAGE_SIDE: Final = 8
#: Largest JPEG accepted when the caller asks for a smaller image (``max_side``): it is decoded
#: at 1/2, 1/4 or 1/8 scale, so that no more than ``MAX_IMAGE_PIXELS`` are ever held.
MAX_JPEG_PIXELS: Final = 100_000_000
#: Most scans (passes) a JPEG may hold. Each costs a pass over the whole image; cameras write
#: 1-3, progressive encoders about 10 (libjpeg) to 20 (mozjpeg).
MAX_JPEG_SCANS: Final = 40
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

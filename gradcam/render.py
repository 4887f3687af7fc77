"""Drawing class activation maps: heatmap, overlay and labelled boxes.

Pure functions on numpy arrays: RGB uint8 images ``(height, width, 3)`` and
float maps ``(height, width)`` in [0, 1] in, a new array out; inputs are never
modified. Colours are RGB throughout; OpenCV only draws shapes here, so no
BGR conversion is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import matplotlib
import numpy as np

from gradcam.boxes import Box
from gradcam.config import COLORMAP, OVERLAY_ALPHA

BOX_COLOUR = (255, 255, 255)
BOX_OUTLINE = (0, 0, 0)
LABEL_TEXT = (0, 0, 0)


@lru_cache(maxsize=16)
def _lookup_table(colormap: str) -> np.ndarray:
    """A matplotlib colormap sampled at 256 levels, ``(256, 3)`` RGB uint8."""
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError as exc:
        raise ValueError(f"Unknown colormap {colormap!r}; try 'jet', 'viridis' or 'cividis'.") from exc
    table = np.ascontiguousarray(cmap(np.linspace(0.0, 1.0, 256), bytes=True)[:, :3])
    table.setflags(write=False)
    return table


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected an RGB uint8 image (height, width, 3), got {image.dtype} {image.shape}.")


def _check_map(cam: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    if cam.ndim != 2:
        raise ValueError(f"Expected a 2-D map (height, width), got shape {cam.shape}.")
    if shape is not None and cam.shape != shape:
        raise ValueError(f"The map is {cam.shape} but the image is {shape}; resize the map first.")


def heatmap(cam: np.ndarray, colormap: str = COLORMAP) -> np.ndarray:
    """Colours a map in [0, 1] with a matplotlib colormap.

    Args:
        cam: float map ``(height, width)``; values are clipped to [0, 1], NaN reads as 0.
        colormap: a matplotlib colormap name ("jet", "viridis", "cividis", ...).

    Returns:
        RGB uint8 image ``(height, width, 3)``.
    """
    _check_map(cam)
    values = np.asarray(cam, dtype=np.float32)
    if not np.isfinite(values).all():
        values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
    # Rounded, saturated to 0..255 in one OpenCV pass; then a per-channel table lookup.
    levels = cv2.convertScaleAbs(np.maximum(values, 0.0), alpha=255.0)  # (H, W) uint8
    table = _lookup_table(colormap).reshape(256, 1, 3)
    return cv2.LUT(cv2.merge((levels, levels, levels)), table)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> np.ndarray:
    """Blends the coloured map over the image: ``(1 - alpha) * image + alpha * heatmap``.

    Args:
        image: RGB uint8 ``(height, width, 3)``.
        cam: float map ``(height, width)`` in [0, 1], the same size as the image.
        alpha: opacity of the heatmap, in [0, 1].
        colormap: a matplotlib colormap name.

    Returns:
        RGB uint8 image ``(height, width, 3)``.
    """
    _check_map(cam, image.shape[:2])
    return blend(image, heatmap(cam, colormap), alpha)


def blend(image: np.ndarray, colours: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colours``, for a heatmap already coloured by :func:`heatmap`.

    Args:
        image: RGB uint8 ``(height, width, 3)``.
        colours: RGB uint8 ``(height, width, 3)``, the same size.
        alpha: opacity of the colours, in [0, 1].

    Returns:
        RGB uint8 image ``(height, width, 3)``.
    """
    _check_image(image)
    _check_image(colours)
    if colours.shape != image.shape:
        raise ValueError(f"The heatmap is {colours.shape[:2]} but the image is {image.shape[:2]}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    return cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)


def draw_boxes(image: np.ndarray, boxes: Sequence[Box], label: str | None = None) -> np.ndarray:
    """Draws boxes, the first one labelled, on a copy of the image.

    Args:
        image: RGB uint8 ``(height, width, 3)``.
        boxes: ``(x0, y0, x1, y1)`` pixel boxes, corners inclusive.
        label: text written on the first box, for example ``"tabby 87%"``.

    Returns:
        RGB uint8 image ``(height, width, 3)``.
    """
    _check_image(image)
    canvas = image.copy()
    height, width = image.shape[:2]
    thickness = max(2, round(max(height, width) / 400))
    scale = max(0.4, max(height, width) / 600)  # text about 4% of the longer side
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        cv2.rectangle(canvas, (x0, y0), (x1, y1), BOX_OUTLINE, thickness + 2, cv2.LINE_AA)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), BOX_COLOUR, thickness, cv2.LINE_AA)
        if index == 0 and label:
            _draw_label(canvas, label, (x0, y0), scale, max(1, thickness // 2))
    return canvas


def _draw_label(canvas: np.ndarray, text: str, corner: tuple[int, int], scale: float, weight: int) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = text.encode("ascii", "replace").decode("ascii")  # Hershey fonts draw ASCII only
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, weight)
    if text_w > 0.9 * canvas.shape[1]:  # shrink to fit a narrow image
        scale *= 0.9 * canvas.shape[1] / text_w
        (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, weight)
    pad = max(2, text_h // 4)
    height, width = canvas.shape[:2]
    x = min(max(corner[0], 0), max(width - text_w - 2 * pad, 0))
    # Above the box where there is room, inside it otherwise.
    top = corner[1] - text_h - baseline - 2 * pad
    y = top if top >= 0 else min(corner[1], max(height - text_h - baseline - 2 * pad, 0))
    cv2.rectangle(canvas, (x, y), (x + text_w + 2 * pad, y + text_h + baseline + 2 * pad), BOX_COLOUR, cv2.FILLED)
    cv2.putText(canvas, text, (x + pad, y + pad + text_h), font, scale, LABEL_TEXT, weight, cv2.LINE_AA)

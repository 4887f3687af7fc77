"""One request, checked once: the photo, the model, the class, the box threshold, the look, the layer and the method.

:func:`parse` turns what the page, the API or an assistant sent into a
:class:`Request`, or says in one sentence what is wrong with it. Every rule of
every setting lives here (their ranges in :mod:`demo.settings`); nothing
downstream checks a setting again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from demo import checks
from demo.errors import UserError
from demo.settings import COLORMAPS, EVERY, MAX_NAME, MAX_UPLOAD_BYTES, METHODS, OPACITY, THRESHOLD
from gradcam.errors import GradCAMError, InvalidImageError, InvalidVideoError
from gradcam.methods import DEFAULT, UnknownMethodError, get_method

#: What the class picker says when the model's own best guess is to be explained.
TOP_PREDICTION = "Top prediction"

NO_PHOTO = "Please add an image first: drag one in, paste it, or pick an example below."


@dataclass(frozen=True)
class Photo:
    """An upload: its bytes, their SHA-256 (what results are remembered by) and its file name."""

    data: bytes
    sha256: str
    name: str = "image"

    @classmethod
    def of(cls, data: bytes, name: str = "image") -> Photo:
        return cls(data, hashlib.sha256(data).hexdigest(), name)


@dataclass(frozen=True)
class Look:
    """How a result is drawn: the heatmap's opacity and its colour map. Changing it never runs the model."""

    alpha: float = OPACITY.default
    colormap: str = COLORMAPS[0]


@dataclass(frozen=True)
class Request:
    """A checked request.

    Attributes:
        photo: the upload.
        model: the model's title ("VGG19"), one the page offers.
        target: the class as typed (spaces tidied), or None for the model's top prediction.
        threshold: the box threshold, a fraction of the map's maximum.
        look: how the pictures are drawn.
        visitor: who asked (a network address): their share of the app's disk.
        layer: the layer the map is read from, one of the model's; None: its automatic one.
        method: the CAM method's name ("layercam", see :mod:`gradcam.methods`).
    """

    photo: Photo
    model: str
    target: str | None = None
    threshold: float = THRESHOLD.default
    look: Look = Look()
    visitor: str = ""
    layer: str | None = None
    method: str = DEFAULT

    def top_prediction(self) -> Request:
        """The same request for the model's own best guess."""
        return replace(self, target=None)


def parse(
    image: Any,
    target: object = TOP_PREDICTION,
    model: object = None,
    threshold: object = THRESHOLD.default,
    alpha: object = OPACITY.default,
    colormap: object = COLORMAPS[0],
    layer: object = None,
    method: object = None,
    *,
    models: Sequence[str],
    default_model: str | None = None,
    visitor: str = "",
    layers: Callable[[str], Sequence[str] | None] | None = None,
    unknown_layer: str = "raise",
) -> Request:
    """Checks what was sent and builds the request (the page's, the API's and the assistants' one rule).

    Args:
        image: the upload: a path, file bytes, a Gradio file payload as sent (``path``, or a ``data:``
            URL in ``url``; a mapping or an object), or None.
        target: a class name, "Top prediction", or None (the same).
        model: a model title from ``models``; None or "" for the default.
        threshold: the box threshold (see :data:`demo.settings.THRESHOLD`).
        alpha: the heatmap's opacity (see :data:`demo.settings.OPACITY`).
        colormap: one of :data:`demo.settings.COLORMAPS`.
        layer: one of the model's layers (``layers(model)``); None or "" for its automatic one.
        method: a method's title ("LayerCAM") or name ("layercam"); None or "" for Grad-CAM.
        models: the titles the page offers.
        default_model: the model when none is named (the first of ``models`` if not given).
        visitor: who asks (see :attr:`Request.visitor`).
        layers: the layers a model offers, its automatic one first (None while it loads: the
            layer is then checked when the model is asked for).
        unknown_layer: "raise": a layer the model does not offer is a mistake (the API);
            "automatic": it becomes the automatic layer (the page, whose layer list follows
            the model and may still be the previous model's).

    Raises:
        InvalidInput: a setting that is not one, in words for the person.
        UserError: no photo.
        InvalidImageError: an upload that cannot be read.
    """
    typed = checks.text(target, "Class to explain", MAX_NAME, default=TOP_PREDICTION)
    typed = " ".join(typed.split())
    title = checks.choice(model, "Model", models, default=default_model or models[0])
    return Request(
        photo=read_photo(image),
        model=title,
        target=None if typed in ("", TOP_PREDICTION) else typed,
        threshold=checks.number(threshold, "Box threshold", THRESHOLD),
        look=parse_look(alpha, colormap),
        visitor=visitor,
        layer=parse_layer(layer, (lambda: layers(title)) if layers is not None else None, unknown_layer),
        method=parse_method(method),
    )


def parse_method(value: object) -> str:
    """A method's name from its title or name (see :func:`parse`).

    Raises:
        InvalidInput: for anything else, naming the methods.
    """
    if value is None or value == "":
        return DEFAULT
    text = checks.text(value, "Method", MAX_NAME)
    try:
        return get_method(text).name
    except UnknownMethodError:
        raise checks.InvalidInput(f"Method must be one of: {', '.join(METHODS)}; got {checks.shorten(text)}.") from None


def parse_layer(
    layer: object, offered_by: Callable[[], Sequence[str] | None] | None, unknown: str = "raise"
) -> str | None:
    """The layer, checked against those the model offers (see :func:`parse`); None for its automatic one.

    Args:
        layer: what was sent.
        offered_by: the model's layers, asked for only when a layer was named.
        unknown: see :func:`parse`.

    Raises:
        InvalidInput: a layer the model does not offer, with ``unknown="raise"``.
    """
    typed = checks.text(layer, "Layer", MAX_NAME, default="").strip()
    offered = offered_by() if typed and offered_by is not None else None
    if not typed or offered is None:
        return typed or None
    if typed == offered[0] or (typed not in offered and unknown != "raise"):
        return None
    return checks.choice(typed, "Layer", offered)


def parse_look(alpha: object, colormap: object) -> Look:
    """The look, checked (see :func:`parse`)."""
    return Look(
        checks.number(alpha, "Heatmap opacity", OPACITY),
        checks.choice(colormap, "Colours", COLORMAPS, default=COLORMAPS[0]),
    )


def read_photo(image: Any) -> Photo:
    """The upload's bytes and name from a path, bytes or a Gradio file payload.

    Raises:
        UserError: nothing was sent.
        InvalidInput: a ``data:`` URL over the upload limit.
        InvalidImageError: the file cannot be read.
    """
    return _read_upload(image, "image", NO_PHOTO, InvalidImageError)


def _read_upload(value: Any, kind: str, nothing: str, unreadable: type[GradCAMError]) -> Photo:
    """An upload's bytes and name (see :func:`read_photo`); ``kind`` names it in messages ("image", "video")."""
    if value is None or value == b"" or value == "":
        raise UserError(nothing)
    if isinstance(value, bytes):
        return Photo.of(value)
    if isinstance(value, Mapping):  # a file payload as sent: {"path": ..., "url": ..., "orig_name": ...}
        value = SimpleNamespace(path=value.get("path"), url=value.get("url"), orig_name=value.get("orig_name"))
    url = getattr(value, "url", None)
    if isinstance(url, str) and url.startswith("data:"):  # pasted or sent inline: decoded here, bounded first
        checks.data_url(url)
        try:
            return Photo.of(
                base64.b64decode(url.split(",", 1)[1], validate=False), getattr(value, "orig_name", None) or kind
            )
        except (ValueError, IndexError, binascii.Error) as exc:
            raise unreadable(f"The pasted {kind} could not be read. Please try again.") from exc
    path = getattr(value, "path", value)
    if not isinstance(path, (str, Path)) or not str(path):
        raise UserError(nothing)
    name = getattr(value, "orig_name", None) or Path(path).name
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_UPLOAD_BYTES + 1)
    except OSError as exc:
        raise unreadable("The upload could not be read. Please try again.") from exc
    if len(data) > MAX_UPLOAD_BYTES:
        raise checks.InvalidInput(f"The {kind} is too large: at most {MAX_UPLOAD_BYTES // 1024 // 1024} MB, please.")
    if not data:
        raise unreadable(f"The file is empty. Please choose {'an image' if kind == 'image' else 'a video'} file.")
    return Photo.of(data, str(name))


# --- video clips ---------------------------------------------------------------------------------

NO_CLIP = "Please add a video clip first: drag one in, or click to choose one (MP4, WebM or MOV, up to 30 seconds)."


@dataclass(frozen=True)
class ClipRequest:
    """A checked video request: the page's request, whose upload is the clip, and which frames to explain.

    Attributes:
        request: the model, class, threshold and look, as for a photo; ``request.photo`` holds the clip's bytes.
        every: explain every ``every``-th frame.
    """

    request: Request
    every: int = 1


def parse_clip(
    video: Any,
    target: object = TOP_PREDICTION,
    model: object = None,
    threshold: object = THRESHOLD.default,
    alpha: object = OPACITY.default,
    colormap: object = COLORMAPS[0],
    every: object = EVERY.default,
    layer: object = None,
    method: object = None,
    *,
    models: Sequence[str],
    default_model: str | None = None,
    visitor: str = "",
    layers: Callable[[str], Sequence[str] | None] | None = None,
    unknown_layer: str = "raise",
) -> ClipRequest:
    """Checks a video request: the settings by :func:`parse`'s rules, the clip as an upload, ``every`` in its range.

    ``layer`` and ``method`` come after ``every`` (the newer settings last); ``layers`` and ``unknown_layer`` as for
    :func:`parse`. The clip itself is read (sniffed, bounded) later, by :func:`gradcam.video.open_clip`.

    Raises:
        InvalidInput: a setting that is not one, or a clip over the upload limit.
        UserError: no clip.
        InvalidVideoError: an upload that cannot be read.
    """
    clip = _read_upload(video, "video", NO_CLIP, InvalidVideoError)
    request = parse(
        clip.data,
        target,
        model,
        threshold,
        alpha,
        colormap,
        layer,
        method,
        models=models,
        default_model=default_model,
        layers=layers,
        unknown_layer=unknown_layer,
    )
    step = checks.number(every, "Explain every N-th frame", EVERY)
    if step != int(step):
        raise checks.InvalidInput(f"Explain every N-th frame must be a whole number; got {checks.shorten(every)}.")
    return ClipRequest(replace(request, photo=clip, visitor=visitor), int(step))

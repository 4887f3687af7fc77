"""Exceptions a caller can act on.

Every error the package raises on purpose derives from :class:`GradCAMError`, so
the CLI and the web app can tell a user mistake (show one clear line) from a bug
(log the traceback for the operator).
"""


class GradCAMError(Exception):
    """Base class: the message is written for the person who made the request."""


class InvalidImageError(GradCAMError, ValueError):
    """The file is not an image we can read, or is empty, corrupt or truncated."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit (decompression bomb guard)."""


class ImageTooComplexError(InvalidImageError):
    """The file would take far longer to decode than any real photo (e.g. a JPEG of thousands of scans)."""


class ImageTooSmallError(InvalidImageError):
    """The image is too small to say anything about."""


class FileRefusedError(GradCAMError, ValueError):
    """A local path that is not read: not a regular file (a pipe, a device, a socket, a folder) or over a size cap.

    Attributes:
        name: the file's name.
        reason: why it is not read, without the name ("a pipe (FIFO), not a regular file"), for
            messages that name the file already (a dataset's problem lines).
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} is {reason}, so it is not read.")
        self.name = name
        self.reason = reason


class UnknownClassError(GradCAMError, ValueError):
    """A target class name or index that the model does not know."""


class WeightsError(GradCAMError, RuntimeError):
    """Weights could not be found, downloaded or loaded."""


class NotAvailableError(GradCAMError):
    """A view that this model cannot give, such as Guided Grad-CAM through SiLU activations."""


class UnknownModelError(GradCAMError, KeyError):
    """A model spec that names no model (a KeyError, as a lookup of an unknown name)."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its argument; this message is for people.
        return str(self.args[0]) if self.args else ""


class UnknownLayerError(GradCAMError, ValueError):
    """A target layer the model does not have, or one whose output cannot be explained."""


class TimeLimitError(GradCAMError):
    """A computation that would take longer than the time it is allowed (Score-CAM on a public page)."""


class InvalidVideoError(GradCAMError, ValueError):
    """The file is not a video clip we can read, or is empty, damaged or truncated."""


class VideoTooLongError(InvalidVideoError):
    """The clip lasts longer, or holds more frames, than the limits allow."""


class VideoTooLargeError(InvalidVideoError):
    """The clip's frames have more pixels than the limit."""


class SettingError(GradCAMError, ValueError):
    """A setting that contradicts the model or itself: a head, an input size, a mean or std of the wrong length."""

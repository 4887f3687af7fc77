"""Where the app keeps each request's files, and for how long.

A visitor's download links must keep working while they read the page, whoever
else uses the app meanwhile: :class:`OutputStore` gives each request its own
folder, keeps every folder for at least ``keep_for`` seconds (15 minutes), drops
older ones first, and caps the total disk it uses. Each visitor (network address)
has a share of that cap: beyond it their own oldest results make room for their
new ones, so one visitor cannot fill the store for everyone. When the cap is
reached even after dropping everything old enough, it refuses new work with a
"busy" message rather than delete a result someone else may still be downloading.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import cv2

from demo.request import Look
from demo.settings import STORE_BYTES, STORE_SHARE
from gradcam import GradCAMError, views
from gradcam.encode import write_jpeg
from gradcam.explanation import PANELS, Explanation
from gradcam.names import file_safe
from gradcam.save import save_explanation

#: How long a request's files stay downloadable, at least (seconds).
KEEP_FOR = 15 * 60
#: Longer side of the light copies the page shows (the zip keeps the full-size PNGs).
DISPLAY_SIDE = 800


class StoreFullError(GradCAMError):
    """Every kept result is still young and the disk cap is reached: the app is busy."""


class OutputStore:
    """Per-request folders under ``root``, kept ``keep_for`` seconds, ``max_bytes`` in all, ``share`` per owner.

    Safe to use from several threads. Sizes are counted as folders are written, so
    a request does not walk the disk.

    Args:
        root: the folder that holds the request folders (created if missing).
        keep_for: seconds every folder is kept at least.
        max_bytes: the total size beyond which new requests are refused until old
            folders expire (one request in flight may go past it).
        share: the most one owner's folders may hold; past it, a new folder of theirs
            replaces their oldest ones, however young.
        uploads: a folder (Gradio's upload folder) whose empty sub-folders older
            than ``keep_for`` are removed too: Gradio deletes old uploads but leaves
            their folders behind.
        clock: seconds since the epoch; tests pass a fake one.
    """

    def __init__(
        self,
        root: Path,
        keep_for: float = KEEP_FOR,
        max_bytes: int = STORE_BYTES,
        uploads: Path | None = None,
        clock: Callable[[], float] = time.time,
        share: int = STORE_SHARE,
    ) -> None:
        if keep_for <= 0 or max_bytes <= 0 or share <= 0:
            raise ValueError("keep_for, max_bytes and share must be positive.")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_for = keep_for
        self.max_bytes = max_bytes
        self.share = share
        self.uploads = uploads
        self._clock = clock
        self._folders: OrderedDict[Path, _Kept] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        """Bytes held by the kept folders."""
        with self._lock:
            return sum(kept.size for kept in self._folders.values())

    def owned_bytes(self, owner: str) -> int:
        """Bytes held by one owner's folders."""
        with self._lock:
            return sum(kept.size for kept in self._folders.values() if kept.owner == owner)

    def __len__(self) -> int:
        with self._lock:
            return len(self._folders)

    def folder(self, owner: str = "") -> Path:
        """A new, empty folder for one request of ``owner``; old folders, and the owner's beyond their share, go first.

        Call :meth:`done` with it once its files are written, so that they count.

        Raises:
            StoreFullError: when the kept folders, all younger than ``keep_for``, fill the cap.
        """
        self.sweep()
        with self._lock:
            mine = [path for path, kept in self._folders.items() if kept.owner == owner]
            held = sum(self._folders[path].size for path in mine)
            replaced = []
            for path in mine:  # oldest first
                if held < self.share:
                    break
                held -= self._folders.pop(path).size
                replaced.append(path)
            if sum(kept.size for kept in self._folders.values()) >= self.max_bytes:
                raise StoreFullError(
                    "The app is busy right now: many people are using it. Please try again in a few minutes."
                )
            path = self.root / uuid.uuid4().hex
            path.mkdir()
            self._folders[path] = _Kept(self._clock(), 0, owner)
        for old in replaced:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def done(self, path: Path) -> None:
        """Counts the files written into ``path`` (a folder from :meth:`folder`)."""
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        with self._lock:
            if path in self._folders:
                self._folders[path] = dataclasses.replace(self._folders[path], size=size)

    def sweep(self) -> None:
        """Removes folders older than ``keep_for``, oldest first, and empty old upload folders."""
        cutoff = self._clock() - self.keep_for
        with self._lock:
            expired = [path for path, kept in self._folders.items() if kept.created < cutoff]
            for path in expired:
                del self._folders[path]
        for path in expired:
            shutil.rmtree(path, ignore_errors=True)
        if self.uploads is not None:
            remove_empty_folders(self.uploads, cutoff, keep=self.root)

    def write_explanation(
        self,
        explanation: Explanation,
        look: Look = Look(),
        name: str = "image",
        *,
        owner: str = "",
        workers: int | None = None,
    ) -> Written:
        """Writes the four panels, the raw map, the manifest and a zip of them all.

        The page's light copies are :meth:`write_display`'s.

        Args:
            explanation: the result to save.
            look: the overlay's opacity and the colour map.
            name: the upload's file name; the zip is called ``gradcam-<stem>.zip``.
            owner: whose result it is (their share of the store).
            workers: threads encoding the PNGs (see :func:`gradcam.save_explanation`).

        Returns:
            The panel PNGs keyed by panel name, and the zip's path.

        Raises:
            StoreFullError: when the disk cap is reached.
        """
        folder = self.folder(owner)
        try:
            written = save_explanation(explanation, folder, alpha=look.alpha, colormap=look.colormap, workers=workers)
            stem = file_safe(Path(name).stem, "image", 40)
            archive = folder / f"gradcam-{stem}.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
                for path in written.values():
                    bundle.write(path, f"gradcam-{stem}/{path.name}")
        finally:
            self.done(folder)
        return Written({key: written[key] for key in PANELS}, archive)

    def write_display(
        self, explanation: Explanation, look: Look = Look(), *, owner: str = "", display_side: int = DISPLAY_SIDE
    ) -> dict[str, Path]:
        """Writes only the light JPEG copies of the four panels, for the page to show at once.

        Raises:
            StoreFullError: when the disk cap is reached.
        """
        folder = self.folder(owner)
        try:
            pictures = views.panels(
                shrunk(explanation, display_side), look.alpha, look.colormap
            )  # drawn at the size shown
            shown = {key: folder / f"{key}-shown.jpg" for key in PANELS}
            with ThreadPoolExecutor(len(PANELS)) as pool:  # OpenCV releases the GIL while encoding
                list(pool.map(lambda key: write_jpeg(shown[key], pictures[key]), PANELS))
        finally:
            self.done(folder)
        return shown

    def close(self) -> None:
        """Deletes every folder the store holds."""
        with self._lock:
            self._folders.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def shrunk(explanation: Explanation, max_side: int) -> Explanation:
    """The explanation at most ``max_side`` pixels on its longer side: image, map and boxes scaled together.

    The pictures drawn from it are those of the full-size explanation, shrunk, up to the boxes' rounding.
    """
    height, width = explanation.image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return explanation
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_h, small_w = size[1], size[0]
    boxes = tuple(
        (
            min(small_w - 1, int(x0 * scale)),
            min(small_h - 1, int(y0 * scale)),
            min(small_w - 1, int(x1 * scale)),
            min(small_h - 1, int(y1 * scale)),
        )
        for x0, y0, x1, y1 in explanation.boxes
    )
    return dataclasses.replace(
        explanation,
        image=cv2.resize(explanation.image, size, interpolation=cv2.INTER_AREA),
        cam=cv2.resize(explanation.cam, size, interpolation=cv2.INTER_AREA),
        boxes=boxes,
        counter_cam=None,
        guided=None,
        masking=None,
        classes=(),
    )


@dataclasses.dataclass(frozen=True)
class _Kept:
    """A kept folder: when it was made (seconds since the epoch), its size, and whose it is."""

    created: float
    size: int
    owner: str


class Written(NamedTuple):
    """What one request wrote: the full-quality panel PNGs and the zip."""

    panels: dict[str, Path]
    archive: Path


def remove_empty_folders(root: Path, older_than: float, keep: Path | None = None) -> int:
    """Removes the empty folders directly under ``root`` last changed before ``older_than``.

    Args:
        root: the folder to tidy.
        older_than: seconds since the epoch.
        keep: a folder never removed, even when empty.

    Returns:
        How many folders were removed.
    """
    removed = 0
    try:
        children = list(Path(root).iterdir())
    except OSError:
        return 0
    for child in children:
        try:
            if child == keep or not child.is_dir() or child.stat().st_mtime >= older_than or any(child.iterdir()):
                continue
            child.rmdir()
            removed += 1
        except OSError:
            continue  # filled or removed meanwhile
    return removed

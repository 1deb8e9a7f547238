"""Finding image and video files, and decoding photos into 8-bit BGR arrays the detectors take."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_mine.defaults import DEFAULT_MAX_PIXELS, VIDEO_EXTENSIONS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 36867
DATETIME = 306


@dataclass(frozen=True)
class FoundFile:
    uri: str  # what to open (a local path or a URI)
    root: str  # the --input it was found under
    path: str  # relative to root, '/'-separated, printable

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)

    @property
    def is_video(self) -> bool:
        return self.uri.lower().endswith(VIDEO_EXTENSIONS)


class ImageError(Exception):
    """A file that cannot become an image: carries the stage and a short kind."""

    def __init__(self, stage: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.stage, self.kind = stage, kind


@dataclass
class DecodedImage:
    file: FoundFile
    pixels: np.ndarray  # uint8 BGR (H, W, 3), EXIF orientation applied
    sha256: str
    format: str | None
    taken_at: datetime | None
    frame_index: int | None = None  # set for a frame sampled from a video
    video_time_s: float | None = None


def printable(path: str) -> str:
    """Paths that are not valid UTF-8 (surrogate-escaped by Python) made storable; others unchanged."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def find_images(root: str, others: list[str] | None = None, videos: bool = False) -> list[FoundFile]:
    """Every file under `root` with an image extension (any case), and with `videos` every
    video file too, sorted; gs:// etc. via Beam.

    Files with other extensions (sidecars, notes, videos when not asked for) are not for
    mining; their paths go into `others` when given, so the caller can say how many were left aside.
    """
    wanted = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ())
    is_local = "://" not in root
    base = os.path.abspath(root) if is_local else root.rstrip("/")
    found = []
    if is_local:
        # os.walk rather than a glob: it sees broken symlinks and never follows folder loops
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in filenames + [d for d in dirnames if d.lower().endswith(wanted)]:
                full = os.path.join(dirpath, name)
                rel = printable(os.path.relpath(full, base).replace(os.sep, "/"))
                if name.lower().endswith(wanted):
                    found.append(FoundFile(full, base, rel))
                elif others is not None:
                    others.append(rel)
    else:
        for match in FileSystems.match([f"{base}/**"])[0].metadata_list:
            rel = match.path[len(base) + 1 :]
            if match.path.lower().endswith(wanted):
                found.append(FoundFile(match.path, base, rel))
            elif others is not None:
                others.append(rel)
    return sorted(found, key=lambda f: f.path)


def _read_regular_file(path: str) -> bytes:
    """The bytes of a regular file. A FIFO, socket or device named like an image is refused
    without a blocking open: reading a FIFO with no writer would wait forever."""
    kind = special_file_kind(os.stat(path).st_mode)
    if kind:
        raise ImageError("read", "not_a_file", f"a {kind} named like an image")
    # O_NONBLOCK: should the path become a FIFO after the stat, opening it still returns
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        kind = special_file_kind(os.fstat(fd).st_mode)
        if kind:
            raise ImageError("read", "not_a_file", f"a {kind} named like an image")
        return handle.read()


def special_file_kind(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISFIFO: "FIFO (named pipe)", stat.S_ISSOCK: "socket", stat.S_ISCHR: "character device",
             stat.S_ISBLK: "block device"}  # fmt: skip
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def read_bytes(file: FoundFile) -> bytes:
    with read_errors():
        if "://" in file.uri:
            with FileSystems.open(file.uri) as handle:
                return handle.read()
        return _read_regular_file(file.uri)


@contextlib.contextmanager
def read_errors() -> Iterator[None]:
    """OS and object-store errors while reading a file, as the `errors` row they become."""
    try:
        yield
    except IsADirectoryError:
        raise ImageError("read", "not_a_file", "a folder named like an image") from None
    except PermissionError:
        raise ImageError("read", "permission_denied", "no permission to read the file") from None
    except FileNotFoundError:
        raise ImageError("read", "missing", "file vanished or is a broken symlink") from None
    except (OSError, ValueError) as exc:  # Beam's object-store clients raise both
        raise ImageError("read", "io_error", " ".join(str(exc).split())[:300]) from None


def _exif_time(image: Image.Image) -> datetime | None:
    exif = image.getexif()
    value = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not value:
        return None
    try:
        return datetime.strptime(str(value).strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _to_bgr(image: Image.Image) -> np.ndarray:
    """Any PIL mode (16-bit, RGBA, palette, CMYK, bilevel, float) -> uint8 BGR."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max()
        array = np.clip(array * (255.0 / top if top > 0 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(array[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # flatten transparency onto white, as a viewer shows it
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def decode(file: FoundFile, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    if not data:
        raise ImageError("decode", "empty_file", "zero-byte file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    "decode", "too_large", f"{width}x{height} is over the {max_pixels:,}-pixel limit"
                )
            image.load()
            taken_at = _exif_time(image)
            fmt = image.format
            image = ImageOps.exif_transpose(image)
            pixels = _to_bgr(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError("decode", "too_large", str(exc)) from None
    except UnidentifiedImageError:
        raise ImageError("decode", "not_an_image", "not a readable image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("decode", "corrupt", f"damaged image: {exc}") from None
    return DecodedImage(file, pixels, hashlib.sha256(data).hexdigest(), fmt, taken_at)

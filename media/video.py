"""Frames sampled from video files, one at a time, with OpenCV's VideoCapture.

The opencv-python wheels carry FFmpeg, so every container in VIDEO_EXTENSIONS reads without a
new dependency. Frames are decoded in stream order (`grab`) and only the sampled ones are
converted (`retrieve`): seeking is frame-exact only in some containers, and a generator keeps
memory flat however long the video is.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from apache_beam.io.filesystems import FileSystems

from fer_mine.media.detect import quiet_opencv
from fer_mine.media.images import DecodedImage, FoundFile, ImageError, read_errors, special_file_kind

# FFmpeg's own log (inside OpenCV) prints a line per damaged file; damage is an `errors` row
# instead. 0 = AV_LOG_PANIC. Read when OpenCV first opens a video, so set before any capture.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "0")
# a header's frame count is an estimate in some containers: fewer frames than this share of it
# (less one) means the stream broke off
COMPLETE_SHARE = 0.98


@dataclass
class VideoInfo:
    """What the container declares, and what reading it found: one `videos` row."""

    codec: str | None = None
    width: int = 0
    height: int = 0
    fps: float | None = None
    frame_count: int | None = None
    frames_read: int = 0
    frames_sampled: int = 0
    damage: str | None = None  # why reading stopped early; None = read to the end

    @property
    def duration_s(self) -> float | None:
        return self.frame_count / self.fps if self.frame_count and self.fps else None


@contextlib.contextmanager
def _local_path(file: FoundFile) -> Iterator[str]:
    """A path VideoCapture can open: the file itself, or a temporary copy of a remote one."""
    if "://" not in file.uri:
        with read_errors():
            kind = special_file_kind(os.stat(file.uri).st_mode)
        if kind:  # a FIFO named like a video would block VideoCapture forever
            raise ImageError("read", "not_a_file", f"a {kind} named like a video")
        if not os.access(file.uri, os.R_OK):
            raise ImageError("read", "permission_denied", "no permission to read the file")
        if os.path.getsize(file.uri) == 0:
            raise ImageError("decode", "empty_file", "zero-byte file")
        yield file.uri
        return
    suffix = posixpath.splitext(file.uri)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
        with read_errors(), FileSystems.open(file.uri) as source:
            shutil.copyfileobj(source, copy, 1 << 20)
        copy.flush()
        yield copy.name


def _fourcc(value: float) -> str | None:
    code = int(value)
    text = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\x00 ").lower()
    return text if code and text.isprintable() else None


def sample_frames(
    file: FoundFile, sample_fps: float, max_pixels: int, info: VideoInfo
) -> Iterator[DecodedImage]:
    """The first frame at or after each multiple of 1/sample_fps seconds, in order.

    `info` is filled in as the video is read; when the generator ends, `info.damage` says
    whether the stream broke off before the frame count its header declares.
    """
    with _local_path(file) as path:
        with quiet_opencv():
            capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        try:
            if not capture.isOpened():
                raise ImageError(
                    "decode",
                    "not_a_video",
                    "not a readable video (unknown format, or damaged before its first frame)",
                )
            info.codec = _fourcc(capture.get(cv2.CAP_PROP_FOURCC))
            info.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            info.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = capture.get(cv2.CAP_PROP_FPS)
            info.fps = fps if math.isfinite(fps) and fps > 0 else None
            count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
            info.frame_count = int(count) if math.isfinite(count) and count > 0 else None
            if info.width * info.height > max_pixels:
                raise ImageError(
                    "decode",
                    "too_large",
                    f"{info.width}x{info.height} frames are over the {max_pixels:,}-pixel limit",
                )
            next_time = 0.0
            while capture.grab():
                index = info.frames_read
                info.frames_read += 1
                time_s = index / info.fps if info.fps else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                if time_s + 1e-9 < next_time:
                    continue
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    info.damage = f"frame {index} could not be decoded"
                    break
                # the next sample is on the grid k / sample_fps, so gaps do not shift it
                next_time = (math.floor(time_s * sample_fps + 1e-9) + 1) / sample_fps
                info.frames_sampled += 1
                digest = hashlib.sha256(frame.data).hexdigest()
                yield DecodedImage(file, frame, digest, info.codec, None, index, time_s)
        finally:
            capture.release()
    if info.damage is None and info.frame_count and info.frames_read < COMPLETE_SHARE * info.frame_count - 1:
        info.damage = (
            f"the stream ends after {info.frames_read} of the {info.frame_count} frames its header declares"
        )
    if info.damage:
        seconds = f"{info.frames_read / info.fps:.1f} s" if info.fps else f"{info.frames_read} frames"
        total = f" of {info.duration_s:.1f} s" if info.duration_s else ""
        info.damage += (
            f": read up to {seconds}{total}; the {info.frames_sampled} frames sampled before are kept"
        )


def read_frame(file: FoundFile, index: int) -> np.ndarray | None:
    """One frame of a video by index (report thumbnails); None if it cannot be read."""
    try:
        with _local_path(file) as path:
            with quiet_opencv():
                capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
            try:
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                ok, frame = capture.read()
            finally:
                capture.release()
    except ImageError:
        return None
    return frame if ok else None

"""Video throughput of `fer-mine run`, and peak memory for a video 4x as long.

    python -m benchmarks.video_speed [--seconds 30] [--size 1280x720] [--fps 30] [--video-fps 1,5]

Writes MP4 videos (OpenCV's mp4v encoder) of scenes with two pasted faces each, a new scene
every 2 s, S and 4S seconds long, then times: decoding every frame (what sampling at any rate
costs at least); sampling at 1 frame/s alone; and the whole `fer-mine run` (a fresh child
process each, so that its peak RSS is its own) at each --video-fps. Goal: memory does not grow
with the video's length (frames are streamed, never collected).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.memory import peak_rss_mb
from benchmarks.scenes import compose
from fer_mine.media.images import FoundFile
from fer_mine.media.video import VideoInfo, sample_frames
from fer_mine.pipeline.run import run
from fer_mine.pipeline.settings import RunSettings


def write_video(path: Path, seconds: int, size: tuple[int, int], fps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    width = size[0] // 8
    scenes = [compose(rng, *size, [width, width]).image for _ in range(5)]
    for index in range(seconds * fps):
        writer.write(scenes[(index // (2 * fps)) % len(scenes)])
    writer.release()


def decode_rate(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    start, frames = time.perf_counter(), 0
    while capture.grab():
        frames += 1
    capture.release()
    return frames / (time.perf_counter() - start)


def sample_rate(path: Path, video_fps: float) -> tuple[float, float]:
    """Sampled frames per second of wall time, and seconds of video per second."""
    info = VideoInfo()
    start = time.perf_counter()
    frames = sum(
        1 for _ in sample_frames(FoundFile(str(path), str(path.parent), path.name), video_fps, 10**9, info)
    )
    seconds = time.perf_counter() - start
    return frames / seconds, (info.duration_s or 0) / seconds


def child(folder: str, out: str, video_fps: float) -> None:
    """Runs one pipeline in this (fresh) process and prints its figures as JSON."""
    start = time.perf_counter()
    counts = run(RunSettings(inputs=[folder], output=out, video_fps=video_fps))
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "images": counts["images"],
                "faces": counts["faces"],
                "rss_mb": peak_rss_mb(),
            }
        )
    )


def pipeline(folder: Path, video_fps: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        code = "import sys; from benchmarks.video_speed import child; child(sys.argv[1], sys.argv[2], float(sys.argv[3]))"
        done = subprocess.run([sys.executable, "-c", code, str(folder), out, str(video_fps)],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--video-fps", default="1,5", help="sampling rates of the pipeline rows")
    args = parser.parse_args()
    size = tuple(map(int, args.size.split("x")))
    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / "s", Path(tmp) / "4s"
        short.mkdir()
        long.mkdir()
        write_video(short / "clip.mp4", args.seconds, size, args.fps, 1)
        write_video(long / "clip.mp4", 4 * args.seconds, size, args.fps, 1)
        console.print(f"videos: {args.seconds} s and {4 * args.seconds} s of {args.size} at {args.fps} fps (mp4v), "
                      f"two faces per frame; OpenCV {cv2.__version__}; torch threads {torch.get_num_threads()}; "
                      f"{os.cpu_count()} CPU cores")  # fmt: skip
        table = Table(
            "measure", "frames/s", "video s per s", "faces/s", "peak RSS MB", title="fer-mine run on video"
        )
        decoded = decode_rate(short / "clip.mp4")
        table.add_row("decode every frame", f"{decoded:.1f}", f"{decoded / args.fps:.2f}", "", "")
        frames, speed = sample_rate(short / "clip.mp4", 1.0)
        table.add_row("sample 1 frame/s (decode + convert)", f"{frames:.2f}", f"{speed:.2f}", "", "")
        table.add_section()
        for rate in (float(r) for r in args.video_fps.split(",")):
            for label, folder, seconds in (("S", short, args.seconds), ("4S", long, 4 * args.seconds)):
                r = pipeline(folder, rate)
                table.add_row(
                    f"fer-mine run, --video-fps {rate:g}, {label} ({seconds} s)",
                    f"{r['images'] / r['seconds']:.2f}",
                    f"{seconds / r['seconds']:.2f}",
                    f"{r['faces'] / r['seconds']:.2f}",
                    f"{r['rss_mb']:.0f}",
                )
        console.print(table)


if __name__ == "__main__":
    main()

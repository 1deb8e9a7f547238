"""Shared fixtures: small synthetic datasets in every layout fer-mine reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_mine.labels import EMOTIONS


@pytest.fixture(autouse=True, scope="session")
def _cache_of_the_session(tmp_path_factory) -> None:
    """Rebuilt int8 networks (amacnn/int8.py, `cached`) go to a folder of the test session, not
    the user's cache; subprocesses inherit it."""
    os.environ["FER_MINE_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def face_like(label_index: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A gray 'face' whose mouth shape depends on the class, plus noise: learnable, not trivial."""
    img = np.full((size, size), 90, np.uint8)
    cv2.ellipse(img, (size // 2, size // 2), (size // 3, size * 2 // 5), 0, 0, 360, 170, -1)
    for x in (size // 3, 2 * size // 3):
        cv2.circle(img, (x, size * 2 // 5), 3, 40, -1)
    angle = 180 * (label_index % 2)
    mouth = (size // 5, 2 + label_index)
    cv2.ellipse(img, (size // 2, size * 2 // 3), mouth, angle, 0, 180, 30, 2)
    noise = rng.normal(0, 8, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_class_tree(root: Path, per_class: int, seed: int = 0, names=EMOTIONS) -> None:
    rng = np.random.default_rng(seed)
    for index, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(folder / f"{name}_{i:03d}.png"), face_like(index, rng))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """`<root>/synth/train/<emotion>/*.png` and `test/...`: the Kaggle FER-2013 layout."""
    root = tmp_path / "data"
    write_class_tree(root / "synth" / "train", per_class=12, seed=1)
    write_class_tree(root / "synth" / "test", per_class=4, seed=2)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def portable_deployment(env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """A real portable Beam deployment on loopback, as Flink, Spark and Dataflow see the job:
    a job service and an external worker pool (its workers get `env`). Yields their ports."""
    job, pool = free_port(), free_port()
    # the pool starts workers as `python`: this venv's must come first on PATH
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                          "--port", str(job)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                          f"--service_port={pool}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    deadline = time.time() + 60
    for port in (job, pool):
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
    try:
        yield job, pool
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


TRAIN = ["train", "--preset", "tiny", "--batch-size", "16", "--threads", "1", "--seed", "1"]


def train_cli(root, out, epochs: int, *extra: str):
    """`fer-mine train` on the synthetic dataset, tiny preset, as a user would call it."""
    from click.testing import CliRunner

    from fer_mine.cli import main

    args = [
        *TRAIN,
        "--data-root",
        str(root),
        "--datasets",
        "synth",
        "--epochs",
        str(epochs),
        "--output",
        str(out),
    ]
    return CliRunner().invoke(main, [*args, *extra])


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny model trained for 2 epochs through the CLI, shared by every test that needs one
    (copy it before changing it)."""
    root = tmp_path_factory.mktemp("d") / "data"
    write_class_tree(root / "synth" / "train", per_class=12, seed=1)
    write_class_tree(root / "synth" / "test", per_class=4, seed=2)
    out = root.parent / "run"
    result = train_cli(root, out, 2)
    assert result.exit_code == 0, result.output
    return root, out, result

"""What a bucket costs: `fer-mine run --people` into an S3 bucket and `people list` over it, with
every operation sharing one boto3 client (records/store.py, what fer-mine does) against Beam's
own way, a new boto3 session and client for each operation.

    python -m benchmarks.bucket_speed [--photos 6] [--rounds 3]

The bucket is moto's S3 server on this machine (the `test` extra), so the times are the
client's own cost plus a local server's, not a network's: on a real bucket each request adds
its round trip to both rows alike. Each variant runs in its own process, interleaved with the
other, rounds times; medians.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BUCKET = "fer-mine-bench"
VARIANTS = {
    "shared": "one boto3 client for every operation (fer-mine)",
    "beam": "a new client per operation (Beam)",
}


def one(variant: str, photos: int) -> dict[str, float]:
    """Seconds of each command, in this process, against a fresh local S3 server."""
    from click.testing import CliRunner
    from moto import server as moto_server

    from benchmarks.scenes import write_archive

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}")  # fmt: skip
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    with tempfile.TemporaryDirectory() as folder:
        write_archive(Path(folder), photos, seed=3)
        for path in sorted(Path(folder).rglob("*.jpg")):
            client.put_object(
                Bucket=BUCKET, Key=f"photos/{path.relative_to(folder).as_posix()}", Body=path.read_bytes()
            )
    if variant == "beam":
        from fer_mine.records import store

        store._share_s3_clients = lambda: None
    from fer_mine.cli import main

    seconds = {}
    out = f"s3://{BUCKET}/mined"
    for name, args in (("run --people", ["run", "--quiet", "--input", f"s3://{BUCKET}/photos", "--output", out,
                                          "--people"]),
                       ("people list", ["people", "list", out]), ("report", ["report", out, "--format", "json"])):  # fmt: skip
        began = time.perf_counter()
        result = CliRunner().invoke(main, args)
        seconds[name] = time.perf_counter() - began
        if result.exit_code:
            raise SystemExit(f"{name} failed: {result.output}")
    server.stop()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one process's run
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one(args.variant, args.photos)))
        return
    try:
        import moto  # noqa: F401
    except ImportError:
        print("skipped: needs moto (pip install -e '.[test]')")
        return
    found: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            ran = subprocess.run([sys.executable, "-m", "benchmarks.bucket_speed", "--variant", variant,
                                  "--photos", str(args.photos)], capture_output=True, text=True, check=True)  # fmt: skip
            found[variant].append(json.loads(ran.stdout.strip().splitlines()[-1]))
    commands = list(found["shared"][0])
    table = Table("variant", *(f"{c} (s)" for c in commands),
                  title=f"{args.photos} photos into a local S3 bucket (moto), median of {args.rounds} interleaved rounds")  # fmt: skip
    for variant, label in VARIANTS.items():
        table.add_row(label, *(f"{statistics.median(r[c] for r in found[variant]):.1f}" for c in commands))
    Console(width=150).print(table)


if __name__ == "__main__":
    main()

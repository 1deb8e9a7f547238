"""Run every benchmark, one table each:  python -m benchmarks [name ...]

Names: model_speed, inference_speed, accuracy, detection_quality, pipeline_speed, pipeline_accuracy,
quality_accuracy, reports_speed, video_speed, people_quality, people_populations, selection, crowded, crash,
bucket_speed.
Not among them: `python -m benchmarks.commit_speed --baseline COMMIT`, since it compares two
commits, and `python -m benchmarks.people_scale --faces 200000`, minutes and gigabytes long.
"""

import subprocess
import sys

ALL = ("model_speed", "inference_speed", "accuracy", "detection_quality", "pipeline_speed", "pipeline_accuracy",
       "quality_accuracy", "reports_speed", "video_speed", "people_quality", "people_populations", "selection", "crowded",
       "crash", "bucket_speed")  # fmt: skip

if __name__ == "__main__":
    for name in sys.argv[1:] or ALL:
        if name not in ALL:
            sys.exit(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
        print(f"\n== benchmarks.{name}", flush=True)
        subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=True)

"""First-request latency after a version loads, with and without its warm-up file.

Serves one pushed version (default: the newest under outputs/serving_model) with the project's
server, once as pushed (with `assets.extra/tf_serving_warmup_requests`, replayed before the
version is AVAILABLE) and once without that file. Each round is a fresh process, so nothing a
first request initialises survives into the next. Measured: the load (start until AVAILABLE),
then the first and the second REST predict of one trip, and the first of a 128-trip batch.
Rounds alternate, with the file first (A B A B ...).

    python benchmarks/warmup_latency.py --rounds 5
    python benchmarks/warmup_latency.py --model-dir outputs/serving_model/1796138591
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIP = {"trip_miles": 1.2, "fare": 7.25, "trip_seconds": 480, "payment_type": "Credit Card", "company": "Taxi Affiliation Services",
        "trip_start_hour": 19, "trip_start_day": 6, "trip_start_month": 5, "trip_start_timestamp": 1400269500,
        "pickup_community_area": 8, "dropoff_community_area": 32}


def one_round(model_dir: str, with_warmup: bool) -> dict:
    """Serves a copy of `model_dir` (with or without its warm-up file) and times the requests."""
    from pipeline.configs import SERVING_MODEL_NAME
    from serving import client
    from serving.client.warmup import WARMUP_FILE
    from serving.devserver.server import ModelServer, ServerOptions

    base_path = tempfile.mkdtemp(prefix="warmup_latency_")
    try:
        shutil.copytree(model_dir, os.path.join(base_path, "1"))
        if not with_warmup:
            os.remove(os.path.join(base_path, "1", WARMUP_FILE))
        started = time.perf_counter()
        server = ModelServer(ServerOptions(model_name=SERVING_MODEL_NAME, model_base_path=base_path, port=0, rest_api_port=0)).start()
        try:
            address = f"127.0.0.1:{server.rest_port}"
            while client.model_status_rest(address, SERVING_MODEL_NAME)["model_version_status"][0]["state"] != "AVAILABLE":
                time.sleep(0.01)
            loaded = time.perf_counter() - started
            times = []
            for trips in ([TRIP], [TRIP], [TRIP] * 128):
                begun = time.perf_counter()
                client.predict_trips_rest(address, SERVING_MODEL_NAME, trips)
                times.append(time.perf_counter() - begun)
        finally:
            server.stop()
    finally:
        shutil.rmtree(base_path, ignore_errors=True)
    return {"load_s": loaded, "first_ms": times[0] * 1000, "second_ms": times[1] * 1000, "first_batch_128_ms": times[2] * 1000}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the rounds in fresh processes and prints each and the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="pairs of rounds (default 5)")
    parser.add_argument("--model-dir", help="a pushed version (default: the newest under outputs/serving_model)")
    parser.add_argument("--one", choices=["with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model_dir is None:
        from serving.versions import newest_version, version_dir

        serving_dir = os.path.join(REPO_ROOT, "outputs", "serving_model")
        newest = newest_version(serving_dir) if os.path.isdir(serving_dir) else None
        if newest is None:
            print(f"no pushed version under {serving_dir}: run `python run_local.py` first, or give --model-dir", file=sys.stderr)
            return 2
        args.model_dir = version_dir(serving_dir, newest)
    if args.one:
        print("ROUND=" + json.dumps(one_round(args.model_dir, args.one == "with")))
        return 0
    results = {"with": [], "without": []}
    for round_number in range(1, args.rounds + 1):
        for kind in ("with", "without"):
            done = subprocess.run(
                [sys.executable, __file__, "--model-dir", args.model_dir, "--one", kind], capture_output=True, text=True, cwd=REPO_ROOT, check=True
            )
            result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("ROUND="))[len("ROUND="):])
            results[kind].append(result)
            print(f"round {round_number} {kind:<7} warm-up: " + ", ".join(f"{key} {value:.1f}" for key, value in result.items()), flush=True)
    for kind, rounds in results.items():
        medians = {key: statistics.median(result[key] for result in rounds) for key in rounds[0]}
        print(f"median {kind:<7} warm-up file ({args.rounds} rounds): " + ", ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training steps per second on one device, on 2 mirrored replicas, and on 2 workers: one run.

    python bench/make_assets.py            # once: the full-size synthetic BFM (35,709 vertices)
    python bench/train_replicas.py [--batch-size 8] [--steps 10] [--warmup 3]

Each configuration is `python train.py` itself, in a child process of its
own, on the same prepared data (bench/train.py's: the input/ photos with
synthetic 68 points), the same global batch, from random weights:

- one: `--strategy one`;
- mirrored: `--strategy mirrored --cpu-devices 2` (this CPU split in two);
- multiworker: two `--strategy multiworker` processes on localhost, with TF_CONFIG.

The speed is taken from train.py's own log lines (`--summary-every 1`: the
rate of each step): the median of the steps after --warmup (which trace and
compile). On a machine without GPUs the replicas share the same cores, so 2
replicas cannot be faster than one device here; what the figures show is the
cost of the distribution itself (the all-reduces of the gradients and of the
batch-norm statistics, two graphs instead of one). A GPU machine is where
replicas add speed; none here has TensorFlow.

It prints a table and, as its last line, one JSON object with every figure.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import DEFAULT_ASSETS  # noqa: E402
from bench.train import ensure_bfm, prepare_samples  # noqa: E402
from training.cluster import free_local_ports as free_ports  # noqa: E402

RATE = re.compile(r"^step (\d+): .*, ([0-9.]+) steps/s$")


def rates(output, warmup):
    """The steps/s train.py logged for each step after `warmup`."""
    found = [(int(m.group(1)), float(m.group(2))) for m in map(RATE.match, output.splitlines())
             if m]
    return [rate for step, rate in found if step > warmup]


def run_configuration(name, common, environ, timeout=1800):
    """Runs train.py as configuration `name`; returns (chief's output, wall seconds)."""
    start = time.perf_counter()
    if name == "multiworker":
        ports = free_ports(2)
        processes = []
        for index in range(2):
            config = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                 "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen(
                common + ["--strategy", "multiworker"], env=dict(environ, TF_CONFIG=config),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
        codes = [p.returncode for p in processes]
    else:
        extra = ["--strategy", "mirrored", "--cpu-devices", "2"] if name == "mirrored" else []
        done = subprocess.run(common + extra, env=environ, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
        outputs, codes = [done.stdout], [done.returncode]
    if any(codes):
        raise SystemExit(f"{name}: train.py failed:\n" + outputs[codes.index(
            next(c for c in codes if c))][-3000:])
    return outputs[0], time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS,
                        help="folder of bench/make_assets.py (its BFM/ is used)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="the global batch of every configuration (8)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (3)")
    parser.add_argument("--skip-multiworker", action="store_true",
                        help="leave out the two-process configuration")
    args = parser.parse_args(argv)
    if args.batch_size % 2:
        parser.error("--batch-size must be even (2 replicas)")
    bfm_dir = ensure_bfm(args.assets, print)
    environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    environ.pop("TF_CONFIG", None)
    names = ["one", "mirrored"] + ([] if args.skip_multiworker else ["multiworker"])
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup}
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        data, samples = prepare_samples(bfm_dir, folder)
        report["samples"] = samples
        for name in names:
            common = [sys.executable, str(REPO_ROOT / "train.py"), "--data", str(data),
                      "--log-dir", str(folder / name), "--bfm-dir", str(bfm_dir),
                      "--steps", str(args.warmup + args.steps), "--batch-size",
                      str(args.batch_size), "--summary-every", "1", "--save-every",
                      str(10 ** 9), "--image-every", str(10 ** 9)]
            output, wall = run_configuration(name, common, environ)
            timed = rates(output, args.warmup)
            if len(timed) != args.steps:
                raise SystemExit(f"{name}: found {len(timed)} timed steps in train.py's log")
            median = statistics.median(timed)
            report[name] = {"steps_per_second": round(median, 4),
                            "photos_per_second": round(median * args.batch_size, 3),
                            "wall_s": round(wall, 1)}
    print(f"\nTraining speed, global batch {args.batch_size}, median of {args.steps} steps "
          f"after {args.warmup} ({report['machine']}):")
    print(f"{'configuration':<34}{'steps/s':>9}{'photos/s':>10}{'vs one':>8}{'wall s':>8}")
    labels = {"one": "one device", "mirrored": "mirrored, 2 logical CPUs",
              "multiworker": "multiworker, 2 localhost workers"}
    for name in names:
        row = report[name]
        ratio = row["steps_per_second"] / report["one"]["steps_per_second"]
        row["vs_one"] = round(ratio, 3)
        print(f"{labels[name]:<34}{row['steps_per_second']:>9.3f}"
              f"{row['photos_per_second']:>10.2f}{ratio:>8.2f}{row['wall_s']:>8.0f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""What the Ray backend costs on one machine, and two Ray "nodes" on one machine both used.

    python bench/ray_overhead.py [--data-root DIR] [--epochs 2] [--sizes 16,24]

1. Trains a small teacher (resnet8 on UC Merced, 1 epoch), then runs the same 2-cell Pareto
   grid (resnet8 at two input sizes, 1 seed, scratch + distilled per cell) as a full
   `rsdistill pareto` command twice: `--backend local --jobs 2` and `--backend ray` (which
   starts Ray on this machine's cores). Prints both walls, their ratio (goal <= 1.10) and
   whether every metrics.json number (timing aside) is equal.
2. Starts two Ray "nodes" on this machine with `ray start` (a head and a worker, 1 CPU each,
   each pinned to its own core with taskset), runs the grid on that cluster with
   `--ray-address`, and prints which node ran each trial (from the per-trial lines).

Everything is written under a temporary directory, removed at the end; the two nodes'
processes (found by that directory in their command lines, never `ray stop`, which would
end every Ray on the machine) are ended even when the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXACT = ("accuracy", "f1_macro", "confusion_matrix", "params", "flops")
GOAL = 1.10


def rsdistill(*args: str, env: dict) -> tuple[float, str]:
    """Runs one rsdistill command; (wall seconds, its stderr)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rsdistill", *args], env=env, cwd=REPO,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"rsdistill {' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stderr


def metrics(root: Path) -> dict:
    return {str(p.relative_to(root)): {k: json.loads(p.read_text())[k] for k in EXACT}
            for p in sorted(root.rglob("metrics.json"))}


def trial_nodes(stderr: str) -> dict[str, str]:
    """label -> node, from the per-trial lines ("<label>: accuracy ... on HOST/NODE (pid")."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"rsdistill: (\S+ seed \d+): accuracy .*? on (\S+) \(pid",
                                 stderr)}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get("RSDISTILL_TEST_DATA",
                                                         str(REPO.parent / "shared" / "datasets")))
    p.add_argument("--epochs", default="2")
    p.add_argument("--sizes", default="16,24")
    p.add_argument("--port", default="6390", help="the two-node cluster's head port")
    p.add_argument("--parts", default="overhead,two-nodes",
                   help="which measurements: overhead, two-nodes or both (default)")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    work = Path(tempfile.mkdtemp(prefix="rsd-ray-bench-"))
    data = ["--dataset", "ucmerced", "--data-root", args.data_root, "--cache-dir",
            str(work / "cache"), "--device", "cpu", "--no-progress", "--batch-size", "64"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average at start {loadavg()}")
    try:
        rsdistill("train", *data, "--model", "resnet8", "--image-size", "32", "--epochs", "1",
                  "--out", str(work / "teacher"), env=env)
        grid = ["pareto", *data, "--teacher", str(work / "teacher"), "--students", "resnet8",
                "--sizes", args.sizes, "--seeds", "1", "--epochs", args.epochs,
                "--latency-runs", "5"]
        local, _ = rsdistill(*grid, "--backend", "local", "--jobs", "2",
                             "--out", str(work / "local"), env=env)
        if "overhead" in args.parts:
            ray, _ = rsdistill(*grid, "--backend", "ray", "--out", str(work / "ray"), env=env)
            same = metrics(work / "local") == metrics(work / "ray")
            print(f"2-cell grid, whole 'rsdistill pareto' command: local {local:.1f} s, "
                  f"ray {ray:.1f} s, ratio {ray / local:.3f} (goal <= {GOAL}: "
                  f"{'PASS' if ray / local <= GOAL else 'FAIL'}); metrics equal: {same}; "
                  f"load average now {loadavg()}")
        if "two-nodes" in args.parts:
            two_nodes(grid, work, env, args.port)
    finally:
        stop_our_ray(work)
        shutil.rmtree(work, ignore_errors=True)


def stop_our_ray(work: Path) -> None:
    """Ends the Ray processes started with a --temp-dir under ``work`` (ours alone)."""
    mine = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(work) in (proc / "cmdline").read_text(errors="replace"):
                mine.append(int(proc.name))
        except OSError:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(3)


def two_nodes(grid: list[str], work: Path, env: dict, port: str) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        print("two-node run skipped: fewer than 2 cores")
        return
    # Ray >= 2.5x authenticates with a token (~/.ray/auth_token, made by the head); a node
    # joining and the driver need the mode said explicitly.
    ray_env = {**env, "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "token"}
    subprocess.run(["taskset", "-c", str(cores[0]), "ray", "start", "--head", "--port", port,
                    "--num-cpus", "1", "--include-dashboard=false",
                    "--temp-dir", str(work / "head")], env=ray_env, check=True,
                   capture_output=True)
    subprocess.run(["taskset", "-c", str(cores[1]), "ray", "start",
                    f"--address=127.0.0.1:{port}", "--num-cpus", "1",
                    "--temp-dir", str(work / "node2")], env=ray_env, check=True,
                   capture_output=True)
    wall, stderr = rsdistill(*grid, "--backend", "ray", "--ray-address", f"127.0.0.1:{port}",
                             "--out", str(work / "two"), env=ray_env)
    nodes = trial_nodes(stderr)
    print(f"two Ray nodes (1 CPU each, taskset cores {cores[0]} and {cores[1]}): {wall:.1f} s; "
          f"trials per node: {json.dumps(nodes)}; distinct nodes used: {len(set(nodes.values()))}; "
          f"metrics equal to the local run: {metrics(work / 'two') == metrics(work / 'local')}")


if __name__ == "__main__":
    main()

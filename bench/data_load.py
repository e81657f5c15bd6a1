"""Dataset load times: cold (decode everything, write the cache) and warm (cache hit).

    python bench/data_load.py [--data-root DIR] [--image-size 32]

For each dataset found under the data root (default: $RSDISTILL_TEST_DATA, else
../shared/datasets beside the repo, else the usual data root), loads it into a
fresh temporary cache directory (cold), again in the same process (warm), and once
more in a fresh Python process (warm, fresh process: the load itself, and the whole
run including interpreter start and imports). Prints a Markdown table and checks the
goals: warm EuroSAT at 32 px <= 2 s, cold UC Merced <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("ucmerced", "eurosat", "aid", "nwpu_resisc45")
GOALS = {("eurosat", "warm_s"): 2.0, ("ucmerced", "cold_s"): 30.0}


def default_root() -> Path:
    env = os.environ.get("RSDISTILL_TEST_DATA")
    if env:
        return Path(env)
    shared = REPO.parent / "shared" / "datasets"
    if shared.is_dir():
        return shared
    from rsdistill.data.dataset import default_data_root

    return default_data_root()


def timed_load(name: str, root: str, size: int, cache: str, workers: int | None):
    from rsdistill.data import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(name, root, size, cache_dir=cache, allow_missing_classes=True,
                      workers=workers, progress=False)
    return ds, time.perf_counter() - t0


def child(name: str, root: str, size: int, cache: str) -> int:
    """Warm load in a fresh process; prints its timings as JSON."""
    t0 = time.perf_counter()
    import rsdistill.data.decode as decode_mod

    def no_decode(*a, **k):
        raise RuntimeError("cache miss in the warm child")

    decode_mod.decode_images = no_decode
    import_s = time.perf_counter() - t0
    ds, load_s = timed_load(name, root, size, cache, None)
    print(json.dumps({"import_s": import_s, "load_s": load_s, "n": len(ds)}))
    return 0


def machine() -> dict:
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "load": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, help="folder with the dataset zips/folders")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--workers", type=int, help="decode processes (default: all cores)")
    ap.add_argument("--no-fresh-process", dest="fresh", action="store_false",
                    help="skip the warm load in a fresh process")
    ap.add_argument("--_child", nargs=4, metavar=("NAME", "ROOT", "SIZE", "CACHE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        name, root, size, cache = args._child
        return child(name, root, int(size), cache)

    from rsdistill.data import DATASETS as SPECS, locate
    from rsdistill.errors import RsdistillError

    # The partial NWPU copy is loaded with allow_missing_classes on purpose: keep its
    # "classes missing" warning out of the output.
    logging.getLogger("rsdistill").setLevel(logging.ERROR)

    root = (args.data_root or default_root()).expanduser()
    info = machine()
    print(f"# data loading, {args.image_size} px, data root {root}")
    print(f"# {info['cpu']}, {info['cores']} cores, load avg {info['load'][0]:.2f}, "
          f"python {info['python']}, torch {info['torch']}, {info['date']}")
    rows = []
    for name in args.datasets:
        try:
            locate(SPECS.get(name), root)
        except RsdistillError as exc:
            print(f"# {name}: skipped ({exc})", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix=f"rsdistill-bench-{name}-") as cache:
            load_before = os.getloadavg()[0]
            ds, cold = timed_load(name, str(root), args.image_size, cache, args.workers)
            _, warm = timed_load(name, str(root), args.image_size, cache, args.workers)
            row = {"dataset": name, "images": len(ds), "classes": ds.num_classes,
                   "cold_s": cold, "warm_s": warm, "load_avg": load_before,
                   "cache_mib": ds.cache_path.stat().st_size / 2**20}
            if args.fresh:
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, __file__, "--_child", name, str(root),
                     str(args.image_size), cache], capture_output=True, text=True,
                    env={**os.environ, "PYTHONPATH": os.pathsep.join(
                        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)})
                total = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"fresh-process load of {name} failed:\n{proc.stderr}")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                row.update(fresh_load_s=res["load_s"], fresh_total_s=total)
            rows.append(row)
            print(f"# {name}: cold {cold:.2f} s, warm {warm:.3f} s", file=sys.stderr)

    head = ("| dataset | images | classes | cold s | cold img/s | warm s (same process) "
            "| warm s (fresh process: load / whole run) | cache MiB | load avg |")
    print(head)
    print("|" + "---|" * 9)
    for r in rows:
        fresh = (f"{r['fresh_load_s']:.3f} / {r['fresh_total_s']:.2f}"
                 if "fresh_load_s" in r else "-")
        print(f"| {r['dataset']} | {r['images']:,} | {r['classes']} | {r['cold_s']:.2f} "
              f"| {r['images'] / r['cold_s']:,.0f} | {r['warm_s']:.3f} | {fresh} "
              f"| {r['cache_mib']:.1f} | {r['load_avg']:.2f} |")
    ok = True
    by_name = {r["dataset"]: r for r in rows}
    for (name, key), limit in GOALS.items():
        if name not in by_name or args.image_size != 32:
            continue
        values = [by_name[name][key]]
        if key == "warm_s" and "fresh_load_s" in by_name[name]:
            values.append(by_name[name]["fresh_load_s"])
        worst = max(values)
        passed = worst <= limit
        ok &= passed
        print(f"goal {name} {key.replace('_s', '')} <= {limit:g} s: {worst:.2f} s "
              f"{'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

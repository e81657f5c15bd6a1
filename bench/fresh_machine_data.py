"""What `rsdistill run --dataset ucmerced --download` spends on data before training,
on a stand-in for the official archive (no network here).

    python bench/fresh_machine_data.py [--shared DIR] [--work DIR]

Builds a stand-in for the official UCMerced_LandUse.zip (317 MiB: 2,100 uncompressed
256×256 TIFFs, deflated) from the shared compact copy: its 128 px JPEG scenes upscaled
to 256×256 and written the same way (293 MiB). Then times, each in this process: the download path
(`download_file` from a file:// URL: stream, md5, fsync, rename; a local copy, so
it measures the disk and the md5, not a network) and the first load at 32 px (list the
zip, inflate, decode and resize every TIFF in worker processes, write the cache).
Prints one Markdown row per step with the load average.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "UCMerced_LandUse.zip"


def build_stand_in(shared: Path, dest: Path) -> None:
    from PIL import Image

    with zipfile.ZipFile(shared / "ucmerced.zip") as src, \
            zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            if not name.lower().endswith(".jpg"):
                continue
            img = Image.open(io.BytesIO(src.read(name))).convert("RGB")
            buf = io.BytesIO()
            img.resize((256, 256), Image.Resampling.BICUBIC).save(buf, "TIFF")
            out.writestr(name[:-4] + ".tif", buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("RSDISTILL_TEST_DATA",
                                                       str(REPO.parent / "shared" / "datasets")))
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    from rsdistill.data import load_dataset
    from rsdistill.data.download import download_file, md5sum

    work = Path(args.work or tempfile.mkdtemp(prefix="rsdistill-fresh-"))
    server, root, cache = work / "server", work / "data", work / "cache"
    server.mkdir(parents=True, exist_ok=True)
    archive = server / NAME
    if not archive.is_file():
        build_stand_in(Path(args.shared), archive)
    checksum = md5sum(archive)
    rows = []
    t0 = time.perf_counter()
    download_file(archive.as_uri(), root / NAME, md5=checksum, progress=False)
    rows.append(("download (file://: copy + md5 + fsync)", time.perf_counter() - t0))
    t0 = time.perf_counter()
    ds = load_dataset("ucmerced", root, 32, cache_dir=cache, progress=False)
    rows.append((f"first load, {len(ds)} images at 32 px", time.perf_counter() - t0))
    print(f"archive: {archive.stat().st_size / 2**20:.1f} MiB, {os.cpu_count()} cores")
    print("| step | s | load avg |\n|---|---|---|")
    for step, seconds in rows:
        print(f"| {step} | {seconds:.1f} | {os.getloadavg()[0]:.2f} |")


if __name__ == "__main__":
    main()

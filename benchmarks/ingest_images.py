"""Image ingest throughput: the full ingest (decode in a process pool, ordered, written to an archive) against
decode-only of the same files with the same number of worker processes, timed in the same run.

    python benchmarks/ingest_images.py [--n 2000] [--file-size 256] [--size 256] [--bits 16] [--workers 2]

Files are all-sky-like grey PNG frames (circular field of view, smooth aurora-like structure, stars, noise).
Both paths list the folder and decode every file with the same function in the same pool; the baseline only
counts the decoded frames, the ingest also ships them to the writer, compresses and commits whole chunks and
writes the metadata. Runs alternate (baseline, ingest, baseline, ...) and the best of each is kept. Prints
images/s of both and their ratio (goal ≥ 0.8).

Because wall-clock rates on a shared machine depend on what else runs, the CPU time of the whole process tree
(this process, the forkserver and the decode workers, sampled from /proc) is also printed per image: on an
otherwise idle machine whose cores are all busy decoding, the wall-clock ratio approaches the CPU ratio
decode-only CPU per image / ingest CPU per image.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import threading
import time

import numpy as np
from PIL import Image

from spacessl.ingest.decode import DecodeSpec, choose_layout, decode_only_batch
from spacessl.ingest.parallel import default_workers, ordered_map

# spacessl.ingest.images (it imports the archive writer: Zarr, Dask) is imported inside the functions: decode
# worker processes re-import this script as their main module and should only pay for what they use.


def make_files(folder: str, n: int, size: int, bits: int, seed: int = 0) -> None:
    """``n`` PNG frames under folder/cam{k}/ (four cameras), ``bits`` 8 or 16."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size] - size / 2) / (size / 2)
    r2 = xx**2 + yy**2
    fov = r2 < 0.95
    top = 65535 if bits == 16 else 255
    for i in range(n):
        lat = rng.uniform(-0.6, 0.6)
        arc = np.exp(-((yy - lat - 0.15 * xx**2) / rng.uniform(0.03, 0.2)) ** 2) * rng.uniform(0.2, 0.8)
        glow = 0.1 + 0.05 * (xx * np.cos(i) + yy * np.sin(i))
        img = (glow + arc) * fov
        stars = rng.integers(0, size, (40, 2))
        img[stars[:, 0], stars[:, 1]] += 0.3 * fov[stars[:, 0], stars[:, 1]]
        img = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1) * top
        cam = f"cam{i % 4}"
        os.makedirs(os.path.join(folder, cam), exist_ok=True)
        a = img.astype(np.uint16 if bits == 16 else np.uint8)
        Image.fromarray(a).save(os.path.join(folder, cam, f"frame_{i:06d}.png"))


class TreeCPU:
    """CPU seconds used by this process and all its descendants while the block runs (Linux /proc sampling)."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.seconds = 0.0

    @staticmethod
    def _descendants() -> dict[int, float]:
        """pid -> CPU seconds of every descendant, walking /proc/PID/task/TID/children."""
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[int, float] = {}
        todo = [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo += [int(c) for c in f.read().split()]
                if pid != os.getpid():
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    out[pid] = (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                continue
        return out

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            for pid, t in self._descendants().items():
                self._seen[pid] = max(t, self._seen.get(pid, 0.0))

    def __enter__(self) -> TreeCPU:
        self._before = {pid: t for pid, t in self._descendants().items()}
        self._seen: dict[int, float] = dict(self._before)
        self._self0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for pid, t in self._descendants().items():
            self._seen[pid] = max(t, self._seen.get(pid, 0.0))
        children = sum(t - self._before.get(pid, 0.0) for pid, t in self._seen.items())
        self.seconds = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - self._self0 + children


def decode_only(src: str, size: int, workers: int) -> int:
    """List the folder, choose the layout and decode every file in the pool; frames are counted and dropped."""
    from spacessl.ingest.images import BATCH_FILES, list_image_files

    rel = list_image_files(src)
    paths = [os.path.join(src, r) for r in rel]
    channels, dtype = choose_layout(paths)
    spec = DecodeSpec(size=size, channels=channels, dtype=dtype)
    batches = ([(i, paths[i], None) for i in range(b, min(b + BATCH_FILES, len(paths)))]
               for b in range(0, len(paths), BATCH_FILES))
    return sum(ordered_map(decode_only_batch, batches, workers=workers, preload=["spacessl.ingest.decode"],
                           spec=spec))


def main() -> None:
    from spacessl.ingest.images import ingest_images

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="number of files")
    p.add_argument("--file-size", type=int, default=256, help="pixels of the files")
    p.add_argument("--size", type=int, default=256, help="pixels of the archive samples")
    p.add_argument("--bits", type=int, choices=(8, 16), default=16)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({default_workers()} usable), "
          f"python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        t0 = time.perf_counter()
        make_files(src, args.n, args.file_size, args.bits)
        print(f"wrote {args.n} {args.bits}-bit PNG files of {args.file_size} px in {time.perf_counter() - t0:.1f} s, "
              f"load average {os.getloadavg()[0]:.1f}")
        decode_only(src, args.size, args.workers)                       # warm the page cache and the pool code
        best_dec, best_ing = 0.0, 0.0
        cpu_dec, cpu_ing = [], []
        for rep in range(args.repeats):
            with TreeCPU() as c:
                t0 = time.perf_counter()
                good = decode_only(src, args.size, args.workers)
                dec = good / (time.perf_counter() - t0)
            cpu_dec.append(c.seconds / good)
            out = os.path.join(tmp, f"bench{rep}.zarr")
            with TreeCPU() as c:
                t0 = time.perf_counter()
                report = ingest_images(src, out, size=args.size, workers=args.workers, chunk_size=args.chunk,
                                       progress=False)
                ing = report.n_samples / (time.perf_counter() - t0)
            cpu_ing.append(c.seconds / report.n_samples)
            assert report.n_samples == good == args.n
            best_dec, best_ing = max(best_dec, dec), max(best_ing, ing)
            print(f"  run {rep}: decode-only {dec:8.1f} img/s ({1000 * cpu_dec[-1]:.2f} ms CPU/img)   "
                  f"ingest {ing:8.1f} img/s ({1000 * cpu_ing[-1]:.2f} ms CPU/img)   ratio {ing / dec:.2f}",
                  flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"decode-only (baseline, {args.workers} workers): {best_dec:.1f} images/s, "
              f"{1000 * min(cpu_dec):.2f} ms CPU per image")
        print(f"full ingest ({args.workers} workers, {report.layout}): {best_ing:.1f} images/s, "
              f"{1000 * min(cpu_ing):.2f} ms CPU per image")
        print(f"ratio ingest / decode-only: {best_ing / best_dec:.2f} wall clock, "
              f"{min(cpu_dec) / min(cpu_ing):.2f} CPU (goal >= 0.8)")


if __name__ == "__main__":
    main()

"""Reader throughput: the shuffled, prefetching stream against a plain sequential zarr read of the same chunks.

    python benchmarks/reader.py [--n 8192] [--size 128] [--chunk 256]

Prints frames/s of both and their ratio (goal ≥ 0.9), and the absolute rate (it must comfortably exceed the
~3,000 frames/s a modern GPU consumes for ResNet-18 at 128 px).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from spacessl.archive import ArchiveWriter, open_archive


def build(url: str, n: int, size: int, chunk: int) -> None:
    """Frames with smooth structure plus noise, so that compression behaves like real sky images."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    with ArchiveWriter(url, modality="image", sample_shape=(1, size, size), dtype="uint16", units="DN",
                       channels=["gray"], chunk_size=chunk, label_names=["a", "b"]) as w:
        for i in range(0, n, chunk):
            k = min(chunk, n - i)
            phase = rng.uniform(0, 6.28, size=(k, 1, 1))
            base = 2000 + 1500 * np.sin(6 * xx[None] + phase) * np.cos(4 * yy[None] - phase)
            frames = (base + rng.normal(0, 40, size=(k, size, size))).clip(0, 16383).astype(np.uint16)
            w.append(frames[:, None], input_index=i, time_ns=np.arange(i, i + k) * 3 * 10**9, source="gill",
                     origin="bench", label=rng.integers(0, 2, k))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fields", nargs="*", default=["label"], help="meta fields streamed with the samples")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"{tmp}/bench.zarr"
        t0 = time.perf_counter()
        build(url, args.n, args.size, args.chunk)
        print(f"built {args.n} frames of {args.size} px in {time.perf_counter() - t0:.1f} s")
        a = open_archive(url)
        chunks = a.shards(1, 0, epoch=0, seed=0)
        raw = a.group["samples"]
        best_base, best_stream = 0.0, 0.0
        for rep in range(args.repeats):  # interleave to share the machine's noise fairly
            t0 = time.perf_counter()
            count = 0
            for c in chunks:
                s0, s1 = a.chunk_range(c)
                block = raw[s0:s1]
                for b0 in range(0, len(block), args.batch):
                    count += len(block[b0:b0 + args.batch])
            best_base = max(best_base, count / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            count = 0
            for batch in a.stream(chunks, batch_size=args.batch, shuffle=True, seed=rep, prefetch=2,
                                  buffer_chunks=2, fields=args.fields):
                count += len(batch)
            best_stream = max(best_stream, count / (time.perf_counter() - t0))
        print(f"sequential zarr read (baseline): {best_base:10.0f} frames/s")
        print(f"shuffled prefetching stream:     {best_stream:10.0f} frames/s")
        print(f"ratio stream / baseline:         {best_stream / best_base:10.2f}   (goal >= 0.9)")
        print(f"absolute vs GPU demand (3000/s): {best_stream / 3000:10.1f} x")


if __name__ == "__main__":
    main()

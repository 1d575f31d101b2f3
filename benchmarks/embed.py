"""Embedding-job throughput against a plain in-memory ``torch.no_grad()`` loop with the same threads.

    python benchmarks/embed.py [--n 8192] [--size 64] [--batch 256] [--workers N] [--repeats 2]

Builds a synthetic all-sky-like archive (uint16 frames) and a randomly initialised ResNet-18 checkpoint, then times

- job: ``embed_archive`` end to end on a local Ray (started beforehand, as a cluster would be): actor start and
  model load, reading every shard from the archive, Preprocess, encoder, L2 normalisation and the atomic shard
  writes;
- baseline: the same batches (each shard cut into ``--batch`` batches from its start) already decoded in memory,
  ``encoder(preprocess(batch))`` under ``torch.no_grad()`` in this process, with ``torch.set_num_threads`` equal to
  the total threads of the job's actors.

Prints samples/s of both and job/baseline (goal ≥ 0.85). Runs alternate, best of ``--repeats`` each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8192, help="frames in the archive")
    p.add_argument("--size", type=int, default=64, help="frame side in px")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--shard-chunks", type=int, default=4)
    p.add_argument("--workers", type=int, default=None, help="actors (default: the job's own choice)")
    p.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()

    import ray

    from spacessl.archive import open_archive
    from spacessl.embed.embedder import Embedder
    from spacessl.embed.job import embed_archive, plan_workers
    from tests.embed.fixtures import make_image_archive, save_tiny_encoder

    tmp = Path(tempfile.mkdtemp(prefix="spacessl-bench-embed-"))
    try:
        t0 = time.perf_counter()
        url = make_image_archive(tmp / "a.zarr", n=args.n, size=args.size, chunk_size=args.chunk,
                                 shard_chunks=args.shard_chunks)
        ckpt = save_tiny_encoder(tmp / "ckpt", embed_dim=512)  # ResNet-18, 512-d (the real model's size)
        archive = open_archive(url)
        print(f"archive: {args.n} frames of {args.size} px uint16, {archive.num_shards} shards "
              f"({time.perf_counter() - t0:.1f} s to build); model: ResNet-18 → 512-d")
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        device, n_actors, threads = plan_workers(archive.num_shards, cpus=args.cpus, gpus=0, workers=args.workers)
        total_threads = n_actors * threads
        print(f"job plan: {n_actors} actor(s) × {threads} thread(s) on {args.cpus} CPUs; baseline: "
              f"{total_threads} thread(s)")

        # the baseline's batches: exactly the job's (each shard cut from its start), decoded up front
        batches = []
        for s in range(archive.num_shards):
            start, stop = archive.shard_range(s)
            block = archive.read(start, stop, fields=[]).samples
            batches += [block[b:b + args.batch] for b in range(0, len(block), args.batch)]
        torch.set_num_threads(total_threads)
        emb = Embedder.load(ckpt, archive, device="cpu")
        with torch.no_grad():  # warm-up (allocator, oneDNN primitive cache)
            emb.encoder(emb.preprocess(batches[0]))

        def baseline() -> float:
            t = time.perf_counter()
            with torch.no_grad():
                for b in batches:
                    emb.encoder(emb.preprocess(b))
            return args.n / (time.perf_counter() - t)

        def job(rep: int) -> tuple[float, float]:
            out = tmp / f"e{rep}.zarr"
            t = time.perf_counter()
            r = embed_archive(ckpt, url, str(out), workers=args.workers, batch_size=args.batch, progress=False)
            wall = time.perf_counter() - t
            shutil.rmtree(out, ignore_errors=True)
            return args.n / wall, args.n / max(1e-9, wall - r.startup_s)

        jobs, steadies, bases = [], [], []
        for rep in range(args.repeats):  # alternate, so both sides share the machine's load swings
            j, steady = job(rep)
            b = baseline()
            jobs.append(j)
            steadies.append(steady)
            bases.append(b)
            print(f"  run {rep + 1}: job {j:.1f} samples/s end to end ({steady:.1f} after the actors' start-up), "
                  f"baseline {b:.1f} samples/s, ratio {j / b:.2f}", flush=True)
        ratios = [j / b for j, b in zip(jobs, bases)]
        print(f"job: {max(jobs):.1f} samples/s end to end (best of {args.repeats})   baseline (torch.no_grad loop, "
              f"in memory, {total_threads} threads): {max(bases):.1f} samples/s (best)   ratio of bests: "
              f"{max(jobs) / max(bases):.2f}   median paired ratio: {statistics.median(ratios):.2f} (goal >= 0.85)")
        print(f"job after start-up (actor start and model load excluded): {max(steadies):.1f} samples/s   ratio: "
              f"{max(steadies) / max(bases):.2f}")
        ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Waveform ingest throughput: the full ingest against ``obspy.read`` + the same trigger on the same files, timed
in the same run.

    python benchmarks/ingest_waveforms.py [--stations 2] [--days 2] [--num-cpus 2] [--repeats 2] [--data DIR]

Data: the synthetic continuous set (``spacessl.synth.continuous.write_continuous``: full-day 3-component 100 Hz
STEIM2 miniSEED files with events), generated once into ``--data`` (default out/bench/continuous_S{n}_D{d}).
Baseline, per station-day file, in one process: ``obspy.read`` and, on every component, demean + 1-20 Hz
band-pass + ObsPy ``recursive_sta_lta`` (0.5 s / 10 s) + ``trigger_onset`` (3.5 / 1.5) -- the ingest's default
trigger. Ingest: ``ingest_waveforms`` with its defaults (header scan, day pads, merge, trigger, windows, staging,
ordered append, compression), once in-process (one core, directly comparable to the baseline) and once on a local
Ray with ``--num-cpus`` workers. Runs alternate and the best of ``--repeats`` is kept. Prints station-days/s, the
multiple of real time (seconds of 3-component record per wall second) in total and per core, and the ratio
ingest / baseline per core (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def baseline(files: list[str]) -> tuple[float, int]:
    """(seconds, triggers): obspy.read + the same trigger on every component of every file, one process."""
    import obspy
    from obspy.signal.filter import bandpass
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    t0 = time.perf_counter()
    n = 0
    for f in files:
        for tr in obspy.read(f):
            sr = tr.stats.sampling_rate
            x = tr.data.astype(np.float64)
            x -= x.mean()
            x = bandpass(x, 1.0, 20.0, df=sr, corners=4, zerophase=False)
            cf = recursive_sta_lta(x, int(0.5 * sr), int(10 * sr))
            n += len(trigger_onset(cf, 3.5, 1.5))
    return time.perf_counter() - t0, n


def ingest(data: str, out: str, *, use_ray: bool, num_cpus: int) -> tuple[float, int]:
    from spacessl.ingest.waveforms import ingest_waveforms

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = ingest_waveforms([data], out, use_ray=use_ray, num_cpus=num_cpus, progress=False, overwrite=True)
    return time.perf_counter() - t0, s.windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, default=2)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--num-cpus", type=int, default=2, help="Ray workers of the parallel ingest run")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default=None, help="folder of the synthetic set (generated if absent)")
    args = ap.parse_args()

    from spacessl.synth.continuous import write_continuous

    data = Path(args.data or f"out/bench/continuous_S{args.stations}_D{args.days}")
    if not (data / "catalog.csv").exists():
        print(f"generating {args.stations} stations x {args.days} days into {data} ...", flush=True)
        write_continuous(data, stations=args.stations, days=args.days, seed=0, overwrite=True, progress=False)
    files = sorted(str(p) for p in data.glob("*.mseed"))
    n_sd = len(files)
    record_s = n_sd * 86400.0
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    print(f"{n_sd} station-days ({mb:.0f} MB miniSEED, 3 x 100 Hz) on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)

    import ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    tmp = tempfile.mkdtemp(prefix="bench_wf_")
    try:
        baseline(files[:1])  # warm the page cache and the imports (here and in every Ray worker)
        import spacessl.archive  # noqa: F401
        import spacessl.ingest.windows  # noqa: F401

        @ray.remote(num_cpus=1)
        def warm() -> int:
            import spacessl.ingest.waveforms  # noqa: F401
            import obspy.signal.trigger  # noqa: F401
            import scipy.signal  # noqa: F401

            time.sleep(2.0)
            return os.getpid()

        ray.get([warm.remote() for _ in range(args.num_cpus)])
        best = {"baseline": np.inf, "ingest (1 process)": np.inf, f"ingest (Ray, {args.num_cpus} CPUs)": np.inf}
        counts = {}
        for r in range(args.repeats):
            t, counts["baseline"] = baseline(files)
            best["baseline"] = min(best["baseline"], t)
            t, counts["ingest (1 process)"] = ingest(str(data), f"{tmp}/local.zarr", use_ray=False, num_cpus=1)
            best["ingest (1 process)"] = min(best["ingest (1 process)"], t)
            t, counts[f"ingest (Ray, {args.num_cpus} CPUs)"] = ingest(str(data), f"{tmp}/ray.zarr", use_ray=True,
                                                                     num_cpus=args.num_cpus)
            best[f"ingest (Ray, {args.num_cpus} CPUs)"] = min(best[f"ingest (Ray, {args.num_cpus} CPUs)"], t)
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in best.items()), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    cores = {"baseline": 1, "ingest (1 process)": 1, f"ingest (Ray, {args.num_cpus} CPUs)": args.num_cpus}
    print(f"\n| run | s | station-days/s | x real time | x real time per core | triggers / windows |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, t in best.items():
        print(f"| {k} | {t:.1f} | {n_sd / t:.3f} | {record_s / t:.0f} | {record_s / t / cores[k]:.0f} | {counts[k]} |")
    base = n_sd / best["baseline"]
    one = n_sd / best["ingest (1 process)"]
    par = n_sd / best[f"ingest (Ray, {args.num_cpus} CPUs)"] / args.num_cpus
    print(f"\ningest / baseline per core: {one / base:.2f} (1 process), {par / base:.2f} (Ray, per CPU); goal >= 0.8")


if __name__ == "__main__":
    main()

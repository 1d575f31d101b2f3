"""Training throughput (samples/s) of the same model and global batch fed four ways, measured in one run:

  (a)  plain PyTorch loop on in-memory, already preprocessed tensors, no augmentation (the baseline)
  (a+) the same with the view augmentations (what augmenting costs)
  (b)  the archive reader (Archive.stream over chunk shares) + Preprocess + augmentations: the training data path
  (c1) Ray Train, 1 worker, the real train_loop_per_worker (MLflow to a temporary SQLite store)
  (c2) Ray Train, 2 gloo workers, the same global batch split in two
  (d)  the data path of (b) alone, with no model to feed: how far it could outrun the step

Goals: (b)/(a) >= 0.9 (the data path never starves the model), (c1)/(a) >= 0.9 (Ray Train costs nothing per step).
Every figure is steady state: the first ``--warmup`` steps are not timed; for (c) the rate is the mean of the
per-window ``samples_per_s`` the loop logs, without the first window.

    python benchmarks/train_throughput.py                       # synthetic 64 px frames, configs/demo_aurora.yaml
    python benchmarks/train_throughput.py --config configs/demo_seismic.yaml --archive seismic.zarr
    python benchmarks/train_throughput.py --set runtime.reader_processes=2    # (b), (c), (d) read in 2 processes
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def synthetic_archive(path: Path, config, n: int = 2048) -> str:
    """Random frames or windows shaped like the config's data (content does not matter for throughput)."""
    from spacessl.archive import ArchiveWriter

    rng = np.random.default_rng(0)
    n = max(256, n // 256 * 256)
    if config.model.encoder == "resnet1d":
        shape, dtype, kw = (3, 1000), np.float32, dict(modality="waveform", units="counts",
                                                        channels=["Z", "N", "E"],
                                                        attrs={"sampling_rate_hz": 100.0, "window_s": 10.0})
    else:
        side = config.data.input_size or 64
        shape, dtype, kw = (1, side, side), np.uint16, dict(modality="image", units="DN", channels=["gray"])
    with ArchiveWriter(str(path), sample_shape=shape, dtype=np.dtype(dtype).name, chunk_size=256,
                       label_names=["a", "b"], **kw) as w:
        for i in range(n // 256):
            x = (rng.random((256, *shape)) * (4000 if dtype == np.uint16 else 1)).astype(dtype)
            w.append(x, input_index=i, time_ns=np.arange(256, dtype=np.int64) + i * 256, source="bench",
                     origin="bench", label=rng.integers(0, 2, 256).astype(np.int16))
    return str(path)


def timed(step, n_warm: int, n_steps: int, batch: int) -> float:
    for _ in range(n_warm):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync()
    return n_steps * batch / (time.perf_counter() - t)


def sync() -> None:
    """Wait for queued CUDA work, so that a timer sees finished steps."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def data_path(cfg, archive, preprocess, batch: int, device: torch.device):
    """The training loop's data path as the config sets it (threads of this process, or
    ``runtime.reader_processes`` loader processes), endless: batches (B, ...) preprocessed on ``device``."""
    from spacessl.train import data as tdata
    from spacessl.train.loader import EpochWork, train_batches

    pool = list(range(archive.num_chunks))
    work = [EpochWork(e, tdata.plan_epoch(archive, pool, world_size=1, rank=0, epoch=e, seed=0, local_batch=batch),
                      seed=e) for e in range(1000)]
    with train_batches(archive, work, processes=cfg.runtime.reader_processes, local_batch=batch,
                       preprocess=preprocess, device=device, prefetch=cfg.data.prefetch,
                       buffer_chunks=cfg.data.buffer_chunks) as loader:
        for w in work:
            yield from loader.epoch(w.epoch)


def local_rates(cfg, archive_url: str, warm: int, steps: int, device: torch.device) -> dict[str, float]:
    from spacessl.archive import open_archive
    from spacessl.train.loop import build_components, build_optimizer, train_step

    torch.set_num_threads(os.cpu_count() or 1)
    archive = open_archive(archive_url)
    batch = cfg.train.batch_size
    torch.manual_seed(0)
    comps = build_components(cfg, archive)
    model = comps.method.to(device).train()
    opt = build_optimizer(cfg, model.parameters(), global_batch=batch)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = min(archive.n, 8 * batch)
    # (rows, ...) float32, already preprocessed and on the device
    memory = comps.preprocess(archive.read(0, rows, fields=[]).samples).to(device)
    state = {"i": 0}

    class _NoAug:
        def __call__(self, x, generator=None):
            return x

    def next_mem():
        i = state["i"] = (state["i"] + batch) % (rows - batch + 1)
        return memory[i:i + batch]

    rates = {}
    rates["a"] = timed(lambda: train_step(model, next_mem(), augment=_NoAug(), generator=None, optimizer=opt,
                                          scheduler=None), warm, steps, batch)
    rates["a+aug"] = timed(lambda: train_step(model, next_mem(), augment=comps.augment, generator=gen,
                                              optimizer=opt, scheduler=None), warm, steps, batch)
    it = data_path(cfg, archive, comps.preprocess, batch, device)  # the training loop's own data path
    rates["b"] = timed(lambda: train_step(model, next(it), augment=comps.augment, generator=gen, optimizer=opt,
                                          scheduler=None), warm, steps, batch)
    rates["data"] = timed(lambda: next(it), warm, 10 * steps, batch)  # the same data path, no model to feed
    it.close()
    return rates


def ray_rate(cfg, archive_url: str, workers: int, warm: int, steps: int, tmp: Path) -> float:
    from mlflow.tracking import MlflowClient

    from spacessl.train.run import train

    ncpu = os.cpu_count() or 1
    every = max(1, warm)
    c = cfg.model_copy(deep=True)
    c.name = f"bench-{workers}"
    c.data.archive = archive_url
    c.data.holdout_fraction = 0.0  # no kNN pass: only the training steps
    c.train.epochs = 1
    c.train.max_steps_per_epoch = warm + steps
    c.train.log_every_steps = every
    c.runtime.num_workers = workers
    c.runtime.cpus_per_worker = ncpu / workers
    c.runtime.storage_path = str(tmp / "runs")
    c.runtime.output_dir = str(tmp / "out")
    c.runtime.max_failures = 0
    c.tracking.uri = f"sqlite:///{tmp / 'mlflow.db'}"
    c.tracking.register_model = False
    result = train(c, overwrite=True)
    hist = MlflowClient(c.tracking.uri).get_metric_history(result.mlflow_run_id, "samples_per_s")
    values = [m.value for m in sorted(hist, key=lambda m: m.step)][1:]  # drop the warm-up window
    return float(np.mean(values))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs/demo_aurora.yaml"))
    p.add_argument("--archive", default="", help="archive to read (default: a synthetic one shaped like the data)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per measurement")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    p.add_argument("--no-ray", action="store_true", help="skip (c)")
    p.add_argument("--device", default="auto", help="device of (a) and (b): auto (cuda when present), cpu, cuda")
    p.add_argument("--n", type=int, default=2048, help="samples of the synthetic archive")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="dotted config overrides")
    args = p.parse_args()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))

    from spacessl.config import load_config

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TQDM_DISABLE", "1")
    cfg = load_config(args.config, args.set)
    with tempfile.TemporaryDirectory(prefix="spacessl-bench-") as d:
        tmp = Path(d)
        url = args.archive or synthetic_archive(tmp / "bench.zarr", cfg, args.n)
        print(f"config {args.config}: {cfg.model.method} {cfg.model.encoder}, global batch {cfg.train.batch_size}, "
              f"input {cfg.data.input_size or 'archive size'}; archive {url}")
        print("data path: " + (f"{cfg.runtime.reader_processes} loader process(es) per worker"
                               if cfg.runtime.reader_processes else "threads of the training process"))
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__}, {device_name(device)}, load average at start {os.getloadavg()[0]:.1f}")
        rates = local_rates(cfg, url, args.warmup, args.steps, device)
        if not args.no_ray:
            import ray

            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            try:
                rates["c1"] = ray_rate(cfg, url, 1, args.warmup, args.steps, tmp)
                gpus = ray.cluster_resources().get("GPU", 0)
                if 0 < gpus < 2 and cfg.runtime.use_gpu != "false":
                    print(f"(c2) skipped: {gpus:g} GPU here, and each GPU worker needs its own GPU")
                elif (os.cpu_count() or 1) >= 2 and cfg.train.batch_size % 2 == 0:
                    rates["c2"] = ray_rate(cfg, url, 2, args.warmup, args.steps, tmp)
            finally:
                ray.shutdown()
    names = {"a": "(a)  in-memory tensors, no augmentation", "a+aug": "(a+) in-memory tensors + augmentations",
             "b": "(b)  archive reader + preprocess + augmentations", "c1": "(c1) Ray Train, 1 worker",
             "c2": "(c2) Ray Train, 2 workers (gloo)", "data": "(d)  data path alone (stream → device, no model)"}
    for key, label in names.items():
        if key in rates:
            print(f"{label:52s} {rates[key]:8.1f} samples/s   ratio to (a) {rates[key] / rates['a']:.2f}")
    print(f"(b)/(a+) {rates['b'] / rates['a+aug']:.2f}: the archive reader's share alone (both sides augment)")
    print(f"goal (b)/(a) >= 0.9: {rates['b'] / rates['a']:.2f}"
          + (f"   goal (c1)/(a) >= 0.9: {rates['c1'] / rates['a']:.2f}" if "c1" in rates else ""))
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What Ray's own processes take from a training step that runs beside them on the same cores.

Starts a local Ray as ``spacessl train`` does (``connect_ray``: every CPU, dashboard on), runs the config's training
step (two augmented views of an in-memory batch, forward, loss, backward, optimiser) in a Ray Train worker, and
meanwhile alternates two phases of ``--phase`` seconds each: in one, every other process of this Ray session is
paused (SIGSTOP: GCS, raylet, dashboard and its modules, agents, log monitor, Ray Train's controller and helper
actors); in the other they run. The worker timestamps every step; steps wholly inside a paused phase are compared
with steps wholly inside a running one, and the ratio of their medians is Ray's share of the step on this machine.
``--control`` alternates the same phases without pausing anything (the ratio should then be 1: the split's own
bias). Every paused process is resumed before the script ends, whatever happens.

    python benchmarks/ray_background.py --config configs/demo_aurora.yaml --steps 450 --set model.encoder=resnet18_s2d
    python benchmarks/ray_background.py ... --control
    python benchmarks/ray_background.py ... --niceness 0     # the worker at the priority of Ray's own processes
    python benchmarks/ray_background.py ... --only log_monitor    # pause only these (command line contains)
    python benchmarks/ray_background.py ... --env LOG_NAME_UPDATE_INTERVAL_S=5    # Ray started with these variables
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def worker_steps(config: dict) -> list[tuple[float, float]]:
    """Ray Train worker: ``config["steps"]`` training steps on one in-memory batch; (start, end) wall time of each.

    Touches ``config["started"]`` before the first timed step and ``config["done"]`` after the last, so that the
    driver's phases cover only the steps."""
    import torch

    from spacessl.archive import open_archive
    from spacessl.config import Config
    from spacessl.train.loop import build_components, build_optimizer, train_step

    cfg = Config.model_validate(config["config"])
    torch.set_num_threads(cfg.runtime.torch_threads or max(1, round(cfg.runtime.cpus_per_worker)))
    archive = open_archive(cfg.data.archive)
    torch.manual_seed(0)
    comps = build_components(cfg, archive)
    model = comps.method.train()
    opt = build_optimizer(cfg, model.parameters(), global_batch=cfg.train.batch_size)
    x = comps.preprocess(archive.read(0, cfg.train.batch_size, fields=[]).samples)
    gen = torch.Generator().manual_seed(0)

    def step():
        train_step(model, x, augment=comps.augment, generator=gen, optimizer=opt, scheduler=None)

    for _ in range(3):
        step()
    Path(config["started"]).touch()
    times = []
    for _ in range(config["steps"]):
        t0 = time.time()
        step()
        times.append((t0, time.time()))
    Path(config["done"]).touch()
    return times


def session_processes(exclude: set[int], only: list[str] | None = None):
    """This driver's descendants (the Ray session it started) other than the pids in ``exclude`` and theirs; with
    ``only``, just those whose command line contains one of these strings."""
    import psutil

    skip = set(exclude)
    procs = psutil.Process().children(recursive=True)
    for p in procs:
        if p.pid in exclude:
            skip.update(c.pid for c in p.children(recursive=True))
    procs = [p for p in procs if p.pid not in skip]
    if only:
        procs = [p for p in procs if any(key in _command(p) for key in only)]
    return procs


def _command(proc) -> str:
    """A process's command line as one string; empty once it has gone."""
    import psutil

    try:
        return " ".join(proc.cmdline() or [])
    except psutil.Error:
        return ""


def alternate(phase_s: float, started: Path, done: Path, pause: bool, phases: list[tuple[float, float]],
              only: list[str] | None = None) -> None:
    """Paused / running phases from ``started`` until ``done`` exists; appends each paused phase's (start, end).
    Every process it paused runs again when it returns."""
    import psutil

    while not (started.exists() or done.exists()):
        time.sleep(0.1)
    workers = [p.pid for p in psutil.Process().children(recursive=True) if "RayTrainWorker" in _command(p)]
    while not done.exists():
        procs = session_processes(set(workers), only)
        t0 = time.time()
        try:
            if pause:
                _send(procs, signal.SIGSTOP)
            time.sleep(phase_s)
        finally:
            _send(procs, signal.SIGCONT)
        phases.append((t0, time.time()))
        time.sleep(phase_s)


def _send(procs, sig: int) -> None:
    """Send ``sig`` to each process that is still there."""
    import psutil

    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def split_steps(times: list[tuple[float, float]], phases: list[tuple[float, float]],
                margin_s: float = 0.2) -> tuple[list[float], list[float]]:
    """Step durations (s) wholly inside a paused phase (after ``margin_s``) and wholly outside all of them."""
    if not phases:
        return [], [b - a for a, b in times]
    paused, running = [], []
    for a, b in times:
        if a < phases[0][0]:
            continue
        if any(p0 + margin_s <= a and b <= p1 for p0, p1 in phases):
            paused.append(b - a)
        elif all(b < p0 or a > p1 + margin_s for p0, p1 in phases):
            running.append(b - a)
    return paused, running


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs/demo_aurora.yaml"))
    p.add_argument("--archive", default="", help="archive to read (default: a synthetic one shaped like the data)")
    p.add_argument("--steps", type=int, default=300, help="timed steps in the worker")
    p.add_argument("--phase", type=float, default=6.0, help="seconds of each paused and each running phase")
    p.add_argument("--control", action="store_true", help="alternate the phases without pausing anything")
    p.add_argument("--only", nargs="*", default=[], metavar="TEXT",
                   help="pause only the processes whose command line contains one of these (e.g. log_monitor)")
    p.add_argument("--niceness", type=int, default=15,
                   help="the worker's niceness over Ray's own processes (RAY_worker_niceness; Ray's default 15)")
    p.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="variables Ray is started with")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="dotted config overrides")
    args = p.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    for item in args.env:
        key, _, value = item.partition("=")
        os.environ[key] = value

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from spacessl.config import config_to_dict, load_config
    from spacessl.train.run import connect_ray
    from train_throughput import synthetic_archive

    paused_what = " ".join(args.only) if args.only else "Ray's other processes"
    cfg = load_config(args.config, args.set)
    cfg.runtime.cpus_per_worker = float(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="spacessl-raybg-") as d:
        tmp = Path(d)
        cfg.data.archive = args.archive or synthetic_archive(tmp / "bench.zarr", cfg)
        started, done = tmp / "started", tmp / "done"
        print(f"config {args.config}: {cfg.model.method} {cfg.model.encoder}, batch {cfg.train.batch_size}, "
              f"input {cfg.data.input_size or 'archive size'}; {'control' if args.control else 'pausing'} "
              f"{paused_what} in phases of {args.phase:g} s; worker niceness +{args.niceness}; "
              f"env {' '.join(args.env) or '(none)'}")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"load average at start {os.getloadavg()[0]:.1f}")
        phases: list[tuple[float, float]] = []
        connect_ray()
        thread = threading.Thread(target=alternate, daemon=True,
                                  args=(args.phase, started, done, not args.control, phases, args.only))
        thread.start()
        try:
            result = TorchTrainer(
                worker_steps,
                train_loop_config={"config": config_to_dict(cfg), "steps": args.steps, "started": str(started),
                                   "done": str(done)},
                scaling_config=ScalingConfig(num_workers=1, use_gpu=False,
                                             resources_per_worker={"CPU": cfg.runtime.cpus_per_worker}),
                run_config=RunConfig(name="ray-background", storage_path=str(tmp / "runs"),
                                     worker_runtime_env={"env_vars": {"RAY_worker_niceness": str(args.niceness)}}),
            ).fit()
        finally:
            done.touch()  # ends the phases and resumes what is paused, also when the run failed
            thread.join()
            ray.shutdown()
    paused, running = split_steps(result.return_value, phases)
    if not paused or not running:
        print("too few steps inside the phases: raise --steps or lower --phase")
        return 1
    mp, mr = statistics.median(paused), statistics.median(running)
    label = "not paused (control)" if args.control else f"{paused_what} paused"
    print(f"{label:40s} {len(paused):4d} steps, median {mp * 1000:7.1f} ms")
    print(f"{'Ray running beside the step':40s} {len(running):4d} steps, median {mr * 1000:7.1f} ms")
    print(f"running / paused: {mr / mp:.3f}   ({len(phases)} phases; load average at end {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

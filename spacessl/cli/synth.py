"""`spacessl synth aurora|seismic|continuous`: labelled synthetic data sets."""

from __future__ import annotations

import argparse


def _aurora(args: argparse.Namespace) -> int:
    from spacessl.synth.aurora import write_aurora_archive

    lo, hi = args.episode_frames
    out = write_aurora_archive(args.out, n=args.n, size=args.size, seed=args.seed, chunk_size=args.chunk_size,
                               shard_chunks=args.shard_chunks, rare_fraction=args.rare_fraction,
                               overwrite=args.overwrite, progress=not args.quiet, episode_frames=(lo, hi))
    print(f"wrote {args.n} all-sky frames ({args.size} px) to {out}")
    return 0


def _seismic(args: argparse.Namespace) -> int:
    from spacessl.synth.seismic import write_seismic_archive

    out = write_seismic_archive(args.out, n=args.n, seed=args.seed, sampling_rate_hz=args.sampling_rate,
                                window_s=args.window, chunk_size=args.chunk_size, shard_chunks=args.shard_chunks,
                                rare_fraction=args.rare_fraction, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {args.n} 3-component windows ({args.window:g} s at {args.sampling_rate:g} Hz) to {out}")
    return 0


def _continuous(args: argparse.Namespace) -> int:
    from spacessl.synth.continuous import write_continuous

    res = write_continuous(args.out_dir, stations=args.stations, days=args.days, seed=args.seed,
                           sampling_rate_hz=args.sampling_rate, start=args.start,
                           events_per_hour=args.events_per_hour, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {len(res['files'])} station-day miniSEED files with {res['n_events']} events to {args.out_dir}; "
          f"truth catalog {res['catalog']}")
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 0.5:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 0.5)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="make labelled synthetic data sets (all-sky frames, seismic windows, "
                                     "continuous records)")
    ssub = p.add_subparsers(dest="synth_command", required=True, metavar="KIND")

    def common(q: argparse.ArgumentParser, what: str) -> None:
        q.add_argument("--n", type=_positive, default=5000, help=f"number of {what} (default 5000)")
        q.add_argument("--seed", type=int, default=0, help="random seed; same seed, same archive (default 0)")
        q.add_argument("--rare-fraction", type=_fraction, default=0.0,
                       help="plant this fraction of rare samples labelled 'rare' (default 0: none)")
        q.add_argument("--chunk-size", type=_positive, default=256, help="samples per chunk (default 256)")
        q.add_argument("--shard-chunks", type=_positive, default=16, help="chunks per shard (default 16)")
        q.add_argument("--overwrite", action="store_true", help="replace an existing complete archive")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    a = ssub.add_parser("aurora", help="all-sky auroral frames, six OATH classes, camera-night sequences")
    a.add_argument("out", help="output archive (e.g. aurora.zarr)")
    common(a, "frames")
    a.add_argument("--size", type=_positive, default=128, help="frame side in px (default 128; THEMIS: 256)")
    a.add_argument("--episode-frames", type=_positive, nargs=2, default=(4, 16), metavar=("MIN", "MAX"),
                   help="consecutive 3 s frames per sequence (default 4 16; 1 1 gives independent frames)")
    a.set_defaults(func=_aurora)

    s = ssub.add_parser("seismic", help="3-component windows: icequake, earthquake, spike, noise")
    s.add_argument("out", help="output archive (e.g. seismic.zarr)")
    common(s, "windows")
    s.add_argument("--sampling-rate", type=float, default=100.0, help="Hz (default 100)")
    s.add_argument("--window", type=float, default=10.0, help="window length in s (default 10)")
    s.set_defaults(func=_seismic)

    c = ssub.add_parser("continuous", help="miniSEED day files with events at known times and a truth catalog")
    c.add_argument("out_dir", help="output folder")
    c.add_argument("--stations", type=_positive, default=3, help="number of stations (default 3)")
    c.add_argument("--days", type=_positive, default=2, help="number of days (default 2)")
    c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    c.add_argument("--sampling-rate", type=float, default=100.0, help="Hz (default 100)")
    c.add_argument("--start", default="2019-01-01", help="first day, YYYY-MM-DD (default 2019-01-01)")
    c.add_argument("--events-per-hour", type=float, default=6.0, help="mean event rate (default 6)")
    c.add_argument("--overwrite", action="store_true", help="replace day files and catalog already in OUT_DIR")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_continuous)


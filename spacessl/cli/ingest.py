"""`spacessl ingest SOURCE ...`: raw files → archive.

One ``_add_<source>(sub)`` function per source kind (it adds the subparser and its handler) and one entry in
``SOURCES``; handlers parse, call the library and print its report.
"""

from __future__ import annotations

import argparse


def _workers(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"--workers must be >= 0 (0 = no worker processes), got {n}")
    return n


def _images(args: argparse.Namespace) -> int:
    common = dict(size=args.size, channels=args.channels, strict=args.strict, workers=args.workers,
                  chunk_size=args.chunk_size, overwrite=args.overwrite, progress=not args.quiet)
    if args.format == "oath":
        from spacessl.errors import SpacesslError
        from spacessl.ingest.oath import ingest_oath

        if args.labels or args.source:
            raise SpacesslError("--format oath takes labels and sources from the OATH files; "
                                "drop --labels/--source or use --format folder")
        report = ingest_oath(args.src_dir, args.out, **common)
    else:
        from spacessl.ingest.images import ingest_images

        report = ingest_images(args.src_dir, args.out, labels_csv=args.labels, source=args.source, fit=args.fit,
                               **common)
    print(report.summary())
    return 0


def _add_images(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("images", help="image folder (PNG, JPEG, TIFF, PGM; 8/16 bit; grey or colour) or OATH",
                       description="Ingest every image under SRC_DIR (sorted by path) into an image archive. "
                                   "Rerun the same command to resume an interrupted ingest.")
    p.add_argument("src_dir", metavar="SRC_DIR", help="folder of images (searched recursively) or the OATH folder")
    p.add_argument("out", metavar="OUT.zarr", help="archive to write (local path, s3://, gs://)")
    p.add_argument("--format", choices=("folder", "oath"), default="folder",
                   help="folder: any image folder (default); oath: the published OATH layout with its labels")
    p.add_argument("--labels", metavar="CSV", help="CSV with columns filename,label (class names or integers)")
    p.add_argument("--size", type=int, default=256, help="output height and width in pixels (default 256)")
    p.add_argument("--channels", choices=("auto", "gray", "rgb"), default="auto",
                   help="archive channels; auto: rgb if the files hold real colour, else gray (default)")
    p.add_argument("--fit", choices=("crop", "stretch"), default="crop",
                   help="non-square images: crop the central square (default) or stretch")
    p.add_argument("--source", help="camera id for every sample (default: each file's parent folder name)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of listing it")
    p.add_argument("--workers", type=_workers, default=None, help="decoding processes (default: all CPUs)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per archive chunk (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_images)


def _themis(args: argparse.Namespace) -> int:
    from spacessl.ingest.themis import ingest_themis

    report = ingest_themis(args.sources, args.out, size=args.size, strict=args.strict, workers=args.workers,
                           chunk_size=args.chunk_size, overwrite=args.overwrite, progress=not args.quiet)
    print(report.summary())
    return 0


def _add_themis(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("themis", help="THEMIS ASI level-1 CDF files thg_l1_asf_SITE_YYYYMMDDHH_v01.cdf",
                       description="Ingest every frame of THEMIS ASI level-1 CDF files with its epoch time and "
                                   "site. Rerun the same command to resume an interrupted ingest.")
    p.add_argument("sources", metavar="SRC", nargs="+", help="CDF files or folders holding them")
    p.add_argument("out", metavar="OUT.zarr", help="archive to write (local path, s3://, gs://)")
    p.add_argument("--size", type=int, default=256, help="frame height and width (default 256 = native)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of listing it")
    p.add_argument("--workers", type=_workers, default=None, help="reader processes (default: all CPUs)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per archive chunk (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_themis)


def _waveforms(args: argparse.Namespace) -> int:
    from spacessl.ingest.waveforms import ingest_waveforms

    band = None if args.no_trigger_filter else tuple(args.trigger_band)
    summary = ingest_waveforms(
        args.sources, args.out, trigger=args.trigger, sta_s=args.sta, lta_s=args.lta, thr_on=args.on,
        thr_off=args.off, pre_s=args.pre, window_s=args.window, components=args.components,
        sampling_rate_hz=args.resample, stride_s=args.stride, channels=args.channels,
        trigger_component=args.trigger_component, trigger_band_hz=band, coincidence=args.coincidence,
        coincidence_tolerance_s=args.coincidence_tolerance, inventory=args.inventory,
        remove_response=args.remove_response, response_output=args.response_output, labels=args.labels,
        label_tolerance_s=args.label_tolerance, chunk_size=args.chunk_size, shard_chunks=args.shard_chunks,
        overwrite=args.overwrite, use_ray=not args.no_ray, ray_address=args.address, num_cpus=args.num_cpus,
        progress=not args.quiet)
    print(summary)
    return 0


def _add_waveforms(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("waveforms", help="continuous seismic records (anything obspy.read reads) → event windows",
                       description="Cut STA/LTA-triggered (or regular) multi-component windows out of continuous "
                                   "records, one Ray task per station-day. Rerun the same command to resume an "
                                   "interrupted ingest; bad windows and files are listed in OUT.rejects.csv.")
    p.add_argument("sources", metavar="SRC", nargs="+", help="files, folders (recursive) or glob patterns")
    p.add_argument("out", metavar="OUT.zarr", help="archive to write (local path, s3://, gs://)")
    g = p.add_argument_group("trigger")
    g.add_argument("--trigger", choices=("recursive", "classic", "none"), default="recursive",
                   help="ObsPy recursive or classic STA/LTA, or none: regular windows every --stride (default "
                        "recursive)")
    g.add_argument("--sta", type=float, default=0.5, help="short-term average length, s (default 0.5)")
    g.add_argument("--lta", type=float, default=10.0, help="long-term average length, s (default 10)")
    g.add_argument("--on", type=float, default=3.5, help="STA/LTA trigger-on threshold (default 3.5)")
    g.add_argument("--off", type=float, default=1.5, help="STA/LTA trigger-off threshold (default 1.5)")
    g.add_argument("--trigger-component", default="", metavar="LETTERS",
                   help="components to detect on, e.g. Z; triggers of several are merged (default: all)")
    g.add_argument("--trigger-band", type=float, nargs=2, default=(1.0, 20.0), metavar=("FMIN", "FMAX"),
                   help="band-pass before STA/LTA, Hz (default 1 20; high-pass only if FMAX >= Nyquist)")
    g.add_argument("--no-trigger-filter", action="store_true", help="run STA/LTA on the unfiltered data")
    g.add_argument("--coincidence", type=int, default=1, metavar="N",
                   help="keep only triggers seen by at least N stations (ObsPy coincidence_trigger; default 1)")
    g.add_argument("--coincidence-tolerance", type=float, default=2.0, metavar="S",
                   help="a trigger may start up to S s after another ends and still coincide (default 2)")
    g = p.add_argument_group("windows")
    g.add_argument("--pre", type=float, default=2.0, help="window start before the trigger onset, s (default 2)")
    g.add_argument("--window", type=float, default=10.0, help="window length, s (default 10)")
    g.add_argument("--stride", type=float, default=10.0, help="window spacing with --trigger none, s (default 10)")
    g.add_argument("--components", default="ZNE",
                   help="archive channel order by last letter of the channel code; 1/2 stand in for N/E "
                        "(default ZNE)")
    g.add_argument("--channels", default="*", metavar="GLOBS",
                   help="channel codes to use, comma-separated globs such as 'HH?,EH?' (default all)")
    g.add_argument("--resample", type=float, default=100.0, metavar="HZ",
                   help="sampling rate of the archive; other rates are resampled (default 100)")
    g.add_argument("--inventory", metavar="STATIONXML", help="station metadata with instrument responses")
    g.add_argument("--remove-response", action="store_true",
                   help="convert counts to physical units with --inventory (see --response-output)")
    g.add_argument("--response-output", choices=("VEL", "DISP", "ACC"), default="VEL",
                   help="physical quantity after response removal: m/s, m or m/s**2 (default VEL)")
    g = p.add_argument_group("labels")
    g.add_argument("--labels", metavar="CSV", help="event catalog with columns time,station,label")
    g.add_argument("--label-tolerance", type=float, default=2.0, metavar="S",
                   help="max distance between trigger onset and catalog time, s (default 2)")
    g = p.add_argument_group("execution")
    g.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    g.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    g.add_argument("--no-ray", action="store_true", help="process station-days in this process, one at a time")
    g.add_argument("--chunk-size", type=int, default=256, help="samples per archive chunk (default 256)")
    g.add_argument("--shard-chunks", type=int, default=16, help="chunks per archive shard (default 16)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_waveforms)


def _seisbench(args: argparse.Namespace) -> int:
    from spacessl.ingest.seisbench import ingest_seisbench

    summary = ingest_seisbench(args.path, args.out, label_column=args.label_column or None,
                               components=args.components, sampling_rate_hz=args.resample,
                               n_samples=args.samples, block_rows=args.block_rows, chunk_size=args.chunk_size,
                               shard_chunks=args.shard_chunks, overwrite=args.overwrite, progress=not args.quiet)
    print(summary)
    return 0


def _add_seisbench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seisbench", help="labelled waveform set in SeisBench format (STEAD, INSTANCE, ...)",
                       description="Stream a SeisBench dataset (metadata.csv + waveforms.hdf5, or chunks of "
                                   "them) into a waveform archive, one metadata column as the label. Rerun the "
                                   "same command to resume an interrupted ingest.")
    p.add_argument("path", metavar="PATH", help="dataset folder")
    p.add_argument("out", metavar="OUT.zarr", help="archive to write (local path, s3://, gs://)")
    p.add_argument("--label-column", default="trace_category",
                   help="metadata column to use as the label, e.g. trace_category, source_type "
                        "(default trace_category; '' for none)")
    p.add_argument("--components", default=None, help="archive channel order (default: the dataset's)")
    p.add_argument("--resample", type=float, default=None, metavar="HZ",
                   help="archive sampling rate (default: the dataset's)")
    p.add_argument("--samples", type=int, default=None, metavar="T",
                   help="samples per window; longer traces are cut (default: the first trace's length)")
    p.add_argument("--block-rows", type=int, default=4096, help="metadata rows per block (default 4096)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per archive chunk (default 256)")
    p.add_argument("--shard-chunks", type=int, default=16, help="chunks per archive shard (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_seisbench)


#: one entry per source kind
SOURCES = [
    _add_images,
    _add_themis,
    _add_waveforms,
    _add_seisbench,
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ingest", help="raw files → archive (images, THEMIS CDF, ...)")
    sub = p.add_subparsers(dest="ingest_command", required=True, metavar="SOURCE")
    for add in SOURCES:
        add(sub)

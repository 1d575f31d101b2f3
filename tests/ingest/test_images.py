"""Image-folder ingest: layout from the data, metadata, labels, rejects, strict mode, CLI, kill and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from spacessl.archive import ArchiveExistsError, open_archive
from spacessl.cli import main as cli_main
from spacessl.ingest.images import ImageDecodeError, ingest_images, list_image_files
from spacessl.ingest.labels import LabelsError
from tests.ingest.imagefiles import colour8, grey8, grey16, save, set_mtime, truncate

REPO = Path(__file__).resolve().parents[2]


def _rejects(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read_all(url):
    a = open_archive(url)
    return a, a.read(0, a.n)


def grey_folder(root: Path, n_per_cam: int = 6, size=(40, 40)) -> dict[str, np.ndarray]:
    """camA/ and camB/ of 8-bit grey PNGs named with timestamps; returns relative path → pixels."""
    files = {}
    for c, cam in enumerate(["camA", "camB"]):
        for i in range(n_per_cam):
            a = grey8(100 * c + i, size)
            rel = f"{cam}/frame_20210203_{10 + c:02d}{i:02d}00.png"
            save(root / rel, a)
            files[rel] = a
    return files


def test_grey_folder_with_corrupt_and_truncated_files(tmp_path):
    src = tmp_path / "src"
    files = grey_folder(src, size=(32, 32))
    (src / "camA" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    truncate(src / "camB" / "frame_20210203_110000.png", src / "camB" / "cut.png")
    (src / "camB" / "notes.txt").write_text("ignored: not an image suffix")
    (src / "camB" / ".hidden.png").write_bytes(b"hidden files are skipped")
    out = tmp_path / "a.zarr"
    report = ingest_images(str(src), str(out), size=32, chunk_size=5, workers=0, progress=False)
    assert report.n_inputs == 14 and report.n_samples == 12 and report.n_rejects == 2
    rejects = _rejects(tmp_path / "a.rejects.csv")
    assert {r["origin"]: r["reason"] for r in rejects} == {"camA/broken.png": "corrupt",
                                                           "camB/cut.png": "truncated"}
    assert all(r["detail"] for r in rejects)
    assert "truncated" in next(r for r in rejects if r["origin"] == "camB/cut.png")["detail"]
    a, b = _read_all(str(out))
    assert a.channels == ["gray"] and a.dtype == np.uint8 and a.sample_shape == (1, 32, 32)
    assert list(b.meta["origin"]) == sorted(files)                    # every good file, in path order
    for k, rel in enumerate(b.meta["origin"]):
        np.testing.assert_array_equal(b.samples[k, 0], files[rel])
    assert list(b.meta["source"]) == ["camA"] * 6 + ["camB"] * 6
    assert set(b.meta["time_from"]) == {"filename"}
    assert b.meta["time_ns"][0] == np.datetime64("2021-02-03T10:00:00", "ns").astype(np.int64)
    assert (b.meta["label"] == -1).all() and a.label_names is None


def test_16bit_tiff_and_pgm_give_uint16_archive(tmp_path):
    src = tmp_path / "src"
    arrays = {f"f{i}.{ext}": grey16(i) for i, ext in enumerate(["png", "tif", "pgm", "tiff"])}
    for name, a in arrays.items():
        save(src / name, a)
    report = ingest_images(str(src), str(tmp_path / "a.zarr"), size=32, workers=0, progress=False,
                           source="cam9")
    a, b = _read_all(str(tmp_path / "a.zarr"))
    assert a.dtype == np.uint16 and a.attrs["bit_depth"] == 16 and report.n_converted == 0
    for k, name in enumerate(b.meta["origin"]):
        np.testing.assert_array_equal(b.samples[k, 0], arrays[name])
    assert set(b.meta["source"]) == {"cam9"}


def test_colour_folder_gives_rgb_and_converts_grey(tmp_path):
    src = tmp_path / "src"
    save(src / "c0.png", colour8(0))
    save(src / "c1.jpg", colour8(1), quality=100)
    save(src / "g.png", grey8(2))
    report = ingest_images(str(src), str(tmp_path / "a.zarr"), size=16, workers=0, progress=False)
    a, b = _read_all(str(tmp_path / "a.zarr"))
    assert a.channels == ["R", "G", "B"] and a.sample_shape == (3, 16, 16) and report.n_converted == 1
    g = b.samples[list(b.meta["origin"]).index("g.png")]
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[0], g[2])
    forced = ingest_images(str(src), str(tmp_path / "b.zarr"), size=16, channels="gray", workers=0,
                           progress=False)
    assert open_archive(str(tmp_path / "b.zarr")).channels == ["gray"] and forced.n_converted == 2


def test_labels_with_names(tmp_path):
    src = tmp_path / "src"
    files = grey_folder(src, n_per_cam=3)
    names = sorted(files)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\n" + "".join(f"{rel},{'moon' if i % 2 else 'arc'}\n"
                                                   for i, rel in enumerate(names[:5]))
                      + "gone.png,clear\n")
    report = ingest_images(str(src), str(tmp_path / "a.zarr"), labels_csv=str(labels), size=16, workers=0,
                           progress=False)
    a, b = _read_all(str(tmp_path / "a.zarr"))
    assert a.label_names == ["arc", "clear", "moon"]
    assert list(b.meta["label"]) == [0, 2, 0, 2, 0, -1]
    assert any("gone.png" in n for n in report.notes) and any("5 of 6" in n for n in report.notes)


def test_labels_with_integers_and_bare_names(tmp_path):
    src = tmp_path / "src"
    files = grey_folder(src, n_per_cam=2)
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{Path(rel).name},{i}\n" for i, rel in enumerate(sorted(files))))
    ingest_images(str(src), str(tmp_path / "a.zarr"), labels_csv=str(labels), size=16, workers=0, progress=False)
    a, b = _read_all(str(tmp_path / "a.zarr"))
    assert a.label_names is None and list(b.meta["label"]) == [0, 1, 2, 3]


def test_bad_labels_fail_before_writing(tmp_path):
    src = tmp_path / "src"
    grey_folder(src, n_per_cam=1)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\na.png,1\nb.png,arc\n")
    with pytest.raises(LabelsError, match="labels.csv"):
        ingest_images(str(src), str(tmp_path / "a.zarr"), labels_csv=str(labels), workers=0, progress=False)
    assert not (tmp_path / "a.zarr").exists()


def test_strict_names_the_file(tmp_path):
    src = tmp_path / "src"
    grey_folder(src, n_per_cam=2)
    (src / "camA" / "frame_20210203_100050.png").write_bytes(b"junk")
    with pytest.raises(ImageDecodeError, match="frame_20210203_100050.png"):
        ingest_images(str(src), str(tmp_path / "a.zarr"), size=16, strict=True, workers=0, progress=False)


def test_time_from_exif_and_mtime(tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    exif = Image.Exif()
    exif[306] = "2018:01:02 03:04:05"
    src.mkdir()
    Image.fromarray(colour8(1)).save(src / "a.jpg", exif=exif)
    set_mtime(save(src / "b.png", grey8(2)), 1_500_000_000)
    ingest_images(str(src), str(tmp_path / "a.zarr"), size=16, channels="gray", workers=0, progress=False)
    _, b = _read_all(str(tmp_path / "a.zarr"))
    assert list(b.meta["time_from"]) == ["exif", "mtime"]
    assert list(b.meta["time_ns"]) == [np.datetime64("2018-01-02T03:04:05", "ns").astype(np.int64),
                                       1_500_000_000 * 10**9]


def test_existing_archive_needs_overwrite_and_empty_folder_is_an_error(tmp_path):
    src = tmp_path / "src"
    grey_folder(src, n_per_cam=1)
    out = str(tmp_path / "a.zarr")
    ingest_images(str(src), out, size=16, workers=0, progress=False)
    with pytest.raises(ArchiveExistsError, match="--overwrite"):
        ingest_images(str(src), out, size=16, workers=0, progress=False)
    ingest_images(str(src), out, size=8, workers=0, progress=False, overwrite=True)
    assert open_archive(out).sample_shape == (1, 8, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no image files"):
        ingest_images(str(tmp_path / "empty"), str(tmp_path / "b.zarr"), progress=False)
    assert list_image_files(str(src)) == ["camA/frame_20210203_100000.png", "camB/frame_20210203_110000.png"]


def test_parallel_workers_give_the_same_archive(tmp_path):
    src = tmp_path / "src"
    grey_folder(src, n_per_cam=30, size=(24, 24))
    (src / "camA" / "zz_bad.png").write_bytes(b"junk")
    ingest_images(str(src), str(tmp_path / "serial.zarr"), size=16, chunk_size=7, workers=0, progress=False)
    ingest_images(str(src), str(tmp_path / "pool.zarr"), size=16, chunk_size=7, workers=2, progress=False)
    assert_same_archive(tmp_path / "serial.zarr", tmp_path / "pool.zarr")


def test_cli_images(tmp_path, capsys):
    src = tmp_path / "src"
    grey_folder(src, n_per_cam=2)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\ncamA/frame_20210203_100000.png,arc\n")
    out = str(tmp_path / "a.zarr")
    rc = cli_main(["ingest", "images", str(src), out, "--labels", str(labels), "--size", "16", "--workers", "0",
                   "--quiet", "--chunk-size", "3"])
    assert rc == 0 and "4 samples from 4 inputs" in capsys.readouterr().out
    a = open_archive(out)
    assert a.chunk_size == 3 and a.label_names == ["arc"]
    assert cli_main(["ingest", "images", str(src), out, "--quiet"]) == 2            # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- kill and resume

def assert_same_archive(a_url, b_url) -> None:
    """Sample for sample, meta for meta, attribute for attribute, and the same rejects file."""
    a, b = open_archive(str(a_url)), open_archive(str(b_url))
    assert a.n == b.n and a.sample_shape == b.sample_shape and a.dtype == b.dtype
    assert a.attrs == b.attrs
    np.testing.assert_array_equal(a.samples.compute(), b.samples.compute())
    for name in a.meta_fields:
        np.testing.assert_array_equal(a.meta(name).compute(), b.meta(name).compute(), err_msg=name)
    ba, bb = a.read(0, a.n), b.read(0, b.n)
    for name in ba.meta:
        assert list(ba.meta[name]) == list(bb.meta[name]), name
    ra, rb = (Path(str(u)[: -len(".zarr")] + ".rejects.csv") for u in (a_url, b_url))
    assert ra.exists() == rb.exists()
    if ra.exists():
        assert ra.read_text() == rb.read_text()


RUNNER = textwrap.dedent("""
    import os, signal, sys, time

    def main():
        # imported here, not at the top: decode workers re-import this script and need none of it
        from spacessl.archive.writer import ArchiveWriter
        from spacessl.ingest.images import ingest_images

        src, out, labels = sys.argv[1], sys.argv[2], sys.argv[3]
        kill_after, delay = int(sys.argv[4]), float(sys.argv[5])
        calls = [0]
        append = ArchiveWriter.append

        def slow_append(self, *args, **kwargs):
            append(self, *args, **kwargs)
            calls[0] += 1
            if calls[0] == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(delay)

        ArchiveWriter.append = slow_append
        ingest_images(src, out, labels_csv=labels, size=16, chunk_size=8, workers=2, progress=False)

    if __name__ == "__main__":
        main()
""")


def _resume_fixture(tmp_path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    files = grey_folder(src, n_per_cam=40, size=(24, 24))
    (src / "camA/frame_20210203_100130.png").write_bytes(b"junk")            # an extra, unreadable file
    (src / "camB/frame_20210203_110900.png").write_bytes(b"junkjunk")        # a good file overwritten
    truncate(src / "camA/frame_20210203_100000.png", src / "camB/cut.png")
    for i, rel in enumerate(sorted(files)[:20]):          # some times come from the mtime
        p = src / rel
        new = p.with_name(f"plain_{i:03d}.png")
        p.rename(new)
        set_mtime(new, 1_600_000_000 + i)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\n" + "".join(f"{rel},{['arc', 'moon', 'clear'][i % 3]}\n"
                                                   for i, rel in enumerate(list_image_files(str(src)))))
    return src, labels


def _run(script: Path, src, out, labels, kill_after: int, delay: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(script), str(src), str(out), str(labels), str(kill_after),
                             str(delay)], env=env, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)       # the runner's whole session: its decode workers too
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _n_committed(out: Path) -> int:
    try:
        return int(json.loads((out / "zarr.json").read_text())["attributes"].get("n", 0))
    except (FileNotFoundError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_kill_and_resume_gives_identical_archive(tmp_path):
    src, labels = _resume_fixture(tmp_path)
    ref = tmp_path / "ref.zarr"
    ingest_images(str(src), str(ref), labels_csv=str(labels), size=16, chunk_size=8, workers=0, progress=False)
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    out = tmp_path / "out.zarr"
    # 1) killed right after an append, at a known point (half-way, mid-chunk)
    proc = _run(script, src, out, labels, kill_after=37, delay=0.0)
    proc.wait(timeout=300)
    _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    first = _n_committed(out)
    assert 0 < first < 79 and not open_archive(str(out), require_complete=False).complete
    # 2) killed from outside at arbitrary moments (possibly inside a commit), then run to the end
    rng = np.random.default_rng(0)
    for _ in range(2):
        before = _n_committed(out)
        proc = _run(script, src, out, labels, kill_after=-1, delay=0.02)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _n_committed(out) <= before and time.monotonic() < deadline:
            time.sleep(0.005)                               # wait until this run has committed a chunk
        time.sleep(float(rng.uniform(0.0, 0.2)))
        if proc.poll() is not None:
            break
        _kill_group(proc)
    assert _n_committed(out) >= first
    proc = _run(script, src, out, labels, kill_after=-1, delay=0.0)
    assert proc.wait(timeout=300) == 0
    _kill_group(proc)
    assert_same_archive(ref, out)
    a = open_archive(str(out))
    assert a.n == 79 and a.complete and len(_rejects(tmp_path / "out.rejects.csv")) == 3


def test_resume_over_a_changed_folder_is_refused(tmp_path, monkeypatch):
    from spacessl.archive.writer import ArchiveWriter

    src = tmp_path / "src"
    grey_folder(src, n_per_cam=10, size=(16, 16))
    append = ArchiveWriter.append
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return append(self, *args, **kwargs)

    monkeypatch.setattr(ArchiveWriter, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest_images(str(src), str(tmp_path / "a.zarr"), size=8, chunk_size=4, workers=0, progress=False)
    monkeypatch.setattr(ArchiveWriter, "append", append)
    save(src / "camA" / "frame_20210203_095900.png", grey8(999, (16, 16)))      # sorts first: indices shift
    with pytest.raises(ArchiveExistsError, match="inputs_sha256"):
        ingest_images(str(src), str(tmp_path / "a.zarr"), size=8, chunk_size=4, workers=0, progress=False)
    (src / "camA" / "frame_20210203_095900.png").unlink()
    report = ingest_images(str(src), str(tmp_path / "a.zarr"), size=8, chunk_size=4, workers=0, progress=False)
    assert report.resumed_from in (7, 8) and report.n_samples == 20      # 2 chunks of 4 committed
    ingest_images(str(src), str(tmp_path / "ref.zarr"), size=8, chunk_size=4, workers=0, progress=False)
    assert_same_archive(tmp_path / "ref.zarr", tmp_path / "a.zarr")

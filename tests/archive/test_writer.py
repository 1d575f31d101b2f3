"""Writer: round trip, refusal to overwrite, kill-and-resume identity."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spacessl.archive import ArchiveExistsError, ArchiveWriter, open_archive

PRODUCER = Path(__file__).with_name("producer.py")


def run_producer(url: Path, *args: str) -> int:
    return subprocess.run([sys.executable, str(PRODUCER), str(url), *args], timeout=120).returncode


def archive_content(url: Path) -> dict:
    a = open_archive(str(url))
    b = a.read(0, a.n, fields=None)
    return {"samples": b.samples, **b.meta, "attrs": {k: v for k, v in a.attrs.items()},
            "rejects": Path(str(url).replace(".zarr", ".rejects.csv")).read_text()}


def assert_same(x: dict, y: dict) -> None:
    assert x.keys() == y.keys()
    for k in x:
        if isinstance(x[k], np.ndarray):
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)
        else:
            assert x[k] == y[k], k


def test_round_trip(tmp_path):
    url = tmp_path / "ref.zarr"
    assert run_producer(url) == 0
    a = open_archive(str(url))
    from tests.archive.producer import N_INPUTS, input_samples
    expected = [input_samples(i) for i in range(N_INPUTS) if i % 9 != 4]
    expected = np.concatenate(expected)
    assert a.n == len(expected)
    np.testing.assert_array_equal(a.samples.compute(), expected)
    assert a.complete and a.label_names == ["odd", "even"]
    assert a.names("source") == ["cam1", "cam2", "cam0"]
    rejects = (tmp_path / "ref.rejects.csv").read_text().splitlines()
    assert rejects[0] == "origin,reason,detail"
    assert [r.split(",")[0] for r in rejects[1:]] == [f"file{i}.png" for i in range(N_INPUTS) if i % 9 == 4]
    # the last chunk is partial, every other chunk whole
    assert a.num_chunks == -(-a.n // 7)


def test_every_metadata_write_keeps_count_and_cursor_together(tmp_path, monkeypatch):
    """A kill can land between any two writes of the group metadata, so each write on its own must be a state to
    resume from: the committed count ``n`` equals the rows of the inputs before the cursor plus its offset."""
    import zarr

    from tests.archive.producer import N_INPUTS, input_samples
    from tests.archive.producer import main as produce

    written: list[dict] = []
    original = zarr.Group.update_attributes

    def recording(self, new_attributes):
        out = original(self, new_attributes)
        written.append(json.loads(json.dumps(dict(out.attrs))))
        return out

    monkeypatch.setattr(zarr.Group, "update_attributes", recording)
    produce(str(tmp_path / "a.zarr"), None, 0.0)
    rows = [0 if i % 9 == 4 else len(input_samples(i)) for i in range(N_INPUTS)]
    states = [w for w in written if "_writer" in w]
    assert len(states) == sum(rows) // 7  # one write per whole chunk (close writes the rest)
    for w in states:
        cur = w["_writer"]
        assert w["n"] == sum(rows[:cur["input_index"]]) + cur["offset"], w
    assert written[-1]["complete"] is True and written[-1]["n"] == sum(rows)


@pytest.mark.parametrize("arrays_before_kill", [0, 1, 4])
def test_kill_during_set_up_resumes(tmp_path, monkeypatch, arrays_before_kill):
    """The group's first write already marks it an unfinished spacessl archive, so a kill while the arrays are being
    created (simulated by an error after some of them) leaves a folder the same command finishes."""
    import zarr

    from tests.archive.producer import main as produce

    ref, url = tmp_path / "ref.zarr", tmp_path / "resumed.zarr"
    assert run_producer(ref) == 0
    original, made = zarr.Group.create_array, []

    def failing(self, *args, **kwargs):
        if len(made) == arrays_before_kill:
            raise RuntimeError("killed during set-up")
        made.append(args or kwargs.get("name"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(zarr.Group, "create_array", failing)
    with pytest.raises(RuntimeError, match="killed during set-up"):
        produce(str(url), None, 0.0)
    monkeypatch.undo()
    attrs = json.loads((url / "zarr.json").read_text())["attributes"]
    assert attrs["spacessl_format"] and attrs["complete"] is False and attrs["n"] == 0
    with pytest.raises(Exception, match="unfinished"):
        open_archive(str(url))
    assert run_producer(url) == 0
    assert_same(archive_content(ref), archive_content(url))


@pytest.mark.parametrize("kill_after", [1, 8, 22, 38])
def test_kill_and_resume_is_identical(tmp_path, kill_after):
    ref, url = tmp_path / "ref.zarr", tmp_path / "resumed.zarr"
    assert run_producer(ref) == 0
    assert run_producer(url, "--kill-after", str(kill_after)) == -9
    with pytest.raises(Exception, match="unfinished"):
        open_archive(str(url))
    assert run_producer(url) == 0
    assert_same(archive_content(ref), archive_content(url))


def test_kill_while_cutting_back_the_rejects_keeps_them(tmp_path, monkeypatch):
    """A resume cuts the rejects CSV back to the rows its state committed. Killed during that rewrite, it leaves
    the CSV as it was (written beside it, renamed over it), never emptied; the next resume converges."""
    import spacessl.archive.store as store_module
    from tests.archive.producer import main as produce

    ref, url = tmp_path / "ref.zarr", tmp_path / "resumed.zarr"
    assert run_producer(ref) == 0
    assert run_producer(url, "--kill-after", "38") == -9
    csv_path = tmp_path / "resumed.rejects.csv"
    committed = csv_path.read_text()
    assert committed.startswith("origin,reason,detail") and "file13.png" in committed
    # rows appended after the last commit, as a kill between the append and the commit leaves them
    csv_path.write_text(committed + 'file40.png,corrupt,"bad bytes, input 40"\r\nfile4')

    def killed(*args, **kwargs):
        raise RuntimeError("killed while cutting back the rejects")

    monkeypatch.setattr(store_module.os, "replace", killed)
    with pytest.raises(RuntimeError, match="killed while cutting back"):
        produce(str(url), None, 0.0)
    monkeypatch.undo()
    assert csv_path.read_text().startswith(committed)  # the committed rows are all still there
    assert run_producer(url) == 0
    assert_same(archive_content(ref), archive_content(url))
    assert not (tmp_path / "resumed.rejects.csv.partial").exists()


def test_repeated_kills_at_random_moments(tmp_path):
    """SIGKILL from outside at arbitrary moments, resumed each time, converges to the reference.

    The moments are fractions of how long a whole run takes on this machine (the reference run, timed), so that the
    first kill lands before the end however fast the machine is, and later ones further on."""
    ref, url = tmp_path / "ref.zarr", tmp_path / "resumed.zarr"
    t0 = time.perf_counter()
    assert run_producer(ref, "--delay", "0.02") == 0
    whole_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    kills = 0
    for attempt in range(40):
        proc = subprocess.Popen([sys.executable, str(PRODUCER), str(url), "--delay", "0.02"])
        time.sleep(whole_s * (float(rng.uniform(0.3, 0.7)) + 0.05 * attempt))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        kills += 1
        if _complete(url):  # killed after it set `complete` (e.g. while the interpreter shut down): nothing to resume
            break
    else:
        pytest.fail("producer never finished")
    assert (proc.returncode == 0 or _complete(url)) and kills >= 1
    assert_same(archive_content(ref), archive_content(url))


def _complete(url) -> bool:
    try:
        open_archive(str(url))
    except Exception:  # noqa: BLE001 - missing or unfinished
        return False
    return True


def test_complete_archive_is_never_touched_without_overwrite(tmp_path):
    url = tmp_path / "a.zarr"
    assert run_producer(url) == 0
    before = archive_content(url)
    with pytest.raises(ArchiveExistsError, match="--overwrite"):
        ArchiveWriter(str(url), modality="image", sample_shape=(1, 6, 6), dtype="uint16", units="DN",
                      channels=["gray"])
    assert_same(before, archive_content(url))
    w = ArchiveWriter(str(url), modality="image", sample_shape=(1, 6, 6), dtype="uint16", units="DN",
                      channels=["gray"], overwrite=True)
    w.append(np.zeros((2, 1, 6, 6), np.uint16), input_index=0, time_ns=0, source="s", origin="o")
    w.close()
    assert open_archive(str(url)).n == 2


def test_folder_of_other_files_is_never_touched_without_overwrite(tmp_path):
    url = tmp_path / "a.zarr"
    url.mkdir()
    (url / "notes.txt").write_text("field notes")
    kw = dict(modality="image", sample_shape=(1, 6, 6), dtype="uint16", units="DN", channels=["gray"])
    with pytest.raises(ArchiveExistsError, match="not a Zarr.*--overwrite"):
        ArchiveWriter(str(url), **kw)
    assert (url / "notes.txt").read_text() == "field notes"
    ArchiveWriter(str(url), overwrite=True, **kw).close()
    assert not (url / "notes.txt").exists() and open_archive(str(url)).n == 0
    a_file = tmp_path / "b.zarr"
    a_file.write_text("not a folder")
    with pytest.raises(ArchiveExistsError, match="not a Zarr.*--overwrite"):
        ArchiveWriter(str(a_file), **kw)
    assert a_file.read_text() == "not a folder"


def test_resume_with_other_settings_is_refused(tmp_path):
    url = tmp_path / "a.zarr"
    assert run_producer(url, "--kill-after", "10") == -9
    with pytest.raises(ArchiveExistsError, match="different settings"):
        ArchiveWriter(str(url), modality="image", sample_shape=(1, 8, 8), dtype="uint16", units="DN",
                      channels=["gray"])


def test_bad_samples_and_meta_are_named(tmp_path):
    w = ArchiveWriter(str(tmp_path / "a.zarr"), modality="waveform", sample_shape=(3, 50), dtype="float32",
                      units="counts", channels=["Z", "N", "E"], attrs={"sampling_rate_hz": 5.0, "window_s": 10.0})
    with pytest.raises(ValueError, match=r"shape \(2, 3, 40\)"):
        w.append(np.zeros((2, 3, 40)), input_index=0, time_ns=0, source="s", origin="o")
    with pytest.raises(ValueError, match="unknown meta fields"):
        w.append(np.zeros((2, 3, 50)), input_index=0, time_ns=0, source="s", origin="o", colour=1)
    with pytest.raises(ValueError, match="in order"):
        w.append(np.zeros((1, 3, 50)), input_index=3, time_ns=0, source="s", origin="o")
        w.append(np.zeros((1, 3, 50)), input_index=2, time_ns=0, source="s", origin="o")

"""OATH layout: a tiny generated copy of the published structure, license header included."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from spacessl.archive import open_archive
from spacessl.cli import main as cli_main
from spacessl.ingest.oath import (OATH_CLASS6, OathFormatError, ingest_oath, read_classification_csv,
                                  read_files_origin)
from tests.ingest.imagefiles import grey8, save

LICENSE = """\
Oslo Auroral THEMIS (OATH) training data set, version 1.0
Copyright (c) University of Oslo. This data set is licensed under the Creative Commons
Attribution 4.0 International License, see http://creativecommons.org/licenses/by/4.0/
If you use it, please cite Clausen, L. B. N., & Nickisch, H. (2018), JGR Space Physics.

"""
# (class6, rotAng) per picture; class2 follows from class6 (arc, diffuse, discrete = 0; others = 1)
PICTURES = [(0, 12.5), (1, -3.0), (2, 0.0), (3, 45.0), (4, 90.0), (5, 7.25), (0, 1.0), (5, 2.0)]


def make_oath(root: Path, *, csv_name: str = "classification/classification.csv", missing: int | None = None,
              header_prefix: str = "") -> dict[int, np.ndarray]:
    """A tiny OATH folder: RGB PNGs holding grey frames (as published), classification file with license header."""
    pictures = {}
    for k, (c6, _) in enumerate(PICTURES, start=1):
        a = grey8(k, (48, 48))
        pictures[k] = a
        if k != missing:
            save(root / "images" / "cropped_scaled" / f"{k:05d}.png", np.dstack([a, a, a]))
    lines = [LICENSE.rstrip("\n"), "", header_prefix + "class2,class6,picNum,picType,rotAng"]
    for k, (c6, rot) in enumerate(PICTURES, start=1):
        lines.append(f"{int(c6 >= 3)}, {c6}, {k}, {k % 2}, {rot}")
    p = root / csv_name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n")
    (root / "images" / "files_origin.csv").write_text(
        "picNum,file\n1,20080105_0600_gill_themis19_full.pgm.gz\n2,thg_l1_asf_fsmi_2011010617_v01.cdf\n")
    (root / "00_README").write_text(LICENSE)
    return pictures


def test_ingest_oath(tmp_path):
    root = tmp_path / "oath"
    pictures = make_oath(root)
    report = ingest_oath(str(root), str(tmp_path / "oath.zarr"), size=32, workers=0, progress=False)
    assert report.n_samples == 8 and report.n_rejects == 0
    a = open_archive(str(tmp_path / "oath.zarr"))
    b = a.read(0, a.n)
    assert a.label_names == list(OATH_CLASS6) == ["arc", "diffuse", "discrete", "cloudy", "moon", "clear"]
    assert a.channels == ["gray"] and a.sample_shape == (1, 32, 32)       # grey frames stored as RGB → grey
    assert list(b.meta["label"]) == [c6 for c6, _ in PICTURES]
    assert list(b.meta["class2"]) == [int(c6 >= 3) for c6, _ in PICTURES]
    assert list(b.meta["pic_num"]) == list(range(1, 9))
    np.testing.assert_allclose(b.meta["rot_ang_deg"], [r for _, r in PICTURES])
    assert list(b.meta["pic_type"]) == [str(k % 2) for k in range(1, 9)]
    assert list(b.meta["origin"]) == [f"images/cropped_scaled/{k:05d}.png" for k in range(1, 9)]
    # files_origin.csv: picture 1 names a timestamped THEMIS file of site gill; picture 2 a site only
    assert list(b.meta["source"])[:3] == ["gill", "fsmi", "oath"]
    assert b.meta["time_ns"][0] == np.datetime64("2008-01-05T06:00:00", "ns").astype(np.int64)
    assert list(b.meta["time_from"])[:2] == ["given", "mtime"]
    from PIL import Image
    ref = np.asarray(Image.fromarray(pictures[3]).resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(b.samples[2, 0], ref)
    assert a.attrs["class2_names"] == ["aurora", "no aurora"]


def test_missing_picture_is_a_reject(tmp_path):
    root = tmp_path / "oath"
    make_oath(root, missing=4, csv_name="classifications.csv", header_prefix="# ")
    report = ingest_oath(str(root), str(tmp_path / "o.zarr"), size=16, workers=0, progress=False)
    assert report.n_samples == 7 and report.n_rejects == 1
    with open(tmp_path / "o.rejects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["origin"] == "images/cropped_scaled/00004.png" and rows[0]["reason"] == "missing"


def test_classification_csv_errors(tmp_path):
    p = tmp_path / "classification.csv"
    p.write_text(LICENSE + "a,b,c\n1,2,3\n")
    with pytest.raises(OathFormatError, match="no header line"):
        read_classification_csv(str(p))
    p.write_text(LICENSE + "class2,class6,picNum,picType,rotAng\n1,7,1,0,0\n")
    with pytest.raises(OathFormatError, match="class6 7 is not one of 0..5"):
        read_classification_csv(str(p))
    p.write_text(LICENSE + "class2,class6,picNum,picType,rotAng\n0,0,1,0,0\n0,1,1,0,0\n")
    with pytest.raises(OathFormatError, match="picNum 1 appears twice"):
        read_classification_csv(str(p))
    p.write_text("picNum class6 class2 rotAng picType\n2 4 1 3.5 0\n1 0 0 0 1\n")   # white space, other order
    rows = read_classification_csv(str(p))
    assert [(r.pic_num, r.class6, r.class2, r.rot_ang_deg) for r in rows] == [(1, 0, 0, 0.0), (2, 4, 1, 3.5)]
    with pytest.raises(OathFormatError, match="no images/cropped_scaled/ folder"):
        ingest_oath(str(tmp_path), str(tmp_path / "x.zarr"), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OathFormatError, match="no OATH classification file"):
        ingest_oath(str(tmp_path / "empty"), str(tmp_path / "x.zarr"), progress=False)


def test_files_origin_is_best_effort(tmp_path):
    p = tmp_path / "files_origin.csv"
    p.write_text("header line without numbers\n3;/data/thg/l1/asi/kuuj/2009/thg_l1_asf_kuuj_2009020304_v01.cdf\n"
                 "7, 2010-03-04T05:06:07 rank_themis09_full.pgm\nnonsense\n")
    got = read_files_origin(str(p))
    assert got[3] == ("kuuj", None)
    assert got[7] == ("rank", np.datetime64("2010-03-04T05:06:07", "ns").astype(np.int64))
    assert read_files_origin(str(tmp_path / "absent.csv")) == {}


def test_cli_format_oath(tmp_path, capsys):
    root = tmp_path / "oath"
    make_oath(root)
    out = str(tmp_path / "o.zarr")
    assert cli_main(["ingest", "images", str(root), out, "--format", "oath", "--size", "16", "--workers", "0",
                     "--quiet"]) == 0
    assert "8 samples from 8 inputs" in capsys.readouterr().out
    assert open_archive(out).label_names == list(OATH_CLASS6)
    assert cli_main(["ingest", "images", str(root), out + "2", "--format", "oath", "--labels", "x.csv"]) == 2

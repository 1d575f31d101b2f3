"""`spacessl synth ...` end to end through the CLI entry point."""

from __future__ import annotations

import csv

from spacessl.archive import open_archive
from spacessl.cli import main


def test_synth_aurora_and_seismic(tmp_path, capsys):
    a, s = str(tmp_path / "a.zarr"), str(tmp_path / "s.zarr")
    assert main(["synth", "aurora", a, "--n", "40", "--size", "32", "--seed", "1", "--rare-fraction", "0.05",
                 "--chunk-size", "16", "--quiet"]) == 0
    assert main(["synth", "seismic", s, "--n", "24", "--window", "4", "--chunk-size", "8", "--quiet"]) == 0
    assert open_archive(a).n == 40 and open_archive(a).label_names[-1] == "rare"
    assert open_archive(s).sample_shape == (3, 400)
    assert main(["synth", "aurora", a, "--n", "40", "--size", "32", "--quiet"]) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", "aurora", a, "--n", "20", "--size", "32", "--quiet", "--overwrite"]) == 0
    assert open_archive(a).n == 20


def test_synth_continuous(tmp_path):
    out = tmp_path / "cont"
    assert main(["synth", "continuous", str(out), "--stations", "1", "--days", "1", "--sampling-rate", "20",
                 "--quiet"]) == 0
    assert (out / "AW.VNA1..2019.001.mseed").exists()
    with open(out / "catalog.csv") as f:
        assert len(list(csv.DictReader(f))) > 50

"""Detection recall of the waveform ingest on the synthetic continuous set (known event times)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spacessl.archive import open_archive
from spacessl.ingest.waveforms import ingest_waveforms
from spacessl.synth.continuous import write_continuous


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    root = tmp_path_factory.mktemp("continuous")
    info = write_continuous(root / "data", stations=3, days=1, seed=0, progress=False)
    return root, pd.read_csv(info["catalog"])


def match(catalog: pd.DataFrame, source: np.ndarray, onset_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found per catalog row, matched per trigger): a trigger matches a pick of its station if its onset is
    within 1 s before the first arrival to 1.5 s after the S arrival (a weak P may trigger late)."""
    found = np.zeros(len(catalog), bool)
    used = np.zeros(len(onset_ns), bool)
    spp = catalog["s_minus_p_s"].fillna(0.0).to_numpy()
    for k, (sta, t) in enumerate(zip(catalog["station"], catalog["time_ns"])):
        hit = (source == sta) & (onset_ns >= t - 1e9) & (onset_ns <= t + (spp[k] + 1.5) * 1e9)
        found[k] = hit.any()
        used |= hit
    return found, used


@pytest.mark.slow
def test_events_above_snr_5_are_found(continuous, tmp_path):
    root, catalog = continuous
    out = tmp_path / "events.zarr"
    s = ingest_waveforms([str(root / "data")], str(out), labels=str(root / "data" / "catalog.csv"),
                         use_ray=False, progress=False)
    a = open_archive(str(out))
    b = a.read(0, a.n)
    onset = b.meta["time_ns"] + int(a.attrs["pre_s"] * 1e9)
    found, used = match(catalog, b.meta["source"], onset)
    strong = catalog["snr"].to_numpy() >= 5
    recall = found[strong].mean()
    false = int((~used).sum())
    hours = 3 * 24
    by_class = {k: round(float(found[strong & (catalog["label"] == k).to_numpy()].mean()), 3)
                for k in sorted(catalog["label"].unique()) if (strong & (catalog["label"] == k).to_numpy()).any()}
    print(f"\nrecall (snr >= 5): {recall:.3f} of {strong.sum()} picks; by class {by_class}; "
          f"windows {s.windows}; false triggers {false} ({false / hours:.2f} per station-hour); "
          f"recall (all snr): {found.mean():.3f}")
    assert recall >= 0.95
    assert false / hours < 2.0
    # catalog labels land on the windows of their picks
    names = np.array(a.label_names)
    lab = b.meta["label"]
    assert (lab >= 0).sum() >= 0.8 * found.sum()
    truth = {(st, t): lb for st, t, lb in zip(catalog["station"], catalog["time_ns"], catalog["label"])}
    ok = [min(((abs(t - o), lb) for (st, t), lb in truth.items() if st == src), default=(0, None))[1] == names[l]
          for src, o, l in zip(b.meta["source"], onset, lab) if l >= 0]
    assert np.mean(ok) >= 0.95

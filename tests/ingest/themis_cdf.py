"""Write small THEMIS ASI level-1 CDF files in the real layout with cdflib's writer."""

from __future__ import annotations

from pathlib import Path

import cdflib
import numpy as np
from cdflib.cdfwrite import CDF

CDF_UINT2, CDF_EPOCH, CDF_DOUBLE = 12, 31, 45
SITE_NAMES = {"gako": "Gakona, Alaska", "fsmi": "Fort Smith, Alberta", "gill": "Gillam, Manitoba"}


def frames_for(site: str, hour: tuple[int, int, int, int], n: int, size: int = 256) -> np.ndarray:
    """(n, size, size) uint16 counts, seeded by site and hour."""
    seed = sum(map(ord, site)) * 1000 + hour[3] + 100 * hour[2]
    return np.random.default_rng(seed).integers(2000, 12000, (n, size, size), dtype=np.uint16)


def epochs_for(hour: tuple[int, int, int, int], n: int, cadence_s: float = 3.0) -> np.ndarray:
    """(n,) CDF_EPOCH values (ms since 0000-01-01) every ``cadence_s`` from the start of ``hour``."""
    t0 = cdflib.cdfepoch.compute_epoch([*hour, 0, 0, 0])
    return t0 + 1000.0 * cadence_s * np.arange(n)


def write_asf(folder: Path, site: str, hour: tuple[int, int, int, int], n: int = 3, *, size: int = 256,
              epochs: np.ndarray | None = None) -> tuple[Path, np.ndarray, np.ndarray]:
    """``thg_l1_asf_SITE_YYYYMMDDHH_v01.cdf`` with variables thg_asf_SITE (n, 256, 256) CDF_UINT2,
    thg_asf_SITE_epoch CDF_EPOCH, thg_asf_SITE_time CDF_DOUBLE (unix s); returns (path, frames, epochs)."""
    folder.mkdir(parents=True, exist_ok=True)
    y, m, d, h = hour
    path = folder / f"thg_l1_asf_{site}_{y:04d}{m:02d}{d:02d}{h:02d}_v01.cdf"
    frames = frames_for(site, hour, n, size)
    epochs = epochs_for(hour, n) if epochs is None else np.asarray(epochs, dtype=np.float64)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major", "Encoding": 6, "Checksum": False}, delete=True)
    cdf.write_globalattrs({
        "Project": {0: "THEMIS"}, "Source_name": {0: "THG>THEMIS Ground-based Observatory"},
        "Descriptor": {0: f"{site.upper()}>{SITE_NAMES.get(site, site)}"},
        "Data_type": {0: "L1>Level 1 Data"}, "Logical_source": {0: f"thg_l1_asf_{site}"},
    })
    cdf.write_var({"Variable": f"thg_asf_{site}_epoch", "Data_Type": CDF_EPOCH, "Num_Elements": 1,
                   "Rec_Vary": True, "Dim_Sizes": []},
                  var_attrs={"FIELDNAM": "epoch", "FILLVAL": [-1.0e31, "CDF_EPOCH"]}, var_data=epochs)
    unix = np.where(epochs > 0, (epochs - 62167219200000.0) / 1000.0, -1.0e31)
    cdf.write_var({"Variable": f"thg_asf_{site}_time", "Data_Type": CDF_DOUBLE, "Num_Elements": 1,
                   "Rec_Vary": True, "Dim_Sizes": []}, var_attrs={"UNITS": "sec"}, var_data=unix)
    cdf.write_var({"Variable": f"thg_asf_{site}", "Data_Type": CDF_UINT2, "Num_Elements": 1, "Rec_Vary": True,
                   "Dim_Sizes": [size, size]},
                  var_attrs={"DEPEND_0": f"thg_asf_{site}_epoch", "UNITS": "counts", "FIELDNAM": "ASI frames"},
                  var_data=frames)
    cdf.close()
    return path, frames, epochs

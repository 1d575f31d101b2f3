"""Candidate-event catalogs as QuakeML 1.2, through ObsPy's event classes.

One :class:`obspy.core.event.Event` per catalog row:

- ``resource_id`` ``smi:spacessl/event/<archive id>``; ``event_type`` from the propagated class name
  (:func:`event_type`), ``event_type_certainty`` "suspected" (the label is a similarity guess, not an analyst's);
- one :class:`Origin` whose ``time`` is the window's UTC start time (the epicentre is unknown: latitude and
  longitude are the station's where the archive records them, else left empty), evaluation mode "automatic";
- one :class:`Pick` at the same time on the station's first channel (``NET.STA.LOC.CHA`` from the source name
  and the archive's channel codes);
- comments ``class=<name>``, ``score=<cosine>``, ``spacessl_id=<archive id>``, ``seed=<nearest seed id>``,
  ``source=<station>``, ``origin=<file>``.

:func:`read_quakeml` reads such a file back into the catalog's columns.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spacessl.evaluate.catalog import time_ns

#: substrings of a class name → QuakeML event type (first match wins); anything else is "other event".
EVENT_TYPES: tuple[tuple[str, str], ...] = (
    ("icequake", "ice quake"), ("ice quake", "ice quake"), ("ice_quake", "ice quake"), ("ice", "ice quake"),
    ("earthquake", "earthquake"), ("quake", "earthquake"), ("teleseism", "earthquake"), ("regional", "earthquake"),
    ("local", "earthquake"), ("explosion", "explosion"), ("blast", "quarry blast"), ("avalanche", "avalanche"),
    ("landslide", "landslide"), ("slide", "slide"), ("noise", "acoustic noise"), ("meteor", "meteorite"),
)


def event_type(name: str) -> str:
    """QuakeML event type for a class name ("icequake" → "ice quake", "spike" → "other event")."""
    low = str(name).lower()
    for key, value in EVENT_TYPES:
        if key in low:
            return value
    return "other event"


def _seed_id(source: str, channel: str) -> str:
    parts = str(source).split(".")
    net, sta = (parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0])
    loc = parts[2] if len(parts) >= 3 else ""
    return f"{net}.{sta}.{loc}.{channel}"


def write_quakeml(df: pd.DataFrame, path: str | Path, *, channel: str = "HHZ",
                  coords: dict[str, tuple[float, float]] | None = None) -> Path:
    """Write catalog rows (columns id, time, source, origin, class, score, seed_id) as QuakeML at ``path``.

    Args:
        channel: channel code of the picks (the archive's first component).
        coords: station name → (latitude_deg, longitude_deg) for the origins, when known.
    """
    from obspy import UTCDateTime
    from obspy.core.event import (Catalog, Comment, CreationInfo, Event, Origin, Pick, ResourceIdentifier,
                                  WaveformStreamID)

    coords = coords or {}
    info = CreationInfo(agency_id="spacessl", author="spacessl propagate")
    events = []
    times = time_ns(df["time"])
    for row, t_ns in zip(df.to_dict("records"), times, strict=True):
        t = UTCDateTime(ns=int(t_ns))
        eid = int(row["id"])
        lat, lon = coords.get(str(row["source"]), (None, None))
        origin = Origin(resource_id=ResourceIdentifier(f"smi:spacessl/origin/{eid}"), time=t, latitude=lat,
                        longitude=lon, evaluation_mode="automatic", creation_info=info)
        pick = Pick(resource_id=ResourceIdentifier(f"smi:spacessl/pick/{eid}"), time=t,
                    waveform_id=WaveformStreamID(seed_string=_seed_id(row["source"], channel)),
                    evaluation_mode="automatic")
        cls = str(row.get("class", ""))
        comments = [f"class={cls}", f"score={float(row.get('score', float('nan'))):.6f}", f"spacessl_id={eid}",
                    f"seed={int(row.get('seed_id', -1))}", f"source={row['source']}", f"origin={row['origin']}"]
        ev = Event(resource_id=ResourceIdentifier(f"smi:spacessl/event/{eid}"), event_type=event_type(cls),
                   event_type_certainty="suspected", origins=[origin], picks=[pick], creation_info=info,
                   comments=[Comment(text=c) for c in comments])
        ev.preferred_origin_id = origin.resource_id
        events.append(ev)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Catalog(events=events, resource_id=ResourceIdentifier("smi:spacessl/catalog"),
            description="spacessl candidate events (label propagation from seed examples)",
            creation_info=info).write(str(tmp), format="QUAKEML")
    tmp.replace(path)
    return path


def read_quakeml(path: str | Path) -> pd.DataFrame:
    """A QuakeML file written by :func:`write_quakeml` → DataFrame with id, time (UTC, µs), source, origin,
    class, score, seed_id, event_type."""
    from obspy import read_events

    rows = []
    for ev in read_events(str(path), format="QUAKEML"):
        kv = dict(c.text.split("=", 1) for c in ev.comments if "=" in c.text)
        origin = ev.preferred_origin() or ev.origins[0]
        rows.append({"id": int(kv["spacessl_id"]), "time": pd.Timestamp(origin.time.ns, unit="ns", tz="UTC"),
                     "source": kv.get("source", ""), "origin": kv.get("origin", ""), "class": kv.get("class", ""),
                     "score": float(kv.get("score", "nan")), "seed_id": int(kv.get("seed", -1)),
                     "event_type": str(ev.event_type)})
    return pd.DataFrame(rows, columns=["id", "time", "source", "origin", "class", "score", "seed_id", "event_type"])

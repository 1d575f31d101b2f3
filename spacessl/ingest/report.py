"""What an ingest did: the summary every ingest command prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestReport:
    """What an ingest did (printed by the CLI)."""

    url: str
    n_inputs: int
    n_samples: int
    n_rejects: int
    resumed_from: int
    rejects_path: str
    seconds: float
    layout: dict[str, Any] = field(default_factory=dict)
    n_converted: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.url}: {self.n_samples} samples from {self.n_inputs} inputs in {self.seconds:.1f} s"
                 + (f" (resumed at input {self.resumed_from})" if self.resumed_from else ""),
                 "  layout: " + ", ".join(f"{k}={v}" for k, v in self.layout.items())]
        if self.n_rejects:
            lines.append(f"  {self.n_rejects} rejected inputs listed in {self.rejects_path}")
        if self.n_converted:
            lines.append(f"  {self.n_converted} files converted to the archive's channels/bit depth (this run)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

"""Live captions in a terminal: stable text plain, unstable tail dimmed and rewritten in place.

Works on events in their JSON form (dicts with `type`), so the local engine (`event_to_dict`)
and the websocket client share it. On a terminal the current line is redrawn with ANSI escapes;
elsewhere only finals are printed, one per line.
"""

from __future__ import annotations

import json
import shutil
from typing import Any, Mapping, TextIO

DIM, RESET, CLEAR_LINE = "\033[2m", "\033[0m", "\r\033[K"
METER_CELLS = 8
METER_BLOCKS = " ▁▂▃▄▅▆▇█"
METER_FLOOR_DB = -60.0


def level_meter(rms: float) -> str:
    """A few block characters for an input level (RMS of float samples in [-1, 1])."""
    import math

    db = 20 * math.log10(max(rms, 1e-9))
    fraction = min(max((db - METER_FLOOR_DB) / -METER_FLOOR_DB, 0.0), 1.0)
    filled = fraction * METER_CELLS
    cells = []
    for i in range(METER_CELLS):
        level = min(max(filled - i, 0.0), 1.0)
        cells.append(METER_BLOCKS[int(level * (len(METER_BLOCKS) - 1))])
    return "".join(cells)


class CaptionPrinter:
    """Renders events as live captions (`text`) or one JSON object per line (`jsonl`)."""

    def __init__(self, out: TextIO, fmt: str = "text", live: bool | None = None, label: str | None = None,
                 timestamps: bool = False):
        if fmt not in ("text", "jsonl"):
            raise ValueError(f"caption format {fmt!r} is not supported; use 'text' or 'jsonl'")
        self.out = out
        self.fmt = fmt
        self.live = out.isatty() if live is None else live
        self.label = label
        self.timestamps = timestamps  # finals as "[start - end] text"
        self.meter = ""
        self._last = ("", "")  # stable and unstable text on the in-place line

    def event(self, event: Mapping[str, Any]) -> None:
        """Show one event (partial, final, error; others only in jsonl)."""
        if self.fmt == "jsonl":
            record = {"file": self.label, **event} if self.label is not None else dict(event)
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()
            return
        kind = event.get("type")
        prefix = f"{self.label}: " if self.label else ""
        if kind == "final" and self.timestamps:
            prefix += f"[{event['start']:7.2f} - {event['end']:7.2f}] "
        if kind == "partial" and self.live:
            self._redraw(prefix + event.get("stable", ""), event.get("unstable", ""))
        elif kind == "final":
            text = event.get("text", "")
            if self.live:
                self.out.write(CLEAR_LINE)
            if text:
                self.out.write(prefix + text + "\n")
            self._last = ("", "")
            self.out.flush()
        elif kind == "error":
            self.out.write(f"{CLEAR_LINE if self.live else ''}{prefix}error {event.get('code', '')}: "
                           f"{event.get('message', '')}\n")
            self.out.flush()

    def level(self, rms: float) -> None:
        """Update the input level meter (live mode only)."""
        if self.live:
            self.meter = level_meter(rms)
            self._redraw(*self._last)

    def _redraw(self, stable: str, unstable: str) -> None:
        self._last = (stable, unstable)
        width = shutil.get_terminal_size((100, 20)).columns - METER_CELLS - 2
        text = (stable + unstable)[-width:]
        cut = max(len(stable) - (len(stable + unstable) - len(text)), 0)
        meter = f"{self.meter} " if self.meter else ""
        self.out.write(f"{CLEAR_LINE}{meter}{text[:cut]}{DIM}{text[cut:]}{RESET}")
        self.out.flush()

    def close(self) -> None:
        """Leave the terminal on a fresh line."""
        if self.live and self._last != ("", ""):
            self.out.write(CLEAR_LINE)
            self.out.flush()

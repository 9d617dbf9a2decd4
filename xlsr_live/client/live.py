"""`xlsr-live mic`: caption the microphone in the terminal with the local engine."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import numpy as np

from ..streaming.events import Final, event_to_dict
from .captions import CaptionPrinter
from .microphone import microphone

log = logging.getLogger(__name__)
INT16_SCALE = 32_768.0


def caption_microphone(model, options, sample_rate: int = 16_000, device=None, fmt: str = "text",
                       out: TextIO = sys.stdout, max_blocks: int | None = None) -> list[Final]:
    """Feed captured blocks to a recognizer and print captions until Ctrl-C or the device stops.

    Returns the finals; on Ctrl-C the stream is flushed so the last final is printed too.
    """
    from ..streaming.recognizer import StreamingRecognizer

    recognizer = StreamingRecognizer(model, options, sample_rate=sample_rate)
    printer = CaptionPrinter(out, fmt)
    finals: list[Final] = []

    def show(events) -> None:
        for event in events:
            printer.event(event_to_dict(event))
            if isinstance(event, Final):
                finals.append(event)

    try:
        with microphone(sample_rate, device) as stream:
            for count, block in enumerate(stream.blocks(), start=1):
                printer.level(float(np.sqrt(np.mean((block / INT16_SCALE) ** 2))) if block.size else 0.0)
                show(recognizer.feed(block))
                if max_blocks is not None and count >= max_blocks:
                    break
            if stream.dropped:
                log.warning("dropped %d capture blocks: recognition fell behind", stream.dropped)
    except KeyboardInterrupt:
        pass
    finally:
        show(recognizer.flush())
        printer.close()
    return finals

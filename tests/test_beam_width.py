"""Beam widths: the streaming and whole-input defaults, and an explicit width for both."""

import numpy as np
import pytest

from xlsr_live.decoding.beam import decode_whole, run_beams
from xlsr_live.decoding.options import OFFLINE_BEAM_WIDTH, STREAMING_BEAM_WIDTH, DecoderOptions
from xlsr_live.defaults import RecognizerOptions


class RecordingSearch:
    """Stands in for a pyctcdecode decoder: records the width it was asked for, returns no beams."""

    def __init__(self):
        self.widths = []

    def decode_beams(self, frames, beam_width, **_):
        self.widths.append(beam_width)
        return []


def test_default_widths_differ_for_streaming_and_whole_inputs():
    """No width given: the streaming default per chunk, the wider offline default for one search."""
    options = DecoderOptions(kind="beam")
    assert (options.width(), options.width(offline=True)) == (STREAMING_BEAM_WIDTH, OFFLINE_BEAM_WIDTH)
    assert OFFLINE_BEAM_WIDTH > STREAMING_BEAM_WIDTH


def test_explicit_width_applies_to_both():
    """A width the user chose is used streaming and offline alike."""
    options = DecoderOptions(kind="beam", beam_width=7)
    assert (options.width(), options.width(offline=True)) == (7, 7)


def test_search_gets_the_resolved_width():
    """run_beams passes the streaming width; decode_whole the offline one."""
    search, frames = RecordingSearch(), np.zeros((5, 3), np.float32)
    run_beams(search, frames, DecoderOptions(kind="beam"))
    decode_whole(search, frames, DecoderOptions(kind="beam"))
    decode_whole(search, frames, DecoderOptions(kind="beam", beam_width=3))
    assert search.widths == [STREAMING_BEAM_WIDTH, OFFLINE_BEAM_WIDTH, 3]


@pytest.mark.parametrize("width", [0, -1, 2.5, True, "8"])
def test_bad_width_is_named(width):
    """A width that is not a positive int is refused with its value in the message."""
    with pytest.raises(ValueError, match="beam_width="):
        DecoderOptions(beam_width=width)
    with pytest.raises(ValueError, match="beam_width="):
        RecognizerOptions(beam_width=width)

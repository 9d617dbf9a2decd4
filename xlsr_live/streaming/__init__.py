"""xlsr_live.streaming: the synchronous, deterministic streaming engine (see docs/streaming.md)."""

from .events import Event, Final, Partial, SpeechEnd, SpeechStart, Word
from .options import DecoderOptions, EndpointOptions, StreamingOptions, VadOptions, WindowOptions

__all__ = ["DecoderOptions", "EndpointOptions", "Event", "Final", "Partial", "SpeechEnd", "SpeechStart",
           "StreamingOptions", "StreamingRecognizer", "VadOptions", "WindowJob", "WindowOptions", "Word",
           "run_jobs", "stream_file"]


def __getattr__(name):
    """Lazy access to the torch-backed parts (StreamingRecognizer, WindowJob, run_jobs, stream_file)."""
    if name == "StreamingRecognizer":
        from .recognizer import StreamingRecognizer

        return StreamingRecognizer
    if name in ("WindowJob", "run_jobs"):
        from . import windows

        return getattr(windows, name)
    if name == "stream_file":
        from .files import stream_file

        return stream_file
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""xlsr_live.streaming: the synchronous, deterministic, I/O-free streaming engine (see docs/streaming.md)."""

from .events import Event, Final, Partial, SpeechEnd, SpeechStart
from .options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions

__all__ = ["EndpointOptions", "Event", "Final", "Partial", "SpeechEnd", "SpeechStart",
           "StreamingOptions", "StreamingRecognizer", "VadOptions", "WindowJob", "WindowOptions",
           "run_jobs"]


def __getattr__(name):
    """Lazy access to the torch-backed parts (StreamingRecognizer, WindowJob, run_jobs)."""
    if name == "StreamingRecognizer":
        from .recognizer import StreamingRecognizer

        return StreamingRecognizer
    if name in ("WindowJob", "run_jobs"):
        from . import windows

        return getattr(windows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""One set of model, window and decoding options for every command and the Python API.

`RecognizerOptions` says which model runs on which device in which dtype, with which windows
and which decoder. Fields left at None are chosen per device from measurements
(docs/performance.md):

* CPU: dynamic int8 linear layers (bf16 measured 1.8x slower than int8 on a 2-core AMD EPYC with
  avx512_bf16 but no AMX, and 14x slower on an AVX2-only EPYC that emulates it) and the cached left
  context (`kv_cache`);
* CUDA: bf16 (fp16 where the GPU lacks bf16) and the cached left context.

`exact=True` is the reference: fp32 weights and activations, the left context recomputed for
every window. Every field can still be set explicitly and wins over the automatic choice.

    setup = load_recognizer(RecognizerOptions())          # fast defaults for this machine
    recognizer = StreamingRecognizer(setup.model, setup.streaming)
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Optional

from .decoding.options import DecoderOptions
from .streaming.options import BUFFER_SLACK_FRAMES, CONTEXT_MODES, StreamingOptions, WindowOptions

if TYPE_CHECKING:  # torch loads only when a model does
    from .model.loader import LoadedModel

log = logging.getLogger(__name__)

# Window defaults, chosen for latency at the same accuracy (docs/performance.md, "Window defaults by
# model size"): on the demo model 300 ms chunks with 300 ms lookahead give p95 word end to stable
# text <= 0.8 s at streaming WER within 1 point of offline (15-minute held-out recording); 500/200
# misses the accuracy line there. A large model (XLSR-53 size) cannot pay for 300 ms chunks on 2 CPU
# cores (RTF 0.35 vs 0.25 at 500/200), so models above SMALL_MODEL_PARAMETERS, and models that
# cannot cache the left context (they recompute it every window), keep 500/200.
DEFAULT_CHUNK_MS = 500  # large models
DEFAULT_LOOKAHEAD_MS = 200
SMALL_MODEL_CHUNK_MS = 300  # models up to SMALL_MODEL_PARAMETERS with the cached left context
SMALL_MODEL_LOOKAHEAD_MS = 300
SMALL_MODEL_PARAMETERS = 150_000_000  # transformer weights; base size ~85 M, XLSR-53 (large) ~302 M
DEFAULT_LEFT_CONTEXT_MS = 3000
DEVICE_AUTO = "auto"
DECODERS = ("auto", "greedy", "beam")
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
               "float16": "float16", "fp16": "float16", "int8": "int8"}
EXACT_DTYPE = "float32"
STREAM_OVERHEAD_BYTES = 256 * 1024  # VAD, resampler, decoder, Python objects (measured well below)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class RecognizerOptions:
    """Model, device, dtype, windows and decoder; None means "the measured default for the device"."""

    model: str = "demo"  # checkpoint directory, hub id, or "demo"
    device: str = DEVICE_AUTO  # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N"
    dtype: Optional[str] = None  # None: int8 on CPU, bf16/fp16 on CUDA; float32 with exact
    exact: bool = False  # fp32 + recomputed left context: the reference, slowest
    chunk_ms: Optional[int] = None  # None: by model size (default_windows)
    left_context_ms: int = DEFAULT_LEFT_CONTEXT_MS
    lookahead_ms: Optional[int] = None  # None: by model size (default_windows)
    context: Optional[str] = None  # None: kv_cache for layer-norm (XLSR) models, else recompute
    decoder: Optional[str] = None  # None: beam with an LM or hotwords, else "auto" (the checkpoint's LM folder)
    beam_width: Optional[int] = None  # None: 16 streaming, 32 for a whole file (DecoderOptions.width)
    lm: Optional[str] = None  # KenLM model (ARPA or binary): beam search with an LM
    hotwords: tuple[str, ...] = ()
    language: Optional[str] = None  # MMS adapter language, passed to the model loader
    threads: Optional[int] = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        _check(isinstance(self.model, str) and bool(self.model), f"model={self.model!r} must be a non-empty string")
        _check(self.device == DEVICE_AUTO or str(self.device).split(":")[0] in ("cpu", "cuda", "mps"),
               f"device={self.device!r} is not 'auto', 'cpu', 'cuda' or 'cuda:N'")
        _check(self.dtype is None or str(self.dtype).lower() in DTYPE_NAMES,
               f"dtype={self.dtype!r} is not one of {sorted(DTYPE_NAMES)}")
        _check(self.context is None or self.context in CONTEXT_MODES,
               f"context={self.context!r} is not one of {CONTEXT_MODES}")
        _check(self.decoder is None or self.decoder in DECODERS, f"decoder={self.decoder!r} is not one of {DECODERS}")
        if self.exact:
            _check(self.dtype is None or DTYPE_NAMES[str(self.dtype).lower()] == EXACT_DTYPE,
                   f"exact=True runs float32; dtype={self.dtype!r} contradicts it")
            _check(self.context in (None, "recompute"),
                   f"exact=True recomputes the left context; context={self.context!r} contradicts it")
        _check(self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
               f"threads={self.threads!r} must be an int >= 1")
        _check(isinstance(self.hotwords, tuple) and all(isinstance(h, str) and h.strip() for h in self.hotwords),
               f"hotwords={self.hotwords!r} must be a tuple of non-empty strings")
        _check(self.decoder != "greedy" or (self.lm is None and not self.hotwords),
               f"decoder='greedy' cannot use lm={self.lm!r} or hotwords={self.hotwords!r}: use decoder='beam'")
        self.window_options("recompute")  # ValueError naming a bad chunk_ms / left_context_ms / lookahead_ms
        self.decoder_options()  # ... or a bad beam_width

    def window_options(self, context: str, chunk_ms: int = DEFAULT_CHUNK_MS,
                       lookahead_ms: int = DEFAULT_LOOKAHEAD_MS) -> WindowOptions:
        """The engine's window options with `context` (the resolved one); `chunk_ms` and `lookahead_ms`
        are the model's defaults, used where these options leave them at None."""
        return WindowOptions(chunk_ms=chunk_ms if self.chunk_ms is None else self.chunk_ms,
                             left_context_ms=self.left_context_ms,
                             lookahead_ms=lookahead_ms if self.lookahead_ms is None else self.lookahead_ms,
                             context=context)

    def decoder_options(self) -> DecoderOptions:
        """The engine's decoder options: beam when asked for or when an LM or hotwords are given, else
        "auto" (beam search with the checkpoint's language_model/ folder if it has one, else greedy)."""
        kind = self.decoder
        if kind is None:
            kind = "beam" if self.lm is not None or self.hotwords else "auto"
        return DecoderOptions(kind=kind, beam_width=self.beam_width, kenlm_path=self.lm, hotwords=tuple(self.hotwords))


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; anything else unchanged."""
    if device != DEVICE_AUTO:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> tuple[str, str]:
    """(dtype, why) measured fastest on `device` (docs/performance.md, "Automatic defaults")."""
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bfloat16", "CUDA with bf16"
        return "float16", "CUDA without bf16"
    if str(device).startswith("cpu"):
        return "int8", "CPU: dynamic int8 measured fastest (bf16 1.8x slower on avx512_bf16 without AMX)"
    return "float32", f"{device}: no measured faster dtype"


def default_context(model: "LoadedModel") -> tuple[str, str]:
    """(context, why): cached keys/values for layer-norm transformer models, recompute for the others."""
    config = model.config
    if config.family.layer != "transformer":
        return "recompute", f"{config.family.layer} layers need the recomputed left context"
    if config.feat_extract_norm != "layer":
        return "recompute", f"feat_extract_norm={config.feat_extract_norm!r} needs the recomputed left context"
    return "kv_cache", "cached left context"


def transformer_parameters(config) -> int:
    """Weights of the transformer layers (attention projections and feed-forward): the per-frame cost."""
    per_layer = 4 * config.hidden_size ** 2 + 2 * config.hidden_size * config.intermediate_size
    return config.num_hidden_layers * per_layer


def default_windows(model: "LoadedModel") -> tuple[int, int, str]:
    """(chunk_ms, lookahead_ms, why): short windows for small models that can cache the left context,
    else 500/200. A property of the model, so `--exact` and `--context recompute` keep the same windows."""
    parameters = transformer_parameters(model.config)
    if default_context(model)[0] == "kv_cache" and parameters <= SMALL_MODEL_PARAMETERS:
        return (SMALL_MODEL_CHUNK_MS, SMALL_MODEL_LOOKAHEAD_MS,
                f"{parameters / 1e6:.0f} M transformer parameters: {SMALL_MODEL_CHUNK_MS}/{SMALL_MODEL_LOOKAHEAD_MS} ms windows")
    why = f"{parameters / 1e6:.0f} M transformer parameters" if parameters > SMALL_MODEL_PARAMETERS else "no cached context"
    return DEFAULT_CHUNK_MS, DEFAULT_LOOKAHEAD_MS, f"{why}: {DEFAULT_CHUNK_MS}/{DEFAULT_LOOKAHEAD_MS} ms windows"


@dataclasses.dataclass(frozen=True)
class Recognizer:
    """A loaded model with the engine options chosen for it, and what was chosen (for logs and /healthz)."""

    model: "LoadedModel"
    streaming: StreamingOptions
    device: str
    dtype: str
    exact: bool
    reasons: tuple[str, ...] = ()  # why the automatic choices were made

    def describe(self) -> dict:
        """The choices as plain JSON-ready values."""
        window, decoder = self.streaming.window, self.streaming.decoder
        return {"model": str(self.model.source), "device": self.device, "dtype": self.dtype, "exact": self.exact,
                "context": window.context, "chunk_ms": window.chunk_ms, "left_context_ms": window.left_context_ms,
                "lookahead_ms": window.lookahead_ms, "decoder": decoder.kind, "beam_width": decoder.width(),
                "offline_beam_width": decoder.width(offline=True),
                "lm": decoder.kenlm_path}

    def stream_state_bytes(self) -> int:
        """One stream's state while an utterance runs (audio buffer, conv features, cached keys/values).

        The server derives how many streams fit in memory from it (admission control). It bounds a
        stream with one open utterance (tests/test_defaults.py); at an utterance boundary a stream
        briefly holds two utterances' state (XLSR-53 size, benchmarks/memory.py: estimate 15.8 MiB,
        mean 10.3 MiB, RSS growth 10.7 MiB per stream, largest single stream 17.1 MiB).
        """
        config, window = self.model.config, self.streaming.window
        frames = window.left_frames + window.chunk_frames + window.lookahead_frames
        audio = 2 * (frames + BUFFER_SLACK_FRAMES) * config.hop_samples * 4  # float32, capacity doubles
        features = 2 * (frames + BUFFER_SLACK_FRAMES) * config.conv_dim[-1] * 4  # float32, pieces before a cat
        cache = 0
        if window.context == "kv_cache":  # per layer keys and values of the left context, 16-bit storage
            cache = config.num_hidden_layers * 2 * window.left_frames * config.hidden_size * 2
        return audio + features + cache + STREAM_OVERHEAD_BYTES

    def summary(self) -> str:
        """One line for the start-up log."""
        d = self.describe()
        text = (f"{d['device']} {d['dtype']}{' (exact)' if d['exact'] else ''}, context {d['context']}, "
                f"chunk {d['chunk_ms']} ms, left {d['left_context_ms']} ms, lookahead {d['lookahead_ms']} ms, "
                f"decoder {d['decoder']}")
        return text + (f" [{'; '.join(self.reasons)}]" if self.reasons else "")


def load_recognizer(options: RecognizerOptions = RecognizerOptions()) -> Recognizer:
    """Load the model and choose what `options` left open; logs the choices once."""
    from .decoding.lm import resolve_decoder
    from .model import load_model, set_threads

    if options.threads is not None:
        set_threads(options.threads)
    device = resolve_device(options.device)
    reasons = []
    if options.exact:
        dtype = EXACT_DTYPE
    elif options.dtype is None:
        dtype, why = default_dtype(device)
        reasons.append(why)
    else:
        dtype = DTYPE_NAMES[options.dtype.lower()]
    model = load_model(options.model, device=device, dtype=dtype, language=options.language)
    if options.exact:
        context = "recompute"
    elif options.context is None:
        context, why = default_context(model)
        reasons.append(why)
    else:
        context = options.context
    chunk_ms, lookahead_ms, why = default_windows(model)
    if options.chunk_ms is None or options.lookahead_ms is None:
        reasons.append(why)
    decoder = resolve_decoder(options.decoder_options(), model.source)
    streaming = StreamingOptions(window=options.window_options(context, chunk_ms, lookahead_ms), decoder=decoder)
    recognizer = Recognizer(model, streaming, device, dtype, options.exact, tuple(reasons))
    log.info("recognizer: %s", recognizer.summary())
    return recognizer

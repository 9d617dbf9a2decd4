"""Automatic per-device defaults, one option set for every command, logging from the flag, memory budget."""

import argparse
import logging

import pytest

from xlsr_live.cli import build_parser, main
from xlsr_live.cli.options import recognizer_options
from xlsr_live.defaults import DEFAULT_CHUNK_MS, DEFAULT_LOOKAHEAD_MS, SMALL_MODEL_CHUNK_MS, SMALL_MODEL_LOOKAHEAD_MS
from xlsr_live.defaults import RecognizerOptions, default_windows, load_recognizer
from xlsr_live.server.options import ServerOptions, stream_budget

SHARED_FLAGS = ("--model", "--device", "--dtype", "--exact", "--chunk-ms", "--left-context-ms", "--lookahead-ms",
                "--decoder", "--beam-width", "--lm", "--hotword", "--language", "--threads", "--context")
COMMANDS = (["transcribe", "x.wav"], ["transcribe", "x.wav", "--stream"], ["mic"], ["serve"])


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return commands.choices[name]


@pytest.mark.parametrize("name", ["transcribe", "mic", "serve"])
def test_every_command_has_the_shared_flags(name):
    """transcribe, mic and serve all accept the same model, window and decoding flags."""
    flags = {flag for action in _subparser(name)._actions for flag in action.option_strings}  # noqa: SLF001
    assert set(SHARED_FLAGS) <= flags


@pytest.mark.parametrize("command", COMMANDS)
def test_same_validation_everywhere(command):
    """A bad window or beam value is refused with its name by every command."""
    parser = build_parser()
    with pytest.raises(ValueError, match="chunk_ms=510"):
        recognizer_options(parser.parse_args([*command, "--chunk-ms", "510"]))
    with pytest.raises(ValueError, match="beam_width=0"):
        recognizer_options(parser.parse_args([*command, "--beam-width", "0"]))
    with pytest.raises(ValueError, match="dtype='int8' contradicts"):
        recognizer_options(parser.parse_args([*command, "--exact", "--dtype", "int8"]))
    options = recognizer_options(parser.parse_args([*command, "--lookahead-ms", "300", "--hotword", "xlsr"]))
    assert options == RecognizerOptions(lookahead_ms=300, hotwords=("xlsr",))


def test_decoder_follows_lm_and_hotwords():
    """"auto" by default (greedy without an LM folder); an LM or hotwords make it beam; greedy with an LM is refused."""
    assert RecognizerOptions().decoder_options().kind == "auto"
    assert RecognizerOptions(hotwords=("abc",)).decoder_options().kind == "beam"
    assert RecognizerOptions(lm="x.arpa").decoder_options().kenlm_path == "x.arpa"
    with pytest.raises(ValueError, match="decoder='greedy' cannot use lm='x.arpa'"):
        RecognizerOptions(decoder="greedy", lm="x.arpa")


def test_cpu_defaults_are_int8_with_cached_context(tiny_model_dir):
    """No flags on a CPU: dynamic int8 and kv_cache with the default windows; the choice is described."""
    setup = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu"))
    assert (setup.dtype, setup.model.quantization, setup.streaming.window.context) == ("int8", "int8", "kv_cache")
    described = setup.describe()
    assert (described["dtype"], described["context"], described["exact"]) == ("int8", "kv_cache", False)
    assert (described["chunk_ms"], described["lookahead_ms"]) == (SMALL_MODEL_CHUNK_MS, SMALL_MODEL_LOOKAHEAD_MS)


def test_exact_is_float32_recompute_and_flags_override(tiny_model_dir):
    """--exact gives fp32 with the recomputed context; an explicit flag wins over the automatic choice."""
    exact = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu", exact=True))
    assert (exact.dtype, exact.model.quantization, exact.streaming.window.context) == ("float32", None, "recompute")
    chosen = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu", dtype="fp32",
                                               context="recompute", chunk_ms=1000))
    assert (chosen.dtype, chosen.streaming.window.context, chosen.streaming.window.chunk_ms) == (
        "float32", "recompute", 1000)


def test_windows_follow_model_size_and_context(tiny_model_dir):
    """Small layer-norm models get 300/300 windows (with --exact too); XLSR-53 size and group norm 500/200; flags win."""
    from types import SimpleNamespace

    from xlsr_live.model.config import Wav2Vec2Config
    from xlsr_live.model.testing import XLSR_53

    large = SimpleNamespace(config=Wav2Vec2Config(vocab_size=32, **XLSR_53))
    assert default_windows(large)[:2] == (DEFAULT_CHUNK_MS, DEFAULT_LOOKAHEAD_MS)
    base_kind = SimpleNamespace(config=Wav2Vec2Config(vocab_size=32, hidden_size=64, intermediate_size=128,
                                                      feat_extract_norm="group", do_stable_layer_norm=False))
    assert default_windows(base_kind)[:2] == (DEFAULT_CHUNK_MS, DEFAULT_LOOKAHEAD_MS)
    exact = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu", exact=True))
    assert (exact.streaming.window.chunk_ms, exact.streaming.window.lookahead_ms) == (
        SMALL_MODEL_CHUNK_MS, SMALL_MODEL_LOOKAHEAD_MS)  # the reference keeps the defaults' windows
    chunk_only = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu", chunk_ms=400))
    assert (chunk_only.streaming.window.chunk_ms, chunk_only.streaming.window.lookahead_ms) == (
        400, SMALL_MODEL_LOOKAHEAD_MS)
    assert any(f"{SMALL_MODEL_CHUNK_MS}/{SMALL_MODEL_LOOKAHEAD_MS} ms windows" in reason
               for reason in chunk_only.reasons)


def test_group_norm_models_fall_back_to_recompute(tmp_path):
    """kv_cache needs a layer-norm model: base-kind (group norm) checkpoints recompute by default."""
    from xlsr_live.model.testing import write_random_checkpoint

    directory = write_random_checkpoint(tmp_path / "base", feat_extract_norm="group", do_stable_layer_norm=False,
                                        conv_bias=False)
    setup = load_recognizer(RecognizerOptions(model=str(directory), device="cpu"))
    assert setup.streaming.window.context == "recompute"
    assert any("feat_extract_norm='group'" in reason for reason in setup.reasons)


def test_language_reaches_the_loader(tiny_model_dir, monkeypatch):
    """--language is passed to load_model (MMS adapters); without it the loader gets language=None."""
    import xlsr_live.model

    real, calls = xlsr_live.model.load_model, []

    def spy(*args, language=None, **kwargs):
        calls.append(language)
        return real(*args, **kwargs)

    monkeypatch.setattr(xlsr_live.model, "load_model", spy)
    load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu", language="fra"))
    load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu"))
    assert calls == ["fra", None]


def test_serve_log_level_debug_reaches_the_root_logger(tmp_path):
    """`xlsr-live serve --log-level DEBUG` configures logging at DEBUG (once, from the flag)."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        assert main(["serve", "--log-level", "DEBUG", "--model", str(tmp_path / "none"), "--device", "cpu"]) == 2
        assert root.level == logging.DEBUG
        assert main(["transcribe", "x.wav", "--model", str(tmp_path / "none"), "--device", "cpu"]) == 2
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])


def test_state_estimate_bounds_the_measured_state(tiny_model_dir, speech_audio):
    """The per-stream estimate the server budgets with is at least the state a real stream reaches."""
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    setup = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu"))
    recognizer = StreamingRecognizer(setup.model, setup.streaming)
    peak = 0
    for start in range(0, speech_audio.size, 1600):
        recognizer.feed(speech_audio[start:start + 1600])
        peak = max(peak, recognizer.state_bytes())
    assert 0 < peak <= setup.stream_state_bytes()


def test_memory_budget_lowers_max_connections(tiny_model_dir, monkeypatch):
    """Admission: the server accepts no more streams than fit in 80 % of the available memory."""
    from xlsr_live.server import cli as serve_cli

    setup = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu"))
    per_stream = setup.stream_state_bytes()
    assert stream_budget(1000, 10_000) == 8 and stream_budget(1000, 10) == 1 and stream_budget(1000, None) is None
    monkeypatch.setattr(serve_cli, "available_memory_bytes", lambda device: 10 * per_stream)
    assert serve_cli.admit_by_memory(ServerOptions(max_connections=64), setup, "cpu").max_connections == 8
    monkeypatch.setattr(serve_cli, "available_memory_bytes", lambda device: 1000 * per_stream)
    assert serve_cli.admit_by_memory(ServerOptions(max_connections=64), setup, "cpu").max_connections == 64


def test_healthz_shows_the_start_up_choices(tiny_model_dir):
    """/healthz reports the recognizer the server chose at start-up."""
    import asyncio
    import json
    import urllib.request

    from server_fake import run_server
    from xlsr_live.server.engine import ModelEngine

    setup = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu"))

    async def client(server):
        url = server.url.replace("ws", "http", 1) + "/healthz"
        return await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(url, timeout=5).read()))

    health = run_server(ModelEngine(setup.model, setup.streaming, info=setup.describe()), client)
    assert health["recognizer"] == json.loads(json.dumps(setup.describe()))
    assert health["recognizer"]["dtype"] == "int8"

"""Hypothesis strategies for hostile client messages, and oracles: what the server must answer.

Every generated message is a `Msg(payload, kind)`; the oracles walk a message list the way
docs/protocol.md says the server does and return the expected outcome of the connection.
"""

import dataclasses
import json
import math
from typing import Optional, Union

import numpy as np
from hypothesis import strategies as st

from xlsr_live.server.native import ProtocolError, parse_start

LIMIT = 8192  # the fuzz server's max_message_bytes
RATES_OK = [4000, 8000, 16000, 22050, 44100, 48000, 384000]
RATES_BAD = [0, -1, 1, 3999, 384001, 10_000_000, -16000]


@dataclasses.dataclass(frozen=True)
class Msg:
    """One client message and what the generator made it as."""

    payload: Union[str, bytes]
    kind: str

    def __repr__(self) -> str:
        return f"Msg({self.kind}, {size_of(self.payload)} bytes, {self.payload[:40]!r})"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a connection must end: close code, native error code (or None), replies or samples."""

    close: int
    error: Optional[str] = None
    processed: int = 0  # messages the server handled before the end
    samples: int = 0  # native: audio samples accepted
    replies: int = 0  # vosk: replies owed (one per audio, eof or reset message)


def huge_after(messages: list[Msg], index: int) -> bool:
    """Whether a message after `index` is over the limit: websockets checks sizes as frames arrive,
    so such a pipelined frame may close the connection (1009) before the server has handled
    message `index`."""
    return any(size_of(m.payload) > LIMIT for m in messages[index + 1:])


def size_of(payload) -> int:
    """Bytes on the wire of a message's payload."""
    return len(payload.encode()) if isinstance(payload, str) else len(payload)


# ---- strategies -------------------------------------------------------------------------------

def pcm16(level: int, samples: int) -> bytes:
    """Constant int16 audio."""
    return np.full(samples, level, dtype="<i2").tobytes()


def f32(values) -> bytes:
    """float32 little-endian samples (NaN and infinities included when given)."""
    return np.asarray(values, dtype="<f4").tobytes()


json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

audio = st.one_of(
    st.binary(max_size=700).map(lambda b: Msg(b, "random_bytes")),
    st.builds(pcm16, st.integers(-32768, 32767), st.sampled_from([1, 2, 160, 800, 1600, 3200])).map(
        lambda b: Msg(b, "pcm16")),
    st.lists(st.floats(width=32), max_size=64).map(lambda v: Msg(f32(v), "f32_any")),
    st.builds(lambda n, x: f32(np.full(n, x)), st.sampled_from([1, 400, 1600]),
              st.floats(-1, 1, width=32)).map(lambda b: Msg(b, "f32_finite")),
    st.sampled_from([math.nan, math.inf, -math.inf]).map(lambda x: Msg(f32([0.1, x, 0.2, 0.0]), "f32_nonfinite")),
    st.integers(LIMIT + 1, 3 * LIMIT).map(lambda n: Msg(bytes(n), "huge_binary")),
    st.just(Msg(b"", "empty_binary")),
    st.sampled_from([1, 3, 5, 3201]).map(lambda n: Msg(bytes(n), "odd_bytes")),
)

texts = st.one_of(
    st.text(max_size=200).map(lambda t: Msg(t, "random_text")),
    json_values.map(lambda v: Msg(json.dumps(v), "random_json")),
    st.sampled_from(["{", "[1,", "{'type': 'start'}", "NaN", "null", '"start"', "[]", "{}", "\u0000",
                     '{"type": "start"', "\ufeff{}"]).map(lambda t: Msg(t, "broken_json")),
    st.builds(lambda t, extra: json.dumps(dict(extra, type=t)),
              st.sampled_from(["pause", "", None, 1, "START", "End", ["end"], {"a": 1}]),
              st.dictionaries(st.text(max_size=6), json_scalars, max_size=3)).map(lambda t: Msg(t, "wrong_type")),
    st.integers(LIMIT + 1, 2 * LIMIT).map(lambda n: Msg("x" * n, "huge_text")),
    st.just(Msg("", "empty_text")),
)

good_start = st.fixed_dictionaries({"type": st.just("start")}, optional={
    "sample_rate": st.sampled_from(RATES_OK), "encoding": st.sampled_from(["pcm_s16le", "pcm_f32le"]),
    "partials": st.booleans(), "words": st.booleans(),
    "hotwords": st.lists(st.sampled_from(["hello", "xlsr", "caption"]), max_size=2), "lm": st.just(False),
}).map(lambda d: Msg(json.dumps(d), "start_ok"))

bad_start_field = st.one_of(
    st.tuples(st.just("sample_rate"), st.sampled_from(RATES_BAD + [16000.5, 16000.0, "16000", None, True, math.nan,
                                                                    math.inf, [16000]])),
    st.tuples(st.just("encoding"), st.sampled_from(["mp3", "", "PCM_S16LE", None, 16, "../../etc/passwd"])),
    st.tuples(st.sampled_from(["partials", "words", "lm"]), st.sampled_from([0, 1, "yes", None, [], "true"])),
    st.tuples(st.just("hotwords"), st.sampled_from(["hello", [""], [1], [None], {"a": 1}, [" "]])),
    st.tuples(st.sampled_from(["model", "kenlm_path", "path", "Type", "sampleRate"]), json_scalars),
)
bad_start = st.builds(lambda kv: Msg(json.dumps({"type": "start", kv[0]: kv[1]}), "start_bad"), bad_start_field)
end = st.sampled_from([{"type": "end"}, {"type": "end", "x": 1}]).map(lambda d: Msg(json.dumps(d), "end"))

good_audio = st.one_of(  # valid in either encoding: even byte counts, finite floats
    st.builds(pcm16, st.integers(-32768, 32767), st.sampled_from([160, 800, 1600])).map(lambda b: Msg(b, "pcm16")),
    st.builds(lambda n, x: f32(np.full(n, x)), st.sampled_from([400, 1600]),
              st.floats(-1, 1, width=32)).map(lambda b: Msg(b, "f32_finite")))


native_message = st.one_of(audio, texts, good_start, bad_start, end)

vosk_config = st.fixed_dictionaries({}, optional={
    "sample_rate": st.sampled_from(RATES_OK + RATES_BAD + [16000.0, "16000", 8000.5, "abc", None, math.nan, math.inf,
                                                          [8000], True]),
    "words": json_scalars, "max_alternatives": st.sampled_from([0, 1, 3, -1, "x", None, 1.5, math.inf, math.nan]),
    "phrase_list": st.sampled_from([["hello", "world"], [], "abc", 5, None, [1, None], {"k": 1}]),
    "model": st.sampled_from(["/etc", "model", "../models/demo"]),
})
vosk_message = st.one_of(
    audio, texts,
    st.one_of(vosk_config, json_values).map(lambda c: Msg(json.dumps({"config": c}), "config")),
    st.sampled_from([{"eof": 1}, {"eof": 0}, {"eof": None}]).map(lambda d: Msg(json.dumps(d), "eof")),
    st.just(Msg(json.dumps({"reset": 1}), "reset")),
)
good_config = st.builds(lambda rate, words: Msg(json.dumps({"config": {"sample_rate": rate, "words": words}}),
                                                "config_ok"), st.sampled_from(RATES_OK), st.booleans())
CONNECTIONS = {"native": (good_start, native_message), "vosk": (good_config, vosk_message)}


def draw_connection(data, protocol: str, hostile_share: float = 1 / 12, longest: int = 80) -> list[Msg]:
    """A first message (a good start/config 85% of the time) and up to `longest` messages, each
    hostile with probability `hostile_share`, else good audio. `data` is hypothesis' st.data()."""
    good_first, hostile = CONNECTIONS[protocol]
    rnd = data.draw(st.randoms(use_true_random=False), label="rng")
    messages = [data.draw(good_first if rnd.random() < 0.85 else hostile, label="first")]
    for _ in range(rnd.randint(1, longest)):
        messages.append(data.draw(hostile if rnd.random() < hostile_share else good_audio))
    return messages


# ---- oracles ----------------------------------------------------------------------------------

def _json_object(text: str) -> Optional[dict]:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def native_outcome(messages: list[Msg]) -> Outcome:
    """Expected end of a native connection fed `messages` (the last one is always an end)."""
    encoding, samples = None, 0
    for index, msg in enumerate(messages):
        if size_of(msg.payload) > LIMIT:
            return Outcome(1009, None, index, samples)
        if isinstance(msg.payload, bytes):
            if encoding is None:
                return Outcome(1003, "bad_message", index, samples)
            width = 2 if encoding == "pcm_s16le" else 4
            if len(msg.payload) % width or (width == 4 and not np.isfinite(np.frombuffer(msg.payload, "<f4")).all()):
                return Outcome(1007, "bad_audio", index, samples)
            samples += len(msg.payload) // width
            continue
        request = _json_object(msg.payload)
        if request is None:
            return Outcome(1007, "bad_json", index, samples)
        if encoding is None:
            try:
                options = parse_start(msg.payload)
            except ProtocolError as exc:
                assert msg.kind != "start_ok", f"a start the generator made valid was refused: {exc.message}"
                return Outcome(exc.close_code, exc.code, index, samples)
            if not 4000 <= options.sample_rate <= 384000:  # refused when the session is created
                return Outcome(1007, "bad_option", index, samples)
            encoding = options.encoding
            assert msg.kind != "start_bad", f"a start the generator made invalid was accepted: {msg.payload}"
            continue
        if request.get("type") == "end":
            return Outcome(1000, None, index + 1, samples)
        return Outcome(1003, "bad_message", index, samples)
    raise AssertionError("the message list must end with an end message")


def vosk_config_error(config, rate: int, has_session: bool) -> tuple[Optional[int], int]:
    """(close code if the config is refused, sample rate after it) - vosk.py's rules."""
    if not isinstance(config, dict):
        return 1007, rate
    if "model" in config:
        return 1008, rate
    if "sample_rate" in config:
        try:
            value = float(config["sample_rate"])
        except (TypeError, ValueError):
            return 1007, rate
        if not value.is_integer() or (has_session and int(value) != rate):
            return 1007, rate
        rate = int(value)
    if "max_alternatives" in config:
        try:
            int(config["max_alternatives"])
        except (TypeError, ValueError, OverflowError):
            return 1007, rate
    if "phrase_list" in config:
        try:
            iter(config["phrase_list"])
        except TypeError:
            return 1007, rate
    return None, rate


def vosk_outcome(messages: list[Msg]) -> Outcome:
    """Expected end of a vosk connection fed `messages` (the last one is always an eof)."""
    rate, has_session, replies = 8000, False, 0
    for index, msg in enumerate(messages):
        if size_of(msg.payload) > LIMIT:
            return Outcome(1009, None, index, replies=replies)
        control = _json_object(msg.payload) if isinstance(msg.payload, str) else None
        if control is not None and "config" in control:
            code, rate = vosk_config_error(control["config"], rate, has_session)
            if code is not None:
                return Outcome(code, None, index, replies=replies)
            continue
        if not has_session and not 4000 <= rate <= 384000:
            return Outcome(1007, None, index, replies=replies)
        has_session = True
        if isinstance(msg.payload, bytes) and len(msg.payload) % 2:
            return Outcome(1007, None, index, replies=replies)
        replies += 1
        if control is not None and "config" not in control and "eof" in control:
            return Outcome(1000, None, index + 1, replies=replies)
    raise AssertionError("the message list must end with an eof message")

"""OpenAI realtime transcription websocket, with the official openai SDK as the client against `xlsr-live serve`."""

import base64
import json
import subprocess
import sys

import jiwer
import numpy as np
import pytest
import soundfile
import soxr

from serve_process import DEMO, ServeProcess
from xlsr_live.server.realtime_session import g711_table

openai = pytest.importorskip("openai")
TOKEN = "realtime-token"
CHUNK_MS = 100
MARKER = "end-marker"


@pytest.fixture(scope="module")
def server():
    """One demo-model server with a token."""
    with ServeProcess("--token", TOKEN, "--max-message-bytes", "200000") as running:
        yield running


@pytest.fixture(scope="module")
def greedy_server():
    """The same server decoding greedily: texts to compare across paths without the LM's amplification."""
    with ServeProcess("--token", TOKEN, "--max-message-bytes", "200000", "--decoder", "greedy") as running:
        yield running


@pytest.fixture(scope="module")
def speech():
    """The demo example (16 kHz int16) followed by 1.5 s of silence."""
    audio, rate = soundfile.read(DEMO / "example.wav", dtype="int16")
    return np.concatenate([audio, np.zeros(rate * 3 // 2, np.int16)])


@pytest.fixture(scope="module")
def stream_text():
    """What `xlsr-live transcribe --stream --decoder greedy` prints for the example (the native streaming
    path at 16 kHz). Greedy: with the demo LM, sample-level differences between resampling paths flip
    word choices of this weak model (CER 0.24 between the two beam texts, session 6)."""
    out = subprocess.run([sys.executable, "-m", "xlsr_live.cli", "transcribe", str(DEMO / "example.wav"), "--stream",
                          "--format", "text", "--model", str(DEMO), "--decoder", "greedy"],
                         capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


def at_rate(audio16k, rate):
    """int16 audio resampled from 16 kHz."""
    out = soxr.resample(audio16k.astype(np.float32) / 32768, 16_000, rate)
    return np.clip(np.round(out * 32768), -32768, 32767).astype(np.int16)


def g711_encode(audio, name):
    """G.711 bytes of int16 audio: the nearest code of the decoding table (encoding is not the server's job)."""
    table = g711_table(name).astype(np.int32)
    order = np.argsort(table)
    position = np.clip(np.searchsorted(table[order], audio.astype(np.int32)), 1, 255)
    lower, upper = order[position - 1], order[position]
    nearer = np.where(np.abs(table[lower] - audio) <= np.abs(table[upper] - audio), lower, upper)
    return nearer.astype(np.uint8).tobytes()


def validate(event: dict):
    """The event as the SDK's own schema reads it (strict pydantic validation)."""
    from pydantic import TypeAdapter
    from openai.types.realtime import RealtimeServerEvent

    return TypeAdapter(RealtimeServerEvent).validate_python(event)


def connect(server):
    """An SDK realtime connection for transcription."""
    client = openai.OpenAI(base_url=server.http + "/v1", api_key=TOKEN)
    return client.realtime.connect(model="xlsr-live", extra_query={"intent": "transcription"})


def run_session(server, session, payloads, extra=()):
    """Send session.update, every payload as an append, `extra` raw events, a commit and an end marker;
    return every server event (dicts) up to the marker's error."""
    with connect(server) as connection:
        events = [json.loads(connection.recv_bytes())]
        connection.session.update(session=session)
        for payload in payloads:
            connection.input_audio_buffer.append(audio=base64.b64encode(payload).decode())
        for event in extra:
            connection.send(event)
        connection.input_audio_buffer.commit()
        connection.send({"type": "end.marker", "event_id": MARKER})
        while not (events[-1]["type"] == "error" and events[-1]["error"]["event_id"] == MARKER):
            events.append(json.loads(connection.recv_bytes()))
    for event in events[:-1]:
        validate(event)
    return events


def chunks(data: bytes, size: int):
    """`data` cut into pieces of `size` bytes."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def of_type(events, kind):
    """Events of one type."""
    return [e for e in events if e["type"] == kind]


def pcm16_session(turn_detection):
    """A GA transcription session at pcm16 24 kHz."""
    return {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": turn_detection,
        "transcription": {"model": "whisper-1", "language": "en"}}}}


def test_pcm16_server_vad_turns_deltas_and_completed(server, speech):
    """server_vad at pcm16 24 kHz: speech_started/stopped, committed, deltas that add up to each completed."""
    audio = at_rate(speech, 24_000).tobytes()
    events = run_session(server, pcm16_session({"type": "server_vad"}), chunks(audio, 24 * 2 * CHUNK_MS))
    assert events[0]["type"] == "session.created" and events[1]["type"] == "session.updated"
    assert events[1]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    started, completed = of_type(events, "input_audio_buffer.speech_started"), \
        of_type(events, "conversation.item.input_audio_transcription.completed")
    assert started and len(of_type(events, "input_audio_buffer.committed")) == len(completed)
    assert all(e["audio_start_ms"] < 8000 for e in started)
    at = {(e["type"], e.get("item_id")): i for i, e in enumerate(events)}
    for item in (e["item_id"] for e in completed if e["transcript"]):  # OpenAI's order within a turn
        assert at[("input_audio_buffer.speech_started", item)] < at[("input_audio_buffer.speech_stopped", item)] \
            < at[("input_audio_buffer.committed", item)] \
            < at[("conversation.item.input_audio_transcription.completed", item)]
    for item in completed:
        deltas = [e["delta"] for e in of_type(events, "conversation.item.input_audio_transcription.delta")
                  if e["item_id"] == item["item_id"]]
        assert "".join(deltas) == item["transcript"]
    text = " ".join(e["transcript"] for e in completed if e["transcript"])
    assert len(text.split()) >= 10  # the example has 22 words
    assert not [e for e in events[:-1] if e["type"] == "error"]


def test_pcm16_transcript_matches_the_native_stream(greedy_server, speech, stream_text):
    """24 kHz pcm16 through server_vad gives the native streaming engine's text (greedy on both sides)."""
    audio = at_rate(speech, 24_000).tobytes()
    events = run_session(greedy_server, pcm16_session({"type": "server_vad"}), chunks(audio, 24 * 2 * CHUNK_MS))
    completed = of_type(events, "conversation.item.input_audio_transcription.completed")
    text = " ".join(e["transcript"] for e in completed if e["transcript"])
    assert len(text.split()) >= 10  # the example has 22 words
    assert jiwer.cer(stream_text, text) < 0.1, (stream_text, text)


def test_g711_client_commits_one_turn_and_bad_input_loses_nothing(server, speech):
    """turn_detection null with G.711 mu-law at 8 kHz: one commit, one item; errors in between lose no audio."""
    audio = g711_encode(at_rate(speech, 8_000), "g711_ulaw")
    session = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}}}
    pieces = chunks(audio, 8 * CHUNK_MS)
    clean = run_session(server, session, pieces)
    half = len(pieces) // 2
    bad = [{"type": "input_audio_buffer.append", "audio": "not base64!!", "event_id": "b64"},
           {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(160_000)).decode(), "event_id": "big"},
           {"type": "session.update", "event_id": "fmt", "session": {"type": "transcription", "audio": {"input": {
               "format": {"type": "audio/mp3"}}}}},
           {"type": "response.create", "event_id": "unknown"}, ]
    with connect(server) as connection:
        events = [json.loads(connection.recv_bytes())]
        connection.session.update(session=session)
        for piece in pieces[:half]:
            connection.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        for event in bad:
            connection.send(event)
        for piece in pieces[half:]:
            connection.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        connection.input_audio_buffer.commit()
        connection.send({"type": "end.marker", "event_id": MARKER})
        while not (events[-1]["type"] == "error" and events[-1]["error"]["event_id"] == MARKER):
            events.append(json.loads(connection.recv_bytes()))
    errors = {e["error"]["event_id"]: e["error"] for e in of_type(events, "error")}
    assert errors["b64"]["param"] == "audio" and errors["big"]["code"] == "message_too_large"
    assert errors["fmt"]["param"] == "session.audio.input.format.type" and errors["unknown"]["param"] == "type"
    for event in events:
        validate(event)
    for run in (clean, events):
        assert not of_type(run, "input_audio_buffer.speech_started")  # no server VAD events
        assert len(of_type(run, "conversation.item.input_audio_transcription.completed")) == 1
    transcript = of_type(clean, "conversation.item.input_audio_transcription.completed")[0]["transcript"]
    assert len(transcript.split()) >= 10
    assert of_type(events, "conversation.item.input_audio_transcription.completed")[0]["transcript"] == transcript


def test_beta_transcription_session_update_with_alaw(server, speech):
    """The beta event transcription_session.update (g711_alaw) is answered with transcription_session.updated."""
    audio = g711_encode(at_rate(speech, 8_000), "g711_alaw")
    with connect(server) as connection:
        assert json.loads(connection.recv_bytes())["type"] == "session.created"
        connection.send({"type": "transcription_session.update", "session": {
            "input_audio_format": "g711_alaw", "turn_detection": None,
            "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en"}}})
        updated = json.loads(connection.recv_bytes())
        for piece in chunks(audio, 8 * CHUNK_MS):
            connection.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        connection.input_audio_buffer.commit()
        while (event := json.loads(connection.recv_bytes()))["type"] != \
                "conversation.item.input_audio_transcription.completed":
            assert event["type"] != "error", event
    assert updated["type"] == "transcription_session.updated"
    assert updated["session"]["input_audio_format"] == "g711_alaw" and updated["session"]["turn_detection"] is None
    assert len(event["transcript"].split()) >= 10


def test_commit_of_an_empty_buffer_is_an_error(server):
    """Committing with no audio appended is answered with input_audio_buffer_commit_empty."""
    with connect(server) as connection:
        json.loads(connection.recv_bytes())
        connection.input_audio_buffer.commit()
        event = json.loads(connection.recv_bytes())
    assert event["type"] == "error" and event["error"]["code"] == "input_audio_buffer_commit_empty"


def test_browser_style_key_in_the_subprotocol(server):
    """Browsers pass the key as the `openai-insecure-api-key.KEY` subprotocol; a wrong one gets 401."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    url = server.ws + "/v1/realtime?intent=transcription"
    with ws_connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{TOKEN}"]) as ws:
        assert ws.subprotocol == "realtime" and json.loads(ws.recv(timeout=10))["type"] == "session.created"
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url, subprotocols=["realtime", "openai-insecure-api-key.wrong"])
    assert refused.value.response.status_code == 401


def test_g711_tables_match_the_standard():
    """The mu-law and A-law tables are ITU-T G.711's (audioop, where Python still has it)."""
    audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    assert g711_table("g711_ulaw").tolist() == np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2").tolist()
    assert g711_table("g711_alaw").tolist() == np.frombuffer(audioop.alaw2lin(codes, 2), "<i2").tolist()

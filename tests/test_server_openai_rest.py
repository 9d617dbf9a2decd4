"""OpenAI-compatible REST API, with the official openai SDK as the client against `xlsr-live serve`."""

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from serve_process import DEMO, ServeProcess

openai = pytest.importorskip("openai")
EXAMPLE = DEMO / "example.wav"
TOKEN = "rest-token"
LIMIT = 400_000  # bytes: the example (255 kB) fits, 600 kB of silence does not


@pytest.fixture(scope="module")
def server():
    """One demo-model server with a token and a small upload limit."""
    with ServeProcess("--token", TOKEN, "--max-upload-bytes", str(LIMIT)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    """The SDK pointed at the server."""
    return openai.OpenAI(base_url=server.http + "/v1", api_key=TOKEN, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def offline_text():
    """What `xlsr-live transcribe` prints for the example."""
    out = subprocess.run([sys.executable, "-m", "xlsr_live.cli", "transcribe", str(EXAMPLE), "--model", str(DEMO)],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


def transcribe(client, **kwargs):
    """One transcription of the example file."""
    with open(EXAMPLE, "rb") as handle:
        return client.audio.transcriptions.create(model="whisper-1", file=handle, **kwargs)


def test_json_and_text_equal_the_offline_command(client, offline_text):
    """json and text formats carry exactly the text of `xlsr-live transcribe` on the same file."""
    assert offline_text
    result = transcribe(client)
    assert result.text == offline_text
    assert result.usage.type == "duration" and result.usage.seconds == pytest.approx(7.96, abs=0.01)
    assert transcribe(client, response_format="text").strip() == offline_text


def test_verbose_json_words_and_segments(client, offline_text):
    """verbose_json has duration, segments and (when asked) words whose text is the transcript."""
    result = transcribe(client, response_format="verbose_json", timestamp_granularities=["word", "segment"],
                        language="en")
    assert result.text == offline_text and result.language == "en" and result.duration == pytest.approx(7.96, abs=0.01)
    assert " ".join(w.word for w in result.words) == offline_text
    assert " ".join(s.text for s in result.segments) == offline_text
    assert all(a.end <= b.start + 1e-6 for a, b in zip(result.words, result.words[1:]))
    only_segments = transcribe(client, response_format="verbose_json")
    assert only_segments.words is None and only_segments.segments
    with open(EXAMPLE, "rb") as handle:  # the raw JSON validates against the SDK's own pydantic types
        raw = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=handle, response_format="verbose_json", timestamp_granularities=["word"])
    from openai.types.audio import TranscriptionVerbose

    TranscriptionVerbose.model_validate(raw.http_response.json(), strict=True)


def test_srt_and_vtt(client, offline_text):
    """srt and vtt are subtitle documents whose cue texts are the transcript."""
    srt, vtt = transcribe(client, response_format="srt"), transcribe(client, response_format="vtt")
    assert srt.startswith("1\n00:00:") and " --> " in srt
    assert vtt.startswith("WEBVTT\n") and " --> " in vtt
    cue_text = [line for line in vtt.splitlines()[2:] if line and "-->" not in line]
    assert " ".join(cue_text) == offline_text


def test_models_lists_the_served_model(client):
    """GET /v1/models lists the one loaded model."""
    assert [m.id for m in client.models.list()] == ["demo"]


def test_wrong_key_is_401_with_openai_error(server):
    """A wrong API key gets 401 and OpenAI's error JSON."""
    bad = openai.OpenAI(base_url=server.http + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        transcribe(bad)
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key" and caught.value.body["type"] == "invalid_request_error"


def test_oversize_upload_is_413(client):
    """A file over --max-upload-bytes is refused with 413 and a message naming the limit."""
    data = io.BytesIO()
    soundfile.write(data, np.zeros(300_000, np.int16), 16000, format="WAV")
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", data.getvalue()))
    assert caught.value.status_code == 413
    assert str(LIMIT) in caught.value.body["message"] and caught.value.body["param"] == "file"


def test_bad_requests_are_400(client):
    """Not audio, or an unknown response format: 400 naming the parameter."""
    with pytest.raises(openai.BadRequestError) as not_audio:
        client.audio.transcriptions.create(model="whisper-1", file=("notes.wav", b"this is not audio" * 10))
    assert not_audio.value.body["param"] == "file" and "notes.wav" in not_audio.value.body["message"]
    with pytest.raises(openai.BadRequestError) as bad_format:
        transcribe(client, response_format="mp3")
    assert bad_format.value.body["param"] == "response_format"

"""A tiny deterministic fake of the engine's split API, for protocol tests without a model."""

import json
import subprocess

import numpy as np
from websockets.exceptions import ConnectionClosed

from xlsr_live.ctc import Word
from xlsr_live.streaming.events import Final, Partial, SpeechEnd, SpeechStart

WINDOW = 1600  # samples per fake window (100 ms at 16 kHz)
UTTERANCE = 5  # windows per fake utterance


class FakeJob:
    """One window: its level is what the fake 'model' reads."""

    def __init__(self, owner, index, level):
        self.owner, self.index, self.level = owner, index, level


class FakeRecognizer:
    """Words are window levels; every UTTERANCE windows make one final."""

    def __init__(self, sample_rate):
        self.sample_rate = sample_rate
        self.reset()

    def reset(self):
        self.buffer, self.index, self.words, self.in_flight, self.ended = [], 0, [], None, False

    def push(self, audio):
        audio = np.asarray(audio, dtype=np.float64) * (32768 if audio.dtype == np.float32 else 1)
        self.buffer.extend(audio.tolist())
        return [SpeechStart(0.0)] if self.index == 0 and not self.words and len(self.buffer) == len(audio) else []

    def next_job(self):
        if self.in_flight is not None or not self.buffer or (len(self.buffer) < WINDOW and not self.ended):
            return None
        chunk, self.buffer = self.buffer[:WINDOW], self.buffer[WINDOW:]
        self.in_flight = FakeJob(self, self.index, int(round(abs(np.mean(chunk)))) % 1000)
        return self.in_flight

    def complete(self, job, logits):
        assert job is self.in_flight, "complete() got a job of another stream"
        self.in_flight = None
        self.index += 1
        self.words.append(f"w{int(logits)}")
        if len(self.words) < UTTERANCE and not (self.ended and not self.buffer):
            return [Partial(" ".join(self.words[:-1]), " " + self.words[-1], 0.0, self.index * 0.1)]
        return self._final()

    def _final(self):
        end = self.index * WINDOW / self.sample_rate
        words = tuple(Word(w, end - 0.1, end, 1.0) for w in self.words)
        text, self.words = " ".join(self.words), []
        return [SpeechEnd(end), Final(text, 0.0, end, words)]

    def end(self):
        self.ended = True
        return [] if self.buffer else (self._final() if self.words else [])

    @property
    def done(self):
        return self.ended and not self.buffer and self.in_flight is None


class FakeEngine:
    """Counts batch sizes; 'logits' of a job is its level."""

    def __init__(self):
        self.batch_sizes = []

    def create(self, options):
        if not 4000 <= options.sample_rate <= 384000:
            raise ValueError(f"sample rate {options.sample_rate} Hz is outside the supported range")
        return FakeRecognizer(options.sample_rate)

    def run_jobs(self, jobs):
        self.batch_sizes.append(len(jobs))
        return [job.level for job in jobs]


def run_server(engine, client, **options):
    """Start a SpeechServer on port 0 in a fresh loop, run `await client(server)`, shut down."""
    import asyncio

    from xlsr_live.server.app import SpeechServer
    from xlsr_live.server.options import ServerOptions

    async def main():
        async with SpeechServer(engine, ServerOptions(port=0, **options)) as server:
            return await client(server)

    return asyncio.run(main())


def level_audio(levels, windows_each=1):
    """int16 audio whose fake windows read as `levels` (one level per WINDOW samples)."""
    return np.concatenate([np.full(WINDOW * windows_each, level, dtype=np.int16) for level in levels])


SENTENCES = ["hello world", "good morning everyone", "the quick brown fox", "speech recognition works",
             "one two three four", "streaming audio in real time", "a websocket server", "micro batching helps",
             "nothing is lost", "no cross talk please", "sixteen clients at once", "the final result",
             "partial hypotheses", "seven eight nine", "testing the engine", "goodbye for now"]
RATE = 22050  # espeak-ng's native rate: the server resamples


def speak(text: str) -> np.ndarray:
    """int16 speech from espeak-ng at 22050 Hz (the test skips without espeak-ng, or fails under CI)."""
    from needs import require_tool

    espeak = require_tool("espeak-ng", "no synthetic speech for this test")
    wav = subprocess.run([espeak, "--stdout", text], capture_output=True, check=True).stdout
    return np.frombuffer(wav[44:], dtype="<i2").astype(np.int16)


async def drain(ws) -> list[dict]:
    """Every message until the server closes (whatever the close code), as dicts."""
    messages = []
    try:
        async for raw in ws:
            messages.append(json.loads(raw))
    except ConnectionClosed:  # raised for close codes other than 1000/1001
        pass
    return messages


def http_status(url):
    """Status of a GET."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code

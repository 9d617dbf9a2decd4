"""Client side of benchmarks/capacity.py: N native-protocol streams paced at real time.

Run as a worker process (the default in capacity.py, so the clients' CPU does not come out of the
server's two cores' share in the same interpreter):

    python benchmarks/capacity_clients.py SPEC.json      # prints one JSON result on stdout

SPEC: {"url", "wav", "offsets_s": [...], "seconds", "speed", "stagger_s", "lookahead_s", "grace_s", "seed"}.

Partial latency (one value per `partial` message), measured on the client's clock only:

    latency = t_received(partial) - t_sent(block that contains stream time partial.end)

`partial.end` is the end of the audio the partial commits; `t_sent(x)` is when the client handed
the 100 ms block holding time `x` to the websocket. This includes the engine's lookahead (the
window needs `lookahead + 20 ms` more audio before it can run), network, queueing and compute.
`ready_latency` measures from the block that completes the window instead (end + lookahead +
20 ms): what the server and model add on top of the algorithmic delay.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from _common import BLOCK_MS, SAMPLE_RATE  # also puts this checkout first on sys.path
from xlsr_live.client.stream import ClientOptions, paced, recognize, split_blocks


def sent_time(block_ends: list[float], sent_at: list[float], stream_time: float) -> Optional[float]:
    """When the block holding `stream_time` was sent (the last block if it lies beyond the audio)."""
    if not sent_at:
        return None
    index = bisect.bisect_left(block_ends, stream_time - 1e-6)
    return sent_at[min(index, len(sent_at) - 1)]


def partial_latencies(block_ends: list[float], sent_at: list[float], received: list[tuple[float, dict]],
                      extra_s: float = 0.0) -> list[float]:
    """Latency of every partial: arrival minus the send time of the block with `end + extra_s`."""
    values = []
    for arrived, message in received:
        if message.get("type") != "partial":
            continue
        sent = sent_time(block_ends, sent_at, float(message["end"]) + extra_s)
        if sent is not None:
            values.append(arrived - sent)
    return values


def completeness(messages: list[dict], close_code: Optional[int]) -> dict:
    """Did the stream get a final for every utterance it started, and a clean end?"""
    starts = sum(m.get("type") == "speech_start" for m in messages)
    finals = [m for m in messages if m.get("type") == "final"]
    ended = any(m.get("type") == "end_of_stream" for m in messages)
    errors = [m for m in messages if m.get("type") == "error"]
    samples = next((m.get("samples") for m in messages if m.get("type") == "end_of_stream"), None)
    return {"speech_starts": starts, "finals": len(finals), "final_texts": [m["text"] for m in finals],
            "end_of_stream": ended, "samples_received": samples, "close_code": close_code, "errors": len(errors),
            "complete": ended and close_code == 1000 and starts == len(finals) and not errors}


async def run_stream(url: str, audio: np.ndarray, delay: float, speed: float, lookahead_s: float,
                     timeout: float) -> dict:
    """One paced stream; records each block's send time and each message's arrival time."""
    await asyncio.sleep(delay)  # staggered start, like independent callers
    blocks = split_blocks(audio, SAMPLE_RATE, BLOCK_MS)
    block_ends = list(np.cumsum([b.size for b in blocks]) / SAMPLE_RATE)
    sent_at: list[float] = []
    received: list[tuple[float, dict]] = []

    async def timed():
        async for block in paced(blocks, SAMPLE_RATE, speed):
            sent_at.append(time.monotonic())
            yield block

    def on_message(message: dict) -> None:
        received.append((time.monotonic(), message))

    close_code = None
    try:
        result = await asyncio.wait_for(recognize(url, timed(), ClientOptions(), on_message), timeout)
        close_code = result.close_code
    except (asyncio.TimeoutError, OSError) as exc:
        received.append((time.monotonic(), {"type": "error", "code": "client", "message": repr(exc)}))
    record = completeness([m for _, m in received], close_code)
    record["samples_sent"] = int(audio.size)
    record["latency"] = partial_latencies(block_ends, sent_at, received)
    record["ready_latency"] = partial_latencies(block_ends, sent_at, received, lookahead_s + 0.02)
    if sent_at and received:
        record["end_wait_s"] = received[-1][0] - sent_at[-1]  # last block sent -> last message
    return record


def cut_clips(audio: np.ndarray, offsets_s: list[float], seconds: float) -> list[np.ndarray]:
    """Clips of `seconds` at the given offsets (int16)."""
    length = int(seconds * SAMPLE_RATE)
    clips = []
    for offset in offsets_s:
        start = int(offset * SAMPLE_RATE)
        clips.append(audio[start:start + length])
    return clips


async def run_clients(url: str, clips: list[np.ndarray], speed: float = 1.0, stagger_s: float = 1.0,
                      lookahead_s: float = 0.4, grace_s: float = 60.0, seed: int = 0) -> list[dict]:
    """All streams at once, each starting at a random moment within `stagger_s`."""
    rng = random.Random(seed)
    timeout = max(c.size for c in clips) / SAMPLE_RATE / (speed if speed > 0 else 1e9) + stagger_s + grace_s
    return list(await asyncio.gather(*(
        run_stream(url, clip, rng.uniform(0, stagger_s), speed, lookahead_s, timeout) for clip in clips)))


def main() -> None:
    import soundfile

    spec = json.loads(Path(sys.argv[1]).read_text())
    audio, rate = soundfile.read(spec["wav"], dtype="int16")
    assert rate == SAMPLE_RATE, f"{spec['wav']} is {rate} Hz, expected {SAMPLE_RATE}"
    clips = cut_clips(audio, spec["offsets_s"], spec["seconds"])
    cpu_before, wall_before = time.process_time(), time.monotonic()
    streams = asyncio.run(run_clients(spec["url"], clips, spec.get("speed", 1.0), spec.get("stagger_s", 1.0),
                                      spec.get("lookahead_s", 0.4), spec.get("grace_s", 60.0), spec.get("seed", 0)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"streams": streams, "client_cpu_s": time.process_time() - cpu_before,
                      "client_wall_s": time.monotonic() - wall_before, "client_max_rss_kb": usage.ru_maxrss}))


if __name__ == "__main__":
    main()

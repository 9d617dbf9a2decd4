"""benchmarks/capacity.py helpers: latency definition, completeness, level bookkeeping, fake-server run."""

import capacity
import capacity_clients as cc
from server_fake import FakeEngine, level_audio, run_server


def test_sent_time_picks_the_block_holding_the_time():
    """A stream time maps to the send time of the first block ending at or after it."""
    ends, sent = [0.1, 0.2, 0.3], [10.0, 10.1, 10.2]
    assert cc.sent_time(ends, sent, 0.05) == 10.0
    assert cc.sent_time(ends, sent, 0.2) == 10.1
    assert cc.sent_time(ends, sent, 0.21) == 10.2
    assert cc.sent_time(ends, sent, 5.0) == 10.2  # beyond the audio: the last block
    assert cc.sent_time([], [], 1.0) is None


def test_partial_latency_is_arrival_minus_send_of_the_covering_block():
    """Only partials count; `extra_s` shifts the reference block (lookahead)."""
    ends, sent = [0.1, 0.2, 0.3, 0.4], [0.0, 0.1, 0.2, 0.3]
    received = [(0.05, {"type": "speech_start", "time": 0.0}),
                (0.5, {"type": "partial", "end": 0.2}),
                (0.9, {"type": "final", "end": 0.4})]
    assert cc.partial_latencies(ends, sent, received) == [0.5 - 0.1]
    assert cc.partial_latencies(ends, sent, received, extra_s=0.2) == [0.5 - 0.3]


def test_completeness_needs_a_final_per_start_and_a_clean_end():
    """Missing finals, a bad close code or an error make a stream incomplete."""
    good = [{"type": "speech_start"}, {"type": "final", "text": "a"}, {"type": "end_of_stream"}]
    assert cc.completeness(good, 1000)["complete"]
    assert not cc.completeness(good[:1] + good[2:], 1000)["complete"]
    assert not cc.completeness(good, 1011)["complete"]
    assert not cc.completeness(good + [{"type": "error"}], 1000)["complete"]


def test_clip_offsets_are_distinct_and_leave_room_for_the_clip():
    """Every client gets its own cut, fully inside the recording."""
    offsets = capacity.clip_offsets(180.0, 45.0, 64)
    assert len(set(offsets)) == 64
    assert all(0 <= o <= 135.0 for o in offsets)


def test_largest_passing_stops_at_the_first_failure():
    """A pass after a failure does not count."""
    rows = [{"streams": 1, "passed": True}, {"streams": 2, "passed": True},
            {"streams": 4, "passed": False}, {"streams": 8, "passed": True}]
    assert capacity.largest_passing(rows) == 2
    assert capacity.largest_passing([{"streams": 1, "passed": False}]) == 0


def test_run_clients_against_a_fake_server_records_every_stream():
    """Several unpaced streams all complete and every partial gets a latency."""
    clips = [level_audio([1 + i, 2, 3]) for i in range(3)]

    async def client(server):
        return await cc.run_clients(server.url, clips, speed=0, stagger_s=0.0, grace_s=30.0)

    streams = run_server(FakeEngine(), client)
    assert [s["complete"] for s in streams] == [True, True, True]
    assert [s["finals"] for s in streams] == [1, 1, 1]
    assert [len(s["latency"]) for s in streams] == [len(s["ready_latency"]) for s in streams] == [3, 3, 3]
    assert streams[0]["final_texts"] == ["w1 w2 w3"]


def test_summarise_fails_a_level_with_an_incomplete_stream():
    """Low latency is not enough: every stream must have all its finals."""
    streams = [{"latency": [0.2], "ready_latency": [0.1], "complete": True, "finals": 1},
               {"latency": [0.3], "ready_latency": [0.1], "complete": False, "finals": 0}]
    row = capacity.summarise(2, True, {"streams": streams}, {}, limit=1.0)
    assert row["latency_p95"] < 1.0 and row["complete_streams"] == 1 and not row["passed"]


def test_two_workers_still_deliver_every_result():
    """With two batches in flight (ServerOptions(workers=2)) every stream still gets its final."""
    import asyncio

    from xlsr_live.server.app import SpeechServer
    from xlsr_live.server.options import ServerOptions

    clips = [level_audio([1 + i, 2, 3]) for i in range(4)]
    engine = FakeEngine()

    async def main():
        server = SpeechServer(engine, ServerOptions(port=0, workers=2))
        async with server:
            return await cc.run_clients(server.url, clips, speed=0, stagger_s=0.0, grace_s=30.0)

    streams = asyncio.run(main())
    assert [s["final_texts"] for s in streams] == [[f"w{1 + i} w2 w3"] for i in range(4)]
    assert sum(engine.batch_sizes) == 12

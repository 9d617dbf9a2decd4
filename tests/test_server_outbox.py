"""Outbox: stale partials dropped while the client is behind, finals never, bounded, send timeout."""

import asyncio

import pytest
from websockets.protocol import State

from xlsr_live.server.outbox import Outbox, SlowClientError


class GatedSocket:
    """A websocket stand-in whose sends wait for `gate` (a client that is not reading)."""

    def __init__(self):
        self.gate, self.sent, self.closed = asyncio.Event(), [], None
        self.state = State.OPEN
        self.transport = self

    async def send(self, text):
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code, reason):
        self.closed = code

    def abort(self):
        self.state = State.CLOSED


def test_stale_partials_are_dropped_finals_never():
    """While the first send is blocked, each newer partial or final drops the queued partials only."""
    async def main():
        ws = GatedSocket()
        dropped = []
        box = Outbox(ws, max_messages=8, on_drop=dropped.append)
        await box.put("p1", partial=True)
        await asyncio.sleep(0)  # the sender takes p1 and blocks in send
        for text, partial, final in [("p2", True, False), ("p3", True, False), ("f1", False, True),
                                     ("p4", True, False), ("s", False, False), ("p5", True, False),
                                     ("e", False, False), ("f2", False, True)]:
            await box.put(text, partial=partial, supersedes=final)
        ws.gate.set()
        await box.flush()
        await box.close()
        return ws.sent, box.stats, dropped

    sent, stats, dropped = asyncio.run(main())
    assert sent == ["p1", "f1", "s", "e", "f2"]
    assert stats.dropped_partials == 4 == sum(dropped) and stats.sent == 5


def test_undroppable_messages_are_bounded_put_waits():
    """With max_messages undroppable messages queued, put() waits until the client reads."""
    async def main():
        ws = GatedSocket()
        box = Outbox(ws, max_messages=3)
        for i in range(4):  # the first is taken by the sender, three wait
            await box.put(f"m{i}")
            await asyncio.sleep(0)
        blocked = asyncio.ensure_future(box.put("m4"))
        done, _ = await asyncio.wait({blocked}, timeout=0.2)
        was_blocked, depth = not done, box.depth
        ws.gate.set()
        await blocked
        await box.flush()
        await box.close()
        return was_blocked, depth, ws.sent, box.stats.max_depth

    was_blocked, depth, sent, max_depth = asyncio.run(main())
    assert was_blocked and depth == 3 and max_depth == 3
    assert sent == ["m0", "m1", "m2", "m3", "m4"]


def test_send_timeout_closes_with_4003_and_fails_later_puts():
    """A send blocked past send_timeout_s closes the connection (4003) and put() raises."""
    async def main():
        ws = GatedSocket()
        box = Outbox(ws, max_messages=2, send_timeout_s=0.05)
        await box.put("m0")
        with pytest.raises(SlowClientError):
            await box.flush()
        with pytest.raises(SlowClientError):
            await box.put("m1")
        await box.close()
        return ws.closed, ws.state, box.stats.stalled

    assert asyncio.run(main()) == (4003, State.CLOSED, True)

"""The browser page in headless Chromium with a fake microphone playing a WAV file.

With the tiny random model the words are noise, so that test asserts that the page connects,
streams audio at 16 kHz and shows partial and final events. Recognised words are checked with the
packaged demo model, on a phrase spoken by one of its training voices: this tests the browser
path (capture, worklet resampling, websocket, captions), not the model's accuracy on new voices.
"""

import asyncio
import json

import numpy as np
import pytest
import soundfile
from websockets.asyncio.client import connect

from needs import find_tool, require_tool
from server_fake import RATE, run_server, speak
from xlsr_live.server.engine import ModelEngine

CHROMIUM = find_tool("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream", "--remote-debugging-port=0"]


LOADED = ("new Promise(r => document.readyState === 'complete' && window.xlsrLive ? r(true)"
          " : addEventListener('load', () => r(true)))")


PHRASE = "the sun is shining today"
EXPECTED = ["the", "shining"]


@pytest.fixture(scope="module")
def fake_mic_wav(tmp_path_factory):
    """A phrase in espeak-ng's default voice (a training voice of the demo model), then a second
    of silence: what Chromium's fake microphone plays (it loops)."""
    require_tool("chromium", "no browser to run the page in (apt-get install -y chromium)")
    require_tool("espeak-ng", "no speech for the fake microphone")
    path = tmp_path_factory.mktemp("mic") / "phrase.wav"
    audio = np.concatenate([speak(PHRASE), np.zeros(RATE, np.int16)])
    soundfile.write(str(path), audio, RATE, subtype="PCM_16")
    return path


async def devtools_url(process) -> str:
    """The browser's DevTools websocket URL, read from Chromium's stderr."""
    while True:
        line = (await process.stderr.readline()).decode()
        if not line:
            raise RuntimeError("chromium exited before DevTools started")
        if "DevTools listening on" in line:
            return line.split("DevTools listening on ", 1)[1].strip()


async def evaluate(page_ws: str, expression: str, timeout: float):
    """Evaluate an (awaited) JavaScript expression in the page and return its JSON value."""
    async with connect(page_ws, max_size=None) as ws:
        await ws.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {
            "expression": expression, "awaitPromise": True, "returnByValue": True}}))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if reply.get("id") == 1:
                if "error" in reply:  # e.g. the execution context went away while the page navigated
                    raise ConnectionError(f"DevTools: {reply['error']}")
                result = reply["result"]
                if "exceptionDetails" in result:
                    raise AssertionError(f"page script failed: {result['exceptionDetails']}")
                return result["result"].get("value")


async def open_page(browser_ws: str, url: str) -> str:
    """Open `url` in a new tab through DevTools; returns the tab's DevTools websocket URL."""
    async with connect(browser_ws, max_size=None) as ws:
        await ws.send(json.dumps({"id": 1, "method": "Target.createTarget", "params": {"url": url}}))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if reply.get("id") == 1:
                target = reply["result"]["targetId"]
                return browser_ws.split("/devtools/")[0] + f"/devtools/page/{target}"


FIRST_PARTIAL = "xlsrLive.firstPartial.then(() => true)"


def words_on_page(words: list[str], timeout_ms: int) -> str:
    """A page expression: true as soon as every word is in the final captions, false after the timeout."""
    return f"""new Promise(resolve => {{
      const want = {json.dumps(words)}, captions = document.getElementById("finals");
      const seen = () => new Set(captions.innerText.toLowerCase().split(/\\s+/));
      const done = (value) => {{ observer.disconnect(); clearTimeout(timer); resolve(value); }};
      const observer = new MutationObserver(() => {{ if (want.every(w => seen().has(w))) done(true); }});
      const timer = setTimeout(() => done(false), {timeout_ms});
      observer.observe(captions, {{subtree: true, childList: true, characterData: true}});
    }})"""


def browse(model, wav, profile, until: str = FIRST_PARTIAL, timeout: float = 60) -> dict:
    """Serve `model`, open the page in Chromium with `wav` as microphone, stop once `until` (a page
    expression) resolves; returns the page's final snapshot (counters, texts, captions, errors)."""
    async def client(server):
        page = server.url.replace("ws", "http", 1) + "/?autostart=1"
        process = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--use-file-for-fake-audio-capture={wav}", f"--user-data-dir={profile}",
            "about:blank", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            target = await open_page(await asyncio.wait_for(devtools_url(process), 30), page)
            for attempt in range(20):  # the first document may be replaced while we ask
                try:
                    await evaluate(target, LOADED, 30)
                    break
                except (ConnectionError, AssertionError):
                    if attempt == 19:
                        raise
            await evaluate(target, until, timeout)
            return await evaluate(target, "xlsrLive.stop().then(s => s)", 60)
        finally:
            process.kill()
            await process.wait()

    return run_server(ModelEngine(model), client)


def test_browser_page_streams_microphone_and_shows_events(tiny_model, fake_mic_wav, tmp_path):
    """The page captures the fake microphone, streams it and counts partial and final events."""
    snapshot = browse(tiny_model, fake_mic_wav, tmp_path / "profile")
    assert snapshot["errors"] == []
    assert snapshot["partials"] >= 1 and snapshot["finals"] >= 1
    assert snapshot["sentSeconds"] > 0.5
    # 16 kHz out of the worklet: audio sent keeps pace with the wall clock (one 100 ms block of slack)
    assert abs(snapshot["sentSeconds"] - snapshot["streamedSeconds"]) < 0.1 * snapshot["streamedSeconds"] + 0.15
    assert snapshot["state"].startswith("closed")


def test_browser_page_shows_spoken_words_with_demo_model(fake_mic_wav, tmp_path):
    """Words spoken into the fake microphone appear in the page's captions (demo model)."""
    from xlsr_live.model import load_model

    model = load_model("demo")
    snapshot = browse(model, fake_mic_wav, tmp_path / "profile", words_on_page(EXPECTED, 60_000), 90)
    assert snapshot["errors"] == []
    finals = set(" ".join(snapshot["texts"]).split())
    assert set(EXPECTED) <= finals, snapshot

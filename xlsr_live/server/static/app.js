// xlsr-live browser client: microphone -> AudioWorklet (16 kHz int16) -> websocket (native protocol)
// -> live captions. State for tests and scripts is exposed as window.xlsrLive.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const ui = { start: $("start"), stop: $("stop"), state: $("state"), error: $("error"), finals: $("finals"),
               stable: $("stable"), unstable: $("unstable"), partials: $("partial-count"),
               finalCount: $("final-count"), sent: $("sent-seconds") };
  const params = new URLSearchParams(location.search);
  let resolveFirstPartial, resolveEnded;
  const live = {
    partials: 0, finals: 0, sentSeconds: 0, state: "idle", errors: [], texts: [], streamingSince: null,
    streamedSeconds: 0,
    firstPartial: new Promise((r) => { resolveFirstPartial = r; }),
    ended: new Promise((r) => { resolveEnded = r; }),
    start, stop,
    snapshot() {
      return { partials: this.partials, finals: this.finals, state: this.state, errors: this.errors,
               texts: this.texts, sentSeconds: this.sentSeconds, streamedSeconds: this.streamedSeconds,
               captions: $("captions").innerText };
    },
  };
  window.xlsrLive = live;
  let socket = null, audio = null;

  function setState(state, detail) {
    live.state = state;
    ui.state.dataset.state = state;
    ui.state.textContent = detail ? `${state}: ${detail}` : state;
    ui.start.disabled = state === "connecting" || state === "streaming" || state === "finishing";
    ui.stop.disabled = state !== "streaming";
  }

  function showError(message) {
    live.errors.push(message);
    ui.error.textContent = message;
    ui.error.hidden = false;
    setState("error");
  }

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const token = params.get("token");
    return `${scheme}//${location.host}/native` + (token ? `?token=${encodeURIComponent(token)}` : "");
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      live.streamingSince = performance.now();
      setState("streaming");
    } else if (message.type === "partial") {
      live.partials += 1;
      ui.partials.textContent = ui.partials.dataset.count = live.partials;
      ui.stable.textContent = message.stable;
      ui.unstable.textContent = message.unstable;
      resolveFirstPartial(message);
    } else if (message.type === "final") {
      live.finals += 1;
      live.texts.push(message.text);
      ui.finalCount.textContent = ui.finalCount.dataset.count = live.finals;
      const line = document.createElement("p");
      line.className = "final";
      line.textContent = message.text || "\u2026";
      ui.finals.appendChild(line);
      ui.stable.textContent = ui.unstable.textContent = "";
    } else if (message.type === "error") {
      showError(`${message.code}: ${message.message}`);
    }
  }

  async function openAudio() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true } });
    const context = new AudioContext();
    await context.audioWorklet.addModule("/static/worklet.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm-capture", { processorOptions: { targetRate: 16000 } });
    node.port.onmessage = (event) => {
      if (socket && socket.readyState === WebSocket.OPEN && live.state === "streaming") {
        socket.send(event.data);
        live.sentSeconds += event.data.byteLength / 2 / 16000;
        ui.sent.textContent = live.sentSeconds.toFixed(1);
      }
    };
    source.connect(node);
    return { stream, context, node };
  }

  async function start() {
    ui.error.hidden = true;
    setState("connecting");
    try {
      audio = await openAudio();
    } catch (err) {
      showError(`microphone: ${err.message || err}`);
      return;
    }
    socket = new WebSocket(socketUrl());
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(JSON.stringify(
      { type: "start", sample_rate: 16000, encoding: "pcm_s16le", partials: true }));
    socket.onmessage = onMessage;
    socket.onerror = () => showError("connection failed");
    socket.onclose = (event) => {
      closeAudio();
      if (live.state !== "error") setState("closed", `${event.code} ${event.reason}`.trim());
      resolveEnded(live.snapshot());
    };
  }

  function closeAudio() {
    if (!audio) return;
    audio.node.port.postMessage("stop");
    audio.stream.getTracks().forEach((track) => track.stop());
    audio.context.close();
    audio = null;
  }

  function stop() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return live.ended;
    setState("finishing");
    live.streamedSeconds = (performance.now() - live.streamingSince) / 1000;
    closeAudio();
    socket.send(JSON.stringify({ type: "end" }));
    return live.ended;
  }

  ui.start.addEventListener("click", start);
  ui.stop.addEventListener("click", stop);
  setState("idle");
  if (params.get("autostart") === "1") start();
})();

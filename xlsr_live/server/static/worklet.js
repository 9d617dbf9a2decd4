// AudioWorklet: mono capture, resampling to 16 kHz (box low-pass + linear interpolation),
// int16 blocks of 100 ms posted to the page.
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.targetRate = (options.processorOptions && options.processorOptions.targetRate) || 16000;
    this.step = sampleRate / this.targetRate;          // input samples per output sample
    this.taps = Math.max(1, Math.round(this.step));    // box filter length against aliasing
    this.history = new Float32Array(this.taps);        // last inputs for the box filter
    this.filtered = [];                                 // filtered input not yet consumed
    this.position = 0;                                  // fractional read position in `filtered`
    this.previous = 0;                                  // last filtered sample of the previous call
    this.block = new Int16Array(this.targetRate / 10);
    this.fill = 0;
    this.running = true;
    this.port.onmessage = (event) => { if (event.data === "stop") this.running = false; };
  }

  lowpass(input) {
    const out = new Float32Array(input.length);
    let sum = 0;
    for (let i = 0; i < this.taps; i++) sum += this.history[i];
    for (let i = 0; i < input.length; i++) {
      const oldest = this.history[i % this.taps];
      this.history[i % this.taps] = input[i];
      sum += input[i] - oldest;
      out[i] = sum / this.taps;
    }
    // keep history aligned for the next call
    const rotated = new Float32Array(this.taps);
    for (let i = 0; i < this.taps; i++) rotated[i] = this.history[(input.length + i) % this.taps];
    this.history = rotated;
    return out;
  }

  emit(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.block[this.fill++] = clipped < 0 ? clipped * 32768 : clipped * 32767;
    if (this.fill === this.block.length) {
      this.port.postMessage(this.block.buffer, [this.block.buffer]);
      this.block = new Int16Array(this.targetRate / 10);
      this.fill = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!this.running) return false;
    if (!channels || channels.length === 0) return true;
    const mono = new Float32Array(channels[0].length);
    for (const channel of channels) for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / channels.length;
    const x = this.lowpass(mono);
    // output sample k sits at input position `position` (relative to x[0]; -1 is `previous`)
    while (this.position < x.length - 1) {
      const i = Math.floor(this.position);
      const frac = this.position - i;
      const a = i < 0 ? this.previous : x[i];
      const b = x[i + 1];
      this.emit(a + (b - a) * frac);
      this.position += this.step;
    }
    this.position -= x.length;
    this.previous = x[x.length - 1];
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);

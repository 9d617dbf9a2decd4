"""What the benchmark scripts share: paths, percentiles, memory readers, pausing the background
training job, models to measure, synthetic speech, machine facts, and streaming on a simulated
real-time clock. The one load-test client is capacity_clients.py (also run as a client process).

Scripts import it as `import _common` (a script's own folder is first on sys.path); importing it puts
this checkout first on sys.path, so that a benchmark measures the xlsr_live next to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SAMPLE_RATE = 16_000
BLOCK_MS = 100
BLOCK = SAMPLE_RATE * BLOCK_MS // 1000  # samples per 100 ms client message
TRAINING = "train.py --run"  # the demo model's background training job (paused while measuring)
RANDOM_XLSR53 = Path(tempfile.gettempdir()) / "xlsr_live_random_xlsr53"
MODEL_HELP = ("checkpoint folder, hub id or 'demo'; 'tiny': a random tiny checkpoint (smoke runs); "
              "'random-xlsr53': random weights of XLSR-53 size (315 M parameters), cached in the temp folder")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def checkout_env() -> dict:
    """Environment for a subprocess that must import this checkout's xlsr_live."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def write_json(path: str | Path, report: dict) -> None:
    """Write a result file (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# --- statistics ---------------------------------------------------------------------------------

def percentile(values, q: float, digits: int = 3, scale: float = 1.0, empty=None):
    """q-th percentile of `values` times `scale`, rounded to `digits`; `empty` when there are none."""
    return round(float(np.percentile(values, q)) * scale, digits) if len(values) else empty


def percentiles(values, qs=(50, 95), digits: int = 3) -> dict:
    """{"p50": ..., "p95": ...} (None when there are no values)."""
    return {f"p{q:g}": percentile(values, q, digits) for q in qs}


# --- memory -------------------------------------------------------------------------------------

def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def proc_memory_kib(pid: int) -> dict:
    """{"VmRSS": ..., "VmHWM": ...} of process `pid` in KiB (Linux /proc/PID/status); {} once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    fields = (line.split(":", 1) for line in lines if line.startswith(("VmRSS:", "VmHWM:")))
    return {key: int(value.split()[0]) for key, value in fields}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (getrusage; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_free_memory() -> bool:
    """Collect garbage and return freed malloc arenas to the OS (glibc), so RSS differences mean
    something; False where malloc_trim is unavailable."""
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def state_bytes(root, shared: tuple = ()) -> dict:
    """Bytes reachable from `root`, by kind, skipping `shared` objects (the model) and code."""
    import torch

    seen = {id(obj) for obj in shared}
    storages: set[int] = set()
    totals = {"numpy": 0, "torch": 0, "python": 0}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                            torch.nn.Module)):
            continue
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in storages:
                storages.add(storage.data_ptr())
                totals["torch"] += storage.nbytes()
            continue
        if isinstance(obj, np.ndarray):
            if obj.base is None:
                totals["numpy"] += obj.nbytes
            else:
                stack.append(obj.base)
            continue
        totals["python"] += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    totals["total"] = sum(totals.values())
    return totals


# --- the machine --------------------------------------------------------------------------------

@contextlib.contextmanager
def paused(enabled: bool, pattern: str = TRAINING):
    """SIGSTOP the processes matching `pattern` (pkill -f) for the block and always SIGCONT them after."""
    if not enabled:
        yield
        return
    subprocess.run(["pkill", "-STOP", "-f", pattern], check=False)
    try:
        yield
    finally:
        subprocess.run(["pkill", "-CONT", "-f", pattern], check=False)


def _cpuinfo_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


def cpu_flags() -> list[str]:
    """The CPU features that decide bf16/int8 speed (avx2, avx512*, amx*, avx_vnni)."""
    return sorted(f for f in _cpuinfo_flags() if f.startswith(("avx2", "avx512", "amx", "avx_vnni")))


def machine() -> dict:
    """CPU, cores, the vector features torch can use, torch version and threads."""
    import torch

    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "fma")
    flags = _cpuinfo_flags()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cpu_flags": [f for f in wanted if f in flags], "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


# --- models and audio ---------------------------------------------------------------------------

def model_path(name: str | None) -> str:
    """A model to measure: 'tiny' is a fresh random tiny checkpoint, 'random-xlsr53' (or None) a random
    XLSR-53-size one cached in the temp folder; anything else (a path, 'demo', a hub id) as given."""
    from xlsr_live.model.testing import XLSR_53, write_random_checkpoint

    if name == "tiny":
        return str(write_random_checkpoint(Path(tempfile.mkdtemp(prefix="xlsr-live-tiny-"))))
    if name in (None, "random-xlsr53"):
        if not (RANDOM_XLSR53 / "model.safetensors").is_file():
            write_random_checkpoint(RANDOM_XLSR53, **XLSR_53)
        return str(RANDOM_XLSR53)
    return name


def transformers_pipeline(path: str):
    """transformers' ASR pipeline on CPU for a checkpoint folder: the reference the offline benchmarks
    time (callers pass chunk_length_s=10, stride_length_s=(4, 2))."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, pipeline

    model = Wav2Vec2ForCTC.from_pretrained(path).eval()
    return pipeline("automatic-speech-recognition", model=model,
                    tokenizer=Wav2Vec2CTCTokenizer(f"{path}/vocab.json"),
                    feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True),
                    device="cpu")


def espeak(text: str, *flags: str) -> np.ndarray | None:
    """`text` spoken by espeak-ng (extra command-line `flags`), float32 at 16 kHz; None without espeak-ng."""
    import io

    import soundfile

    from xlsr_live.audio import resample

    try:
        wav = subprocess.run(["espeak-ng", "--stdout", *flags, text], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    speech, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return resample(speech, rate)


LOOP_SENTENCES = ["hello world", "the quick brown fox jumps over the lazy dog", "speech recognition in real time",
                  "captions for everyone", "one two three four five six", "a long running service must not leak"]


def loop_audio(seed: int = 0) -> np.ndarray:
    """About a minute of espeak-ng sentences (noise bursts without espeak-ng) separated by 0.3-2 s of
    silence, 16 kHz float32, to loop (soak_memory.py, load_soak.py)."""
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    while sum(p.size for p in pieces) < 60 * SAMPLE_RATE:
        speech = espeak(LOOP_SENTENCES[len(pieces) % len(LOOP_SENTENCES)])
        if speech is None:
            speech = (0.2 * rng.standard_normal(int(rng.uniform(1, 4) * SAMPLE_RATE))).astype(np.float32)
        pieces += [speech, np.zeros(int(rng.uniform(0.3, 2.0) * SAMPLE_RATE), np.float32)]
    return np.concatenate(pieces)


# --- streaming on a simulated real-time clock (streaming_bench.py, plots.py) ----------------------

def simulate(model, audio: np.ndarray, options, timer=time.perf_counter) -> tuple[list[tuple[float, object]], float]:
    """Feed 100 ms blocks on a simulated real-time clock: block i arrives at (i + 1) * 100 ms and each
    feed() starts when its block has arrived and the previous feed() has finished, taking its measured
    wall time (or whatever `timer` measures, e.g. time.thread_time: CPU time of this thread); (emission
    time, event) pairs and the compute seconds."""
    from xlsr_live.decoding import DecoderFactory
    from xlsr_live.decoding.lm import resolve_decoder
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    decoders = DecoderFactory(model.vocab, resolve_decoder(options.decoder, model.source))
    decoders.prepare()  # a language model loads before the stream starts, as a server loads it at start-up
    recognizer = StreamingRecognizer(model, options, decoders=decoders)
    clock, compute, emitted = 0.0, 0.0, []
    for index in range(0, audio.size, BLOCK):
        arrival = (index + BLOCK) / SAMPLE_RATE
        started = timer()
        events = recognizer.feed(audio[index : index + BLOCK])
        spent = timer() - started
        clock = max(clock, arrival) + spent
        compute += spent
        emitted += [(clock, e) for e in events]
    started = timer()
    events = recognizer.flush()
    spent = timer() - started
    emitted += [(max(clock, audio.size / SAMPLE_RATE) + spent, e) for e in events]
    return emitted, compute + spent


def word_times(emitted) -> list[dict]:
    """Per final word: audio span, and emission times of its first partial, stable commit, final."""
    rows, pending = [], []
    for when, event in emitted:
        if event.type == "partial":
            pending.append((when, event))
            continue
        if event.type != "final":
            continue
        words = event.text.split()
        for k, word in enumerate(event.words):
            covered = len(" ".join(words[: k + 1]))
            first = next((t for t, p in pending if len(p.text.split()) > k and p.text.split()[k] == words[k]), when)
            stable = next((t for t, p in pending if len(p.stable) >= covered), when)
            rows.append({"word": word.word, "start": word.start, "end": word.end,
                         "first_partial": first, "stable": stable, "final": when})
        pending = []
    return rows


def word_latencies(emitted) -> dict:
    """Per final word: time to first appearance in a partial and to becoming stable; flicker."""
    flicker, partials, violations = 0, 0, 0
    previous_text, previous_stable = "", ""
    for _, event in emitted:
        if event.type == "partial":
            partials += 1
            flicker += not event.text.startswith(previous_text)
            violations += not event.stable.startswith(previous_stable)
            previous_text, previous_stable = event.text, event.stable
        elif event.type == "final":
            violations += not event.text.startswith(previous_stable)
            previous_text, previous_stable = "", ""
    rows = word_times(emitted)
    return {"first_partial": [r["first_partial"] - r["end"] for r in rows],
            "stable": [r["stable"] - r["end"] for r in rows], "flicker_rate": flicker / max(partials, 1),
            "partials": partials, "stable_rewrites": violations}

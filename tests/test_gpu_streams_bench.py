"""benchmarks/gpu_streams.py on CPU: FLOP counts, bucketed forwards equal the engine's batches."""

import numpy as np
import torch

import gpu_streams
from xlsr_live.model.config import Wav2Vec2Config
from xlsr_live.model.testing import XLSR_53
from xlsr_live.streaming.recognizer import StreamingRecognizer
from xlsr_live.streaming.windows import run_jobs


def test_window_flops_of_xlsr53_match_a_hand_count():
    """220 frames of XLSR-53: 24 layers of QKVO + attention + FFN, plus projection, pos conv, head."""
    config = Wav2Vec2Config(vocab_size=32, **XLSR_53)
    t, h = 220, 1024
    layer = 8 * t * h * h + 4 * t * t * h + 4 * t * h * 4096
    expected = 2 * t * 512 * h + 2 * t * h * (h // 16) * 128 + 24 * layer + 2 * t * h * 32
    assert gpu_streams.window_flops(config, t) == expected
    assert 1.3e11 < expected < 1.6e11  # about 142 GFLOP per 4.4 s window


def test_conv_flops_follow_the_layer_lengths():
    """One second through the XLSR conv stack: first layer 3199 frames of 1 -> 512 channels, kernel 10."""
    config = Wav2Vec2Config(vocab_size=32, **XLSR_53)
    first_only = Wav2Vec2Config(vocab_size=32, conv_dim=(512,), conv_kernel=(10,), conv_stride=(5,))
    assert gpu_streams.conv_flops(first_only, 16_000) == 2 * 3199 * 1 * 512 * 10
    assert gpu_streams.conv_flops(config, 16_000) > gpu_streams.conv_flops(first_only, 16_000)


def test_voiced_audio_opens_an_utterance(tiny_model):
    """The synthetic voice is speech to the VAD: pushing it yields a SpeechStart."""
    audio = gpu_streams.voiced_audio(2.0, seed=1)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 0.6
    events = StreamingRecognizer(tiny_model).push(audio)
    assert [e.type for e in events] == ["speech_start"]


def test_bucket_runner_eager_matches_run_jobs(tiny_model, speech_audio):
    """Padding to a bucket shape (batch and frames) leaves each window's logits unchanged."""
    recognizers = [StreamingRecognizer(tiny_model) for _ in range(3)]
    jobs = []
    for index, rec in enumerate(recognizers):
        rec.push(speech_audio[index * 1600:])
        jobs.append(rec.next_job())
    assert all(job is not None for job in jobs)
    runner = gpu_streams.BucketRunner(tiny_model, "eager", [1, 2, 4], frame_step=32)
    assert runner.shape(3, 70) == (4, 96)
    ours = runner.run(jobs)
    reference = run_jobs(tiny_model, jobs)
    for mine, theirs, job in zip(ours, reference, jobs):
        assert mine.shape == (job.num_frames, tiny_model.config.vocab_size)
        torch.testing.assert_close(mine, torch.from_numpy(theirs), atol=1e-4, rtol=1e-4)


def test_cpu_dry_run_with_the_defaults(tiny_model_dir, tmp_path):
    """No flags but the device: int8 and kv_cache windows (xlsr-live's CPU defaults) stream in lock step."""
    import json

    out = tmp_path / "gpu_streams.json"
    gpu_streams.main(["--device", "cpu", "--model", str(tiny_model_dir), "--streams", "2", "--seconds", "2",
                      "--warmup-s", "0.5", "--out", str(out)])
    report = json.loads(out.read_text())
    assert (report["dtype"], report["mode"], report["chunk_ms"]) == ("int8", "eager", gpu_streams.DEFAULT_CHUNK_MS)
    assert report["runs"][0]["streams"] == 2 and report["runs"][0]["steps_measured"] > 0

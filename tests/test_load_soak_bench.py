"""benchmarks/load_soak.py: the server RSS sampler, its phases, and the per-session fit."""

import os

import _common
import load_soak


def test_proc_memory_reads_rss_and_high_water_mark():
    """VmRSS and VmHWM of a live process in KiB (peak >= current); nothing for a process that is gone."""
    memory = _common.proc_memory_kib(os.getpid())
    assert 0 < memory["VmRSS"] <= memory["VmHWM"]
    assert _common.proc_memory_kib(2**22 + 1) == {}  # above Linux's largest pid


def test_rss_sampler_samples_and_splits_phases():
    """The sampler records at least one sample; idle, steady (second half of the audio) and after are medians."""
    sampler = load_soak.RssSampler(os.getpid(), 0.01).start()
    sampler.stop()
    assert sampler.samples and sampler.hwm_kib >= sampler.samples[0][1] > 0
    sampler.samples = [(0.5, 1000), (1.5, 2000), (2.5, 3000), (3.5, 4000), (5.0, 500)]
    sampler.marks = {"clients": 1.0, "audio_end": 4.0, "done": 4.5}
    summary = sampler.summary()
    assert summary["idle_mb"] == round(1000 * 1024 / 1e6, 2)
    assert summary["steady_mb"] == round(3500 * 1024 / 1e6, 2)
    assert summary["after_mb"] == round(500 * 1024 / 1e6, 2)
    assert summary["samples"] == 5


def test_fit_per_session_is_the_least_squares_slope():
    """RSS growing 1.5 MB per session plus noise-free intercept gives slope 1.5 and zero residual."""
    runs = [{"connections": n, "server_memory": {"steady_mb": 300 + 1.5 * n}} for n in (1, 8, 16, 24)]
    fit = load_soak.fit_per_session(runs, "steady_mb")
    assert fit["mb_per_session"] == 1.5 and fit["intercept_mb"] == 300.0 and fit["max_residual_mb"] == 0.0
    assert fit["mib_per_session"] == round(1.5e6 / 2**20, 3)

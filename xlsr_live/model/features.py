"""Kaldi-style log-mel filter banks as transformers' SeamlessM4TFeatureExtractor computes them.

Wav2Vec2-BERT's input: the waveform scaled to 16-bit range, 25 ms frames every 10 ms (no
padding at the edges), per frame DC removal, pre-emphasis 0.97, Povey window, 512-point power
spectrum, 80 triangular mel filters (Kaldi's mel scale, 20 Hz to Nyquist, triangles in mel
space), natural log floored at float32 epsilon; then each mel bin normalised to zero mean and
unit (unbiased) variance over the input, the frame count padded with a zero frame to a multiple
of two, and pairs of frames stacked: 160 dims at 50 Hz, a stacked frame being real when its
second half is.

Computed in float64 torch (as transformers' numpy code does), batched over right-padded inputs,
on any device. Streaming: every frame depends on its own 400 samples only, the normalisation on
the whole input, so the engine recomputes the features per window and each window is normalised
over itself (as transformers' chunked pipeline normalises each chunk, and as wav2vec2 windows
normalise their waveform); a window holding a whole utterance gives exactly the offline features.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import SAMPLE_RATE

FRAME_SAMPLES = 400  # 25 ms analysis window
HOP_SAMPLES = 160  # 10 ms frame shift
FFT_SIZE = 512
PREEMPHASIS = 0.97
POVEY_POWER = 0.85  # Povey window = symmetric Hann ** 0.85
LOW_HZ = 20.0
LOG_FLOOR = 1.192092955078125e-07  # float32 epsilon, floor of the mel energies before the log
NORM_EPS = 1e-7  # variance floor of the per-bin normalisation
INT16_SCALE = 2 ** 15  # Kaldi works on 16-bit sample values


def kaldi_mel(hz: torch.Tensor) -> torch.Tensor:
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(hz / 700.0)


def mel_filters(num_bins: int, device=None) -> torch.Tensor:
    """(FFT_SIZE // 2 + 1, num_bins) float64 triangles spaced evenly on the mel scale."""
    nyquist = torch.tensor(SAMPLE_RATE / 2, dtype=torch.float64)
    edges = torch.linspace(float(kaldi_mel(torch.tensor(LOW_HZ, dtype=torch.float64))), float(kaldi_mel(nyquist)),
                           num_bins + 2, dtype=torch.float64, device=device)
    bins = kaldi_mel(torch.arange(FFT_SIZE // 2 + 1, dtype=torch.float64, device=device) * (SAMPLE_RATE / FFT_SIZE))
    slopes = edges[None, :] - bins[:, None]  # (F, num_bins + 2)
    widths = edges.diff()
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return torch.minimum(down, up).clamp(min=0.0)


def log_mel(waveform: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """One waveform (S,) in [-1, 1] -> log-mel energies (N, bins) float64, N = 1 + (S - 400) // 160."""
    if waveform.shape[0] < FRAME_SAMPLES:
        return waveform.new_zeros((0, filters.shape[1]), dtype=torch.float64)
    frames = (waveform.double() * INT16_SCALE).unfold(0, FRAME_SAMPLES, HOP_SAMPLES)  # (N, 400)
    frames = frames - frames.mean(dim=1, keepdim=True)
    frames = torch.cat([frames[:, :1] * (1 - PREEMPHASIS), frames[:, 1:] - PREEMPHASIS * frames[:, :-1]], dim=1)
    window = torch.hann_window(FRAME_SAMPLES, periodic=False, dtype=torch.float64,
                               device=waveform.device) ** POVEY_POWER
    power = torch.fft.rfft(frames * window, n=FFT_SIZE).abs() ** 2  # (N, 257)
    return torch.log((power @ filters).clamp(min=LOG_FLOOR))


def normalise_bins(features: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit unbiased variance per bin over the frames (N, bins); one frame gives zeros."""
    if features.shape[0] == 0:
        return features
    variance = features.var(dim=0, unbiased=True, keepdim=True) if features.shape[0] > 1 else 0.0
    return (features - features.mean(dim=0, keepdim=True)) / torch.sqrt(variance + NORM_EPS)


def num_fbank_frames(num_samples: int) -> int:
    """10 ms frames of an input of `num_samples` samples."""
    return 0 if num_samples < FRAME_SAMPLES else 1 + (num_samples - FRAME_SAMPLES) // HOP_SAMPLES


@dataclasses.dataclass(frozen=True)
class FilterBankGeometry:
    """Frames of w2v-BERT's output: stacked filter banks (50 Hz), then `adapter_layers` strided convs."""

    adapter_kernel: int = 3
    adapter_stride: int = 2
    adapter_layers: int = 0
    stack: int = 2

    @property
    def hop_samples(self) -> int:
        """Samples between two output frames: 320, times the adapter strides."""
        return HOP_SAMPLES * self.stack * self.adapter_stride ** self.adapter_layers

    def adapter_lengths(self, lengths, layers: Optional[int] = None, padding: str = "conv"):
        """Frames after `layers` adapter layers (all by default), int or tensor: "conv" = what the convs
        output (they pad stride // 2), "mask" = transformers' attention-mask lengths (kernel // 2)."""
        kernel, stride = self.adapter_kernel, self.adapter_stride
        pad = stride // 2 if padding == "conv" else kernel // 2
        for _ in range(self.adapter_layers if layers is None else layers):
            if isinstance(lengths, torch.Tensor):
                lengths = torch.floor((lengths + 2 * pad - kernel) / stride + 1)
            else:
                lengths = max(math.floor((lengths + 2 * pad - kernel) / stride) + 1, 0)
        return lengths

    @property
    def receptive_field_samples(self) -> int:
        """Samples of the shortest input that yields one output frame made of whole stacked frames
        (560: two 25 ms frames 10 ms apart; more with adapter layers); windows of n frames take
        (n - 1) * hop_samples + this many samples."""
        stacked = 1
        while self.adapter_lengths(stacked) < 1:
            stacked += 1
        return FRAME_SAMPLES + (self.stack * stacked - 1) * HOP_SAMPLES

    def num_frames(self, num_samples: int) -> int:
        """Output frames (logits) for an input of `num_samples` samples."""
        frames = math.ceil(num_fbank_frames(num_samples) / self.stack)
        return self.adapter_lengths(frames) if frames else 0


class FilterBank(nn.Module):
    """Batched SeamlessM4TFeatureExtractor: waveforms (B, S) + lengths -> (B, T, bins * stack), mask (B, T)."""

    def __init__(self, num_bins: int = 80, stack: int = 2):
        super().__init__()
        if stack != 2:
            raise ValueError(f"stride {stack}: SeamlessM4TFeatureExtractor pads to a multiple of 2; supported: 2")
        self.num_bins, self.stack = num_bins, stack

    def stacked_frames(self, num_samples: int) -> int:
        """Stacked (50 Hz) frames of an input of `num_samples` samples."""
        return math.ceil(num_fbank_frames(num_samples) / self.stack)

    def frame_mask(self, lengths: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Mask (B, T) of stacked frames whose last 10 ms frame is real, for inputs of `lengths` samples."""
        real = torch.where(lengths >= FRAME_SAMPLES, 1 + (lengths - FRAME_SAMPLES) // HOP_SAMPLES, 0)
        frames = torch.arange(self.stacked_frames(num_samples), device=lengths.device)
        return frames[None, :] < (real // self.stack)[:, None]

    def forward(self, waveform: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S) right-padded, lengths (B,) samples (None: all S) -> features float32, mask."""
        batch, samples = waveform.shape
        if lengths is None:
            lengths = torch.full((batch,), samples, dtype=torch.long, device=waveform.device)
        filters = mel_filters(self.num_bins, waveform.device)
        frames = self.stacked_frames(samples)
        out = torch.zeros((batch, frames * self.stack, self.num_bins), dtype=torch.float32, device=waveform.device)
        for row in range(batch):
            length = int(lengths[row])
            features = normalise_bins(log_mel(waveform[row, :length], filters))
            out[row, : features.shape[0]] = features.float()
        return out.reshape(batch, frames, self.num_bins * self.stack), self.frame_mask(lengths, samples)

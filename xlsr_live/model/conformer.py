"""Conformer blocks (Gulati et al., 2020) as Wav2Vec2-Conformer and Wav2Vec2-BERT use them.

One conformer layer = FFN/2, self-attention, convolution module, FFN/2, final LayerNorm. The
families differ in small parts, chosen by arguments:
- attention positions: "relative" (Transformer-XL style, pos_bias_u/v and a sinusoidal table),
  "rotary" (applied to the attention *input*, before the q/k projections, as transformers does),
  "relative_key" (a learned embedding per clipped distance, left/right maxima), or None;
- convolution module: "symmetric" (conformer: centred depthwise conv + BatchNorm) or "causal"
  (w2v-BERT: left-padded depthwise conv + LayerNorm).

Module and parameter names follow transformers so Hugging Face state dicts load unchanged.
Shapes: B batch, T frames, H hidden, h heads, d = H / h. Masks: True = real frame.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu, "swish": F.silu, "silu": F.silu, "relu": F.relu}
POSITIONS = ("relative", "rotary", "relative_key", None)
CONV_KINDS = ("symmetric", "causal")
DEFAULT_EPS = 1e-5  # nn.LayerNorm's default, used by the conformer family's layer norms


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called `name` in a transformers config; ValueError names a bad one."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r} is not supported; supported: {sorted(ACTIVATIONS)}") from None


class FeedForward(nn.Module):
    """Position-wise MLP: width -> intermediate -> width."""

    def __init__(self, width: int, intermediate: int, act: str):
        super().__init__()
        self.act = activation(act)
        self.intermediate_dense = nn.Linear(width, intermediate)
        self.output_dense = nn.Linear(intermediate, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(self.act(self.intermediate_dense(x)))


class ConvolutionModule(nn.Module):
    """LayerNorm, pointwise conv + GLU, depthwise conv, norm, activation, pointwise conv.

    Padded frames are zeroed before the depthwise conv (w2v-BERT does the same; transformers'
    Wav2Vec2-Conformer does not, so there padding leaks into the last real frames of a padded
    batch: our padded rows equal the unpadded computation instead).
    """

    def __init__(self, width: int, kernel: int, kind: str, act: str, eps: float):
        super().__init__()
        if kind not in CONV_KINDS:
            raise ValueError(f"convolution module kind {kind!r}; supported: {CONV_KINDS}")
        if kernel % 2 == 0:
            raise ValueError(f"conv_depthwise_kernel_size {kernel} must be odd")
        self.kind = kind
        self.act = activation(act)
        self.layer_norm = nn.LayerNorm(width, eps=eps)
        self.pointwise_conv1 = nn.Conv1d(width, 2 * width, 1, bias=False)
        padding = (kernel - 1) // 2 if kind == "symmetric" else 0
        self.depthwise_conv = nn.Conv1d(width, width, kernel, padding=padding, groups=width, bias=False)
        if kind == "symmetric":
            self.batch_norm = nn.BatchNorm1d(width)
        else:
            self.depthwise_layer_norm = nn.LayerNorm(width, eps=eps)
        self.pointwise_conv2 = nn.Conv1d(width, width, 1, bias=False)

    def forward(self, x: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.layer_norm(x)
        if frame_mask is not None:
            x = x.masked_fill(~frame_mask[:, :, None], 0.0)
        x = F.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, H, T)
        if self.kind == "causal":
            x = F.pad(x, (self.depthwise_conv.kernel_size[0] - 1, 0))
            x = self.depthwise_layer_norm(self.depthwise_conv(x).transpose(1, 2)).transpose(1, 2)
        else:
            x = self.batch_norm(self.depthwise_conv(x))
        return self.pointwise_conv2(self.act(x)).transpose(1, 2)


def sinusoid_table(frames: int, width: int) -> torch.Tensor:
    """Relative-position table (2T - 1, H): rows for distances T-1, ..., 0, ..., -(T-1) (float32)."""
    position = torch.arange(frames, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * -(math.log(10000.0) / width))
    positive = torch.zeros(frames, width)
    negative = torch.zeros(frames, width)
    positive[:, 0::2] = torch.sin(position * div_term)
    positive[:, 1::2] = torch.cos(position * div_term)
    negative[:, 0::2] = torch.sin(-position * div_term)
    negative[:, 1::2] = torch.cos(-position * div_term)
    return torch.cat([positive.flip(0), negative[1:]], dim=0)


class RotaryEmbedding(nn.Module):
    """cos/sin tables of rotary positions; `inv_freq` is a checkpoint tensor in Wav2Vec2-Conformer.

    Without a checkpoint tensor (w2v-BERT) the frequencies are computed per call, so that a model
    built on the meta device needs nothing but its state dict.
    """

    def __init__(self, head_size: int, base: float, persistent: bool):
        super().__init__()
        self.head_size, self.base = head_size, base
        if persistent:
            self.register_buffer("inv_freq", self._frequencies())

    def _frequencies(self, device=None) -> torch.Tensor:
        exponents = torch.arange(0, self.head_size, 2, dtype=torch.int64, device=device).float() / self.head_size
        return 1.0 / (self.base ** exponents)

    def forward(self, frames: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin each (T, 1, d) in float32."""
        inv_freq = self.inv_freq.float() if hasattr(self, "inv_freq") else self._frequencies(device)
        freqs = torch.arange(frames, device=device).float()[:, None] * inv_freq
        angles = torch.cat([freqs, freqs], dim=-1)[:, None, :]
        return angles.cos(), angles.sin()


class SelfAttention(nn.Module):
    """Multi-head self-attention with one of the POSITIONS variants; scores go through SDPA.

    Position terms enter as an additive float bias (B or 1, h, T, T), so every variant runs
    through one scaled_dot_product_attention call.
    """

    def __init__(self, width: int, heads: int, positions: Optional[str] = None,
                 left_max: int = 0, right_max: int = 0):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"position_embeddings_type {positions!r}; supported: {POSITIONS}")
        if width % heads:
            raise ValueError(f"hidden size {width} is not a multiple of {heads} attention heads")
        self.heads, self.head_size, self.positions = heads, width // heads, positions
        self.linear_q = nn.Linear(width, width)
        self.linear_k = nn.Linear(width, width)
        self.linear_v = nn.Linear(width, width)
        self.linear_out = nn.Linear(width, width)
        if positions == "relative":
            self.linear_pos = nn.Linear(width, width, bias=False)
            self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.head_size))
            self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.head_size))
        elif positions == "relative_key":
            self.left_max, self.right_max = left_max, right_max
            self.distance_embedding = nn.Embedding(left_max + right_max + 1, self.head_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, h, T, d)."""
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_size).transpose(1, 2)

    def _rotate(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Rotary positions applied to the (B, T, H) attention input, per head."""
        cos, sin = (t.to(x.dtype) for t in rotary)
        x = x.view(x.shape[0], x.shape[1], self.heads, self.head_size)
        half = self.head_size // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return (x * cos + rotated * sin).flatten(2)

    def _relative_bias(self, q: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Transformer-XL position scores (B, h, T, T), already scaled, from the (2T - 1, H) table."""
        frames = q.shape[2]
        pos = self._split(self.linear_pos(table.to(q.dtype))[None])  # (1, h, 2T - 1, d)
        scores = torch.matmul(q + self.pos_bias_v[None, :, None, :], pos.transpose(2, 3))  # (B, h, T, 2T - 1)
        batch, heads = scores.shape[:2]
        scores = F.pad(scores, (1, 0)).view(batch, heads, 2 * frames, frames)  # the relative shift
        scores = scores[:, :, 1:].reshape(batch, heads, frames, 2 * frames - 1)[..., :frames]
        return scores * self.head_size ** -0.5

    def _relative_key_bias(self, q: torch.Tensor) -> torch.Tensor:
        """Learned clipped-distance scores (B, h, T, T), already scaled.

        Each query meets only left_max + right_max + 1 distinct embeddings: score them once
        (B, h, T, D) and gather per key, instead of transformers' (T, T, d) embedding tensor.
        """
        frames = q.shape[2]
        positions = torch.arange(frames, device=q.device)
        distance = (positions[None, :] - positions[:, None]).clamp(-self.left_max, self.right_max)
        scores = torch.matmul(q, self.distance_embedding.weight.to(q.dtype).t())  # (B, h, T, D)
        index = (distance + self.left_max).expand(q.shape[0], q.shape[1], frames, frames)
        return torch.gather(scores, 3, index) * self.head_size ** -0.5

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor],
                position: Optional[object] = None) -> torch.Tensor:
        """x (B, T, H); key_mask (B, T) True = attend; position: rotary (cos, sin) or relative table."""
        qk_input = self._rotate(x, position) if self.positions == "rotary" else x
        q, k, v = self._split(self.linear_q(qk_input)), self._split(self.linear_k(qk_input)), self._split(self.linear_v(x))
        bias = None
        if self.positions == "relative":
            bias = self._relative_bias(q, position)
            q = q + self.pos_bias_u[None, :, None, :]
        elif self.positions == "relative_key":
            bias = self._relative_key_bias(q)
        if key_mask is not None:
            blocked = ~key_mask[:, None, None, :]
            bias = (torch.zeros_like(blocked, dtype=q.dtype) if bias is None else bias).masked_fill(
                blocked, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.linear_out(y.transpose(1, 2).flatten(2))


class ConformerLayer(nn.Module):
    """Macaron conformer block: x + FFN/2, + attention, + conv module, + FFN/2, LayerNorm."""

    def __init__(self, width: int, heads: int, intermediate: int, act: str, eps: float,
                 positions: Optional[str], conv_kernel: int, conv_kind: str,
                 left_max: int = 0, right_max: int = 0):
        super().__init__()
        self.ffn1_layer_norm = nn.LayerNorm(width, eps=eps)
        self.ffn1 = FeedForward(width, intermediate, act)
        self.self_attn_layer_norm = nn.LayerNorm(width, eps=eps)
        self.self_attn = SelfAttention(width, heads, positions, left_max, right_max)
        self.conv_module = ConvolutionModule(width, conv_kernel, conv_kind, act, eps)
        self.ffn2_layer_norm = nn.LayerNorm(width, eps=eps)
        self.ffn2 = FeedForward(width, intermediate, act)
        self.final_layer_norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, frame_mask: Optional[torch.Tensor], position=None) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        x = x + self.self_attn(self.self_attn_layer_norm(x), frame_mask, position)
        x = x + self.conv_module(x, frame_mask)
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))
        return self.final_layer_norm(x)


class ConformerEncoder(nn.Module):
    """Conformer layers with their shared position tables (+ a final LayerNorm for Wav2Vec2-Conformer)."""

    def __init__(self, layers: list[ConformerLayer], positions: Optional[str], head_size: int,
                 rotary_base: float = 10000.0, rotary_persistent: bool = True,
                 final_norm: Optional[nn.LayerNorm] = None):
        super().__init__()
        self.positions = positions
        if positions == "rotary":
            self.embed_positions = RotaryEmbedding(head_size, rotary_base, rotary_persistent)
        self.layers = nn.ModuleList(layers)
        if final_norm is not None:
            self.layer_norm = final_norm

    def position(self, hidden: torch.Tensor):
        """What the attention variant needs for T frames: rotary (cos, sin) or the relative table."""
        frames = hidden.shape[1]
        if self.positions == "rotary":
            return self.embed_positions(frames, hidden.device)
        if self.positions == "relative":
            return sinusoid_table(frames, hidden.shape[2]).to(hidden.device)
        return None

    def forward(self, hidden: torch.Tensor, frame_mask: Optional[torch.Tensor] = None, cache=None) -> torch.Tensor:
        """hidden (B, T, H), frame_mask (B, T) True = real frame -> (B, T, H); no StreamCache path."""
        if cache is not None:
            raise ValueError("conformer encoders have no key/value cache (window-relative positions); "
                             "stream with context='recompute'")
        if frame_mask is not None:
            hidden = hidden.masked_fill(~frame_mask[:, :, None], 0.0)
        position = self.position(hidden)
        for layer in self.layers:
            hidden = layer(hidden, frame_mask, position)
        return self.layer_norm(hidden) if hasattr(self, "layer_norm") else hidden

"""Blocks of the CTC speech encoders, named like transformers' modules so that state dicts load unchanged.

wav2vec 2.0 (Baevski et al., 2020), XLSR (Conneau et al., 2020), HuBERT (Hsu et al., 2021),
data2vec (Baevski et al., 2022), WavLM (Chen et al., 2022). Inference only: no dropout or masking.

Shapes: B batch, S samples, T frames, C conv channels, H hidden, h heads, d = H / h,
P left frames (positional context only), N new frames, M cached frames before them.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

KeyValue = tuple[torch.Tensor, torch.Tensor]  # keys, values (B, h, T, d)
# streaming: the new frames' keys/values (B, h, N, d) -> with the cached frames' before them (B, h, M + N, d)
JoinPast = Callable[[torch.Tensor, torch.Tensor], KeyValue]
CONV_NORM_EPS = 1e-5  # transformers' conv-layer norms keep torch's default eps, not layer_norm_eps


class ConvLayer(nn.Module):
    """One layer of the feature encoder: Conv1d, optional norm, GELU."""

    def __init__(self, config: ModelConfig, index: int):
        super().__init__()
        in_dim = config.conv_dim[index - 1] if index > 0 else 1
        out_dim = config.conv_dim[index]
        self.conv = nn.Conv1d(
            in_dim, out_dim, config.conv_kernel[index], config.conv_stride[index], bias=config.conv_bias
        )
        self.norm_kind = None
        if config.feat_extract_norm == "layer":
            self.norm_kind = "layer"
            self.layer_norm = nn.LayerNorm(out_dim, eps=CONV_NORM_EPS)
        elif index == 0:  # "group": GroupNorm (one group per channel) over time, first layer only
            self.norm_kind = "group"
            self.layer_norm = nn.GroupNorm(out_dim, out_dim, eps=CONV_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, C, T)
        if self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        elif self.norm_kind == "group":
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """Raw waveform (B, S) -> conv features (B, C, T); stride 320, receptive field 400."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.conv_layers = nn.ModuleList(ConvLayer(config, i) for i in range(len(config.conv_dim)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform[:, None, :]  # (B, 1, S)
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    """LayerNorm over conv channels (optional in HuBERT), then a linear map to the transformer width."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.feature_dim, eps=config.layer_norm_eps) \
            if config.feat_proj_layer_norm else nn.Identity()
        self.projection = nn.Linear(config.feature_dim, config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(features))  # (B, T, C) -> (B, T, H)


def grouped_time_conv(config: ModelConfig, kernel: int) -> nn.Conv1d:
    """The positional embeddings' grouped conv over time: (B, H, T) -> (B, H, T (+1 if kernel is even))."""
    return nn.Conv1d(config.hidden_size, config.hidden_size, kernel, padding=kernel // 2,
                     groups=config.num_conv_pos_embedding_groups)


class PositionalConv(nn.Module):
    """Relative position by one wide grouped convolution over time (weight norm folded at load)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.conv = grouped_time_conv(config, config.num_conv_pos_embeddings)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, left: int = 0) -> torch.Tensor:
        """x (B, P + N, H), zero where padded -> embedding (B, N, H) of the last N frames only.

        The P left frames are context (the conv is most of a short window's cost: their outputs are
        not computed); when P < kernel // 2 the frames before them count as zeros, as at an input start.
        "SamePad": an even kernel sees kernel // 2 frames before and kernel // 2 - 1 after.
        """
        before = self.conv.padding[0]
        after = self.conv.kernel_size[0] - 1 - before
        x = x[:, max(left - before, 0):].transpose(1, 2)  # (B, H, min(P, before) + N)
        x = F.pad(x, (before - min(left, before), after))
        x = F.conv1d(x, self.conv.weight, self.conv.bias, groups=self.conv.groups)  # (B, H, N)
        return F.gelu(x).transpose(1, 2)


class PositionalConvLayer(nn.Module):
    """data2vec-audio: grouped conv, LayerNorm without weights, GELU."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.conv = grouped_time_conv(config, config.conv_pos_kernel_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, elementwise_affine=False)
        self.remove_last = config.conv_pos_kernel_size % 2 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, H, T (+ 1 if even kernel))
        x = x[:, :, :-1] if self.remove_last else x
        return F.gelu(self.layer_norm(x.transpose(1, 2)).transpose(1, 2))


class PositionalConvStack(nn.Module):
    """data2vec-audio's positional embedding: num_conv_pos_embeddings conv layers in a row."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(PositionalConvLayer(config) for _ in range(config.num_conv_pos_embeddings))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, left: int = 0) -> torch.Tensor:
        """x (B, P + N, H), mask (B, P + N) of real frames -> embedding (B, N, H) of the last N frames.

        Padded frames are zeroed between layers, so that each row sees zeros past its own end,
        as alone (exact batching). Exact for the new frames when P >= positional_left_frames.
        """
        keep = None if mask is None else mask[:, None, :].to(x.dtype)  # (B, 1, P + N)
        x = x.transpose(1, 2)  # (B, H, P + N)
        for layer in self.layers:
            x = layer(x)
            x = x if keep is None else x * keep
        return x[:, :, left:].transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention; new frames may attend to cached ones.

    `fuse_qkv()` (done at load) replaces q/k/v_proj by one (H -> 3H) linear layer: same
    arithmetic, one matmul instead of three.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        width = config.hidden_size
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.qkv_proj: nn.Linear | None = None

    @torch.no_grad()
    def fuse_qkv(self) -> None:
        """Concatenate the q, k and v projections into one linear layer (exact; inference only)."""
        if self.qkv_proj is not None:
            return
        parts = (self.q_proj, self.k_proj, self.v_proj)
        weight = torch.cat([p.weight for p in parts], dim=0)  # (3H, H)
        fused = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
        fused.weight.copy_(weight)
        fused.bias.copy_(torch.cat([p.bias for p in parts]))
        self.qkv_proj = fused
        del self.q_proj, self.k_proj, self.v_proj

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, H) -> q, k, v each (B, h, T, d)."""
        batch, frames, width = x.shape
        shape = (batch, frames, self.num_heads, width // self.num_heads)
        if self.qkv_proj is not None:
            q, k, v = self.qkv_proj(x).split(width, dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return q.view(shape).transpose(1, 2), k.view(shape).transpose(1, 2), v.view(shape).transpose(1, 2)

    def attention_mask(self, x: torch.Tensor, mask: torch.Tensor | None,
                       bias: torch.Tensor | None) -> torch.Tensor | None:
        """What scaled_dot_product_attention adds to the scores: here the key mask only."""
        return mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, join: JoinPast | None = None,
                bias: torch.Tensor | None = None) -> tuple[torch.Tensor, KeyValue]:
        """x (B, N, H) attends to itself and, through `join`, to cached keys/values (B, h, M, d).

        mask (B, 1, 1, M + N), True = attend; bias (h, N, M + N) relative position bias (WavLM).
        Returns (B, N, H) and the new frames' own keys/values (B, h, N, d), for later windows.
        """
        q, k, v = self._heads(x)
        keys, values = (k, v) if join is None else join(k, v)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=self.attention_mask(x, mask, bias))
        batch, _, frames, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(batch, frames, -1)), (k, v)


class GatedRelativeAttention(Attention):
    """WavLM: a bucketed relative position bias (embedded in layer 0, shared by every layer),
    scaled per query frame and head by a gate computed from that frame's input."""

    def __init__(self, config: ModelConfig, embeds_positions: bool):
        super().__init__(config)
        self.num_buckets = config.num_buckets
        self.max_distance = config.max_bucket_distance
        self.gru_rel_pos_const = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))
        self.gru_rel_pos_linear = nn.Linear(config.hidden_size // self.num_heads, 8)
        if embeds_positions:
            self.rel_attn_embed = nn.Embedding(self.num_buckets, self.num_heads)

    def position_bias(self, queries: int, keys: int) -> torch.Tensor:
        """(h, N, M + N) bias of the last N of M + N frames attending to all of them."""
        device = self.rel_attn_embed.weight.device
        query = torch.arange(keys - queries, keys, device=device)[:, None]
        relative = torch.arange(keys, device=device)[None, :] - query  # key - query (N, M + N)
        half = self.num_buckets // 2
        exact = half // 2
        bucket = (relative > 0).long() * half
        distance = relative.abs()
        far = exact + (torch.log(distance.float() / exact) / math.log(self.max_distance / exact)
                       * (half - exact)).long()
        bucket += torch.where(distance < exact, distance, far.clamp(max=half - 1))
        return self.rel_attn_embed(bucket).permute(2, 0, 1)

    def attention_mask(self, x: torch.Tensor, mask: torch.Tensor | None,
                       bias: torch.Tensor | None) -> torch.Tensor:
        batch, frames, width = x.shape
        heads = x.view(batch, frames, self.num_heads, -1).transpose(1, 2)  # (B, h, N, d)
        gates = self.gru_rel_pos_linear(heads).view(batch, self.num_heads, frames, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(gates).chunk(2, dim=-1)  # (B, h, N, 1) each
        scores = (gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0) * bias  # (B, h, N, M + N)
        return scores if mask is None else scores.masked_fill(~mask, float("-inf"))


class FeedForward(nn.Module):
    """Position-wise MLP: H -> intermediate -> H with GELU."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class AttnAdapter(nn.Module):
    """MMS language adapter after each pre-norm layer: LayerNorm, H -> adapter_attn_dim -> H with ReLU."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size)
        self.linear_1 = nn.Linear(config.hidden_size, config.adapter_attn_dim)
        self.linear_2 = nn.Linear(config.adapter_attn_dim, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.relu(self.linear_1(self.norm(x))))


def positional_embedding(config: ModelConfig) -> nn.Module:
    """The family's positional embedding block."""
    return PositionalConvStack(config) if config.family.positional == "conv_stack" else PositionalConv(config)


def attention(config: ModelConfig, index: int) -> Attention:
    """The family's attention block for layer `index`."""
    if config.family.attention == "gated_relative":
        return GatedRelativeAttention(config, embeds_positions=index == 0)
    return Attention(config)

"""wav2vec 2.0 CTC inference in plain torch (Baevski et al., 2020; XLSR: Conneau et al., 2020).

Module and parameter names follow transformers' Wav2Vec2ForCTC so that Hugging Face state
dicts load unchanged. Inference only: no dropout, masking, quantizer or training heads.

Shapes: B batch, S samples, T frames (S // 320 roughly), C conv channels, H hidden, V vocab.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Wav2Vec2Config

KeyValue = tuple[torch.Tensor, torch.Tensor]  # keys, values (B, heads, T, H / heads)


class ConvLayer(nn.Module):
    """One layer of the feature encoder: Conv1d, optional norm, GELU."""

    def __init__(self, config: Wav2Vec2Config, index: int):
        super().__init__()
        in_dim = config.conv_dim[index - 1] if index > 0 else 1
        out_dim = config.conv_dim[index]
        self.conv = nn.Conv1d(
            in_dim, out_dim, config.conv_kernel[index], config.conv_stride[index], bias=config.conv_bias
        )
        self.norm_kind = None
        if config.feat_extract_norm == "layer":
            self.norm_kind = "layer"
            self.layer_norm = nn.LayerNorm(out_dim, eps=config.layer_norm_eps)
        elif index == 0:  # "group": GroupNorm (one group per channel) over time, first layer only
            self.norm_kind = "group"
            self.layer_norm = nn.GroupNorm(out_dim, out_dim, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, C, T)
        if self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        elif self.norm_kind == "group":
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """Raw waveform (B, S) -> conv features (B, C, T); stride 320, receptive field 400."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.conv_layers = nn.ModuleList(ConvLayer(config, i) for i in range(len(config.conv_dim)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform[:, None, :]  # (B, 1, S)
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    """LayerNorm over conv channels, then a linear map to the transformer width."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(features))  # (B, T, C) -> (B, T, H)


class PositionalConvEmbedding(nn.Module):
    """Relative position by a wide grouped convolution over time (weight norm folded at load)."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        kernel = config.num_conv_pos_embeddings
        self.conv = nn.Conv1d(
            config.hidden_size,
            config.hidden_size,
            kernel,
            padding=kernel // 2,
            groups=config.num_conv_pos_embedding_groups,
        )
        self.remove_last = kernel % 2 == 0  # "SamePad": an even kernel yields one frame too many

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.conv(hidden.transpose(1, 2))  # (B, H, T + 1 if even kernel)
        if self.remove_last:
            x = x[:, :, :-1]
        return F.gelu(x).transpose(1, 2)  # (B, T, H)

    def forward_new(self, left: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Embedding of the new frames hidden (B, N, H) only, given the frames `left` (B, P, H) before them.

        Equals forward(cat(left, hidden))[:, P:] when P >= kernel // 2 or left starts the input,
        without computing outputs for the left frames (the conv is most of a short window's cost).
        """
        before = self.conv.padding[0]
        after = self.conv.kernel_size[0] - 1 - before  # right inputs of the last output (SamePad)
        left = left[:, left.shape[1] - min(before, left.shape[1]):]
        x = torch.cat([left, hidden], dim=1).transpose(1, 2)  # (B, H, P + N)
        x = F.pad(x, (before - left.shape[1], after))
        x = F.conv1d(x, self.conv.weight, self.conv.bias, groups=self.conv.groups)  # (B, H, N)
        return F.gelu(x).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention.

    `fuse_qkv()` (done at load) replaces q/k/v_proj by one (H -> 3H) linear layer: same
    arithmetic, one matmul instead of three.
    """

    def __init__(self, config: Wav2Vec2Config):
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
        """(B, T, H) -> q, k, v each (B, heads, T, H / heads)."""
        batch, frames, width = x.shape
        shape = (batch, frames, self.num_heads, width // self.num_heads)
        if self.qkv_proj is not None:
            q, k, v = self.qkv_proj(x).split(width, dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return q.view(shape).transpose(1, 2), k.view(shape).transpose(1, 2), v.view(shape).transpose(1, 2)

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, H / heads) -> out_proj over (B, T, H)."""
        batch, _, frames, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(batch, frames, -1))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._heads(x)
        return self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask))

    def forward_cached(self, x: torch.Tensor, key_mask: torch.Tensor | None,
                       past: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, KeyValue]:
        """New frames x (B, N, H) attend to past keys/values (B, heads, M, d) and to themselves.

        key_mask (B, 1, 1, M + N), True = attend. Returns the output (B, N, H) and the new
        frames' own keys/values (B, heads, N, d) for later windows.
        """
        q, k, v = self._heads(x)
        if past is not None:
            keys, values = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        else:
            keys, values = k, v
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=key_mask)
        return self._merge(y), (k, v)


class FeedForward(nn.Module):
    """Position-wise MLP: H -> intermediate -> H with GELU."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Transformer block; pre-norm ("stable", XLSR / large) or post-norm (base)."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.pre_norm = config.do_stable_layer_norm
        self.attention = Attention(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.attention(self.layer_norm(x), key_mask)
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x, key_mask))
        return self.final_layer_norm(x + self.feed_forward(x))

    def forward_cached(self, x: torch.Tensor, key_mask: torch.Tensor | None,
                       past: KeyValue | None) -> tuple[torch.Tensor, KeyValue]:
        """forward() for new frames only, attending to cached past keys/values too."""
        if self.pre_norm:
            attended, new = self.attention.forward_cached(self.layer_norm(x), key_mask, past)
            x = x + attended
            return x + self.feed_forward(self.final_layer_norm(x)), new
        attended, new = self.attention.forward_cached(x, key_mask, past)
        x = self.layer_norm(x + attended)
        return self.final_layer_norm(x + self.feed_forward(x)), new


class Encoder(nn.Module):
    """Positional conv embedding + transformer layers (+ final LayerNorm placement by variant)."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.pre_norm = config.do_stable_layer_norm
        self.pos_conv_embed = PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        key_mask = None
        if frame_mask is not None:
            hidden = hidden.masked_fill(~frame_mask[:, :, None], 0.0)
            key_mask = frame_mask[:, None, None, :]  # (B, 1, 1, T): True = attend
        hidden = hidden + self.pos_conv_embed(hidden)
        if not self.pre_norm:
            hidden = self.layer_norm(hidden)
        for layer in self.layers:
            hidden = layer(hidden, key_mask)
        if self.pre_norm:
            hidden = self.layer_norm(hidden)
        return hidden

    def forward_cached(self, hidden: torch.Tensor, left: torch.Tensor, memory: list[KeyValue] | None,
                       key_mask: torch.Tensor | None) -> tuple[torch.Tensor, list[KeyValue]]:
        """Transformer over new frames only (cached left context; see encode_cached).

        hidden (B, N, H) new frames, zero where padded; left (B, P, H) the frames before them
        (positional conv input only), zero where absent; memory: per layer past keys/values
        (B, heads, M, d); key_mask (B, 1, 1, M + N) or None. Returns (B, N, H) and per layer the
        new frames' keys/values (B, heads, N, d).
        """
        hidden = hidden + self.pos_conv_embed.forward_new(left, hidden)  # (B, N, H)
        if not self.pre_norm:
            hidden = self.layer_norm(hidden)
        new_memory = []
        for index, layer in enumerate(self.layers):
            hidden, new = layer.forward_cached(hidden, key_mask, None if memory is None else memory[index])
            new_memory.append(new)
        if self.pre_norm:
            hidden = self.layer_norm(hidden)
        return hidden, new_memory


class Wav2Vec2Model(nn.Module):
    """Feature encoder, projection and transformer encoder (transformers' `wav2vec2.` prefix)."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.feature_extractor = FeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        self.encoder = Encoder(config)


class Wav2Vec2ForCTC(nn.Module):
    """wav2vec2 encoder with a linear CTC head; split into stages so streaming can cache them."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.config = config
        self.wav2vec2 = Wav2Vec2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def conv_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Normalised waveform (B, S) -> conv features (B, T, C)."""
        return self.wav2vec2.feature_extractor(waveform).transpose(1, 2)

    def encode_features(
        self, features: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Conv features (B, T, C) -> CTC logits (B, T, V); frame_mask (B, T) marks real frames."""
        hidden = self.wav2vec2.feature_projection(features)
        hidden = self.wav2vec2.encoder(hidden, frame_mask)
        return self.lm_head(hidden)

    def encode_cached(self, features: torch.Tensor, left_features: torch.Tensor,
                      memory: list[KeyValue] | None, frame_mask: torch.Tensor | None = None,
                      left_mask: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, list[KeyValue]]:
        """Approximate streaming encoder: new frames attend to cached keys/values of earlier frames.

        features (B, N, C): conv features of the new frames; left_features (B, P, C): conv features
        of up to num_conv_pos_embeddings // 2 frames before them, for the positional conv only;
        memory: per layer (keys, values) (B, heads, M, d) of earlier frames, or None (M = 0).
        Masks (True = real frame): frame_mask (B, N), left_mask (B, P), memory_mask (B, M); None
        means all real. Returns logits (B, N, V) and per layer the new frames' keys/values.
        """
        projection = self.wav2vec2.feature_projection
        hidden = projection(features)  # (B, N, H)
        left = projection(left_features)  # (B, P, H)
        if frame_mask is not None:
            hidden = hidden.masked_fill(~frame_mask[:, :, None], 0.0)
        if left_mask is not None:
            left = left.masked_fill(~left_mask[:, :, None], 0.0)
        key_mask = None
        if frame_mask is not None or memory_mask is not None:
            batch, frames = hidden.shape[:2]
            past = 0 if memory is None else memory[0][0].shape[2]
            if frame_mask is None:
                frame_mask = torch.ones((batch, frames), dtype=torch.bool, device=hidden.device)
            if memory_mask is None:
                memory_mask = torch.ones((batch, past), dtype=torch.bool, device=hidden.device)
            key_mask = torch.cat([memory_mask, frame_mask], dim=1)[:, None, None, :]  # (B, 1, 1, M + N)
        hidden, new_memory = self.wav2vec2.encoder.forward_cached(hidden, left, memory, key_mask)
        return self.lm_head(hidden), new_memory

    def fuse_qkv(self) -> None:
        """Fuse every attention layer's q/k/v projections into one linear layer (exact)."""
        for layer in self.wav2vec2.encoder.layers:
            layer.attention.fuse_qkv()

    def frame_mask(self, sample_mask: torch.Tensor) -> torch.Tensor:
        """Sample-level mask (B, S) of real audio -> frame-level mask (B, T)."""
        lengths = sample_mask.long().sum(-1)
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        frames = self.config.num_frames(sample_mask.shape[-1])
        return torch.arange(frames, device=sample_mask.device)[None, :] < lengths[:, None]

    def forward(
        self, waveform: torch.Tensor, sample_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalised waveform (B, S) -> CTC logits (B, T, V)."""
        frame_mask = None if sample_mask is None else self.frame_mask(sample_mask)
        return self.encode_features(self.conv_features(waveform), frame_mask)

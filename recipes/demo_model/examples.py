"""Training examples built on the fly from the train shards (train.py's data workers).

Word-aligned crops with partial edge words, several sentences concatenated with pauses, silence
padding; speed, VTLP, simulated rooms, telephone band, codecs and noise; per-example normalisation
(what the streaming engine does per window). Batches groups examples of similar length into
batches of at most --batch-s padded seconds; new shards are picked up as they appear. With a
FrozenConv the batches carry the frozen conv encoder's features instead of audio.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import random

import numpy as np
import torch

import common as C

ROOM_BANK = 200  # simulated room responses per data worker


@dataclasses.dataclass(frozen=True)
class Augment:
    """Optional augmentation (the always-on kinds are in Builder.augment)."""

    rooms: bool = False  # simulated rooms (pyroomacoustics) and VTLP
    vtlp_max: float = 1.12  # > 1.12: half the VTLP warps in 1.12..vtlp_max (formants towards female voices)
    codecs: float = 0.0  # probability of an MP3 / Opus round trip
    voice_weights: tuple = ()  # ((voice prefix, weight), ...): sampling weight per utterance by voice


def parse_voice_weights(spec: str) -> tuple:
    """'kokoro=6,kokoro:af=10' -> (('kokoro', 6.0), ('kokoro:af', 10.0)); the longest prefix wins."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        prefix, sep, w = part.rpartition("=")
        try:
            weight = float(w)
        except ValueError:
            weight = -1.0
        if not sep or not prefix or weight < 0:
            raise ValueError(f"bad entry {part!r} in --voice-weights (want PREFIX=WEIGHT, weight >= 0)")
        out.append((prefix, weight))
    return tuple(out)


def voice_weights_arg(spec: str) -> tuple:
    """argparse type: parse_voice_weights with its message shown to the user."""
    try:
        return parse_voice_weights(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def voice_weight(voice: str, weights: tuple) -> float:
    """The weight of the longest matching voice prefix (1 when none matches)."""
    best, w = -1, 1.0
    for prefix, weight in weights:
        if voice.startswith(prefix) and len(prefix) > best:
            best, w = len(prefix), weight
    return w


class Builder:
    def __init__(self, corpus: C.Corpus, rng: random.Random, extra: Augment = Augment()):
        self.c = corpus
        self.rng = rng
        self.np = np.random.default_rng(rng.randrange(1 << 30))
        self.extra = extra
        self.irs = []  # room impulse responses, made on first use (up to ROOM_BANK)
        self.cum, self.n_weighted = [], 0  # cumulative voice weights of corpus.items[:n_weighted]

    def pick(self):
        """One corpus item, uniform or by --voice-weights (updated as new shards arrive)."""
        items = self.c.items
        if not self.extra.voice_weights:
            return self.rng.choice(items)
        for m in items[self.n_weighted:]:
            self.cum.append((self.cum[-1] if self.cum else 0.0) + voice_weight(m["voice"], self.extra.voice_weights))
        self.n_weighted = len(items)
        return self.rng.choices(items, cum_weights=self.cum)[0]

    def room(self):
        if len(self.irs) < ROOM_BANK:
            self.irs.append(C.room_ir(self.rng))
            return self.irs[-1]
        return self.rng.choice(self.irs)

    def segment(self, max_s):
        """One utterance, possibly a word-aligned crop with partial edge words."""
        rng = self.rng
        m = self.pick()
        a = self.c.audio(m)
        words = m["text"].split()
        spans = m.get("words")
        if spans and len(spans) == len(words) and (len(a) > max_s * C.SR or rng.random() < 0.3):
            # contiguous word range
            n = len(words)
            for _ in range(10):
                i = rng.randrange(n)
                j = rng.randint(i + 1, n)
                if spans[j - 1][1] - spans[i][0] <= max_s * C.SR:
                    break
            else:
                i, j = rng.randrange(n), None
                j = i + 1
            s, e = spans[i][0], spans[j - 1][1]
            # trailing pause of the last word in espeak spans runs to the next word;
            # partial neighbouring words at the edges (unlabelled fragments)
            if rng.random() < 0.3 and i > 0:
                w = spans[i - 1][1] - spans[i - 1][0]
                s -= int(w * rng.uniform(0.0, 0.3))
            if rng.random() < 0.3 and j < n:
                w = spans[j][1] - spans[j][0]
                e += int(min(w * rng.uniform(0.0, 0.3), 0.15 * C.SR))
            s, e = max(0, s), min(len(a), e)
            return a[s:e], " ".join(words[i:j])
        if len(a) > max_s * C.SR:
            return None
        return a, m["text"]

    def example(self, max_s, aug, p_empty=0.02):
        """A normalised training example (audio, transcript): composed, then augmented."""
        x, text = self.compose(max_s, p_empty)
        return C.normalise(self.augment(x, text, aug)), text

    def compose(self, max_s, p_empty):
        """1-4 utterances (or crops) with pauses and edge silence; or silence with an empty text."""
        rng = self.rng
        target = rng.uniform(1.0, max_s)
        parts, texts, tot = [], [], 0
        r = rng.random()
        if r < p_empty:  # silence / noise only, empty transcript
            x = np.zeros(int(target * C.SR), np.float32)
        else:
            k = 1 if r < 0.55 else rng.randint(2, 4)
            for _ in range(k * 3):
                seg = self.segment(target - tot / C.SR if parts else target)
                if seg is None:
                    continue
                a, t = seg
                if parts and tot + len(a) > target * C.SR:
                    break
                a = a * rng.uniform(0.3, 1.0)
                if parts:
                    parts.append(np.zeros(int(rng.uniform(0.1, 1.0) * C.SR), np.float32))
                parts.append(a.astype(np.float32))
                texts.append(t)
                tot = sum(len(p) for p in parts)
                if len(texts) >= k:
                    break
            if not parts:
                seg = None
                while seg is None:
                    seg = self.segment(max_s)
                parts, texts = [seg[0]], [seg[1]]
            lead = int(rng.uniform(0, 0.6) * C.SR) if rng.random() < 0.7 else 0
            trail = int(rng.uniform(0, 0.6) * C.SR) if rng.random() < 0.7 else 0
            x = np.concatenate([np.zeros(lead, np.float32)] + parts + [np.zeros(trail, np.float32)])
        return x, " ".join(texts)

    def augment(self, x, text, aug):
        """Speed, reverb, telephone band and noise, each with a probability scaled by `aug`."""
        rng, nrng = self.rng, self.np
        if rng.random() < 0.5 * aug:
            # a quarter of the time faster than 1.12: higher formants and pitch, a crude
            # vocal-tract-length change towards female voices (few in the training voices)
            hi = rng.random() < 0.25
            x = C.speed(x, rng.uniform(1.12, 1.25) if hi else rng.uniform(0.88, 1.12))
        extra = self.extra
        if extra.rooms and rng.random() < 0.3 * aug:
            # half of the widened range lies above 1.12 when vtlp_max > 1.12
            hi = extra.vtlp_max > 1.12 and rng.random() < 0.5
            x = C.vtlp(x, rng.uniform(1.12, extra.vtlp_max) if hi else rng.uniform(0.88, 1.12))
        if rng.random() < 0.25 * aug:
            x = C.room_reverb(x, self.room()) if extra.rooms and rng.random() < 0.6 else C.reverb(x, nrng)
        if rng.random() < 0.12 * aug:
            x = C.telephone(x, nrng)
        if rng.random() < extra.codecs * aug:
            x = C.codec(x, rng)
        if rng.random() < 0.45 * aug or not text:
            # noise-only examples (empty transcript) never get babble: after normalisation the
            # babble would be clear speech labelled as nothing
            kind = rng.random() * (0.7 if not text else 1.0)
            if kind < 0.4:
                noise = nrng.standard_normal(len(x)).astype(np.float32)
            elif kind < 0.7:
                noise = C.pink_noise(len(x), nrng)
            else:  # babble: a few other utterances mixed
                noise = np.zeros(len(x), np.float32)
                for _ in range(rng.randint(2, 5)):
                    b = self.c.audio(rng.choice(self.c.items))
                    b = np.resize(b, len(x)) if len(b) < len(x) else b[:len(x)]
                    noise += np.roll(b, rng.randrange(len(x)))
            if not text:
                x = x + noise * rng.uniform(0.0, 0.3)
            else:
                x = C.add_noise(x, noise, rng.uniform(5, 35))
        return x + nrng.standard_normal(len(x)).astype(np.float32) * 1e-4 * rng.random()


class FrozenConv:
    """A frozen conv feature encoder run where the batches are made (train.py --features-in-workers):
    padded audio (B, S) -> conv features (B, T, C), under the trainer's autocast."""

    def __init__(self, feature_extractor: torch.nn.Module, bf16: bool):
        self.conv = copy.deepcopy(feature_extractor).cpu().eval().requires_grad_(False)
        self.bf16 = bf16

    def __call__(self, xs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.conv(xs).transpose(1, 2).contiguous()


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, root, seed, batch_s, sched, extra: Augment = Augment(), features: FrozenConv | None = None):
        self.root, self.seed, self.batch_s, self.sched, self.extra = root, seed, batch_s, sched, extra
        self.features = features  # batches carry conv features instead of audio when set

    def worker_seed(self) -> int:
        """The seed of this DataLoader worker's stream: each worker draws its own batches."""
        info = torch.utils.data.get_worker_info()
        return self.seed + 7919 * (info.id if info else 0)

    def __iter__(self):
        corpus = C.Corpus(self.root)
        rng = random.Random(self.worker_seed())
        b = Builder(corpus, rng, self.extra)
        n = 0
        while True:
            max_s, aug, p_empty = self.sched(n)
            pool = [b.example(max_s, aug, p_empty) for _ in range(max(48, int(self.batch_s)))]
            pool.sort(key=lambda e: len(e[0]))
            batches, cur = [], []
            for x, t in pool:
                if cur and (len(cur) + 1) * len(x) > self.batch_s * C.SR:
                    batches.append(cur); cur = []
                cur.append((x, t))
            if cur:
                batches.append(cur)
            rng.shuffle(batches)
            for bt in batches:
                xs, am, lab, texts = collate(bt)
                yield (self.features(xs) if self.features else xs), am, lab, texts
                n += 1
            if n % 200 < len(batches):
                corpus.refresh()


def collate(bt):
    L = max(len(x) for x, _ in bt)
    xs = torch.zeros(len(bt), L)
    am = torch.zeros(len(bt), L, dtype=torch.bool)  # bool: an eighth of int64's bytes between processes
    labs = [C.encode(t) for _, t in bt]
    ml = max(1, max(len(l) for l in labs))
    lab = torch.full((len(bt), ml), -100, dtype=torch.long)
    for i, (x, t) in enumerate(bt):
        xs[i, :len(x)] = torch.from_numpy(x)
        am[i, :len(x)] = 1
        if labs[i]:
            lab[i, :len(labs[i])] = torch.tensor(labs[i])
    return xs, am, lab, [t for _, t in bt]

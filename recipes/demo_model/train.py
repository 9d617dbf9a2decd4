"""Train the small XLSR-architecture CTC model on synthetic speech (CPU or CUDA).

  nice -n 10 python train.py --run /work/demo-runs/run1            # fresh
  nice -n 10 python train.py --run /work/demo-runs/run1 --resume   # continue
(see README.md for the background launch line). Checkpoints: RUN/ckpt_last.pt
(model, optimizer, step, RNG, config) every --ckpt-min minutes; log lines go to stdout.
Training examples are built on the fly from the train shards by DataLoader workers
(examples.py: crops, concatenation, augmentation, batching).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time


# libgomp: sleep instead of spinning while waiting; on shared, busy cores a spinning
# 2-thread team ran ~3x slower than 1 thread (measured here)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
from echo import Echoing  # noqa: E402
from examples import Augment, Batches, FrozenConv, voice_weights_arg  # noqa: E402


# ---------------------------------------------------------------- eval helper
@torch.no_grad()
def dev_cer(model, dev, device, n=60):
    model.eval()
    errs = chars = werrs = words = 0
    for m in dev.items[:n]:
        x = torch.from_numpy(C.normalise(dev.audio(m)))[None].to(device)
        with torch.inference_mode():  # no autograd graph for the dev pass
            ids = model(x).logits.argmax(-1)[0].cpu().numpy()
        hyp = C.decode_ids(ids)
        errs += C.edit_distance(hyp, m["text"]); chars += len(m["text"])
        werrs += C.edit_distance(hyp.split(), m["text"].split()); words += len(m["text"].split())
    model.train()
    return errs / max(1, chars), werrs / max(1, words), hyp, m["text"]


# ---------------------------------------------------------------- main
def add_data_args(ap):
    """Augmentation and voice sampling (examples.Augment)."""
    ap.add_argument("--vtlp-max", type=float, default=1.12,
                    help="upper VTLP warp (with --rooms); above 1.12 half the warps lie in 1.12..max")
    ap.add_argument("--codecs", type=float, default=0.0,
                    help="probability of an MP3 / Opus round trip (libsndfile) per example")
    ap.add_argument("--rooms", action="store_true",
                    help="augmentation with simulated rooms (pyroomacoustics) and vocal-tract-length perturbation")
    ap.add_argument("--voice-weights", type=voice_weights_arg, default=(),
                    help="sampling weights by voice prefix, e.g. 'kokoro=6,kokoro:af=10' (default: uniform)")
    ap.add_argument("--mask-time-prob", type=float, default=None,
                    help="SpecAugment time masks on the projected features (transformers' mask_time_prob; "
                         "default: the config's 0.05 with transformers, none with --backend xlsr)")
    ap.add_argument("--mask-time-len", type=int, default=10, help="frames per time mask (20 ms each)")
    ap.add_argument("--mask-feature-prob", type=float, default=None,
                    help="SpecAugment channel masks (transformers' mask_feature_prob; default: the config's 0)")
    ap.add_argument("--mask-feature-len", type=int, default=64, help="channels per channel mask")


def add_speed_args(ap):
    """Precision, frozen parts, data echoing, compile: what trades work per step."""
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast (fp32 weights, optimizer and loss); ignored, with a warning, where the "
                         "device has no native bf16 (AVX2-only CPUs emulate it, 15x slower)")
    ap.add_argument("--freeze-encoder", action="store_true",
                    help="keep the conv feature encoder fixed (after a warm start): skips its backward pass")
    ap.add_argument("--freeze-conv-layers", type=int, default=0, metavar="K",
                    help="keep the first K conv feature-encoder layers fixed (the ones on the finest time "
                         "grids, whose backward pass costs most); the rest and the transformer train")
    ap.add_argument("--freeze-layers", type=int, default=None, metavar="K",
                    help="keep the whole front end (conv encoder, feature projection, positional conv) and the "
                         "first K transformer layers fixed: no backward pass below layer K")
    ap.add_argument("--features-in-workers", action="store_true",
                    help="run the frozen conv encoder in the data workers (CPU runs: they have idle cycles) and "
                         "send its features instead of audio; needs --backend xlsr and --freeze-layers or "
                         "--freeze-encoder")
    ap.add_argument("--echo-max", type=int, default=0,
                    help="data echoing: when no batch is ready, repeat the last one up to this many times "
                         "instead of waiting (GPU runs whose data workers are the limit; 0: always wait)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (dynamic shapes; in place, so checkpoint names are unchanged)")


def parse_args(argv=None):
    """The run, its schedule and its checkpoints; then data and speed options."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/demo-data")
    ap.add_argument("--run", default="/work/demo-runs/run1")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="start weights from this checkpoint (new optimizer)")
    ap.add_argument("--layers", type=int, default=None,
                    help="transformer layers of a new run (default: --init's, else the config's 6); more than "
                         "--init has: the extra ones start as identity copies of its layers (grow.py)")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--total-steps", type=int, default=4000, help="cosine schedule length")
    ap.add_argument("--max-steps", type=int, default=10 ** 9)
    ap.add_argument("--batch-s", type=float, default=24.0, help="padded audio seconds per batch")
    ap.add_argument("--max-len-s", type=float, default=12.0)
    ap.add_argument("--curriculum-steps", type=int, default=1500,
                    help="ramp crop length START->max and augmentation 0.3->1 over these steps")
    ap.add_argument("--curriculum-start-s", type=float, default=3.0)
    ap.add_argument("--empty-after", type=int, default=1500,
                    help="silence/noise-only examples (empty transcript, 2%%) only after this step:"
                         " early on they only push towards the all-blank output")
    ap.add_argument("--ckpt-min", type=float, default=10.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--dev-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dropout", type=float, default=None,
                    help="hidden and attention dropout (default: the config's 0.05); 0 lets SDPA use its"
                         " fused CPU kernel and skips the random masks")
    ap.add_argument("--backend", choices=["auto", "transformers", "xlsr"], default="auto",
                    help="auto: transformers if installed, else xlsr-live's plain-torch module")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (with a checkpoint) after this wall time")
    ap.add_argument("--schedule", choices=["steps", "time"], default="steps",
                    help="time: cosine decay over --max-minutes of wall time instead of --total-steps")
    ap.add_argument("--best-weights", default=None,
                    help="save half-precision weights here whenever the dev CER improves")
    ap.add_argument("--last-weights", default=None,
                    help="save half-precision weights here with every checkpoint")
    ap.add_argument("--snapshot-dir", default=None,
                    help="also keep the half-precision weights of every checkpoint here (sNNNNNN.pt, for average.py)")
    add_data_args(ap)
    add_speed_args(ap)
    args = ap.parse_args(argv)
    frozen_conv = args.freeze_encoder or args.freeze_layers is not None
    if args.features_in_workers and (use_transformers(args.backend) or not frozen_conv):
        ap.error("--features-in-workers needs --backend xlsr and a frozen conv encoder "
                 "(--freeze-layers K or --freeze-encoder)")
    return args


def use_transformers(backend):
    if backend == "auto":
        try:
            import transformers  # noqa: F401
        except ImportError:
            return False
    return backend != "xlsr"


def backbone(model):
    """The wav2vec2 encoder of either backend (xlsr_backend.XlsrCTC.net.backbone or transformers' .wav2vec2)."""
    net = getattr(model, "net", None)
    return net.backbone if net is not None else model.wav2vec2


def conv_layers(model):
    """The conv feature encoder's layers, first (raw audio) to last, of either backend."""
    return backbone(model).feature_extractor.conv_layers


def front_end(model, k):
    """Feature projection, positional conv and the first k transformer layers, of either backend."""
    w2v = backbone(model)
    return [w2v.feature_projection, w2v.encoder.pos_conv_embed, *w2v.encoder.layers[:k]]


def grown_init(path: str, layers: int) -> dict:
    """--init's weights in transformers' names, deepened to `layers` (grow.py; equal depth: a copy)."""
    import grow

    if os.path.isdir(path):  # an exported model: read through the plain-torch backend, any depth
        import xlsr_backend

        old = xlsr_backend.XlsrCTC(C.config_dict(num_hidden_layers=C.init_depth(path)))
        xlsr_backend.load_init(old, path)
        state = old.hf_state_dict()
    else:
        state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    return grow.grow_layers({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, layers)


def build_model(args, config_over, ck):
    """The model with its starting weights (checkpoint, --init, or random); transformers' Wav2Vec2ForCTC,
    or xlsr_backend.XlsrCTC (plain torch, same weights) without transformers or with --backend xlsr."""
    drop = {} if args.dropout is None else {"hidden_dropout": args.dropout, "attention_dropout": args.dropout}
    depth = C.config_dict(**config_over)["num_hidden_layers"]
    init = grown_init(args.init, depth) if args.init and not ck else None  # any --init, grown to depth
    if use_transformers(args.backend):
        from transformers import Wav2Vec2ForCTC

        masks = {}  # only what was asked for overrides the config (its default: 0.05 x 5 frames)
        if args.mask_time_prob is not None:
            masks.update(mask_time_prob=args.mask_time_prob, mask_time_length=args.mask_time_len)
        if args.mask_feature_prob is not None:
            masks.update(mask_feature_prob=args.mask_feature_prob, mask_feature_length=args.mask_feature_len)
        model = Wav2Vec2ForCTC(C.model_config(**config_over, **drop, **masks))
        if ck or init:
            model.load_state_dict(ck["model"] if ck else init)
    else:
        import xlsr_backend

        masking = xlsr_backend.Masking(time_prob=args.mask_time_prob or 0.0, time_span=args.mask_time_len,
                                       feature_prob=args.mask_feature_prob or 0.0, feature_span=args.mask_feature_len)
        model = xlsr_backend.XlsrCTC(C.config_dict(**config_over), masking)
        if ck or init:
            model.load_hf_state_dict(ck["model"] if ck else init)
    layers = conv_layers(model)
    whole = args.freeze_encoder or args.freeze_layers is not None
    for layer in layers[:len(layers) if whole else args.freeze_conv_layers]:
        layer.requires_grad_(False)
    if args.freeze_layers is not None:
        for module in front_end(model, args.freeze_layers):
            module.requires_grad_(False)
    if args.compile:
        model.compile(dynamic=True)
    return model


class RunClock:
    """Seconds a run has trained: the wall time between ticks, each gap capped at MAX_GAP_S, so that
    SIGSTOPs (benchmarks pause training) do not use up a wall-time cosine; carried across --resume.
    Session 13 lost 21 of run15's 95 minutes that way."""

    MAX_GAP_S = 60.0  # longer than any step, dev check or checkpoint here; a stop counts as this much

    def __init__(self, elapsed_s: float = 0.0, now=time.monotonic):
        self.elapsed_s, self._now = elapsed_s, now
        self._last = now()

    def tick(self) -> float:
        """Add the time since the last tick (at most MAX_GAP_S); the run's seconds so far."""
        t = self._now()
        self.elapsed_s += min(t - self._last, self.MAX_GAP_S)
        self._last = t
        return self.elapsed_s


class Trainer:
    """Model, optimizer and step of one run; resumable from RUN/ckpt_last.pt."""

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.ck_path = os.path.join(args.run, "ckpt_last.pt")
        resume = args.resume and os.path.exists(self.ck_path)
        ck = torch.load(self.ck_path, map_location="cpu", weights_only=False) if resume else None
        self.step = ck["step"] if ck else 0
        depth = args.layers or C.init_depth(args.init)  # a new run keeps --init's depth unless --layers
        self.config_over = ck["config_over"] if ck else ({"num_hidden_layers": depth} if depth else {})
        if not ck:
            torch.manual_seed(args.seed)
        self.model = build_model(args, self.config_over, ck)
        self.model.to(device).train()
        params = list(self.model.parameters())
        self.opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
                                      {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                                     lr=args.lr, betas=(0.9, 0.98), eps=1e-8, fused=(device == "cpu"))
        if ck:
            self.opt.load_state_dict(ck["opt"])
            random.setstate(ck["py_rng"]); torch.set_rng_state(ck["torch_rng"])
        # --schedule time: the cosine runs over the run's training time, carried across --resume
        self.clock = RunClock(ck.get("elapsed_s", 0.0) if ck else 0.0)
        nparam = sum(p.numel() for p in params)
        print(f"params {nparam / 1e6:.2f}M device {device} start step {self.step}", flush=True)

    def save(self):
        if self.args.last_weights:
            self.save_weights(self.args.last_weights)
        if self.args.snapshot_dir:
            os.makedirs(self.args.snapshot_dir, exist_ok=True)
            self.save_weights(os.path.join(self.args.snapshot_dir, f"s{self.step:06d}.pt"))
        tmp = self.ck_path + ".tmp"
        state = self.model.hf_state_dict() if hasattr(self.model, "hf_state_dict") else self.model.state_dict()
        torch.save({"model": state, "opt": self.opt.state_dict(), "step": self.step,
                    "config_over": self.config_over, "py_rng": random.getstate(),
                    "torch_rng": torch.get_rng_state(), "args": vars(self.args),
                    "elapsed_s": self.clock.tick()}, tmp)
        os.replace(tmp, self.ck_path)

    def save_weights(self, path, **extra):
        """Weights only, in half precision (10 MB: fits what a lent GPU machine sends back), for export.py."""
        state = self.model.hf_state_dict() if hasattr(self.model, "hf_state_dict") else self.model.state_dict()
        state = {k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype)
                 for k, v in state.items()}
        torch.save({"model": state, "step": self.step, "config_over": self.config_over, "args": vars(self.args),
                    **extra}, path + ".tmp")
        os.replace(path + ".tmp", path)

    def sched(self, n, start_step):
        """Crop length, augmentation share and empty-example share for batch n of this process."""
        a = self.args
        s = start_step + n
        f = min(1.0, s / max(1, a.curriculum_steps))
        lo = a.curriculum_start_s
        return lo + (a.max_len_s - lo) * f, 0.3 + 0.7 * f, (0.02 if s >= a.empty_after else 0.0)

    def train_step(self, xs, am, lab):
        """One optimizer step; returns (loss, grad norm, lr)."""
        a = self.args
        if a.max_minutes and a.schedule == "time":  # cosine over the wall-time budget (GPU runs)
            frac = min(1.0, self.clock.tick() / (a.max_minutes * 60))
            lr = C.cosine_lr(int(frac * 100000), a.lr, 0, 100000) * min(1.0, (self.step + 1) / a.warmup)
        else:
            lr = C.cosine_lr(self.step, a.lr, a.warmup, a.total_steps)
        for g in self.opt.param_groups:
            g["lr"] = lr
        xs, am, lab = (t.to(self.device, non_blocking=True) for t in (xs, am, lab))
        with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=self.args.bf16):
            if a.features_in_workers:  # xs: conv features (B, T, C) from the data workers
                out = self.model(attention_mask=am, labels=lab, features=xs)
            else:
                out = self.model(xs, attention_mask=am, labels=lab)
        loss = out.loss.float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        if torch.isfinite(gn):
            self.opt.step()
        self.step += 1
        return loss.item(), float(gn), lr


def log(**fields):
    print(json.dumps(fields), flush=True)


def run(tr, dl, dev, stop):
    """Train until --max-steps or a stop signal; logs, dev CER and periodic checkpoints."""
    source = Echoing(dl, tr.args.echo_max) if tr.args.echo_max else None
    try:
        _loop(tr, source if source else ((batch, True) for batch in dl), dev, stop)
    finally:
        if source:
            source.close()


def _loop(tr, batches, dev, stop):
    """The steps over (batch, fresh) pairs; fresh is False for a batch repeated by --echo-max."""
    args = tr.args
    t_ck = t_log = t_start = time.time()

    def out_of_time():  # --schedule time: the run's training time (Trainer.clock), else this process's
        spent = tr.clock.tick() if args.schedule == "time" else time.time() - t_start
        return bool(args.max_minutes) and spent > args.max_minutes * 60

    audio_s, loss_acc, n_acc, best_cer = 0.0, 0.0, 0, float("inf")
    wait, t_asked = 0.0, time.time()  # seconds spent waiting for the data workers (GPU runs: are they the limit?)
    echoes = 0  # repeated batches since the last log line
    for (xs, am, lab, _texts), fresh in batches:
        wait += time.time() - t_asked
        echoes += not fresh
        if tr.step >= args.max_steps or stop or out_of_time():
            return
        loss, gn, lr = tr.train_step(xs, am, lab)
        audio_s += am.sum().item() / C.SR
        loss_acc += loss; n_acc += 1
        if tr.step % args.log_every == 0:
            dt = time.time() - t_log
            log(step=tr.step, loss=round(loss_acc / n_acc, 4), lr=round(lr, 6), gnorm=round(gn, 3),
                steps_per_s=round(n_acc / dt, 4), audio_s_per_s=round(audio_s / dt, 2), bs=xs.shape[0],
                len_s=round(am.shape[1] / C.SR, 2), data_wait=round(wait / dt, 3), echoed=round(echoes / n_acc, 3),
                time=time.strftime("%H:%M:%S"))
            t_log, audio_s, loss_acc, n_acc, wait, echoes = time.time(), 0.0, 0.0, 0, 0.0, 0
        if tr.step % args.dev_every == 0:
            cer, wer, hyp, ref = dev_cer(tr.model, dev, tr.device)
            log(step=tr.step, dev_cer=round(cer, 4), dev_wer=round(wer, 4), hyp=hyp, ref=ref)
            if args.best_weights and cer < best_cer:
                best_cer = cer
                tr.save_weights(args.best_weights, dev_cer=cer)
            t_log, wait = time.time(), 0.0
        if time.time() - t_ck > args.ckpt_min * 60:
            tr.save(); t_ck = time.time()
            log(step=tr.step, checkpoint=tr.ck_path)
        t_asked = time.time()


def native_bf16(device: str) -> bool:
    """Whether bf16 autocast runs natively on `device`: CUDA with bf16, or a CPU whose oneDNN has bf16
    kernels (AVX-512 / AMX). An AVX2-only CPU emulates it: 0.13 against 2.0 steps/s on an EPYC (session 13)."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_bf16(requested: bool, device: str) -> bool:
    """--bf16 where it runs natively on `device`, else False with a warning on stderr."""
    if requested and not native_bf16(device):
        print(f"warning: --bf16 ignored on {device}: no native bf16 here "
              f"(CPU capability {torch.backends.cpu.get_cpu_capability()}); training in fp32",
              file=sys.stderr, flush=True)
        return False
    return requested


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16_workers = resolve_bf16(args.bf16, "cpu")  # FrozenConv runs in the CPU data workers
    args.bf16 = resolve_bf16(args.bf16, device) if device != "cpu" else bf16_workers
    os.makedirs(args.run, exist_ok=True)
    tr = Trainer(args, device)
    start_step = tr.step
    ds = Batches(os.path.join(args.data, "train"), seed=args.seed * 100003 + start_step,
                 batch_s=args.batch_s, sched=lambda n: tr.sched(n, start_step),
                 extra=Augment(rooms=args.rooms, vtlp_max=args.vtlp_max, codecs=args.codecs,
                               voice_weights=args.voice_weights),
                 features=FrozenConv(backbone(tr.model).feature_extractor, bf16_workers) if args.features_in_workers else None)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=args.workers,
                                     prefetch_factor=4 if args.workers else None,
                                     persistent_workers=bool(args.workers), pin_memory=device == "cuda")
    dev = C.Corpus(os.path.join(args.data, "dev"))
    random.Random(0).shuffle(dev.items)
    stop = []  # SIGTERM / SIGINT: save a checkpoint after the current step and exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        run(tr, dl, dev, stop)
    except RuntimeError:  # a DataLoader worker killed with us (e.g. `pkill -f train.py`)
        if not stop:
            raise
    tr.save()
    print("done", tr.step, flush=True)


if __name__ == "__main__":
    main()

"""Pieces of the demo-model recipe (recipes/demo_model/) that CI can check without synthesizers."""
import json
import os
import sys

import numpy as np
import pytest

RECIPE = os.path.join(os.path.dirname(__file__), "..", "recipes", "demo_model")


@pytest.fixture(scope="module")
def recipe():
    sys.path.insert(0, RECIPE)
    yield
    sys.path.remove(RECIPE)


def test_xlsr_backend_matches_transformers_logits_and_ctc_loss(recipe):
    """The plain-torch training backend gives transformers' logits and CTC loss and round-trips its state dict."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("soxr")
    import common as C
    import xlsr_backend as X

    torch.manual_seed(0)
    over = dict(hidden_size=48, num_attention_heads=3, intermediate_size=72, num_hidden_layers=2,
                conv_dim=(8, 8, 16, 16, 16, 16, 24), num_conv_pos_embeddings=6, num_conv_pos_embedding_groups=4)
    hf = transformers.Wav2Vec2ForCTC(C.model_config(**over)).eval()
    ours = X.XlsrCTC(C.config_dict(**over)).eval()
    ours.load_hf_state_dict(hf.state_dict())
    wave = torch.randn(2, 12000)
    mask = torch.ones(2, 12000, dtype=torch.long)
    mask[1, 8000:] = 0
    labels = torch.tensor([[7, 8, 4, 9], [10, 11, -100, -100]])
    with torch.no_grad():
        a = hf(wave, attention_mask=mask, labels=labels)
        b = ours(wave, attention_mask=mask, labels=labels)
    frames = int(ours.net.frame_mask(mask.bool())[1].sum())
    assert torch.allclose(a.logits[0], b.logits[0], atol=1e-4)
    assert torch.allclose(a.logits[1, :frames], b.logits[1, :frames], atol=1e-4)
    assert abs(a.loss.item() - b.loss.item()) < 1e-4
    back = ours.hf_state_dict()
    for k, v in hf.state_dict().items():
        assert torch.allclose(back[k].float(), v.float(), atol=1e-6), k


def test_vtlp_is_identity_at_alpha_one_and_moves_partials(recipe):
    """VTLP with alpha 1 returns the input; alpha 1.1 / 0.9 move a 500 Hz partial up / down by about 10 %."""
    pytest.importorskip("scipy")
    pytest.importorskip("soxr")
    import common as C

    t = np.arange(16000) / 16000
    x = (np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    assert np.abs(C.vtlp(x, 1.0) - x).max() < 1e-4

    def peak(y):
        return float(np.fft.rfftfreq(len(y), 1 / 16000)[np.argmax(np.abs(np.fft.rfft(y)))])

    assert 530 <= peak(C.vtlp(x, 1.1)) <= 590
    assert 410 <= peak(C.vtlp(x, 0.9)) <= 470


def test_lm_guard_rejects_held_out_sentences_and_their_ngrams(recipe):
    """build_lm's guard drops a held-out sentence and any text sharing a word 5-gram with it."""
    pytest.importorskip("num2words")
    import build_lm

    held = "i respect faith but doubt is what gives you an education"
    guard = build_lm.Guard([held])
    assert not guard.ok(held)
    assert not guard.ok("they say doubt is what gives you an edge")
    # a sentence of the train split that shares only four words in a row is kept
    kept = [s for s in ("doubt is what gives us hope", "doubt is what gives them hope",
                        "doubt is what gives me hope") if build_lm.T.split_of(s) == "train"]
    assert kept and all(guard.ok(s) for s in kept)


def test_voice_weights_parse_and_steer_the_example_draw(recipe):
    """--voice-weights picks the longest prefix, rejects bad entries, and shifts which voices are drawn."""
    import random

    import examples as T

    w = T.parse_voice_weights("kokoro=6, kokoro:af=10")
    assert w == (("kokoro", 6.0), ("kokoro:af", 10.0))
    assert T.voice_weight("kokoro:af_heart", w) == 10.0
    assert T.voice_weight("kokoro:bm_george", w) == 6.0
    assert T.voice_weight("flite:kal", w) == 1.0
    for bad in ("kokoro", "=3", "kokoro=x", "kokoro=-1"):
        with pytest.raises(ValueError, match="voice-weights"):
            T.parse_voice_weights(bad)

    class Corpus:
        items = [{"voice": "flite:kal"}] * 90 + [{"voice": "kokoro:af_bella"}] * 10

    b = T.Builder(Corpus(), random.Random(1), T.Augment(voice_weights=(("kokoro:af", 9.0),)))
    draws = [b.pick()["voice"] for _ in range(4000)]
    share = draws.count("kokoro:af_bella") / len(draws)
    assert 0.45 < share < 0.55  # 90 x 1 vs 10 x 9: half the draws
    Corpus.items = Corpus.items + [{"voice": "kokoro:af_new"}] * 90  # a new shard arrives
    draws = [b.pick()["voice"] for _ in range(4000)]
    assert 0.87 < sum(v.startswith("kokoro:af") for v in draws) / len(draws) < 0.93  # 900 of 990


def test_world_warp_moves_formant_peaks_up_and_keeps_identity(recipe):
    """The WORLD envelope warp is the identity at alpha 1 and moves a peak at bin k to about k * alpha."""
    import world_voices as W

    env = np.full((3, 257), 1e-3)
    env[:, 60] = 1.0
    np.testing.assert_allclose(W.warp(env, 1.0), env)
    moved = W.warp(env, 1.2)
    assert moved.flags["C_CONTIGUOUS"]  # pyworld.synthesize refuses strided arrays
    assert abs(int(moved[0].argmax()) - 72) <= 1
    assert moved.shape == env.shape


def test_world_conversion_leaves_female_and_converted_voices_alone(recipe):
    """Only male training voices are converted: Kokoro female, female espeak variants and WORLD output are skipped."""
    import world_voices as W

    class Corpus:
        items = [{"voice": v} for v in ("flite:kal", "espeak:en-us+f3", "espeak:en-us+max", "kokoro:af_heart",
                                        "kokoro:bm_george", "world:flite:kal@f0x1.80,a1.150", "piper:joe")]

    kept = [m["voice"] for m in W.male_items(Corpus(), {"f3"})]
    assert kept == ["flite:kal", "espeak:en-us+max", "kokoro:bm_george", "piper:joe"]
    only = [m["voice"] for m in W.male_items(Corpus(), {"f3"}, ("flite:", "kokoro:"))]
    assert only == ["flite:kal", "kokoro:bm_george"]  # --voices: prefixes, female and converted still skipped


def test_dataloader_workers_draw_different_batches(recipe, monkeypatch):
    """Each DataLoader worker seeds its own stream (identical streams would repeat every batch)."""
    import random
    from types import SimpleNamespace

    import examples as T
    import torch

    ds = T.Batches("unused", seed=5, batch_s=8, sched=lambda n: (4.0, 1.0, 0.0))
    seeds = []
    for wid in (None, 0, 1, 2):
        info = None if wid is None else SimpleNamespace(id=wid)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        seeds.append(ds.worker_seed())
    assert seeds[0] == seeds[1] == 5  # one process (or worker 0): the run's own seed
    assert len(set(seeds[1:])) == 3
    firsts = [random.Random(s).random() for s in seeds[1:]]
    assert len(set(firsts)) == 3


def test_half_precision_weights_load_into_the_xlsr_backend(recipe, tmp_path):
    """train.py --best-weights' half-precision files load back (widened) into the plain-torch model."""
    import torch
    import common as C
    import xlsr_backend

    torch.manual_seed(0)
    cfg = C.config_dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                        conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    a = xlsr_backend.XlsrCTC(cfg)
    state = {k: v.half() for k, v in a.hf_state_dict().items()}
    torch.save({"model": state}, tmp_path / "w.pt")
    b = xlsr_backend.XlsrCTC(cfg)
    xlsr_backend.load_init(b, str(tmp_path / "w.pt"))
    x = torch.randn(1, 8000)
    with torch.no_grad():
        diff = (a(x).logits - b(x).logits).abs().max().item()
    assert 0 < diff < 0.05  # close, but the weights did pass through half precision
    assert all(p.dtype == torch.float32 for p in b.parameters())


def test_dev_by_voice_groups_voices_into_families(recipe):
    """dev_by_voice groups espeak variants, Kokoro accent-and-sex prefixes and whole synthesizers."""
    import dev_by_voice as D

    assert D.family("espeak:en-us+f3") == "espeak:en-us"
    assert D.family("espeak:en-gb-x-rp") == "espeak:en-gb-x-rp"
    assert D.family("kokoro:af_bella") == "kokoro:af"
    assert D.family("flite:kal") == "flite"
    assert D.family("world:piper:joe@f0x1.8,a1.15") == "world"


def test_average_is_the_mean_of_checkpoints_and_refuses_mismatches(recipe, tmp_path):
    """average.py takes the elementwise mean (half-precision inputs widened), keeps the newest step, and names a mismatch."""
    torch = pytest.importorskip("torch")
    import average

    paths = []
    for step, value, dtype in ((30, 3.0, torch.float16), (10, 1.0, torch.float32), (20, 2.0, torch.float32)):
        path = tmp_path / f"s{step}.pt"
        torch.save({"model": {"w": torch.full((2, 3), value, dtype=dtype)}, "step": step, "config_over": {"x": step}},
                   path)
        paths.append(str(path))
    out = average.average(paths)
    assert out["averaged"] == [10, 20, 30] and out["step"] == 30 and out["config_over"] == {"x": 30}
    assert out["model"]["w"].dtype == torch.float32 and torch.equal(out["model"]["w"], torch.full((2, 3), 2.0))
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"w": torch.zeros(3, 2)}, "step": 40}, bad)
    with pytest.raises(ValueError, match="bad.pt"):
        average.average(paths + [str(bad)])


def test_average_reads_an_exported_model_folder(recipe, tmp_path):
    """average.py reads an exported folder's safetensors, its STATUS step and its depth, and names the sources."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    import average

    folder = tmp_path / "export"
    folder.mkdir()
    save_file({"w": torch.full((2, 3), 4.0)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 6}))
    (folder / "STATUS.json").write_text(json.dumps({"training_step": 50}))
    ck = tmp_path / "s10.pt"
    torch.save({"model": {"w": torch.zeros(2, 3)}, "step": 10, "config_over": {}}, ck)
    out = average.average([str(folder), str(ck)])
    assert out["averaged"] == [10, 50] and out["sources"] == [str(ck), str(folder)]
    assert out["config_over"] == {"num_hidden_layers": 6} and torch.equal(out["model"]["w"], torch.full((2, 3), 2.0))


def _slow(items, delay_s):
    """Yield items, sleeping before each (a data loader slower than the training step)."""
    import time

    for item in items:
        time.sleep(delay_s)
        yield item


def test_echoing_repeats_only_while_data_is_late(recipe):
    """Echoing repeats the last batch (at most max_echo in a row) only when no batch is ready, and yields every batch once fresh."""
    import time

    from echo import Echoing

    fast = Echoing(iter(range(5)), max_echo=3, depth=8)
    time.sleep(0.3)  # the background thread has queued the first batches: nothing to repeat
    assert list(fast) == [(i, True) for i in range(5)] and fast.echoed == 0
    slow = Echoing(_slow(range(4), 0.2), max_echo=2)
    got = list(slow)
    fresh = [item for item, is_fresh in got if is_fresh]
    assert fresh == [0, 1, 2, 3]
    assert slow.echoed == len(got) - 4 > 0
    runs, count = [], 0  # no more than max_echo repeats in a row
    for _, is_fresh in got:
        count = 0 if is_fresh else count + 1
        runs.append(count)
    assert max(runs) == 2 and got[0] == (0, True) and slow.waited > 0


def test_echoing_without_echo_waits_and_passes_errors_on(recipe):
    """max_echo 0 never repeats; a loader error reaches the training loop."""
    from echo import Echoing

    plain = Echoing(_slow(range(3), 0.05), max_echo=0)
    assert list(plain) == [(0, True), (1, True), (2, True)] and plain.echoed == 0

    def broken():
        yield 1
        raise OSError("worker died")

    with pytest.raises(OSError, match="worker died"):
        list(Echoing(broken(), max_echo=1))
    with pytest.raises(ValueError, match="max_echo=-1"):
        Echoing(iter(()), max_echo=-1)


def test_time_schedule_and_frozen_conv_layers_survive_resume(recipe, tmp_path):
    """--schedule time carries the run's elapsed time across --resume; --freeze-conv-layers K fixes the first K conv layers only."""
    pytest.importorskip("torch")
    import train

    common = ["--run", str(tmp_path), "--backend", "xlsr", "--schedule", "time", "--max-minutes", "10",
              "--freeze-conv-layers", "4"]
    first = train.Trainer(train.parse_args(common), "cpu")
    first.clock.elapsed_s += 300.0  # as if it had trained for five minutes
    first.save()
    again = train.Trainer(train.parse_args(common + ["--resume"]), "cpu")
    assert 300.0 <= again.clock.tick() < 330.0
    frozen = [all(not p.requires_grad for p in layer.parameters()) for layer in train.conv_layers(again.model)]
    assert frozen == [True] * 4 + [False] * (len(frozen) - 4)


def test_snapshot_dir_keeps_each_checkpoints_weights(recipe, tmp_path):
    """--snapshot-dir keeps half-precision weights per checkpoint, which average.py reads."""
    torch = pytest.importorskip("torch")
    import average
    import train

    tr = train.Trainer(train.parse_args(["--run", str(tmp_path), "--backend", "xlsr",
                                         "--snapshot-dir", str(tmp_path / "snaps")]), "cpu")
    tr.save()
    tr.step = 7
    tr.save()
    snaps = sorted((tmp_path / "snaps").iterdir())
    assert [p.name for p in snaps] == ["s000000.pt", "s000007.pt"]
    weights = torch.load(snaps[1], map_location="cpu", weights_only=False)["model"]
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert average.average([str(p) for p in snaps])["averaged"] == [0, 7]


def test_freeze_layers_fixes_the_front_end_and_first_k_layers_only(recipe, tmp_path):
    """--freeze-layers K: conv encoder, projection, positional conv and layers < K stay put through a step."""
    torch = pytest.importorskip("torch")
    import train

    tr = train.Trainer(train.parse_args(["--run", str(tmp_path), "--backend", "xlsr", "--freeze-layers", "2",
                                         "--lr", "1e-3", "--warmup", "1"]), "cpu")
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    xs = torch.randn(2, 16_000)
    am = torch.ones(2, 16_000, dtype=torch.bool)
    lab = torch.tensor([[7, 8, 9], [10, 11, -100]])
    tr.train_step(xs, am, lab)
    frozen_parts = ("feature_extractor.", "feature_projection.", "pos_conv_embed.", "layers.0.", "layers.1.")
    for name, p in tr.model.named_parameters():
        moved = not torch.equal(before[name], p.detach())
        assert moved != any(part in name for part in frozen_parts), name
    assert any("layers.2." in n for n, p in tr.model.named_parameters() if p.requires_grad)


def test_bf16_autocast_keeps_the_fp32_loss_and_gradient(recipe):
    """--bf16 (autocast on CPUs with bf16 matrix units) gives the fp32 loss and gradient direction."""
    torch = pytest.importorskip("torch")
    import common
    import xlsr_backend

    torch.manual_seed(0)
    model = xlsr_backend.XlsrCTC(common.config_dict(num_hidden_layers=2))
    xs = torch.randn(2, 24_000)
    am = torch.ones(2, 24_000, dtype=torch.bool)
    am[1, 16_000:] = False
    lab = torch.tensor([[7, 8, 9, 4, 10], [11, 12, 13, -100, -100]])
    runs = []
    for bf16 in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(xs, attention_mask=am, labels=lab)
        assert out.loss.dtype == torch.float32
        out.loss.backward()
        runs.append((out.loss.item(), torch.cat([p.grad.flatten().double() for p in model.parameters()])))
    (loss32, g32), (loss16, g16) = runs
    assert abs(loss16 - loss32) < 0.02 * loss32
    assert torch.nn.functional.cosine_similarity(g32, g16, 0).item() > 0.99


def test_features_in_workers_give_the_audio_paths_loss_and_gradient(recipe, tmp_path):
    """--features-in-workers: batches of frozen-conv features train exactly like the audio batches."""
    torch = pytest.importorskip("torch")
    import examples
    import train

    argv = ["--run", str(tmp_path), "--backend", "xlsr", "--freeze-layers", "0", "--workers", "0"]
    tr = train.Trainer(train.parse_args(argv + ["--features-in-workers"]), "cpu")
    torch.manual_seed(1)
    xs = torch.randn(2, 24_000)
    am = torch.ones(2, 24_000, dtype=torch.bool)
    am[1, 15_000:] = False
    xs[1, 15_000:] = 0.0
    lab = torch.tensor([[7, 8, 9, 4, 10], [11, 12, 13, -100, -100]])
    features = examples.FrozenConv(train.backbone(tr.model).feature_extractor, bf16=False)(xs)
    assert features.shape == (2, 74, 128) and not features.requires_grad
    runs = []
    for out in (tr.model(xs, attention_mask=am, labels=lab), tr.model(attention_mask=am, labels=lab, features=features)):
        tr.model.zero_grad()
        out.loss.backward()
        grads = [p.grad.flatten() for p in tr.model.parameters() if p.requires_grad]
        runs.append((out.loss.item(), torch.cat(grads)))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-6)
    assert torch.allclose(runs[0][1], runs[1][1], rtol=1e-4, atol=1e-6)
    with pytest.raises(SystemExit):  # the conv encoder must be frozen for its features to be made elsewhere
        train.parse_args(["--run", str(tmp_path), "--backend", "xlsr", "--features-in-workers"])


def test_bf16_is_dropped_with_a_warning_where_it_would_be_emulated(recipe, monkeypatch, capsys):
    """--bf16 stays on where the device has native bf16 and falls back to fp32, with a warning, where it does not."""
    pytest.importorskip("torch")
    import train

    assert isinstance(train.native_bf16("cpu"), bool)  # the real probe answers on this CPU
    monkeypatch.setattr(train, "native_bf16", lambda device: device == "cuda")
    assert train.resolve_bf16(True, "cuda") is True
    assert train.resolve_bf16(False, "cpu") is False and capsys.readouterr().err == ""
    assert train.resolve_bf16(True, "cpu") is False
    assert "--bf16 ignored on cpu" in capsys.readouterr().err


def test_run_clock_counts_steps_not_stops(recipe):
    """The run clock adds the time between ticks, caps a long stop at MAX_GAP_S, and starts from a resumed total."""
    pytest.importorskip("torch")
    from train import RunClock

    now = [100.0]
    clock = RunClock(elapsed_s=30.0, now=lambda: now[0])
    now[0] += 0.5
    assert clock.tick() == 30.5
    now[0] += 600.0  # a SIGSTOP while a benchmark ran
    assert clock.tick() == 30.5 + RunClock.MAX_GAP_S
    now[0] += 2.0
    assert clock.tick() == 32.5 + RunClock.MAX_GAP_S


def test_specaugment_masks_stay_inside_each_sequence_and_only_while_training(recipe):
    """Masking: time spans take masked_spec_embed inside the real frames, channel spans are zeroed, eval is untouched."""
    torch = pytest.importorskip("torch")
    import common
    import xlsr_backend as X

    torch.manual_seed(0)
    masking = X.Masking(time_prob=0.3, time_span=10, feature_prob=0.5, feature_span=8)
    frame_mask = torch.ones(2, 200, dtype=torch.bool)
    frame_mask[1, 120:] = False
    embed = torch.full((32,), 7.0)
    out = masking.apply(torch.ones(2, 200, 32), frame_mask, embed)
    timed = (out == 7.0).any(-1)  # frames carrying the embedding (where no channel mask zeroed all of it)
    assert not timed[1, 120:].any() and timed[1, :120].any()
    assert 0.1 < timed[0].float().mean() < 0.4  # ~int(0.3 * 200 / 10 + U) = 6-7 spans of 10, overlaps allowed
    zeroed = (out == 0).all(1)  # (B, H): channels zero at every frame; int(0.5 * 32 / 8 + U) = 2-3 spans of 8
    assert (zeroed.sum(-1) >= 8).all() and (zeroed.sum(-1) <= 24).all()
    with pytest.raises(ValueError, match="time_prob"):
        X.Masking(time_prob=1.5)

    model = X.XlsrCTC(common.config_dict(num_hidden_layers=1), masking).eval()
    wave, am = torch.randn(1, 16_000), torch.ones(1, 16_000, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(model(wave, attention_mask=am).logits, model.net(wave))  # eval: no masks
        model.train()
        assert not torch.allclose(model(wave, attention_mask=am).logits, model.net(wave))


def test_mask_options_reach_the_xlsr_backend(recipe, tmp_path):
    """--mask-time-prob / --mask-feature-prob build the training model's Masking."""
    pytest.importorskip("torch")
    import train
    import xlsr_backend

    args = train.parse_args(["--run", str(tmp_path), "--backend", "xlsr", "--mask-time-prob", "0.25",
                             "--mask-time-len", "8", "--mask-feature-prob", "0.1"])
    model = train.build_model(args, {"num_hidden_layers": 1}, None)
    assert model.masking == xlsr_backend.Masking(time_prob=0.25, time_span=8, feature_prob=0.1)


def test_grow_layers_maps_old_layers_and_refuses_to_shrink(recipe):
    """grow.source_layers spreads the old layers in order; fewer layers than the start is a ValueError."""
    import grow

    assert grow.source_layers(6, 12) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert grow.source_layers(2, 5) == [0, 0, 0, 1, 1]
    assert grow.source_layers(3, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="layers=2"):
        grow.source_layers(3, 2)


def test_layers_grows_the_packaged_model_without_changing_its_logits(recipe, tmp_path):
    """--init DIR --layers 9 gives a 9-layer model with the packaged model's eval logits, on both backends."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import train
    import xlsr_backend

    demo = os.path.join(os.path.dirname(__file__), "..", "xlsr_live", "models", "demo")
    old = xlsr_backend.XlsrCTC(train.C.config_dict()).eval()
    xlsr_backend.load_init(old, demo)
    wave = torch.randn(1, 24_000)
    with torch.no_grad():
        want = old(wave).logits
    for backend in ("xlsr", "transformers"):
        args = train.parse_args(["--run", str(tmp_path), "--backend", backend, "--init", demo, "--layers", "9"])
        tr = train.Trainer(args, "cpu")
        model = tr.model.eval()
        assert tr.config_over == {"num_hidden_layers": 9}
        layers = train.backbone(model).encoder.layers
        assert len(layers) == 9
        assert float(layers[1].attention.out_proj.weight.detach().abs().sum()) == 0.0  # a repeat: identity at the start
        with torch.no_grad():
            got = model(wave).logits
        assert torch.allclose(got, want, atol=1e-4), (backend, float((got - want).abs().max()))
    assert isinstance(model, transformers.Wav2Vec2ForCTC)
    tr.save()  # a 9-layer checkpoint: a new run from it keeps 9 layers without --layers
    again = train.Trainer(train.parse_args(["--run", str(tmp_path / "b"), "--backend", "xlsr",
                                            "--init", str(tmp_path / "ckpt_last.pt")]), "cpu")
    assert train.C.init_depth(demo) == 6 and again.config_over == {"num_hidden_layers": 9}
    with torch.no_grad():
        assert torch.allclose(again.model.eval()(wave).logits, want, atol=1e-4)


def test_export_stores_float16_weights_and_keeps_metadata(recipe, tmp_path):
    """export.store_half halves the float tensors of a safetensors file and keeps its metadata and integers."""
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import save_file
    import export

    path = str(tmp_path / "model.safetensors")
    weight = torch.randn(4, 3)
    save_file({"w": weight, "n": torch.arange(3)}, path, metadata={"format": "pt"})
    export.store_half(path)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert f.get_tensor("w").dtype == torch.float16 and f.get_tensor("n").dtype == torch.int64
        assert torch.allclose(f.get_tensor("w").float(), weight, atol=2e-3)


def test_fit_check_scores_a_builders_examples(recipe):
    """fit_check.fit gives CER 0 when the model's greedy output is the transcript, and counts every example."""
    torch = pytest.importorskip("torch")
    import common as C
    import fit_check

    class Echo(torch.nn.Module):  # logits that spell the transcript, one label per frame
        def __init__(self, text):
            super().__init__()
            self.ids = [i for c in C.encode(text) for i in (c, C.PAD_ID)]

        def forward(self, x, labels):
            logits = torch.full((1, len(self.ids), len(C.VOCAB)), -9.0)
            logits[0, torch.arange(len(self.ids)), torch.tensor(self.ids)] = 9.0
            return torch.nn.functional.log_softmax(logits, -1), logits

    class Builder:
        def example(self, max_s, aug, p_empty):
            return np.zeros(16_000, np.float32), "hello world"

    class Model(Echo):
        def forward(self, x, labels):
            logp, logits = super().forward(x, labels)
            loss = torch.nn.functional.ctc_loss(logp.transpose(0, 1), labels, [logp.shape[1]],
                                                [labels.shape[1]], blank=C.PAD_ID)
            return type("Out", (), {"loss": loss / labels.shape[1], "logits": logits})

    r = fit_check.fit(Model("hello world"), Builder(), n=3, aug=1.0)
    assert r["n"] == 3 and r["aug"] == 1.0 and r["cer"] == 0.0 and r["median_loss"] < 0.01
    assert fit_check.fit(Model("hello"), Builder(), n=2, aug=0.0)["cer"] > 0.5


def test_extra_text_sources_join_train_and_dev_by_the_hash_split(recipe, monkeypatch):
    """build_sentences(extra=...) adds a source's sentences to the split of their label's hash; unknown names fail."""
    import textnorm

    lines = [f"The {w} walked over the {v} hill." for w in ("cat", "dog", "fox", "owl") for v in ("red", "big", "old")]
    monkeypatch.setattr(textnorm, "fortune_sentences", lambda: ["A fortune about cats and dogs."])
    monkeypatch.setattr(textnorm, "dict_words", lambda: ["apple", "pear"])
    monkeypatch.setattr(textnorm, "EXTRA_SOURCES", {"gloss": lambda: iter(lines + lines[:2])})
    by = textnorm.build_sentences(n_wordlist=0, extra=("gloss",))
    got = {lab: split for split, rows in by.items() for _, lab, src in rows if src == "gloss"}
    assert len(got) == len(lines)  # repeats dropped
    assert all(split == textnorm.split_of(lab) for lab, split in got.items())
    assert textnorm.build_sentences(n_wordlist=0) == {k: [r for r in v if r[2] != "gloss"] for k, v in by.items()}
    with pytest.raises(ValueError, match="nope"):
        textnorm.build_sentences(extra=("nope",))


def test_mbrola_mix_draws_only_mbrola_voices_and_older_mixes_none(recipe):
    """--mix mbrola spreads over the 4 MBROLA voices behind both front ends; v1-v3 never draw them."""
    import random

    import make_data

    rng = random.Random(5)
    got = {make_data.pick_voice(rng, "train", ["m1"], "mbrola", ["f1"])["voice"] for _ in range(400)}
    assert got == {f"festival:{v}_mbrola" for v in make_data.MBROLA_TRAIN} | {
        f"espeak:mb-{v}" for v in make_data.MBROLA_TRAIN}
    for mix in ("v1", "v2", "v3"):
        drawn = [make_data.pick_voice(rng, "train", ["m1"], mix, ["f1"]) for _ in range(2000)]
        assert not [d for d in drawn if "mb" in d["vname"]], mix
        assert {d["synth"] for d in drawn} >= {"espeak", "flite", "festival"}


def test_kokoro_blend_mix_draws_new_speakers_of_two_to_four_voices(recipe):
    """--mix kokoro-blend draws 2-4 distinct English Kokoro voices, heaviest first, weights summing to 1."""
    import random

    import kokoro_voice
    import make_data

    rng = random.Random(7)
    drawn = [make_data.pick_voice(rng, "train", ["m1"], "kokoro-blend", ["f1"]) for _ in range(300)]
    english = set(kokoro_voice.KOKORO_EN_FEMALE + kokoro_voice.KOKORO_EN_MALE)
    assert {len(d["kokoro"]) for d in drawn} == {2, 3, 4}
    for d in drawn:
        assert d["synth"] == "kokoro" and set(d["kokoro"]) <= english and len(set(d["kokoro"])) == len(d["kokoro"])
        assert abs(sum(d["weight"]) - 1.0) < 1e-9 and d["weight"] == sorted(d["weight"], reverse=True)
        assert d["voice"].startswith("kokoro:" + d["kokoro"][0] + "@") and 0.8 <= d["speed"] <= 1.25
    female = sum(all(v in kokoro_voice.KOKORO_EN_FEMALE for v in d["kokoro"]) for d in drawn) / len(drawn)
    assert 0.6 < female < 0.8  # 60 % from the female pool, plus all-female draws from the whole pool
    assert all(len(make_data.kokoro_voice(rng)["kokoro"]) == 2 for _ in range(50))  # --mix kokoro unchanged


def test_kokoro_blend_style_is_the_weighted_sum_and_refuses_bad_weights(recipe, monkeypatch):
    """blend_style mixes style rows by the given weights (a float means a pair) and names bad weights."""
    import kokoro_voice

    styles = {"a": np.full((3, 1, 4), 1.0), "b": np.full((3, 1, 4), 2.0), "c": np.full((3, 1, 4), 4.0)}
    monkeypatch.setattr(kokoro_voice, "kokoro_style", styles.__getitem__)
    assert np.allclose(kokoro_voice.blend_style(["a", "b"], 0.25, 1), 0.25 * 1 + 0.75 * 2)
    assert np.allclose(kokoro_voice.blend_style(["a", "b", "c"], [0.5, 0.25, 0.25], 2), 0.5 + 0.5 + 1.0)
    with pytest.raises(ValueError, match="0.5, 0.6"):
        kokoro_voice.blend_style(["a", "b"], [0.5, 0.6], 0)
    with pytest.raises(ValueError, match="do not match"):
        kokoro_voice.blend_style(["a", "b", "c"], [0.5, 0.5], 0)

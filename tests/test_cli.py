"""The `xlsr-live transcribe` command: formats, exit codes, bad files among good ones."""

import json
import re

import numpy as np
import soundfile

from xlsr_live.cli import main


def _write(path, seconds=1.5, rate=22_050):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)
    return str(path)


def test_json_has_text_words_duration(tmp_path, tiny_model_dir, capsys):
    """--format json prints text, words with word/start/end/conf, and duration."""
    assert main(["transcribe", _write(tmp_path / "a.wav"), "--model", str(tiny_model_dir), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"text", "words", "duration"}
    assert out["duration"] == 1.5
    for word in out["words"]:
        assert set(word) == {"word", "start", "end", "conf"} and 0 <= word["conf"] <= 1


def test_bad_file_reported_others_transcribed(tmp_path, tiny_model_dir, capsys):
    """A bad file gets a one-line error, the good ones are still transcribed, exit code is 1."""
    good = _write(tmp_path / "good.wav")
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"garbage")
    code = main(["transcribe", str(bad), good, "--model", str(tiny_model_dir), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.count("\n") == 1 and "bad.ogg" in captured.err
    assert json.loads(captured.out)["file"] == good


def _cue_blocks(document: str) -> list[list[str]]:
    """Blank-line separated blocks of a subtitle document, as lists of lines."""
    return [block.splitlines() for block in document.strip().split("\n\n")]


def test_srt_and_vtt(tmp_path, tiny_model_dir, capsys):
    """SRT: numbered cues with comma times; VTT: a header and dot times; both carry every word in order."""
    path = _write(tmp_path / "a.wav")
    main(["transcribe", path, "--model", str(tiny_model_dir), "--format", "json"])
    words = [w["word"] for w in json.loads(capsys.readouterr().out)["words"]]
    assert words, "the tiny model transcribed nothing: the subtitle checks below would be empty"
    stamp = r"\d\d:\d\d:\d\d{0}\d{{3}}"
    main(["transcribe", path, "--model", str(tiny_model_dir), "--format", "srt"])
    srt = _cue_blocks(capsys.readouterr().out)
    assert [block[0] for block in srt] == [str(i) for i in range(1, len(srt) + 1)]
    assert all(re.fullmatch(f"{stamp.format(',')} --> {stamp.format(',')}", block[1]) for block in srt)
    assert " ".join(" ".join(block[2:]) for block in srt).split() == words
    main(["transcribe", path, "--model", str(tiny_model_dir), "--format", "vtt"])
    header, *vtt = _cue_blocks(capsys.readouterr().out)
    assert header == ["WEBVTT"]
    assert all(re.fullmatch(f"{stamp.format('[.]')} --> {stamp.format('[.]')}", block[0]) for block in vtt)
    assert " ".join(" ".join(block[1:]) for block in vtt).split() == words


def test_missing_model_exit_code(tmp_path, capsys):
    """A model path that does not exist exits 2 with one line naming it."""
    code = main(["transcribe", _write(tmp_path / "a.wav"), "--model", str(tmp_path / "none")])
    assert code == 2 and "none" in capsys.readouterr().err


def test_stream_jsonl_matches_engine(tmp_path, tiny_model_dir, tiny_model, capsys):
    """--stream --format jsonl prints the engine's events, ending with a final per utterance."""
    from xlsr_live.defaults import RecognizerOptions, load_recognizer
    from xlsr_live.file_stream import stream_file
    from xlsr_live.streaming.events import event_to_dict

    path = _write(tmp_path / "a.wav", seconds=2.0, rate=16_000)
    assert main(["transcribe", path, "--model", str(tiny_model_dir), "--device", "cpu", "--stream",
                 "--format", "jsonl"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    setup = load_recognizer(RecognizerOptions(model=str(tiny_model_dir), device="cpu"))
    expected = [json.loads(json.dumps(event_to_dict(e))) for e in stream_file(setup.model, path, setup.streaming)]
    assert printed == expected
    assert printed and printed[-1]["type"] == "final"


def test_jsonl_needs_stream(tmp_path, tiny_model_dir, capsys):
    """--format jsonl without --stream is a usage error naming the fix."""
    assert main(["transcribe", _write(tmp_path / "a.wav"), "--model", str(tiny_model_dir), "--format", "jsonl"]) == 2
    assert "--stream" in capsys.readouterr().err


def test_console_entry_makes_openmp_waits_passive_before_torch_loads():
    """The entry point sets OMP_WAIT_POLICY=PASSIVE before torch is imported and keeps a user's own value."""
    import os
    import subprocess
    import sys

    code = ("import os, sys; import xlsr_live.cli as c; c.build_parser(); assert 'torch' not in sys.modules; "
            "c.passive_openmp_waits(); print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"

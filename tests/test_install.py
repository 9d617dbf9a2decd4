"""Installation: on the newest Python here, pip resolves numpy 2 for the core and the beam/LM install lines.

pip's dry run (`--report`) resolves against the package index without installing. Wheel metadata
comes through HTTP range requests (`--use-feature=fast-deps`, pip 26.3), so torch's 0.5-0.9 GB
wheels are resolved without being downloaded (measured: about 13 MB of traffic per run, docs/decoding.md).
"""

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIP = "pip==26.3"  # fast-deps resolves from range requests without downloading whole wheels
NEWEST = "3.13"

pytestmark = pytest.mark.slow


def _newest_python() -> str | None:
    """python3.13 on PATH, through pyenv, or from XLSR_LIVE_TEST_PYTHON."""
    candidates = [os.environ.get("XLSR_LIVE_TEST_PYTHON"), shutil.which(f"python{NEWEST}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{NEWEST}*/bin/python{NEWEST}"), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def venv_pip(tmp_path_factory):
    """pip of a fresh virtual environment on the newest Python."""
    python = _newest_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail(f"python{NEWEST} is needed for the install check in CI")
        pytest.skip(f"python{NEWEST} not found (set XLSR_LIVE_TEST_PYTHON)")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run(pip + ["install", "--quiet", PIP], check=True)
    return pip


def _would_install(pip, tmp_path, *args) -> dict[str, str]:
    """Name -> version of what `pip install --dry-run ARGS` would install."""
    report = tmp_path / "report.json"
    subprocess.run(pip + ["install", "--dry-run", "--quiet", "--no-cache-dir", "--use-feature=fast-deps",
                          "--report", str(report), *args], check=True, capture_output=True)
    return {item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


def test_core_install_resolves_numpy_2(venv_pip, tmp_path):
    """`pip install xlsr-live` picks numpy 2 and no pyctcdecode."""
    plan = _would_install(venv_pip, tmp_path, str(ROOT))
    assert int(plan["numpy"].split(".")[0]) >= 2, plan["numpy"]
    assert "torch" in plan and "pyctcdecode" not in plan


def test_lm_install_line_keeps_numpy_2(venv_pip, tmp_path):
    """The documented beam/LM line: the extra resolves numpy 2, then pyctcdecode adds nothing else."""
    plan = _would_install(venv_pip, tmp_path, f"{ROOT}[beam,lm]")
    assert int(plan["numpy"].split(".")[0]) >= 2, plan["numpy"]
    assert {"pygtrie", "ufal.kenlm"} <= set(plan) and "pyctcdecode" not in plan
    assert _would_install(venv_pip, tmp_path, "--no-deps", "pyctcdecode==0.5.0") == {"pyctcdecode": "0.5.0"}


def test_install_lines_are_the_documented_ones():
    """The error message, the Makefile and docs/decoding.md give the same pyctcdecode install line."""
    from xlsr_live.decoding.extras import BEAM_INSTALL, LM_INSTALL

    docs = (ROOT / "docs" / "decoding.md").read_text(encoding="utf-8")
    assert BEAM_INSTALL in docs and LM_INSTALL in docs
    assert "pyctcdecode==0.5.0" in (ROOT / "Makefile").read_text()

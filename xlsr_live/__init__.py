"""xlsr-live: streaming, real-time speech recognition for the wav2vec2 CTC family."""

__version__ = "0.1.0"

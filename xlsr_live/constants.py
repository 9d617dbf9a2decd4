"""Units shared by every part of xlsr-live. Work in samples and frames; seconds only at edges."""

SAMPLE_RATE = 16_000  # samples per second the models consume
SAMPLES_PER_FRAME = 320  # conv feature encoder stride: one CTC frame per 20 ms
FRAMES_PER_SECOND = SAMPLE_RATE // SAMPLES_PER_FRAME  # 50

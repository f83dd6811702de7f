"""Which frames make a clip: frame indices in [0, n) for a video of n frames.

segment (TSN, Wang et al. 2016; the SSv2 default): split the video into T equal segments and take
  one frame from each; train: uniformly at random inside the segment; eval clip k of K: at relative
  position (k + 0.5)/K inside every segment, so K test clips are K different interleaved clips
  (K = 1 is the segment centre). Deterministic multi-view test views that all coincide are a known
  bug in other code bases (SlowFast #306, TimeSformer #103); this rule cannot produce it when a
  segment has at least K frames.
dense (I3D/SlowFast style): T frames `stride` apart (a span of (T-1)·stride + 1 frames); train:
  random start; eval: K starts evenly spaced over the video (K = 1: centred).

Videos shorter than the clip: indices are clamped to the last frame, i.e. padding repeats frames
(segment sampling repeats each frame about T/n times; dense sampling freezes on the last frame).
Clamping, not wrapping: a wrap-around jump would look like a reversed motion, which is exactly what
temporal classes such as "left to right" vs "right to left" must not see.
"""
from __future__ import annotations

import numpy as np

SAMPLERS = ("segment", "dense")


def segment_indices(n: int, T: int, rng: np.random.Generator | None = None, clip: int = 0, num_clips: int = 1) -> np.ndarray:
    """T indices, one per equal segment; random in segment when `rng` is given, else clip `clip` of `num_clips`."""
    _check(n, T)
    seg = n / T
    if rng is not None:
        pos = rng.random(T)
    else:
        if not 0 <= clip < num_clips:
            raise ValueError(f"clip {clip} out of range for num_clips={num_clips}")
        pos = np.full(T, (clip + 0.5) / num_clips)
    idx = np.floor(seg * (np.arange(T) + pos)).astype(np.int64)
    return np.clip(idx, 0, n - 1)


def dense_indices(n: int, T: int, stride: int, rng: np.random.Generator | None = None, clip: int = 0, num_clips: int = 1) -> np.ndarray:
    """T indices `stride` apart; random start when `rng` is given, else start of clip `clip` of `num_clips`."""
    _check(n, T)
    if stride < 1:
        raise ValueError(f"frame_stride must be >= 1 (got {stride})")
    room = max(n - ((T - 1) * stride + 1), 0)  # how far the start may move
    if rng is not None:
        start = int(rng.integers(0, room + 1))
    elif num_clips == 1:
        start = room // 2
    else:
        if not 0 <= clip < num_clips:
            raise ValueError(f"clip {clip} out of range for num_clips={num_clips}")
        start = int(round(clip * room / (num_clips - 1)))
    return np.clip(start + stride * np.arange(T, dtype=np.int64), 0, n - 1)


def sample_indices(sampler: str, n: int, T: int, stride: int = 1, rng=None, clip: int = 0, num_clips: int = 1) -> np.ndarray:
    if sampler == "segment":
        return segment_indices(n, T, rng, clip, num_clips)
    if sampler == "dense":
        return dense_indices(n, T, stride, rng, clip, num_clips)
    raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")


def _check(n: int, T: int):
    if n < 1:
        raise ValueError(f"a video needs at least one frame (got n={n})")
    if T < 1:
        raise ValueError(f"num_frames must be >= 1 (got {T})")

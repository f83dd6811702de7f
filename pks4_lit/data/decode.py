"""Decode only the frames a clip needs, with PyAV.

`VideoReader(path)` demuxes the file once (packets only, no decoding: ~0.3 ms for a short clip) to
build the frame table: every frame's presentation timestamp, sorted, and which ones are keyframes.
That table gives an exact frame count even for .webm files whose header says 0 frames, and lets
`decode(indices)` pick, per video, between one linear decode and a seek per group of indices:

  cost(linear) = max index + 1 frames decoded
  cost(seek)   = sum over groups of (last index in group - its keyframe + 1) + SEEK_COST per group

where a group is the run of wanted indices that share their preceding keyframe (or that are cheaper
to reach by decoding on than by seeking). FIELD_NOTES.md: seeking wins with short keyframe gaps or
dense indices (6 ms vs 41 ms), one linear pass wins with long gaps and spread-out indices (25 vs 54 ms).

Frame indices live on a uniform time grid: index i of n maps to time
t0 + i·(t_last − t0)/(n − 1) and to the frame shown at that time. For constant frame rate that is
frame i; for variable frame rate it samples evenly in time ("map by pts"). Indices past the last
decodable frame are clamped to it (some files announce more frames than they hold).

Output: uint8 RGB [T,H,W,3] whatever the pixel format (grayscale, yuv444, 10-bit...), with the
container's display rotation applied (multiples of 90°; flips in the display matrix are ignored),
optionally downscaled in swscale so the short side is `short_side` (never upscaled).
Any failure becomes `BadVideoError` naming the file.
"""
from __future__ import annotations

import bisect
from pathlib import Path

import av
import numpy as np

SEEK_COST = 4  # a seek costs about as much as decoding this many frames (FIELD_NOTES timings)


class BadVideoError(RuntimeError):
    """The file is missing, empty, truncated, not a video, or has no decodable video stream."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class VideoReader:
    """One open video. Use as a context manager; `num_frames`, then `decode(indices)`."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        self._rotation = 0  # degrees counter-clockwise, read from the decoded frames' display matrix
        if not self.path.is_file():
            raise BadVideoError(path, "file not found")
        if self.path.stat().st_size == 0:
            raise BadVideoError(path, "empty file (0 bytes)")
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore")
        except Exception as e:  # av.error.InvalidDataError, FileNotFoundError, ...
            raise BadVideoError(path, f"cannot open: {type(e).__name__}: {e}") from None
        try:
            if not self.container.streams.video:
                raise BadVideoError(path, "no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.codec_context.thread_count = threads  # one thread per DataLoader worker
            self._build_frame_table()
        except BadVideoError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise BadVideoError(path, f"cannot demux: {type(e).__name__}: {e}") from None

    def _build_frame_table(self):
        pts, keys, has_pts = [], [], True
        for packet in self.container.demux(self.stream):
            if packet.size == 0:  # flush packets
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            has_pts &= t is not None
            pts.append(t if t is not None else len(pts))
            keys.append(bool(packet.is_keyframe))
        if not pts:
            raise BadVideoError(self.path, "video stream has no packets")
        order = np.argsort(np.asarray(pts), kind="stable")
        self.pts = [pts[i] for i in order]  # presentation order
        self.keyframes = [k for k, i in enumerate(order) if keys[i]] or [0]
        self.has_pts = has_pts
        self.num_frames = len(self.pts)

    # ------------------------------------------------------------------------------------------
    def frame_of(self, index: int) -> int:
        """Map a uniform-time-grid index to the frame shown at that time (identity for CFR)."""
        n = self.num_frames
        index = min(max(int(index), 0), n - 1)
        if not self.has_pts or n < 2:
            return index
        t = self.pts[0] + index * (self.pts[-1] - self.pts[0]) / (n - 1)
        j = bisect.bisect_right(self.pts, t + 1e-6 * (self.pts[-1] - self.pts[0] + 1)) - 1
        if j + 1 < n and self.pts[j + 1] - t < t - self.pts[j]:
            j += 1
        return max(j, 0)

    def plan(self, frames: list[int], mode: str = "auto") -> list[tuple[int, list[int]]]:
        """Groups (start frame to seek to, sorted wanted frames) for `frames`; one group = linear."""
        wanted = sorted(set(frames))
        linear = [(0, wanted)]
        if mode == "linear" or not self.has_pts:
            return linear
        groups: list[tuple[int, list[int]]] = []
        for f in wanted:
            kf = self.keyframes[bisect.bisect_right(self.keyframes, f) - 1]
            if groups:
                pos = groups[-1][1][-1]  # decoder position after the previous group
                # decoding on from pos is cheaper than seeking to kf (and needed if kf <= pos)
                if kf <= pos or f - pos <= f - kf + SEEK_COST:
                    groups[-1][1].append(f)
                    continue
            groups.append((kf, [f]))
        if mode == "seek":
            return groups
        cost_seek = sum(g[-1] - s + 1 + SEEK_COST for s, g in groups)
        return groups if cost_seek < wanted[-1] + 1 else linear

    def decode(self, indices, mode: str = "auto", short_side: int | None = None) -> np.ndarray:
        """uint8 RGB frames [len(indices),H,W,3] for grid indices (repeats and any order allowed)."""
        if len(indices) == 0:
            raise ValueError("decode() needs at least one index")
        frames = [self.frame_of(i) for i in indices]
        got: dict[int, np.ndarray] = {}
        self._rotation = 0
        try:
            for start, group in self.plan(frames, mode):
                self._decode_group(start, group, got, short_side)
        except BadVideoError:
            raise
        except Exception as e:  # truncated/corrupt data mid-stream
            if not got:
                raise BadVideoError(self.path, f"decode failed: {type(e).__name__}: {e}") from None
        if not got:
            raise BadVideoError(self.path, "no frame could be decoded")
        decoded = sorted(got)
        # clamp frames the file announced but could not deliver to the nearest earlier decoded one
        pick = [got[decoded[max(bisect.bisect_right(decoded, f) - 1, 0)]] for f in frames]
        out = np.stack(pick)
        rot = self._rotation
        return np.ascontiguousarray(np.rot90(out, k=rot // 90, axes=(1, 2))) if rot else out

    def _decode_group(self, start: int, group: list[int], got: dict, short_side: int | None):
        todo, last = set(group), group[-1]
        if self.has_pts:
            self.container.seek(self.pts[start], stream=self.stream, backward=True, any_frame=False)
        else:
            self.container.seek(0, backward=True)
        count = start if not self.has_pts else 0
        for frame in self.container.decode(self.stream):
            if self.has_pts and frame.pts is not None:
                j = bisect.bisect_right(self.pts, frame.pts) - 1
            else:
                j, count = count, count + 1
            if j in todo:
                self._rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
                got[j] = self._to_rgb(frame, short_side)
                todo.discard(j)
            if j >= last or not todo:
                break

    @staticmethod
    def _to_rgb(frame: av.VideoFrame, short_side: int | None) -> np.ndarray:
        w, h = frame.width, frame.height
        if short_side and min(w, h) > short_side:
            s = short_side / min(w, h)
            w, h = max(1, round(w * s)), max(1, round(h * s))
            return frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
        return frame.to_ndarray(format="rgb24")

    # ------------------------------------------------------------------------------------------
    def close(self):
        c = getattr(self, "container", None)
        if c is not None:
            c.close()
            self.container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_frames(path, indices, mode: str = "auto", short_side: int | None = None, threads: int = 1) -> np.ndarray:
    """Convenience: open, decode `indices`, close."""
    with VideoReader(path, threads=threads) as r:
        return r.decode(indices, mode=mode, short_side=short_side)

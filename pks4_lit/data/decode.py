"""Decode only the frames a clip needs, with PyAV, and exactly those frames.

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
frame i; for variable frame rate it samples evenly in time ("map by pts"). Frames shown before the
file's first keyframe are left out of the table (an open GOP cut at the start: their references are
not in the file).

Files whose timestamps do not say which frame is which (measured on real files, FIELD_NOTES):
  * B-frames whose packet pts are not presentation times: XviD/DivX AVIs with packed B-frames (AVI
    stores no timestamps; the parser's guesses come out 1,2,4,3,5,7,6…) and MP4s muxed without a
    `ctts` box (pts = dts). The decoder still outputs frames in display order, so such streams are
    indexed by decoder output order (frame k = the k-th frame out of a decode from the start), with
    one linear pass. Detected when the file is opened (B-frames in AVI; B-frames with pts = dts on
    every packet), and at decode time in any file whose decoded timestamps go backwards. While
    timestamps skip a slot, decoding goes on for REORDER_WINDOW more frames before it may stop, so
    a reordered frame is never taken for the one it displaced.
  * An AVI whose index was lost (a truncated download): FFmpeg flags every packet as a keyframe and a
    seek lands on a P-frame. The first frame after every seek must be a keyframe; if it is not, the
    file is decoded linearly from then on.
Both findings are remembered per process (keyed by path, size and mtime) and logged once per file.

Missing frames are visible: a packet that fails to decode is skipped, a demux error ends the pass,
and wanted frames that never came out are replaced by the nearest *earlier* decoded frame (never a
later one: that would reverse time), with a warning naming the video and the frames. More than
`max_missing_fraction` of the wanted frames missing, or of the announced duration cut off the end of
the file, makes the video bad (`BadVideoError`).

Output: uint8 RGB [T,H,W,3] whatever the pixel format (grayscale, yuv444, 10-bit...), with the
container's display rotation applied (multiples of 90°; flips in the display matrix are ignored),
optionally downscaled in swscale so the short side is `short_side` (never upscaled).
Any failure becomes `BadVideoError` naming the file.
"""
from __future__ import annotations

import bisect
import logging
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

SEEK_COST = 4  # a seek costs about as much as decoding this many frames (FIELD_NOTES timings)
REORDER_WINDOW = 16  # frames decoded past a skipped timestamp before trusting the order (H.264 reorders <= 16)
MAX_MISSING_FRACTION = 0.25  # default: more wanted frames (or more of the file) missing makes the video bad

# per-process findings, keyed by (path, size, mtime): why a file is indexed by output order / not seeked
_BY_OUTPUT_ORDER: dict[tuple, str] = {}
_NO_SEEK: dict[tuple, str] = {}
_WARNED: set[tuple] = set()
_CONSEQUENCE = {"output": "frames indexed by decoder output order, decoded linearly",
                "no_seek": "decoded linearly from now on"}


class BadVideoError(RuntimeError):
    """The file is missing, empty, truncated, not a video, or has no decodable video stream."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class _Restart(Exception):
    """Internal: the decode found the file's timestamps or index untrustworthy; decode it again."""


class VideoReader:
    """One open video. Use as a context manager; `num_frames`, then `decode(indices)`.

    `video_id` names the video in log messages (default: the path); `max_missing_fraction` as above.
    After opening, `order` is "pts" (frames indexed by timestamp) or "output" (by decoder output
    order) and `seekable` says whether decode() may seek.
    """

    def __init__(self, path: str | Path, threads: int = 1, video_id: str | None = None,
                 max_missing_fraction: float = MAX_MISSING_FRACTION):
        if not 0.0 <= max_missing_fraction <= 1.0:
            raise ValueError(f"max_missing_fraction must be in [0, 1] (got {max_missing_fraction})")
        self.path = Path(path)
        self.id = str(video_id) if video_id is not None else str(path)
        self.max_missing_fraction = max_missing_fraction
        self._rotation = 0  # degrees counter-clockwise, read from the decoded frames' display matrix
        self._error: str | None = None  # first decode/demux error of the current decode() call
        if not self.path.is_file():
            raise BadVideoError(path, "file not found")
        stat = self.path.stat()
        if stat.st_size == 0:
            raise BadVideoError(path, "empty file (0 bytes)")
        self._key = (str(self.path.resolve()), stat.st_size, stat.st_mtime_ns)
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
            self._check_cut_off()
        except BadVideoError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise BadVideoError(path, f"cannot demux: {type(e).__name__}: {e}") from None

    # ------------------------------------------------------------------------------------------ table
    def _build_frame_table(self):
        times, dts, keys, durations = [], [], [], []
        self.demux_error = None
        try:
            for packet in self.container.demux(self.stream):
                if packet.size == 0 or packet.is_discard:  # flush packets; edit-list discarded frames
                    continue
                times.append(packet.pts if packet.pts is not None else packet.dts)
                dts.append(packet.dts)
                keys.append(bool(packet.is_keyframe))
                durations.append(packet.duration or 0)
        except Exception as e:  # cut off mid-file: keep the packets read so far
            if not times:
                raise
            self.demux_error = f"{type(e).__name__}: {e}"
        if not times:
            raise BadVideoError(self.path, "video stream has no packets")
        self.has_pts = all(t is not None for t in times)
        self._start = min((d for d in dts if d is not None), default=None)  # where a decode from the start seeks to
        if not self.has_pts:
            times = list(range(len(times)))
        order = np.argsort(np.asarray(times), kind="stable")
        pts = [times[i] for i in order]  # presentation order
        first_key = next((times[i] for i, k in enumerate(keys) if k), pts[0])  # first keyframe in decode order
        skip = bisect.bisect_left(pts, first_key)  # frames shown before it cannot be decoded from the file
        self.pts = pts[skip:]
        self.keyframes = [k - skip for k, i in enumerate(order) if keys[i] and k >= skip] or [0]
        self.num_frames = len(self.pts)
        self._frame_step = float(np.median([d for d in durations if d > 0] or [0]))  # one frame, in pts units
        self.order = "output" if self._key in _BY_OUTPUT_ORDER or not self.has_pts else "pts"
        self.seekable = self._key not in _NO_SEEK
        why = self.order == "pts" and self._output_order_reason(times, dts)
        if why:
            self.order = "output"
            self._note_once(f"video {self.id}: {why}: {_CONSEQUENCE['output']}")

    def _output_order_reason(self, times, dts) -> str | None:
        if not self.stream.codec_context.has_b_frames:
            return None
        if "avi" in self.container.format.name.split(","):
            return "B-frames in AVI (no timestamps in the container; packed B-frames put the parser's out of order)"
        if all(t == d for t, d in zip(times, dts)):
            return "B-frames but every packet has pts = dts (no composition offsets, e.g. MP4 without ctts)"
        return None

    def _check_cut_off(self):
        """A file whose frames cover much less than its header announces was cut off (a truncated download)."""
        announced = self.stream.duration or 0  # in stream time base, like pts
        if not announced and self.container.duration and self.stream.time_base:
            # Matroska/WebM keep the length only in the segment header (µs), which a cut-off download
            # still carries; it covers every stream, so audio running past the video can make a whole
            # file read as slightly short (a log line, not a bad clip, unless past max_missing_fraction)
            announced = self.container.duration / 1_000_000 / float(self.stream.time_base)
        if "avi" in self.container.format.name.split(","):  # without its index FFmpeg re-estimates the duration:
            announced = max(announced, (self.stream.frames or 0) * (self._frame_step or 0))  # the header's count
        if not self.has_pts or announced <= 0 or self.num_frames < 2:
            if self.demux_error:
                self._note_once(f"video {self.id}: demuxing stopped early ({self.demux_error})")
            return
        step = self._frame_step or float(np.median(np.diff(self.pts)))
        covered = (self.pts[-1] - self.pts[0] + step) / announced
        lost = max(0.0, 1.0 - covered)
        why = f" ({self.demux_error})" if self.demux_error else ""
        if lost > self.max_missing_fraction:
            raise BadVideoError(self.path, f"cut off: its frames cover {100 * covered:.0f}% of the duration its header "
                                           f"announces{why} (max_missing_fraction={self.max_missing_fraction})")
        if lost * self.num_frames > 1.5 or self.demux_error:
            self._note_once(f"video {self.id}: its frames cover {100 * covered:.0f}% of the announced duration{why}")

    def _note_once(self, message: str):
        if (self._key, message) not in _WARNED:
            _WARNED.add((self._key, message))
            log.warning(message)

    # ------------------------------------------------------------------------------------------ plan
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
        if mode == "linear" or self.order == "output" or not self.seekable:
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

    # ------------------------------------------------------------------------------------------ decode
    def decode(self, indices, mode: str = "auto", short_side: int | None = None) -> np.ndarray:
        """uint8 RGB frames [len(indices),H,W,3] for grid indices (repeats and any order allowed)."""
        if len(indices) == 0:
            raise ValueError("decode() needs at least one index")
        frames = [self.frame_of(i) for i in indices]
        for _ in range(3):  # restarts: timestamps out of order (-> output order), a seek off a keyframe (-> linear)
            got: dict[int, np.ndarray] = {}
            self._rotation, self._error = 0, None
            self._skipped = False
            try:
                plan = self.plan(frames, mode)
                for start, group in plan:
                    self._decode_group(start, group, got, short_side)
                if self._skipped and any(f not in got for f in frames):
                    self._doubt(plan)
            except _Restart:
                continue
            break
        return self._assemble(frames, got)

    def _decode_group(self, start: int, group: list[int], got: dict, short_side: int | None):
        todo, last = set(group), group[-1]
        by_output = self.order == "output"
        prev_pts, prev_j, settle, checked = None, start - 1, 0, start == 0
        try:
            if by_output:
                self._rewind()
            else:
                self.container.seek(self.pts[start], stream=self.stream, backward=True, any_frame=False)
            for n, frame in enumerate(self._frames(stop_on_error=by_output)):
                if by_output:
                    j = n
                else:
                    if frame.pts is None:
                        self._distrust("output", "a decoded frame has no timestamp")
                    j = bisect.bisect_right(self.pts, frame.pts) - 1
                    if j < start:  # shown before the keyframe we seeked to (open GOP): not ours
                        continue
                    if prev_pts is not None and frame.pts <= prev_pts:
                        self._distrust("output", f"decoded timestamps go backwards ({prev_pts} then {frame.pts})")
                    if j > prev_j + 1:  # a slot skipped: wait and see whether it comes later (reordered pts)
                        settle, self._skipped = REORDER_WINDOW, True
                    elif settle:
                        settle -= 1
                    prev_pts, prev_j = frame.pts, j
                if not checked:  # the first frame after a seek must be a keyframe (an AVI index lost: all flagged key)
                    checked = True
                    if not _is_keyframe(frame):
                        self._distrust("no_seek", f"a seek to frame {start} landed on a non-keyframe (index lost?)")
                if j in todo:
                    self._rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
                    got[j] = self._to_rgb(frame, short_side)
                    todo.discard(j)
                if (j >= last or not todo) and not settle:
                    break
        except _Restart:
            raise
        except Exception as e:  # demux error (cut-off file), seek failure: what came out so far stays
            self._error = self._error or f"{type(e).__name__}: {e}"

    def _frames(self, stop_on_error: bool = False):
        """Decoded frames from the current position; a packet that fails to decode is skipped and noted.
        `stop_on_error` (frames indexed by output order): stop there instead, since every later frame's
        index would be off by the frames that packet should have given (they count as missing)."""
        for packet in self.container.demux(self.stream):
            try:
                decoded = packet.decode()
            except Exception as e:  # a damaged packet: the decoder goes on with the next one
                self._error = self._error or f"{type(e).__name__}: {e}"
                if stop_on_error:
                    return
                continue
            yield from decoded

    def _doubt(self, plan):
        """Wanted frames never came out while timestamps skipped slots: distrust seeks, then timestamps."""
        if plan[0][0] > 0 or len(plan) > 1:
            self._distrust("no_seek", "wanted frames never came out after a seek")
        if self.order == "pts" and self.stream.codec_context.has_b_frames:
            self._distrust("output", "timestamps skip frames that never come out (B-frames with wrong pts?)")

    def _rewind(self):
        """Back to the first packet (output order counts from there; pts[0] may not be the first packet)."""
        try:
            if self._start is not None:
                self.container.seek(self._start, stream=self.stream, backward=True, any_frame=False)
            else:
                self.container.seek(0, backward=True)
        except av.error.FFmpegError:  # not seekable (raw streams): open the file again
            threads = self.stream.codec_context.thread_count
            self.container.close()
            self.container = av.open(str(self.path), metadata_errors="ignore")
            self.stream = self.container.streams.video[0]
            self.stream.codec_context.thread_count = threads

    def _distrust(self, what: str, why: str):
        """Remember for this file (this process) to index by output order / not to seek; decode again."""
        if what == "output":
            _BY_OUTPUT_ORDER[self._key], self.order = why, "output"
        else:
            _NO_SEEK[self._key], self.seekable = why, False
        self._note_once(f"video {self.id}: {why}: {_CONSEQUENCE[what]}")
        raise _Restart

    def _assemble(self, frames: list[int], got: dict) -> np.ndarray:
        wanted = sorted(set(frames))
        missing = [f for f in wanted if f not in got]
        why = f" ({self._error})" if self._error else ""
        if missing:
            if not got:
                raise BadVideoError(self.path, f"no frame could be decoded{why}")
            if len(missing) > self.max_missing_fraction * len(wanted):
                raise BadVideoError(self.path, f"{len(missing)} of {len(wanted)} wanted frames could not be decoded{why} "
                                               f"(max_missing_fraction={self.max_missing_fraction})")
            decoded = sorted(got)
            earlier = [bisect.bisect_right(decoded, f) - 1 for f in missing]  # never a later frame: no reversed time
            if min(earlier) < 0:
                raise BadVideoError(self.path, f"frame {missing[0]} could not be decoded and no earlier frame was{why}")
            subs = [decoded[k] for k in earlier]
            log.warning("video %s: frames %s of %d could not be decoded%s; showing the nearest earlier frames %s instead",
                        self.id, missing, self.num_frames, why, subs)
            got = {**got, **{f: got[s] for f, s in zip(missing, subs)}}
        elif self._error:
            self._note_once(f"video {self.id}: decode error after the wanted frames{why}")
        out = np.stack([got[f] for f in frames])
        rot = self._rotation
        return np.ascontiguousarray(np.rot90(out, k=rot // 90, axes=(1, 2))) if rot else out

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


def _is_keyframe(frame: av.VideoFrame) -> bool:
    return bool(frame.key_frame) or frame.pict_type == av.video.frame.PictureType.I


def read_frames(path, indices, mode: str = "auto", short_side: int | None = None, threads: int = 1,
                video_id: str | None = None, max_missing_fraction: float = MAX_MISSING_FRACTION) -> np.ndarray:
    """Convenience: open, decode `indices`, close."""
    with VideoReader(path, threads=threads, video_id=video_id, max_missing_fraction=max_missing_fraction) as r:
        return r.decode(indices, mode=mode, short_side=short_side)

"""Fine-motion classes for the embedded dataset: only motion and its order tell them apart.

    pks4 synth ROOT --task kinematic         (8 classes, 8 frames)
    pks4 synth ROOT --task kinematic_long    (6 classes, 32 frames; --frames 64 for longer)

Written by pks4_lit.data.synthetic in the same SSv2 layout as the other tasks (this module only
renders frames). Units: one feature cell is the stride-16 cell of the evaluation view that
conf/synthetic uses (short side 112, centre crop 96): 16/112 = 1/7 of the written frame side,
18.29 px at the default 128 px (= 16 px of the 96 px crop; 6×6 cells in the crop). Every object
moves at most 0.5 cell (9.14 px written, 8 px in the crop) between consecutive written frames:
the motions are sub-cell. Speeds are per *written* frame: train with data.num_frames = the
number of written frames (8 / 32), so that each model frame is one written frame.

Every clip holds the same things whatever its class, so no single frame tells the class:
  * a low-contrast textured background seen by a camera that pans slowly (≤ 0.03 cell per frame,
    ≤ 0.5 cell per clip) and jitters (±0.02 cell, sub-pixel, every frame);
  * two textured objects (photo crops, 1.15–1.45 cells, from one pool shared by all classes);
  * one distractor: a smaller textured disc moving at a constant random velocity (0.05–0.43 cell
    per frame, any direction), reflected at the frame border;
  * brightness flicker and pixel noise.
Objects move ≤ 0.43 cell per frame in the scene and the camera ≤ 0.07, so every on-screen step is
≤ 0.5 cell (screen_steps checks a plan).

kinematic (8 frames by default), two groups of two pairs:
  order: B is literally A played backwards (render(B) == render(A)[::-1]), so the set of frames
    of A and B has the same distribution and only frame order separates them.
    - approach: two objects move towards each other along a random axis (each 0.06–0.23 cell
      per frame at 8 frames) and stop 0.1–0.5 cell apart / reversed: two objects separate;
    - accelerate: one object speeds up from 0–0.05 to 0.3–0.43 cell per frame along a random
      direction / reversed: it slows down (the other object stands still).
  dynamics: both classes are time-symmetric (each is its own reversal in distribution); they
    differ in how things move.
    - pass vs bounce: two objects in adjacent lanes (edges 0–0.15 cell apart) meet side by side
      at a random time in the middle fifth of the clip; they pass each other, or both turn back
      (0.2–0.4 cell per frame each). For the same seed the distance between them is the same
      in every frame, so no frame tells the two apart.
    - shake slowly vs quickly: one object oscillates along a random axis with amplitude
      0.2–0.3 cell and a period of 8 vs 4 frames (one vs two cycles in 8 frames, so the
      positions have the same spread); steps ≤ 0.23 vs ≤ 0.43 cell, mean step 0.09–0.16 vs
      0.13–0.30 (the ranges overlap: the period, not the speed alone, decides).
kinematic_long (32 frames by default, ≥ 24): one group of three pairs, each B = A reversed. One
  object performs two events, the first starting in frames 1–3, the second ending 2–4 frames
  before the end, standing still in between (≥ 10 frames at 32, ≥ 42 at 64). Events, each
  time-symmetric on its own: jump (4 frames at 0.35–0.43 cell per frame), drift (8 frames at
  0.08–0.15), shake (8 frames, amplitude 0.2–0.3, period 4). The classes are the ordered pairs
  (jump, drift), (shake, jump), (shake, drift) and their reversals, so what decides is which
  event came first, ~20 frames before the other.

Deterministic: the same seed gives the same frames.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from pks4_lit.data.synthetic import BACKGROUNDS, SPATIAL_CLASSES, TEMPORAL_OBJECTS, _random_crop, _tint, photo

CELLS = 7.0                   # feature cells per frame side at the evaluation view (112 px / stride 16)
MAX_STEP = 0.43               # cells per frame in the scene; + camera (≤ 0.07) ≤ 0.5 on screen
OBJECT_PHOTOS = TEMPORAL_OBJECTS + list(SPATIAL_CLASSES.values())

# (class A, class B, motion of A, motion of B or None when B = A reversed, group)
KINEMATIC_PAIRS = [
    ("Moving two [something] closer together", "Moving two [something] apart", "approach", None, "order"),
    ("Moving [something] faster and faster", "Moving [something] slower and slower", "accelerate", None, "order"),
    ("Two [something] passing each other", "Two [something] bouncing off each other", "pass", "bounce", "dynamics"),
    ("Shaking [something] slowly", "Shaking [something] quickly", "shake_slow", "shake_fast", "dynamics"),
]
LONG_PAIRS = [
    ("Moving [something] quickly, later slowly", "Moving [something] slowly, later quickly", "jump,drift", None, "long_order"),
    ("Shaking [something], later moving it quickly", "Moving [something] quickly, later shaking it", "shake,jump", None, "long_order"),
    ("Shaking [something], later moving it slowly", "Moving [something] slowly, later shaking it", "shake,drift", None, "long_order"),
]
PAIRS = {"kinematic": KINEMATIC_PAIRS, "kinematic_long": LONG_PAIRS}
DEFAULT_FRAMES = {"kinematic": 8, "kinematic_long": 32}
MIN_FRAMES = {"kinematic": 4, "kinematic_long": 24}
EVENT_FRAMES = {"jump": 4, "drift": 8, "shake": 8}


def class_templates(task: str) -> list[str]:
    return [c for a, b, *_ in PAIRS[task] for c in (a, b)]


def reversal_pairs(task: str) -> list[tuple[str, str]]:
    """(A, B) with render_clip(B, s) == render_clip(A, s)[::-1]."""
    return [(a, b) for a, b, _, mb, _ in PAIRS[task] if mb is None]


def _spec(template: str):
    for task, pairs in PAIRS.items():
        for a, b, ma, mb, group in pairs:
            if template in (a, b):
                return task, (ma if template == a or mb is None else mb), template == b and mb is None, group
    return None


def class_group(template: str) -> str | None:
    spec = _spec(template)
    return None if spec is None else spec[3]


# ---------------------------------------------------------------------------------------------
# trajectories: positions in cells, frame centre at (CELLS/2, CELLS/2), x right, y down


def _unit(rng) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(a), np.sin(a)])


def _centre(rng, spread: float) -> np.ndarray:
    return CELLS / 2 + rng.uniform(-spread, spread, size=2)


def _still_elsewhere(path: np.ndarray, side: float, rng) -> np.ndarray:
    """A still object [T,2] placed clear of every point of `path` [T,2] (best of 50 draws)."""
    best, best_gap = None, -np.inf
    for _ in range(50):
        p = rng.uniform(1.0, CELLS - 1.0, size=2)
        gap = np.min(np.linalg.norm(path - p, axis=1))
        if gap > best_gap:
            best, best_gap = p, gap
        if gap > side + 0.4:
            break
    return np.repeat(best[None], len(path), axis=0)


def _approach(T, rng, sides):
    u, m = _unit(rng), _centre(rng, 0.4)
    closing, w = rng.uniform(1.2, 2.4), rng.uniform(0.35, 0.65)
    d_end = sides.mean() + rng.uniform(0.1, 0.5)                    # centre distance at the end
    left = 1 - np.arange(T) / max(T - 1, 1)                         # 1 → 0
    p1 = m - u * (d_end / 2 + w * closing * left)[:, None]
    p2 = m + u * (d_end / 2 + (1 - w) * closing * left)[:, None]
    return np.stack([p1, p2], 1)


def _accelerate(T, rng, sides):
    u = _unit(rng)
    v = np.linspace(rng.uniform(0, 0.05), rng.uniform(0.3, MAX_STEP), max(T - 1, 1))
    v *= min(1.0, 3.6 / v.sum())                                    # keep long clips in the frame
    s = np.concatenate([[0.0], np.cumsum(v)])[:T]
    path = _centre(rng, 0.3) + (s - s[-1] / 2)[:, None] * u
    return np.stack([path, _still_elsewhere(path, sides.max(), rng)], 1)


def _meet(T, rng, sides, bounce: bool):
    u, m = _unit(rng), _centre(rng, 0.3)
    lane = np.array([-u[1], u[0]]) * (sides.mean() + rng.uniform(0, 0.15)) / 2
    tc = rng.uniform(0.4, 0.6) * (T - 1)
    vmax = min(0.4, 2.2 / max(tc, T - 1 - tc, 1))
    v1, v2 = rng.uniform(0.5 * vmax, vmax, size=2)
    dt = np.arange(T) - tc
    s1, s2 = (-v1 * np.abs(dt), v2 * np.abs(dt)) if bounce else (v1 * dt, -v2 * dt)
    return np.stack([m - lane + s1[:, None] * u, m + lane + s2[:, None] * u], 1)


def _oscillation(n, period, rng):
    """[n] offsets along an axis: amplitude 0.2–0.3 cell, random phase."""
    return rng.uniform(0.2, 0.3) * np.sin(2 * np.pi * (np.arange(n) / period + rng.random()))


def _shake(T, rng, sides, period):
    path = _centre(rng, 0.8) + _oscillation(T, period, rng)[:, None] * _unit(rng)
    return np.stack([path, _still_elsewhere(path, sides.max(), rng)], 1)


def _event(kind: str, rng) -> np.ndarray:
    """Offsets [n+1,2] of one event, starting at 0 (n = its frames)."""
    n = EVENT_FRAMES[kind]
    if kind == "shake":
        osc = _oscillation(n + 1, 4, rng)
        return (osc - osc[0])[:, None] * _unit(rng)
    speed = rng.uniform(0.35, MAX_STEP) if kind == "jump" else rng.uniform(0.08, 0.15)
    return (np.arange(n + 1) * speed)[:, None] * _unit(rng)


def _two_events(T, rng, sides, kinds: str):
    first, second = kinds.split(",")
    for _ in range(20):                                              # redraw directions until in frame
        e1, e2 = _event(first, rng), _event(second, rng)
        t1 = int(rng.integers(1, 4))
        t2 = T - int(rng.integers(2, 5)) - (len(e2) - 1)             # second event ends 2–4 frames early
        off = np.zeros((T, 2))
        off[t1:t1 + len(e1)] = e1
        off[t1 + len(e1):] = e1[-1]
        off[t2:t2 + len(e2)] += e2
        off[t2 + len(e2):] += e2[-1]
        path = _centre(rng, 0.3) + off - (off.min(0) + off.max(0)) / 2
        if path.min() > 1.0 and path.max() < CELLS - 1.0:
            break
    return np.stack([path, _still_elsewhere(path, sides.max(), rng)], 1)


def trajectory(motion: str, T: int, rng, sides: np.ndarray) -> np.ndarray:
    """Centres [T,2 objects,2] in cells for the named motion."""
    if motion == "approach":
        return _approach(T, rng, sides)
    if motion == "accelerate":
        return _accelerate(T, rng, sides)
    if motion in ("pass", "bounce"):
        return _meet(T, rng, sides, motion == "bounce")
    if motion in ("shake_slow", "shake_fast"):
        return _shake(T, rng, sides, 8 if motion == "shake_slow" else 4)
    if "," in motion:
        return _two_events(T, rng, sides, motion)
    raise ValueError(f"unknown kinematic motion {motion!r}")


def _distractor(T, rng) -> np.ndarray:
    """Centres [T,2]: constant velocity, reflected inside [0.5, CELLS-0.5]."""
    lo, hi = 0.5, CELLS - 0.5
    raw = rng.uniform(lo, hi, size=2) + np.arange(T)[:, None] * rng.uniform(0.05, MAX_STEP) * _unit(rng)
    span = hi - lo
    folded = np.mod(raw - lo, 2 * span)
    return lo + np.where(folded > span, 2 * span - folded, folded)


# ---------------------------------------------------------------------------------------------
# drawing (float32 RGB in [0,1]; sub-pixel placement by bilinear weights)


@lru_cache(maxsize=None)
def _photo_u8(name: str) -> np.ndarray:
    return np.clip(np.rint(photo(name) * 255), 0, 255).astype(np.uint8)


def _shrink(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 RGB crop → float32 [h,w,3] in [0,1], antialiased (PIL's filtered resampling: fast on
    big photo crops, where a Gaussian pre-filter dominated the generation time)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.BILINEAR), np.float32) / 255.0


def _background(S: int, rng) -> np.ndarray:
    """A low-contrast, tinted crop of a background photo [S,S,3]."""
    bg = _tint(_shrink(_random_crop(_photo_u8(BACKGROUNDS[rng.integers(len(BACKGROUNDS))]), rng, 0.4, 1.0), S, S), rng, 0.4)
    mean = bg.mean(axis=(0, 1), keepdims=True)
    return mean + rng.uniform(0.35, 0.6) * (bg - mean)


def _patch(rng, side_px: float, disc: bool) -> np.ndarray:
    """Premultiplied RGBA patch [h,w,4] with a thin light frame (or a disc)."""
    aspect = 1.0 if disc else rng.uniform(0.8, 1.25)
    src = _photo_u8(OBJECT_PHOTOS[rng.integers(len(OBJECT_PHOTOS))])
    h = max(3, int(round(side_px / np.sqrt(aspect))))
    w = max(3, int(round(side_px * np.sqrt(aspect))))
    img = _tint(_shrink(_random_crop(src, rng, 0.3, 0.9, w / h), h, w), rng, 0.4)
    if disc:
        yy, xx = np.mgrid[:h, :w]
        r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) / (min(h, w) / 2)
        alpha = np.clip((1.0 - r) * min(h, w) / 2, 0, 1)[..., None].astype(np.float32)  # 1-px soft edge
    else:
        b = max(1, round(min(h, w) / 16))
        img[:b], img[-b:], img[:, :b], img[:, -b:] = (rng.uniform(0.8, 1.0),) * 4
        alpha = np.ones((h, w, 1), np.float32)
    return np.concatenate([img * alpha, alpha], axis=2)


def _bilinear_shift(a: np.ndarray, fy: float, fx: float) -> np.ndarray:
    """a [h,w,c] moved by (fy, fx) ∈ [0,1)² → [h+1,w+1,c] (zeros enter)."""
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)))
    return ((1 - fy) * (1 - fx) * p[1:, 1:] + (1 - fy) * fx * p[1:, :-1]
            + fy * (1 - fx) * p[:-1, 1:] + fy * fx * p[:-1, :-1])


def _paste(frame: np.ndarray, patch: np.ndarray, cx: float, cy: float):
    """Composite a premultiplied RGBA patch centred at pixel (cx, cy), clipped to the frame."""
    h, w = patch.shape[:2]
    x0, y0 = cx - w / 2, cy - h / 2
    ix, iy = int(np.floor(x0)), int(np.floor(y0))
    q = _bilinear_shift(patch, y0 - iy, x0 - ix)
    S_h, S_w = frame.shape[:2]
    ya, xa = max(iy, 0), max(ix, 0)
    yb, xb = min(iy + q.shape[0], S_h), min(ix + q.shape[1], S_w)
    if ya >= yb or xa >= xb:
        return
    q = q[ya - iy:yb - iy, xa - ix:xb - ix]
    region = frame[ya:yb, xa:xb]
    region *= 1 - q[..., 3:]
    region += q[..., :3]


def _camera(T: int, rng) -> np.ndarray:
    """Camera offset [T,2] in cells: slow pan (≤ 0.03 cell/frame, ≤ 0.5 cell per clip) + jitter (±0.02)."""
    pan = _unit(rng) * rng.uniform(0, min(0.03, 0.5 / max(T - 1, 1)))
    return np.arange(T)[:, None] * pan + rng.uniform(-0.02, 0.02, size=(T, 2))


def plan_clip(template: str, seed, size: int = 128, frames: int | None = None) -> dict:
    """Everything random about one clip: patches, centres [T,2,2] and distractor [T,2] in scene
    cells, camera [T,2] cells, background, drawing order, flicker, noise seed."""
    spec = _spec(template)
    if spec is None:
        raise ValueError(f"unknown kinematic class {template!r}")
    task, motion, reverse, _ = spec
    T = frames or DEFAULT_FRAMES[task]
    if T < MIN_FRAMES[task]:
        raise ValueError(f"task {task} needs at least {MIN_FRAMES[task]} frames (got {T})")
    rng = np.random.default_rng(seed)
    cell = size / CELLS
    sides = rng.uniform(1.15, 1.45, size=2)                          # cells
    plan = dict(size=size, frames=T, reverse=reverse,
                objects=[_patch(rng, s * cell, disc=False) for s in sides],
                distractor=_patch(rng, rng.uniform(0.6, 0.9) * cell, disc=True),
                centres=trajectory(motion, T, rng, sides), distractor_centres=_distractor(T, rng),
                camera=_camera(T, rng))
    margin = int(np.ceil(np.abs(plan["camera"]).max() * cell)) + 2
    plan.update(margin=margin, background=_background(size + 2 * margin, rng),
                front=rng.permutation(2), gain=rng.normal(1.0, 0.03, size=T), noise_seed=int(rng.integers(2**31)))
    return plan


def screen_steps(plan: dict) -> np.ndarray:
    """Largest on-screen step (cells) of each moving thing between consecutive frames:
    [object 1, object 2, distractor], camera motion included."""
    pos = np.concatenate([plan["centres"], plan["distractor_centres"][:, None]], 1) - plan["camera"][:, None]
    return np.linalg.norm(np.diff(pos, axis=0), axis=-1).max(0)


def draw(plan: dict) -> np.ndarray:
    S, T = plan["size"], plan["frames"]
    cell, margin, bg = S / CELLS, plan["margin"], plan["background"]
    cam = plan["camera"] * cell                                      # px
    noise_rng = np.random.default_rng(plan["noise_seed"])
    out = np.empty((T, S, S, 3), np.uint8)
    for t in range(T):
        oy, ox = margin + cam[t, 1], margin + cam[t, 0]
        iy, ix = int(np.floor(oy)), int(np.floor(ox))
        frame = _bilinear_shift(bg[iy:iy + S + 1, ix:ix + S + 1], 1 - (oy - iy), 1 - (ox - ix))[1:S + 1, 1:S + 1]
        frame = np.ascontiguousarray(frame)
        _paste(frame, plan["distractor"], *(plan["distractor_centres"][t] * cell - cam[t]))
        for k in plan["front"]:
            _paste(frame, plan["objects"][k], *(plan["centres"][t, k] * cell - cam[t]))
        frame = frame * plan["gain"][t] + noise_rng.normal(0, 0.012, size=frame.shape)
        out[t] = np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)
    return out[::-1].copy() if plan["reverse"] else out


def render_clip(template: str, seed, size: int = 128, frames: int | None = None) -> np.ndarray:
    """uint8 RGB [frames,size,size,3] of one clip of a kinematic class.

    For every (A, B) of reversal_pairs: render_clip(B, s) == render_clip(A, s)[::-1] exactly.
    """
    return draw(plan_clip(template, seed, size, frames))

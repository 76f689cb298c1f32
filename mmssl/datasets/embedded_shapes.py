# Copyright (c) mmssl contributors. All rights reserved.
"""Drawing of the embedded shape scenes: shapes, textures, backgrounds.

Everything here is a pure function of a :class:`numpy.random.Generator`, so a
scene is reproduced exactly from its seed. Scenes are drawn at twice the
output size and averaged over 2x2 blocks, which anti-aliases the edges; the
instance map is reduced the same way (each output pixel goes to the object
that covers most of its 2x2 block, the topmost one on ties).

The file writers and the on-disk layout live in :mod:`.embedded`.
"""
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    'SHAPE_HIERARCHY', 'SHAPE_CLASSES', 'SHAPE_PARENT', 'SHAPE_PALETTE',
    'TEXTURES', 'BACKGROUNDS', 'shape_polygon', 'render_scene',
    'sample_cls_scene', 'sample_det_scene'
]

#: Coarse group -> fine shape classes. The order of the groups and of the
#: classes inside them fixes the label of every class.
SHAPE_HIERARCHY: Dict[str, Tuple[str, ...]] = {
    'round': ('circle', 'ellipse', 'semicircle'),
    'polygon': ('triangle', 'square', 'pentagon', 'hexagon'),
    'spiky': ('star', 'cross'),
}
#: The fine shape classes; label ``i`` is ``SHAPE_CLASSES[i]``.
SHAPE_CLASSES: Tuple[str, ...] = tuple(name
                                       for group in SHAPE_HIERARCHY.values()
                                       for name in group)
#: Fine class -> coarse group.
SHAPE_PARENT: Dict[str, str] = {
    name: group
    for group, names in SHAPE_HIERARCHY.items()
    for name in names
}
#: One display colour per shape class (for visualisation only).
SHAPE_PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (255, 140, 0),
                                             (218, 165, 32), (0, 128, 0),
                                             (0, 139, 139), (30, 144, 255),
                                             (0, 0, 205), (148, 0, 211),
                                             (199, 21, 133)]
#: Object fill patterns and background kinds.
TEXTURES = ('solid', 'stripes', 'checker', 'noise', 'gradient')
BACKGROUNDS = ('solid', 'gradient', 'noise')
_TEXTURE_P = (0.3, 0.2, 0.15, 0.2, 0.15)  # how often each of TEXTURES
_MIN_CONTRAST = 90.0  # RGB distance between neighbouring colours

_CIRCLE_POINTS = 48
_POLYGON_SIDES = {'triangle': 3, 'square': 4, 'pentagon': 5, 'hexagon': 6}


def _regular(num: int, radius: float, phase: float) -> np.ndarray:
    ang = phase + 2 * math.pi * np.arange(num) / num
    return np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius


def shape_polygon(name: str, rng: np.random.Generator, center: Sequence[float],
                  radius: float, angle: float) -> np.ndarray:
    """Outline of one shape as a polygon.

    Args:
        name (str): one of :data:`SHAPE_CLASSES`.
        rng (np.random.Generator): source of the shape's own jitter (ellipse
            aspect, star depth, cross width, polygon vertex jitter).
        center (Sequence[float]): ``(x, y)`` centre in canvas pixels.
        radius (float): circumradius in canvas pixels.
        angle (float): rotation in radians.

    Returns:
        np.ndarray: ``(K, 2)`` vertices ``(x, y)`` in canvas pixels.
    """
    if name == 'circle':
        pts = _regular(_CIRCLE_POINTS, radius, 0.0)
    elif name == 'ellipse':
        pts = _regular(_CIRCLE_POINTS, radius, 0.0)
        pts[:, 1] *= rng.uniform(0.4, 0.62)
    elif name == 'semicircle':
        ang = np.linspace(0.0, math.pi, _CIRCLE_POINTS // 2 + 1)
        pts = np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius
        pts[:, 1] -= radius / 2  # centre the half disc on its box
    elif name == 'star':
        outer = _regular(5, radius, -math.pi / 2)
        inner = _regular(5, radius * rng.uniform(0.38, 0.5),
                         -math.pi / 2 + math.pi / 5)
        pts = np.stack([outer, inner], axis=1).reshape(-1, 2)
    elif name == 'cross':
        w = radius * rng.uniform(0.22, 0.34)
        # arm length; its tips lie at most 0.6 % outside the circumradius
        r = radius / math.sqrt(1 + (w / radius)**2)
        pts = np.array([(w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w),
                        (-w, -w), (-w, -r), (w, -r), (w, -w), (r, -w), (r, w)])
    elif name in _POLYGON_SIDES:
        num = _POLYGON_SIDES[name]
        phase = -math.pi / 2 + rng.uniform(-0.07, 0.07, num)
        ang = phase + 2 * math.pi * np.arange(num) / num
        rad = radius * rng.uniform(0.93, 1.07, num)
        pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)
        if name == 'triangle':
            # a quarter radius towards the apex: the layout data set version
            # 1.0 was made with (its box is not centred on ``center``; kept
            # so that the recorded results stay comparable)
            pts[:, 1] -= radius / 4
    else:
        raise ValueError(
            f'unknown shape {name!r}, expected one of {SHAPE_CLASSES}')
    cos, sin = math.cos(angle), math.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    return pts @ rot.T + np.asarray(center, dtype=np.float64)


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    canvas = Image.new('L', (size, size), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points.tolist()], fill=1)
    return np.asarray(canvas, dtype=bool)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour ``(3,)`` in [0, 255] from HSV."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.25, 1), rng.uniform(0.3, 1)
    i = int(h * 6)  # h < 1
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255


def _coords(shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``x (1, W)`` and ``y (H, 1)`` (broadcastable)."""
    h, w = shape
    return (np.arange(w, dtype=np.float32)[None, :],
            np.arange(h, dtype=np.float32)[:, None])


def _ramp(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """A linear ramp ``(H, W, 1)`` in [0, 1] along a random direction."""
    xx, yy = _coords(shape)
    theta = rng.uniform(0, 2 * math.pi)
    proj = xx * math.cos(theta) + yy * math.sin(theta)
    proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    return proj[..., None]


def _texture(rng: np.random.Generator, shape: Tuple[int, int],
             colour: np.ndarray, kind: str, scale: int) -> np.ndarray:
    """Fill pattern ``(H, W, 3)`` float32 of one object or background.

    ``scale`` is the canvas side; pattern periods are relative to it.
    """
    c1 = colour.astype(np.float32)
    # second colour: a darker or a lighter shade of the first
    if rng.uniform() < 0.5:
        c2 = c1 * rng.uniform(0.55, 0.8)
    else:
        c2 = c1 + (255 - c1) * rng.uniform(0.2, 0.45)
    if kind == 'solid':
        return np.broadcast_to(c1, (*shape, 3)).astype(np.float32)
    if kind == 'noise':
        std = rng.uniform(10, 30)
        noise = rng.standard_normal((*shape, 1), dtype=np.float32)
        return c1 + noise * std
    if kind == 'gradient':
        return c1 + (c2 - c1) * _ramp(rng, shape)
    xx, yy = _coords(shape)
    period = rng.uniform(5, 12) * scale / 128
    if kind == 'stripes':
        theta = rng.uniform(0, math.pi)
        proj = xx * math.cos(theta) + yy * math.sin(theta)
        sel = (proj // period) % 2 == 0
    elif kind == 'checker':
        sel = ((xx // period) + (yy // period)) % 2 == 0
    else:
        raise ValueError(f'unknown texture {kind!r}, expected {TEXTURES}')
    return np.where(sel[..., None], c1, c2).astype(np.float32)


def _background(rng: np.random.Generator, size: int,
                colour: np.ndarray) -> np.ndarray:
    """Background ``(S, S, 3)`` float32: solid, gradient or noise texture."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    if kind in ('solid', 'gradient'):
        return _texture(rng, (size, size), colour, kind, size)
    # smooth noise: a coarse random grid upsampled bilinearly
    cells = int(rng.integers(3, 9))
    grid = rng.uniform(-1, 1, (cells, cells, 3)) * rng.uniform(20, 50)
    grid = np.clip(grid + colour, 0, 255).astype(np.uint8)
    smooth = Image.fromarray(grid).resize((size, size), Image.BILINEAR)
    return np.asarray(smooth, dtype=np.float32)


def _contrasting_colour(rng: np.random.Generator,
                        avoid: Sequence[np.ndarray]) -> np.ndarray:
    """A colour at least a fixed RGB distance away from all of ``avoid``."""
    colour = _random_colour(rng)
    for _ in range(20):
        if all(np.linalg.norm(colour - a) > _MIN_CONTRAST for a in avoid):
            break
        colour = _random_colour(rng)
    return colour


def render_scene(rng: np.random.Generator, objects: List[dict],
                 img_size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a background and the objects, in order, over each other.

    Args:
        rng (np.random.Generator): source of colours and textures.
        objects (list[dict]): objects in drawing order (later ones on top),
            each with ``label`` (int), ``center`` (x, y) and ``radius`` in
            output pixels, and ``angle`` in radians.
        img_size (int): output side ``S`` in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: the image ``(S, S, 3)``
        uint8 RGB; the instance map ``(S, S)`` int64, 0 = background and
        ``k + 1`` = the visible part of ``objects[k]``; and ``(K, )`` float64
        the area of each object in output pixels as if nothing covered it.
    """
    big = 2 * img_size
    bg_colour = _random_colour(rng)
    canvas = _background(rng, big, bg_colour)
    inst = np.zeros((big, big), dtype=np.int64)
    used = [bg_colour]
    full_area = np.zeros(len(objects))
    for k, obj in enumerate(objects):
        points = shape_polygon(SHAPE_CLASSES[obj['label']], rng,
                               [2 * c for c in obj['center']],
                               2 * obj['radius'], obj['angle'])
        x0, y0 = np.clip(np.floor(points.min(0)).astype(int), 0, big)
        x1, y1 = np.clip(np.ceil(points.max(0)).astype(int) + 1, 0, big)
        mask = _polygon_mask(points, big)[y0:y1, x0:x1]
        full_area[k] = np.count_nonzero(mask) / 4
        colour = _contrasting_colour(rng, used)
        used.append(colour)
        kind = TEXTURES[rng.choice(len(TEXTURES), p=_TEXTURE_P)]
        tex = _texture(rng, mask.shape, colour, kind, big)
        canvas[y0:y1, x0:x1][mask] = tex[mask]
        inst[y0:y1, x0:x1][mask] = k + 1
    # 2x2 block mean: anti-aliased output
    img = (canvas[0::2, 0::2] + canvas[0::2, 1::2] + canvas[1::2, 0::2] +
           canvas[1::2, 1::2]) / 4
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img, _block_vote(inst), full_area


def _block_vote(inst: np.ndarray) -> np.ndarray:
    """Reduce an id map ``(2H, 2W)`` to ``(H, W)``: the most frequent id of
    each 2x2 block, the highest (topmost) id on ties."""
    cand = [
        inst[0::2, 0::2], inst[0::2, 1::2], inst[1::2, 0::2], inst[1::2, 1::2]
    ]
    base = int(inst.max()) + 1
    keys = np.stack([
        sum((c == d).astype(np.int64) for d in cand) * base + c for c in cand
    ])
    return keys.max(axis=0) % base


def _place(rng: np.random.Generator, radius: float, img_size: int,
           others: List[dict], min_sep: float) -> Tuple[float, float]:
    """A centre keeping the shape inside the image and, if it can within a
    few tries, at least ``min_sep * (r1 + r2)`` away from the others."""
    lo, hi = radius, img_size - radius

    def apart(center: Tuple[float, float]) -> bool:
        return all(
            math.dist(center, o['center']) > min_sep * (radius + o['radius'])
            for o in others)

    center = (rng.uniform(lo, hi), rng.uniform(lo, hi))
    for _ in range(10):
        if apart(center):
            break
        center = (rng.uniform(lo, hi), rng.uniform(lo, hi))
    return center


def _random_object(rng: np.random.Generator, label: int, radius: float,
                   img_size: int) -> dict:
    lo, hi = radius, img_size - radius
    return dict(
        label=int(label),
        center=(rng.uniform(lo, hi), rng.uniform(lo, hi)),
        radius=radius,
        angle=rng.uniform(0, 2 * math.pi))


def sample_cls_scene(rng: np.random.Generator, label: int,
                     img_size: int) -> List[dict]:
    """Objects of a classification scene.

    One large main object of class ``label`` (diameter 56-84% of the image)
    and 0 to 2 small distractors of other classes, each drawn behind or in
    front of it.

    Args:
        rng (np.random.Generator): source of the layout.
        label (int): class of the main object.
        img_size (int): image side in pixels.

    Returns:
        list[dict]: objects in drawing order, as :func:`render_scene` takes.
    """
    main = _random_object(rng, label,
                          rng.uniform(0.28, 0.42) * img_size, img_size)
    behind, front = [], []
    others = [c for c in range(len(SHAPE_CLASSES)) if c != label]
    for _ in range(rng.choice(3, p=[0.3, 0.4, 0.3])):
        radius = rng.uniform(0.08, 0.14) * img_size
        obj = _random_object(rng, rng.choice(others), radius, img_size)
        (behind if rng.uniform() < 0.5 else front).append(obj)
    return behind + [main] + front


def sample_det_scene(rng: np.random.Generator, labels: Sequence[int],
                     img_size: int) -> List[dict]:
    """Objects of a detection scene.

    1 to 3 objects of comparable sizes (diameter 28-48% of the image),
    classes drawn uniformly from ``labels``, placed mostly apart.

    Args:
        rng (np.random.Generator): source of the layout.
        labels (Sequence[int]): the classes that may appear.
        img_size (int): image side in pixels.

    Returns:
        list[dict]: objects in drawing order, as :func:`render_scene` takes.
    """
    objects: List[dict] = []
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.14, 0.24) * img_size
        objects.append(
            dict(
                label=int(labels[rng.integers(len(labels))]),
                center=_place(rng, r, img_size, objects, 0.6),
                radius=r,
                angle=rng.uniform(0, 2 * math.pi)))
    return objects

"""Street-scene layers for the synthetic datasets: drawing primitives, stuff layout, painting.

This module holds what a scene is made of and how it becomes an image: the drawing primitives
(:class:`Layer`, :class:`Canvas` and ``_Builder``, which collects an image's layers), the stuff
background (sky, buildings, walls, vegetation, sidewalk, terrain, road, fences, trees, poles with
traffic signs and lights, 'static' void blobs, the 'ego vehicle' void band), the painting of layers
into pixels and :class:`Scene` with its exact ground truth.  Thing shapes, their placement and
:func:`~.synthetic_things.build_layers` are in :mod:`.synthetic_things`; the public API, dataset
writers and command line in :mod:`.synthetic`.

A scene is a list of :class:`Layer` painted back to front: the stuff background, then thing instances
and crowd groups sorted by depth (far first), each with a cast shadow, then the 'ego vehicle' void
band.  A layer is a window ``parts`` (uint8: 0 = not covered, k = part k of the shape, e.g. body /
window / wheel) with a Cityscapes label name, a segment id and a colour per part.  Sizes scale with
the image; all randomness comes from the generator passed in.
"""
import cv2
import numpy as np
from cityscapesscripts.helpers.labels import id2label, name2label

from .categories import OFFSET

__all__ = ['Layer', 'Canvas', 'Scene', 'TEXTURES']

# colour options per part (part 1, part 2, ...), RGB
COLOURS = {
    'sky': [[(135, 180, 225), (160, 195, 230), (115, 155, 205)]],
    'building': [[(125, 105, 92), (150, 140, 125), (100, 100, 108), (165, 125, 100), (135, 132, 128)],
                 [(45, 55, 72), (60, 70, 80)]],
    'wall': [[(178, 168, 140), (150, 150, 145)], [(128, 120, 104)]],
    'fence': [[(150, 122, 92), (120, 130, 125)], [(80, 72, 66)]],
    'vegetation': [[(62, 112, 42), (80, 120, 50), (50, 95, 45)], [(92, 70, 50)]],
    'terrain': [[(142, 162, 92), (160, 150, 100)]],
    'road': [[(92, 88, 98), (105, 100, 105)], [(215, 215, 205)], [(62, 60, 66)]],
    'sidewalk': [[(178, 160, 165), (165, 160, 150)], [(135, 122, 126)]],
    'pole': [[(115, 115, 120), (95, 100, 95)]],
    'traffic sign': [[(235, 235, 230), (225, 205, 40), (40, 80, 170)], [(200, 30, 30), (40, 40, 40)]],
    'traffic light': [[(35, 35, 38)], [(230, 40, 30), (240, 200, 40), (40, 220, 90)]],
    'static': [[(120, 60, 30), (70, 70, 70), (30, 90, 60), (170, 170, 170)]],
    'ego vehicle': [[(38, 38, 44)], [(92, 92, 100)]],
    'person': [[(150, 38, 40), (40, 50, 110), (48, 48, 52), (175, 155, 60), (70, 105, 70),
                (200, 200, 200)], [(42, 42, 58), (70, 60, 50)], [(222, 180, 150), (160, 110, 80)],
               [(40, 30, 25), (120, 90, 50)]],
    'rider': [[(230, 105, 30), (215, 40, 45), (240, 220, 50), (40, 140, 205)],
              [(40, 40, 48)], [(222, 180, 150), (160, 110, 80)], [(245, 245, 245), (30, 30, 30)]],
    'car': [[(45, 62, 140), (160, 165, 175), (35, 35, 40), (130, 32, 32), (205, 205, 210)],
            [(40, 52, 68)], [(20, 20, 22)], [(235, 225, 185), (190, 35, 25)]],
    'truck': [[(205, 205, 198), (60, 92, 62), (185, 120, 40)], [(40, 52, 68)], [(22, 22, 24)],
              [(150, 150, 150), (90, 90, 110)]],
    'bus': [[(200, 52, 42), (230, 200, 52), (62, 122, 180)], [(38, 48, 62)], [(22, 22, 24)],
            [(60, 60, 64)]],
    'train': [[(185, 185, 190), (200, 60, 40)], [(38, 48, 62)], [(30, 30, 32)], [(40, 80, 170)]],
    'motorcycle': [[(170, 30, 30), (200, 200, 205), (40, 70, 160), (230, 140, 30)], [(18, 18, 20)],
                   [(120, 120, 125)]],
    'bicycle': [[(150, 22, 32), (32, 32, 36), (42, 82, 160), (190, 190, 195)], [(22, 22, 22)]],
}
# texture amplitudes: (coarse noise, mid noise, fine noise, vertical gradient)
TEXTURES = {'sky': (0.03, 0.0, 0.01, 0.25), 'building': (0.08, 0.04, 0.05, 0.0),
            'wall': (0.05, 0.03, 0.06, 0.0), 'fence': (0.05, 0.0, 0.05, 0.1),
            'vegetation': (0.2, 0.22, 0.12, 0.0), 'terrain': (0.12, 0.08, 0.1, 0.0),
            'road': (0.06, 0.02, 0.07, 0.0), 'sidewalk': (0.05, 0.02, 0.05, 0.0),
            'pole': (0.02, 0.0, 0.04, 0.0), 'traffic sign': (0.02, 0.0, 0.03, 0.0),
            'traffic light': (0.02, 0.0, 0.03, 0.0), 'static': (0.06, 0.05, 0.06, 0.1),
            'ego vehicle': (0.03, 0.0, 0.03, 0.3)}
TEXTURES.update({n: (0.04, 0.02, 0.04, 0.18) for n in ('person', 'rider', 'car', 'truck', 'bus',
                                                        'train', 'motorcycle', 'bicycle')})


class Layer(object):
    """One painted shape: ``parts`` window at ``(y0, x0)``; ``shade`` layers only darken."""
    __slots__ = ('y0', 'x0', 'parts', 'name', 'seg_id', 'palette', 'outline', 'shade')

    def __init__(self, y0, x0, parts, name, seg_id, palette=None, outline=False, shade=None):
        self.y0, self.x0, self.parts, self.name, self.seg_id = y0, x0, parts, name, seg_id
        self.palette, self.outline, self.shade = palette, outline, shade

    @property
    def window(self):
        h, w = self.parts.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


class Canvas(object):
    """A uint8 part map covering image box ``[x0, x1] x [y0, y1]``; draws in image coordinates."""

    def __init__(self, x0, y0, x1, y1):
        self.x0, self.y0 = int(np.floor(x0)) - 1, int(np.floor(y0)) - 1
        h, w = int(np.ceil(y1)) + 2 - self.y0, int(np.ceil(x1)) + 2 - self.x0
        self.parts = np.zeros((h, w), np.uint8)

    def _pt(self, x, y):
        return int(round(x - self.x0)), int(round(y - self.y0))

    def poly(self, pts, part):
        cv2.fillPoly(self.parts, [np.array([self._pt(x, y) for x, y in pts], np.int32)], int(part))

    def rect(self, x0, y0, x1, y1, part):
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], part)

    def ellipse(self, cx, cy, rx, ry, part, thick=-1):
        axes = (max(1, int(round(rx))), max(1, int(round(ry))))
        thick = -1 if thick < 0 else max(1, int(round(thick)))
        cv2.ellipse(self.parts, self._pt(cx, cy), axes, 0, 0, 360, int(part), thick)

    def line(self, p, q, thick, part):
        cv2.line(self.parts, self._pt(*p), self._pt(*q), int(part), max(1, int(round(thick))))


class _Builder(object):
    """Collects layers for one image of size ``H x W`` using generator ``rng``."""

    def __init__(self, rng, height, width):
        self.rng, self.H, self.W = rng, height, width
        self.layers = []

    def palette(self, name, jitter=10.):
        """``(P+1, 3)`` float32 colour per part (row 0 unused), varied per layer."""
        rows = [np.zeros(3)]
        for opts in COLOURS[name]:
            opts = np.asarray(opts, np.float64).reshape(-1, 3)  # (K, 3) options
            rows.append(opts[self.rng.integers(len(opts))] + self.rng.normal(0., jitter, 3))
        pal = np.stack(rows) * self.rng.uniform(0.88, 1.12)  # (P+1, 3)
        return np.clip(pal, 0, 255).astype(np.float32)

    def clip(self, cv):
        """``(y0, x0, parts)`` of a canvas inside the image, or None if it covers nothing there."""
        y0, x0 = max(cv.y0, 0), max(cv.x0, 0)
        y1, x1 = min(cv.y0 + cv.parts.shape[0], self.H), min(cv.x0 + cv.parts.shape[1], self.W)
        if y1 <= y0 or x1 <= x0:
            return None
        parts = cv.parts[y0 - cv.y0:y1 - cv.y0, x0 - cv.x0:x1 - cv.x0]
        return (y0, x0, parts) if parts.any() else None

    def add(self, cv, name, seg_id=None, outline=False, shade=None):
        """Clip a canvas (or take a full-image part map) and append it as a layer."""
        clipped = (0, 0, cv) if isinstance(cv, np.ndarray) else self.clip(cv)
        if clipped is None:
            return None
        if shade is None:
            seg_id = name2label[name].id if seg_id is None else seg_id
            layer = Layer(*clipped, name=name, seg_id=seg_id, palette=self.palette(name),
                          outline=outline)
        else:
            layer = Layer(*clipped, name=name, seg_id=0, shade=shade)
        self.layers.append(layer)
        return layer


def _background(b):
    """Stuff layers and void blobs; returns the geometry (horizon, vanishing point, road edges)."""
    rng, H, W = b.rng, b.H, b.W
    yh = int(H * rng.uniform(0.36, 0.5))
    rel, vx = float(H - yh), W * rng.uniform(0.3, 0.7)
    a_l, a_r = (W * rng.uniform(-0.3, 0.3) - vx) / rel, (W * rng.uniform(0.7, 1.3) - vx) / rel
    geo = dict(H=H, W=W, yh=yh, rel=rel, vx=vx, a_l=a_l, a_r=a_r)
    rows = np.arange(H, dtype=np.float32)[:, None]  # (H, 1)
    dy = np.maximum(rows - yh, 0.5)  # (H, 1) height below the horizon
    a = (np.arange(W, dtype=np.float32)[None, :] - vx) / dy  # (H, W) ground direction
    ground = np.broadcast_to(rows >= yh, (H, W))
    b.add(np.ones((H, W), np.uint8), 'sky')
    x = 0.
    while x < W:  # building blocks (sometimes a wall, sometimes a gap) with window grids
        bw = W * rng.uniform(0.07, 0.25)
        kind = str(rng.choice(['building', 'wall', 'gap'], p=[0.8, 0.1, 0.1]))
        top = (yh - H * rng.uniform(0.05, 0.14) if kind == 'wall'
               else H * rng.uniform(0.03, max(0.04, yh / float(H) - 0.1)))
        if kind != 'gap':
            cv = Canvas(x, top, x + bw, yh)
            r = np.arange(cv.parts.shape[0])[:, None] + cv.y0 - top  # (h, 1)
            c = np.arange(cv.parts.shape[1])[None, :] + cv.x0 - x  # (1, w)
            inside = (r >= 0) & (r <= yh - top) & (c >= 0) & (c <= bw)
            if kind == 'building':
                py = H * rng.uniform(0.045, 0.08)
                px = bw / max(2, round(bw / (H * rng.uniform(0.05, 0.09))))
                pattern = ((r % py) > 0.35 * py) & ((c % px) > 0.3 * px) & ((c % px) < 0.8 * px) \
                    & (r > 0.03 * H) & (r < yh - top - 0.06 * H)
            else:
                pattern = (r % max(3., 0.02 * H)) < 1
            cv.parts[:] = inside * (1 + pattern)
            b.add(cv, kind)
        x += bw
    for _ in range(rng.integers(0, 2) * rng.integers(1, 4)):  # hedges in front of the buildings
        hx, hw, hh = W * rng.uniform(0, 1), W * rng.uniform(0.1, 0.3), H * rng.uniform(0.03, 0.08)
        cv = Canvas(hx, yh - 2 * hh, hx + hw, yh)
        cv.rect(hx, yh - hh, hx + hw, yh, 1)
        for bx in np.arange(hx, hx + hw, hh):
            cv.ellipse(bx, yh - hh, hh * 0.7, hh * rng.uniform(0.4, 0.9), 1)
        b.add(cv, 'vegetation')
    tiles = (((1.5 * rel / dy) % 1) < 0.06) | (((a * 2.5) % 1) < 0.04)  # (H, W) perspective tiles
    b.add((ground * (1 + (tiles & (dy > 0.15 * rel)))).astype(np.uint8), 'sidewalk')
    if rng.random() < 0.4:
        side = rng.choice([-1, 1])
        edge = (a_l - rng.uniform(0.3, 0.9)) if side < 0 else (a_r + rng.uniform(0.3, 0.9))
        b.add((ground & (side * (a - edge) > 0)).astype(np.uint8), 'terrain')
    road = ground & (a >= a_l) & (a <= a_r)
    lanes = np.zeros((H, W), bool)
    n_lanes = rng.integers(2, 4)
    for i in range(1, n_lanes):
        lanes |= np.abs(a - (a_l + (a_r - a_l) * i / n_lanes)) < 0.015
    lanes &= (((2. * rel / dy) % 1) < 0.5) & (dy > 0.06 * rel)
    curb = (a - a_l < 0.04) | (a_r - a < 0.04)
    b.add((road * np.where(curb, 3, np.where(lanes, 2, 1))).astype(np.uint8), 'road')
    if rng.random() < 0.35:  # fence: slats over a rail
        fx, fw, fh = W * rng.uniform(0, 0.8), W * rng.uniform(0.15, 0.45), H * rng.uniform(0.04, 0.1)
        cv = Canvas(fx, yh - fh, fx + fw, yh + 0.01 * H)
        c = np.arange(cv.parts.shape[1])[None, :]  # (1, w)
        r = np.arange(cv.parts.shape[0])[:, None]  # (h, 1)
        period = max(3., 0.012 * W)
        cv.parts[:] = np.where(((c % period) < 0.55 * period) | (r < 0.15 * fh) | (r > 0.8 * fh), 1, 2)
        b.add(cv, 'fence')
    for _ in range(rng.integers(0, 4)):  # trees on the sidewalk
        yb = yh + rel * rng.uniform(0.02, 0.35)
        x = _sidewalk_x(rng, geo, yb)
        th = (yb - yh) * rng.uniform(2.5, 4.) + 0.12 * H
        cv = Canvas(x - th * 0.6, yb - 1.2 * th, x + th * 0.6, yb)
        cv.rect(x - max(1., 0.03 * th), yb - 0.5 * th, x + max(1., 0.03 * th), yb, 2)
        for _ in range(rng.integers(4, 8)):
            cv.ellipse(x + rng.normal(0, 0.15 * th), yb - th * rng.uniform(0.55, 0.85),
                       th * rng.uniform(0.15, 0.28), th * rng.uniform(0.12, 0.22), 1)
        b.add(cv, 'vegetation')
    for _ in range(rng.integers(1, 5)):  # poles, some carrying a traffic sign or light
        yb = yh + rel * rng.uniform(0.05, 0.5)
        d, x = yb - yh, _sidewalk_x(rng, geo, yb)
        top, pw = yb - d * rng.uniform(2.5, 4.) - 0.1 * H, max(1., 0.02 * d)
        cv = Canvas(x - pw, top, x + pw, yb)
        cv.rect(x - pw, top, x + pw, yb, 1)
        b.add(cv, 'pole')
        kind, s = str(rng.choice(['traffic sign', 'traffic light', 'none'])), max(3., 0.12 * d + 2)
        if kind == 'traffic sign':
            cv = Canvas(x - s, top - s, x + s, top + s)
            shape = rng.integers(3)
            for part, k in ((2, 1.), (1, 0.75)):
                if shape == 0:
                    cv.ellipse(x, top, s * k, s * k, part)
                elif shape == 1:
                    cv.poly([(x - s * k, top - 0.8 * s * k), (x + s * k, top - 0.8 * s * k),
                             (x, top + s * k)], part)
                else:
                    cv.rect(x - s * k, top - s * k, x + s * k, top + s * k, part)
            b.add(cv, kind)
        elif kind == 'traffic light':
            cv = Canvas(x - s / 2, top - 0.2 * s, x + s / 2, top + 2.6 * s)
            cv.rect(x - s / 2, top - 0.2 * s, x + s / 2, top + 2.4 * s, 1)
            cv.ellipse(x, top + s * (0.4 + 0.8 * rng.integers(3)), 0.3 * s, 0.3 * s, 2)
            b.add(cv, kind)
    for _ in range(rng.integers(0, 3)):  # 'static' void objects (bins, boxes) on the sidewalk
        yb = yh + rel * rng.uniform(0.05, 0.5)
        x, s = _sidewalk_x(rng, geo, yb), (yb - yh) * rng.uniform(0.12, 0.3) + 2
        cv = Canvas(x - s, yb - 1.5 * s, x + s, yb)
        cv.rect(x - s * rng.uniform(0.4, 1.), yb - s * rng.uniform(0.8, 1.5),
                x + s * rng.uniform(0.4, 1.), yb, 1)
        b.add(cv, 'static')
    return geo


def _sidewalk_x(rng, geo, yb, on_road=False):
    """A horizontal position on the road or on a visible sidewalk at image row ``yb``."""
    d, W = yb - geo['yh'], geo['W']
    lo, hi = geo['vx'] + geo['a_l'] * d, geo['vx'] + geo['a_r'] * d
    if on_road:
        return rng.uniform(lo, hi)
    sides = [s for s in ((max(lo - 0.8 * d, -0.02 * W), lo), (hi, min(hi + 0.8 * d, 1.02 * W)))
             if s[1] - s[0] > 0.05 * d]
    if not sides:
        return rng.uniform(0, W)
    return rng.uniform(*sides[rng.integers(len(sides))])


def _ego(b):
    """The ego-vehicle bonnet at the bottom (void), or None: an (H, W) bool mask and its layer."""
    if b.rng.random() > 0.7:
        return np.zeros((b.H, b.W), bool), None
    eh, cx = b.H * b.rng.uniform(0.04, 0.1), b.W * b.rng.uniform(0.4, 0.6)
    cv = Canvas(0, b.H - eh, b.W - 1, b.H - 1)
    cv.ellipse(cx, b.H - eh + 1.6 * eh, 0.75 * b.W, 1.6 * eh, 1)
    cv.ellipse(cx, b.H - eh + 1.6 * eh, 0.7 * b.W, 1.45 * eh, 2, thick=max(1., 0.1 * eh))
    layer = b.add(cv, 'ego vehicle')
    mask = np.zeros((b.H, b.W), bool)
    if layer is not None:
        b.layers.pop()  # painted last, over the things
        mask[layer.window] = layer.parts > 0
    return mask, layer


def _bbox(mask):
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def _segment(seg_id, label_id, mask):
    label = id2label[int(label_id)]
    return {'id': int(seg_id), 'category_id': int(label.id), 'isthing': int(label.hasInstances),
            'iscrowd': int(label.hasInstances and seg_id < OFFSET), 'area': int(mask.sum()),
            'bbox': _bbox(mask), 'mask': mask}


class Scene(object):
    """One generated image and its ground truth.

    Attributes
    ----------
    image : np.ndarray
        ``(H, W, 3)`` uint8 RGB.
    label_ids : np.ndarray
        ``(H, W)`` uint8 Cityscapes label ids (0..33).
    instance_ids : np.ndarray
        ``(H, W)`` uint16 as in ``*_instanceIds.png``: ``label_id * 1000 + k`` for thing instances,
        ``label_id`` for stuff, crowd and void pixels.
    """

    def __init__(self, image, label_ids, instance_ids, layers):
        self.image, self.label_ids, self.instance_ids = image, label_ids, instance_ids
        self.layers = layers

    def segments(self):
        """The evaluated segments as drawn (void left out), by a reverse z-buffer over the layers,
        independently of :attr:`instance_ids`.

        Returns
        -------
        list of dict
            Sorted by id: ``id`` (Cityscapes panoptic id), ``category_id`` (label id), ``isthing``,
            ``iscrowd``, ``area``, ``bbox`` ``[x, y, w, h]`` (w = last column - x + 1), ``mask``
            ``(H, W)`` bool.
        """
        covered = np.zeros(self.label_ids.shape, bool)
        masks, label_of = {}, {}
        for layer in reversed(self.layers):
            if layer.shade is not None:
                continue
            drawn = layer.parts > 0
            visible = drawn & ~covered[layer.window]
            covered[layer.window] |= drawn
            if name2label[layer.name].ignoreInEval or not visible.any():
                continue
            if layer.seg_id not in masks:
                masks[layer.seg_id] = np.zeros(self.label_ids.shape, bool)
                label_of[layer.seg_id] = name2label[layer.name].id
            masks[layer.seg_id][layer.window] |= visible
        return [_segment(s, label_of[s], masks[s]) for s in sorted(masks)]


def _noise(rng, H, W, cell):
    """Smooth noise ``(H, W)`` float32 with features of about ``cell`` pixels."""
    small = rng.standard_normal((H // cell + 2, W // cell + 2)).astype(np.float32)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def _paint(layers, rng, H, W):
    """Paint layers back to front with textures, rims, lighting and sensor noise."""
    coarse, mid = _noise(rng, H, W, max(H // 10, 2)), _noise(rng, H, W, max(H // 80, 2))
    fine = rng.standard_normal((H, W), dtype=np.float32)
    img = np.zeros((H, W, 3), np.float32)
    label_ids, instance_ids = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint16)
    rim, kernel = max(1, int(round(H / 256.))), np.ones((3, 3), np.uint8)
    for layer in layers:
        win, m = layer.window, layer.parts > 0
        if layer.shade is not None:
            img[win][m] *= layer.shade
            continue
        ca, ma, fa, vg = TEXTURES[layer.name]
        tex = 1. + ca * coarse[win][m] + ma * mid[win][m] + fa * fine[win][m]  # (n,)
        if vg:
            tex += vg * (0.5 - np.nonzero(m)[0].astype(np.float32) / m.shape[0])  # lit from above
        img[win][m] = layer.palette[layer.parts[m]] * tex[:, None]
        label_ids[win][m] = name2label[layer.name].id
        instance_ids[win][m] = layer.seg_id
        if layer.outline:  # darker rim so that touching instances of one class can be told apart
            inner = cv2.erode(m.view(np.uint8), kernel, iterations=rim).astype(bool)
            img[win][m & ~inner] *= 0.45
    gy = np.linspace(-0.5, 0.5, H, dtype=np.float32)[:, None]  # (H, 1)
    gx = np.linspace(-0.5, 0.5, W, dtype=np.float32)[None, :]  # (1, W)
    light = rng.uniform(0.75, 1.2) * (1. + rng.uniform(-0.3, 0.3) * gx + rng.uniform(-0.3, 0.3) * gy)
    img *= light[..., None] * (1. + rng.normal(0., 0.04, 3)).astype(np.float32)  # (H, W, 3)
    img += rng.uniform(2., 5.) * rng.standard_normal((H, W, 1), dtype=np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label_ids, instance_ids

"""Street-scene drawing for the synthetic datasets (painting and writers: :mod:`.synthetic`).

A scene is a list of :class:`Layer` painted back to front: the stuff background (sky, buildings,
walls, vegetation, sidewalk, terrain, road, fences, trees, poles with traffic signs and lights,
'static' void blobs), then thing instances and crowd groups sorted by depth (far first), each with a
cast shadow, then the 'ego vehicle' void band.  A layer is a window ``parts`` (uint8: 0 = not covered,
k = part k of the shape, e.g. body / window / wheel) with a Cityscapes label name, a segment id and a
colour per part.  Sizes scale with the image; all randomness comes from the generator passed in.
"""
import cv2
import numpy as np
from cityscapesscripts.helpers.labels import name2label

__all__ = ['Layer', 'Canvas', 'TEXTURES', 'build_layers']

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
# thing class: (frequency, height / (depth * ground height), width / height, largest depth, where)
THINGS = {'car': (.42, .55, (1.2, 2.3), 1.0, 'road'), 'person': (.30, 1.0, (.6, .6), .85, 'side'),
          'rider': (.08, .45, (1.9, 1.9), .9, 'edge'), 'bicycle': (.06, .45, (1.9, 1.9), .9, 'side'),
          'truck': (.04, .85, (1.1, 2.0), .9, 'road'), 'bus': (.04, .95, (1.3, 2.8), .9, 'road'),
          'motorcycle': (.03, .45, (2.0, 2.0), .9, 'edge'), 'train': (.015, .9, (2.5, 4.5), .8, 'road')}


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


def _chamfered(cv, x0, y0, x1, y1, c, part=1):
    """A box with cut corners at the top."""
    cv.poly([(x0, y0 + c), (x0 + c, y0), (x1 - c, y0), (x1, y0 + c), (x1, y1), (x0, y1)], part)


def _car(cv, x, yb, w, h, rng):
    top, belt, sill, c, i = yb - h, yb - 0.58 * h, yb - 0.14 * h, 0.07 * w, rng.uniform(0.1, 0.22) * w
    _chamfered(cv, x, belt, x + w, sill, c)
    cv.poly([(x + i, top), (x + w - i, top), (x + w - 0.4 * i, belt + 1), (x + 0.4 * i, belt + 1)], 1)
    m = 0.08 * h
    cv.poly([(x + i + m, top + m), (x + w - i - m, top + m), (x + w - 0.4 * i - m, belt - 0.3 * m),
             (x + 0.4 * i + m, belt - 0.3 * m)], 2)
    for cx in (x + 0.2 * w, x + 0.8 * w):
        cv.ellipse(cx, yb - 0.16 * h, min(0.11 * w, 0.2 * h), 0.16 * h, 3)
    for lx in (x + 0.04 * w, x + 0.84 * w):
        cv.rect(lx, belt + 0.12 * h, lx + 0.12 * w, belt + 0.2 * h, 4)


def _box_vehicle(cv, x, yb, w, h, rng, name):
    """Trucks (cab + cargo box), buses and trains (long body with a window band)."""
    if name == 'truck':
        front = rng.random() < 0.5
        cab0 = x + 0.7 * w if front else x
        box0 = x if front else x + 0.32 * w
        cv.rect(box0, yb - h, box0 + 0.68 * w, yb - 0.2 * h, 4)
        _chamfered(cv, cab0, yb - 0.75 * h, cab0 + 0.3 * w, yb - 0.15 * h, 0.06 * w)
        cv.rect(cab0 + 0.04 * w, yb - 0.68 * h, cab0 + 0.26 * w, yb - 0.5 * h, 2)
        cv.rect(x, yb - 0.22 * h, x + w, yb - 0.13 * h, 3)
        wheels = (cab0 + 0.15 * w, box0 + 0.2 * w, box0 + 0.5 * w)
    else:
        c, low = 0.04 * w, yb - (0.1 if name == 'bus' else 0.06) * h
        _chamfered(cv, x, yb - h, x + w, low, c)
        cv.rect(x + 0.03 * w, yb - 0.86 * h, x + 0.97 * w, yb - 0.52 * h, 2)
        step = h * (0.5 if name == 'bus' else 0.7)
        for sx in np.arange(x + 0.03 * w + step, x + 0.97 * w, step):
            cv.rect(sx, yb - 0.86 * h, sx + max(1., 0.05 * h), yb - 0.52 * h, 1)
        cv.rect(x, yb - 0.35 * h, x + w, yb - 0.27 * h, 4)
        wheels = x + w * (np.array([0.15, 0.85]) if name == 'bus' else np.linspace(0.08, 0.92, 4))
    for cx in wheels:
        cv.ellipse(cx, yb - 0.12 * h, 0.12 * h, 0.12 * h, 3)


def _person(cv, cx, yb, h, rng):
    hr, d = 0.09 * h, rng.choice([-1, 1])
    cv.ellipse(cx, yb - h + hr, 0.85 * hr, hr, 4)
    cv.ellipse(cx + d * 0.12 * hr, yb - h + 1.15 * hr, 0.75 * hr, 0.85 * hr, 3)
    sh, hip, s = yb - h + 2 * hr, yb - 0.47 * h, rng.uniform(-0.1, 0.1) * h
    cv.poly([(cx - 0.15 * h, sh), (cx + 0.15 * h, sh), (cx + 0.11 * h, hip), (cx - 0.11 * h, hip)], 1)
    for k in (-1, 1):
        hand = (cx + k * (0.16 * h - s), yb - 0.5 * h)
        cv.line((cx + k * 0.13 * h, sh + 0.03 * h), hand, 0.07 * h, 1)
        foot = (cx + k * rng.uniform(0.02, 0.13) * h, yb - 0.03 * h)
        cv.line((cx + k * 0.05 * h, hip), foot, 0.09 * h, 2)


def _cycle_geometry(cx, yb, h, d, motor):
    """Wheel centres, radius, seat, handlebar and pedal of a bicycle / motorcycle facing ``d``."""
    r = h / (2.0 if motor else 2.2)
    return dict(r=r, rear=(cx - d * 1.05 * r, yb - r), front=(cx + d * 1.05 * r, yb - r), d=d,
                pedal=(cx - d * 0.1 * r, yb - (0.8 if motor else 1.) * r),
                seat=(cx - d * 0.45 * r, yb - 2. * r),
                head=(cx + d * 0.75 * r, yb - 1.8 * r), handle=(cx + d * 0.8 * r, yb - 2.2 * r))


def _cycle(cv, g, motor):
    r, t = g['r'], max(1., 0.14 * g['r'])
    for p, q in (('rear', 'pedal'), ('rear', 'seat'), ('seat', 'pedal'), ('pedal', 'head'),
                 ('seat', 'head'), ('head', 'front'), ('head', 'handle')):
        cv.line(g[p], g[q], t, 1)
    if motor:
        cv.ellipse((g['rear'][0] + g['front'][0]) / 2, g['rear'][1] - 0.45 * r, 1.2 * r, 0.6 * r, 1)
        cv.ellipse(g['pedal'][0], g['pedal'][1], 0.35 * r, 0.3 * r, 3)
    for c in (g['rear'], g['front']):
        cv.ellipse(c[0], c[1], r, r, 2, thick=(0.4 if motor else 0.3) * r)


def _rider(cv, g):
    q, d = 2.2 * g['r'], g['d']
    hip = (g['seat'][0], g['seat'][1] - 0.05 * q)
    sh = (hip[0] + d * 0.2 * q, hip[1] - 0.5 * q)
    head = (sh[0] + d * 0.08 * q, sh[1] - 0.17 * q)
    knee = (hip[0] + d * 0.25 * q, hip[1] + 0.05 * q)
    cv.line(hip, knee, 0.11 * q, 2)
    cv.line(knee, g['pedal'], 0.11 * q, 2)
    cv.line(hip, sh, 0.22 * q, 1)
    cv.line(sh, g['handle'], 0.08 * q, 1)
    cv.ellipse(head[0], head[1], 0.12 * q, 0.13 * q, 3)
    cv.ellipse(head[0], head[1] - 0.05 * q, 0.13 * q, 0.09 * q, 4)


def _plan(rng, geo, name, depth, x, crowd=False):
    """Plans for one thing (two for a rider on a cycle) at relative depth ``depth`` and centre ``x``."""
    _, k, aspect, _, _ = THINGS[name]
    yb = geo['yh'] + depth * geo['rel']
    h = k * depth * geo['rel']
    w = h * rng.uniform(*aspect)
    key = (name, yb, x)
    if name in ('rider', 'bicycle', 'motorcycle'):
        cycle = 'bicycle' if name == 'bicycle' else 'motorcycle' if name == 'motorcycle' else \
            str(rng.choice(['bicycle', 'motorcycle'], p=[0.8, 0.2]))
        g = _cycle_geometry(x, yb, h, rng.choice([-1, 1]), cycle == 'motorcycle')
        plans = [dict(name=cycle, yb=yb, order=0, key=key, bbox=(x - w / 2, yb - h, x + w / 2, yb),
                      draw=lambda cv: _cycle(cv, g, cycle == 'motorcycle'))]
        if name == 'rider' or (name == 'motorcycle' and rng.random() < 0.5):
            plans.append(dict(name='rider', yb=yb, order=1, after=key, key=key + ('rider',),
                              bbox=(x - w / 2, yb - 2.6 * h, x + w / 2, yb),
                              draw=lambda cv: _rider(cv, g)))
        return plans
    if name == 'person':
        draw = lambda cv: _person(cv, x, yb, h, rng)  # noqa: E731
    elif name == 'car':
        draw = lambda cv: _car(cv, x - w / 2, yb, w, h, rng)  # noqa: E731
    else:
        draw = lambda cv: _box_vehicle(cv, x - w / 2, yb, w, h, rng, name)  # noqa: E731
    return [dict(name=name, yb=yb, order=0, key=key, draw=draw,
                 bbox=(x - w / 2, yb - h, x + w / 2, yb))]


def _plan_things(rng, geo):
    """Instances (3-11 wanted, some touching pairs) and maybe one crowd group, unsorted."""
    names = list(THINGS)
    freq = np.array([THINGS[n][0] for n in names])
    min_h = max(3., 0.047 * geo['H'])
    plans, wanted = [], rng.integers(3, 12)
    while len(plans) < wanted:
        name = names[rng.choice(len(names), p=freq / freq.sum())]
        _, k, _, far, where = THINGS[name]
        depth = rng.uniform(min(far, max(0.06, min_h / (k * geo['rel']))), far)
        yb = geo['yh'] + depth * geo['rel']
        on_road = where == 'road' or (where != 'side' and rng.random() < 0.5) or rng.random() < 0.15
        x = _sidewalk_x(rng, geo, yb, on_road)
        new = _plan(rng, geo, name, depth, x)
        if name in ('car', 'person', 'bicycle') and rng.random() < 0.35:  # a touching neighbour
            step = new[0]['bbox'][2] - new[0]['bbox'][0]
            gap = (0.45, 0.6) if name == 'person' else (0.8, 0.97)  # fraction of the box width
            step *= rng.choice([-1, 1]) * rng.uniform(*gap)
            new += _plan(rng, geo, name, depth * rng.uniform(0.98, 1.02), x + step)
        plans += new
    if rng.random() < 0.4:  # a crowd: several far, overlapping members forming one unlabelled group
        name = ['person', 'car', 'bicycle'][rng.choice(3, p=[0.65, 0.25, 0.1])]
        k = THINGS[name][1]
        depth = rng.uniform(max(0.06, 0.8 * min_h / (k * geo['rel'])), 0.3)
        x, members = _sidewalk_x(rng, geo, geo['yh'] + depth * geo['rel'], name == 'car'), []
        for i in range(rng.integers(3, 8)):
            members += _plan(rng, geo, name, depth * rng.uniform(0.95, 1.05), x)
            x += (members[-1]['bbox'][2] - members[-1]['bbox'][0]) * rng.uniform(0.3, 0.6)
        boxes = np.array([m['bbox'] for m in members])  # (M, 4)
        members = [m for m in members if m['name'] == members[0]['name']]  # no riders
        plans.append(dict(name=members[0]['name'], yb=boxes[:, 3].max(), order=0, key=('crowd',),
                          crowd=True, bbox=tuple(boxes[:, :2].min(0)) + tuple(boxes[:, 2:].max(0)),
                          draw=lambda cv: [m['draw'](cv) for m in members]))
    return plans


def _overlap(a, b):
    """Slices of two ``(y0, x0, (h, w) array)`` windows over their intersection, or None."""
    (ay, ax, am), (by, bx, bm) = a, b
    y0, x0 = max(ay, by), max(ax, bx)
    y1, x1 = min(ay + am.shape[0], by + bm.shape[0]), min(ax + am.shape[1], bx + bm.shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    return ((slice(y0 - ay, y1 - ay), slice(x0 - ax, x1 - ax)),
            (slice(y0 - by, y1 - by), slice(x0 - bx, x1 - bx)))


def _place_things(b, plans, ego, min_area, min_visible=0.25):
    """Draw planned things back to front; a placement is dropped if it or any earlier instance (or
    crowd group) would keep less than ``min_visible`` of its area or fewer than ``min_area`` pixels."""
    counters, placed = {}, set()
    accepted = []  # [y0, x0, visible (h, w) bool, visible area, drawn area]
    for plan in sorted(plans, key=lambda p: (p['yb'], p['order'])):
        if plan.get('after') is not None and plan['after'] not in placed:
            continue
        cv = Canvas(*plan['bbox'])
        plan['draw'](cv)
        clipped = b.clip(cv)
        if clipped is None:
            continue
        y0, x0, parts = clipped
        new = (parts > 0) & ~ego[y0:y0 + parts.shape[0], x0:x0 + parts.shape[1]]
        area, losses = int(new.sum()), []
        if area < min_area:
            continue
        for rec in accepted:
            ov = _overlap((rec[0], rec[1], rec[2]), (y0, x0, new))
            lost = 0 if ov is None else int((rec[2][ov[0]] & new[ov[1]]).sum())
            if lost:
                losses.append((rec, ov, lost))
        if any(rec[3] - lost < max(min_area, min_visible * rec[4]) for rec, _, lost in losses):
            continue
        for rec, ov, lost in losses:
            rec[2][ov[0]] &= ~new[ov[1]]
            rec[3] -= lost
        accepted.append([y0, x0, new, area, area])
        placed.add(plan['key'])
        label = name2label[plan['name']].id
        seg_id = label if plan.get('crowd') else label * 1000 + counters.get(label, 0)
        counters[label] = counters.get(label, 0) + (0 if plan.get('crowd') else 1)
        x_lo, x_hi, yb = plan['bbox'][0], plan['bbox'][2], plan['yb']
        shadow = Canvas(x_lo - 1, yb - 0.05 * b.H, x_hi + 1, yb + 0.05 * b.H)
        shadow.ellipse((x_lo + x_hi) / 2., yb, (x_hi - x_lo) * 0.5, max(1., 0.015 * b.H), 1)
        b.add(shadow, None, shade=0.6)
        b.add(cv, plan['name'], seg_id=seg_id, outline=True)


def build_layers(rng, height, width):
    """All layers of one scene, in painting order.

    Parameters
    ----------
    rng : np.random.Generator
        The image's own generator (see :func:`gluonpan.data.synthetic.scene_rng`).
    height, width : int
        Image size (>= 32 each).

    Returns
    -------
    list of Layer
    """
    if height < 32 or width < 32:
        raise ValueError('synthetic scenes need height and width >= 32, got {}x{}'
                         .format(height, width))
    b = _Builder(rng, int(height), int(width))
    geo = _background(b)
    ego, ego_layer = _ego(b)
    min_area = max(8., 40. * b.H * b.W / (256. * 512.))
    _place_things(b, _plan_things(rng, geo), ego, min_area)
    if ego_layer is not None:
        b.layers.append(ego_layer)
    return b.layers

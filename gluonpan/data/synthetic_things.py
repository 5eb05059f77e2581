"""Thing instances of the synthetic street scenes, and the assembly of a scene's layers.

This module holds the thing shapes (car; truck, bus and train as box vehicles; person; bicycle and
motorcycle, each maybe with a rider), drawn part by part into a :class:`~.synthetic_scenes.Canvas`;
their planning (3-11 instances, some in touching pairs, maybe one crowd group); their placement back
to front, which drops a thing that would hide too much of itself or of an earlier one, with a cast
shadow each; and :func:`build_layers`, which stacks the stuff background of :mod:`.synthetic_scenes`,
the things and the ego-vehicle band.  Painting, ground truth and writers: :mod:`.synthetic_scenes`
and :mod:`.synthetic`.
"""
import numpy as np
from cityscapesscripts.helpers.labels import name2label

from .categories import OFFSET
from .synthetic_scenes import Canvas, _background, _Builder, _ego, _sidewalk_x

__all__ = ['THINGS', 'build_layers']

# thing class: (frequency, height / (depth * ground height), width / height, largest depth, where)
THINGS = {'car': (.42, .55, (1.2, 2.3), 1.0, 'road'), 'person': (.30, 1.0, (.6, .6), .85, 'side'),
          'rider': (.08, .45, (1.9, 1.9), .9, 'edge'), 'bicycle': (.06, .45, (1.9, 1.9), .9, 'side'),
          'truck': (.04, .85, (1.1, 2.0), .9, 'road'), 'bus': (.04, .95, (1.3, 2.8), .9, 'road'),
          'motorcycle': (.03, .45, (2.0, 2.0), .9, 'edge'), 'train': (.015, .9, (2.5, 4.5), .8, 'road')}


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
        seg_id = label if plan.get('crowd') else label * OFFSET + counters.get(label, 0)
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

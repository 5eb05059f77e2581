"""PanopticFCN post-processing on hand-made network outputs (no network involved).

Expectations are worked out by hand, or by ``Reference`` below: a direct transliteration of the
authors' tensor code (``panoptic_seg.py`` / ``head.py`` / ``utils.py``) into plain numpy and loops,
working from the raw per-level maps the network's outputs are derived from.
"""
import mxnet as mx
import numpy as np
import pytest

from gluonpan.data.categories import PanopticCategories
from gluonpan.model_zoo.panoptic_fcn.inference import (
    DEFAULT_INFERENCE_OPTIONS, fcn_to_separated, fuse_stuff_kernels, fuse_thing_kernels,
    inference_options, mask_quality, panoptic_from_outputs, predict_panoptic, rescore_things,
    select_level_peaks, stuff_candidates, stuff_semantic, thing_candidates, thing_masks,
    upsample_to_image)
from gluonpan.utils.resize import resize_bilinear

# things: person=24 (class 0), car=26 (class 1); FCN stuff classes: 0 "things", 1 road=7,
# 2 building=11; our separated classes: road 0, building 1, things 2
CATEGORIES = PanopticCategories([
    dict(id=7, name='road', isthing=0), dict(id=11, name='building', isthing=0),
    dict(id=24, name='person', isthing=1), dict(id=26, name='car', isthing=1)])
T, S = 2, 3


def level_shapes(Hp, Wp):
    shapes = [(Hp // 8, Wp // 8)]
    for _ in range(4):
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p)).astype(np.float32)


def sig(x):
    x = np.asarray(x, dtype=np.float32)
    return np.float32(1) / (np.float32(1) + np.exp(-x))


# ----------------------------------------------------------------------------------------------
# an independent transliteration of the reference
# ----------------------------------------------------------------------------------------------

class Reference(object):
    """The reference's inference, tensor op by tensor op, on one image's raw maps."""

    def __init__(self, center_thresh=0.05, stuff_thresh=0.05, center_top_num=100,
                 mask_thresh=0.4, similarity_thresh=0.9, class_specific=True,
                 inst_thresh=0.2, overlap_thresh=0.5, stuff_limit=4096):
        self.__dict__.update(locals())

    def topk_score(self, scores, K):
        """utils.topk_score on (C, n): top K per class, then top K of the C*K."""
        per_index = np.argsort(-scores, axis=1, kind='stable')[:, :K]
        per_score = np.take_along_axis(scores, per_index, axis=1)
        index = np.argsort(-per_score.reshape(-1), kind='stable')[:K]
        return per_score.reshape(-1)[index], per_index.reshape(-1)[index], index // K

    def things_of_level(self, centers, kernels):
        n = centers.shape[1]
        top_num = min(n, self.center_top_num // 2)
        score, index, cls = self.topk_score(centers, top_num)
        keep = score > np.float32(self.center_thresh)
        return kernels[index[keep]], score[keep], cls[keep]

    def stuff_of_level(self, regions, kernel_map, weight, bias):
        """regions (S, n) probabilities, kernel_map (n, C) of the kernel head."""
        n = regions.shape[1]
        cate = regions.argmax(axis=0)
        classes, counts = np.unique(cate, return_counts=True)
        onehot = (cate[None, :] == np.arange(S)[:, None]).astype(np.float32)  # (S, n)
        score = (regions * onehot).sum(axis=1)[classes] / counts
        keep = score > np.float32(self.stuff_thresh)
        pooled = [(onehot[c][:, None] * kernel_map).sum(axis=0) / n for c in classes[keep]]
        kernels = [weight.dot(p) + bias for p in pooled]
        return kernels, score[keep], classes[keep]

    def thing_fusion(self, w, cate, score):
        N = len(w)
        sim = np.zeros((N, N), np.float32)
        for i in range(N):
            for j in range(N):
                a = w[i] / max(np.linalg.norm(w[i]), 1e-8)
                b = w[j] / max(np.linalg.norm(w[j]), 1e-8)
                sim[i, j] = a.dot(b) if j >= i else 0  # triu
        label = sim >= np.float32(self.similarity_thresh)
        if self.class_specific:
            label &= cate[:, None] == cate[None, :]
        cum = np.zeros((N, N), bool)
        for j in range(N):
            for i in range(N):
                cum[i, j] = label[:i + 1, j].sum() < 2
        rows = [i for i in range(N) if cum[i, i]]
        fused = [np.mean([w[j] for j in range(N) if label[i, j] and cum[i, j]], axis=0)
                 for i in rows]
        return np.array(fused, np.float32).reshape(-1, w.shape[1]), cate[rows], score[rows]

    def stuff_fusion(self, w, cate, score):
        unique = np.unique(cate)
        return (np.array([w[cate == c].mean(axis=0) for c in unique]),
                unique, np.array([score[cate == c].mean() for c in unique]))

    def upsample(self, probs, img_shape, ori_shape):
        h, w = probs.shape[-2:]
        x = resize_bilinear(probs, 4 * h, 4 * w)[..., :img_shape[0], :img_shape[1]]
        return resize_bilinear(x, *ori_shape)

    def process_inst(self, classes, scores, pred_inst, img_shape, ori_shape):
        pred_inst = sig(pred_inst)
        pred_mask = pred_inst > np.float32(self.mask_thresh)
        sum_masks = pred_mask.sum((1, 2)).astype(np.float32) + np.float32(1e-6)
        scores = scores * ((pred_inst * pred_mask).sum((1, 2)) / sum_masks)
        keep = np.argsort(-scores, kind='stable')
        pred_inst, scores, classes = pred_inst[keep], scores[keep], classes[keep]
        keep = scores >= np.float32(0.05)
        if keep.sum() == 0:
            return None, None, None
        pred_inst, scores, classes = pred_inst[keep], scores[keep], classes[keep]
        keep = np.argsort(-scores, kind='stable')[:self.center_top_num]
        pred_inst, scores, classes = pred_inst[keep], scores[keep], classes[keep]
        pred_inst = self.upsample(pred_inst, img_shape, ori_shape)
        return pred_inst > np.float32(self.mask_thresh), classes, scores

    def combine(self, pred_thing, thing_cate, thing_score, stuff_results):
        panoptic_seg = np.zeros(stuff_results.shape, np.int32)
        current, info = 0, []
        if thing_cate is not None:
            keep = thing_score >= np.float32(self.inst_thresh)
            for mask, cate, score in zip(pred_thing[keep], thing_cate[keep], thing_score[keep]):
                area = mask.sum()
                inter = (mask & (panoptic_seg > 0)).sum()
                if area == 0 or inter * 1.0 / area > self.overlap_thresh:
                    continue
                if inter > 0:
                    mask = mask & (panoptic_seg == 0)
                current += 1
                panoptic_seg[mask] = current
                info.append(dict(id=current, isthing=True, score=float(score),
                                 category_id=int(cate)))
        for label in np.unique(stuff_results):
            if label == 0:
                continue
            mask = (stuff_results == label) & (panoptic_seg == 0)
            if mask.sum() < self.stuff_limit:
                continue
            current += 1
            panoptic_seg[mask] = current
            info.append(dict(id=current, isthing=False, category_id=int(label)))
        return panoptic_seg, info

    def __call__(self, raw, img_shape, ori_shape):
        """raw: dict of per-image raw maps (see make_case)."""
        shapes, offsets = raw['shapes'], np.cumsum([0] + [h * w for h, w in raw['shapes']])
        th_w, th_c, th_s, st_w, st_c, st_s = [], [], [], [], [], []
        for l in range(len(shapes)):
            sl = slice(offsets[l], offsets[l + 1])
            w, s, c = self.things_of_level(raw['centers'][:, sl], raw['thing_kernels'][sl])
            th_w += list(w)
            th_s += list(s)
            th_c += list(c)
            w, s, c = self.stuff_of_level(raw['regions'][:, sl], raw['kernel_map'][sl],
                                          raw['stuff_weight'], raw['stuff_bias'])
            st_w += list(w)
            st_s += list(s)
            st_c += list(c)
        encoded = raw['encoded']
        E = encoded.shape[0]
        flat = encoded.reshape(E, -1)
        pred_mask = classes = scores = None
        if th_w:
            th_w, th_s, th_c = np.array(th_w), np.array(th_s, np.float32), np.array(th_c)
            keep = np.argsort(-th_s, kind='stable')
            th_w, th_c, th_s = self.thing_fusion(th_w[keep], th_c[keep], th_s[keep])
            pred_inst = th_w.dot(flat).reshape(-1, *encoded.shape[1:])
            pred_mask, classes, scores = self.process_inst(th_c, th_s, pred_inst, img_shape,
                                                           ori_shape)
        sem = np.zeros((S,) + tuple(ori_shape), np.float32)
        if st_w:
            st_w, st_c, st_s = self.stuff_fusion(np.array(st_w, np.float32), np.array(st_c),
                                                 np.array(st_s, np.float32))
            pred_stuff = sig(st_w.dot(flat)).reshape(-1, *encoded.shape[1:])
            sem[st_c] += self.upsample(pred_stuff, img_shape, ori_shape)
        return self.combine(pred_mask, classes, scores, sem.argmax(axis=0))


def reference_to_ours(panoptic_seg, info):
    """The reference's sequential segment ids -> our category-based ids and segments."""
    pan = np.zeros(panoptic_seg.shape, np.int32)
    counts, segments = {}, []
    for seg in info:
        if seg['isthing']:
            cid = CATEGORIES.thing_ids[seg['category_id']]
            sid = cid * 1000 + counts.get(cid, 0)
            counts[cid] = counts.get(cid, 0) + 1
        else:
            cid = sid = CATEGORIES.stuff_ids[seg['category_id'] - 1]
        pan[panoptic_seg == seg['id']] = sid
        segments.append((sid, cid, int(seg['isthing']), int((panoptic_seg == seg['id']).sum())))
    return pan, segments


def make_case(seed, Hp=64, Wp=64, E=8, C=6, num_peaks=30):
    """Raw per-level maps and the network outputs derived from them as the net's contract says."""
    rng = np.random.RandomState(seed)
    shapes = level_shapes(Hp, Wp)
    P = sum(h * w for h, w in shapes)
    centers = np.zeros((T, P), np.float32)
    centers.reshape(-1)[rng.choice(T * P, num_peaks, replace=False)] = \
        rng.uniform(0.02, 0.95, num_peaks)
    thing_kernels = (rng.randn(P, E) * 2).astype(np.float32)
    # near-duplicates (same class) of the strongest peaks' kernels, so that fusion happens
    peaks = np.argsort(-centers.reshape(-1))
    for a, b in zip(peaks[0:6:2], peaks[1:6:2]):
        if a % P == b % P:
            continue
        score = centers.reshape(-1)[b]
        centers[:, b % P] = 0
        centers[a // P, b % P] = score
        thing_kernels[b % P] = thing_kernels[a % P] * 1.1 + rng.randn(E) * 0.05
    regions = rng.uniform(0, 1, (S, P)).astype(np.float32)
    regions[0] *= 0.7  # fewer "things" argmaxes
    kernel_map = rng.randn(P, C).astype(np.float32)
    stuff_weight = rng.randn(E, C).astype(np.float32)
    stuff_bias = rng.randn(E).astype(np.float32) * 0.5
    encoded = (rng.randn(E, Hp // 4, Wp // 4) * 1.5).astype(np.float32)
    encoded[-1] = 1  # a constant channel: the thing kernels' bias makes smaller masks
    thing_kernels[:, -1] = -3
    L = len(shapes)
    stuff_kernels = np.full((L * S, E), np.nan, np.float32)  # meaningless rows stay NaN
    stuff_stats = np.zeros((L * S, 2), np.float32)
    offsets = np.cumsum([0] + [h * w for h, w in shapes])
    for l in range(L):
        reg = regions[:, offsets[l]:offsets[l + 1]]
        cate = reg.argmax(axis=0)
        for c in range(S):
            where = cate == c
            stuff_stats[l * S + c] = where.sum(), reg[c][where].sum()
            if where.any():
                pooled = kernel_map[offsets[l]:offsets[l + 1]][where].sum(axis=0) / where.size
                stuff_kernels[l * S + c] = stuff_weight.dot(pooled) + stuff_bias
    raw = dict(shapes=shapes, centers=centers, thing_kernels=thing_kernels, regions=regions,
               kernel_map=kernel_map, stuff_weight=stuff_weight, stuff_bias=stuff_bias,
               encoded=encoded)
    outputs = [centers[None], regions[None], thing_kernels[None], stuff_kernels[None],
               stuff_stats[None], encoded[None]]
    return raw, outputs


# ----------------------------------------------------------------------------------------------
# thing candidates
# ----------------------------------------------------------------------------------------------

def test_level_peaks_top_k_is_min_of_positions_and_half_top_num():
    # a (2, 3) level: 6 positions, 2 classes, every score above the threshold
    centers = np.array([[0.9, 0.1, 0.3, 0.8, 0.2, 0.6],
                        [0.7, 0.4, 0.5, 0.15, 0.35, 0.25]], np.float32)
    kernels = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    k, s, c = thing_candidates(centers, kernels, [(2, 3)], center_thresh=0.05,
                               center_top_num=100)
    # K = min(6, 50) = 6 of the 12 (class, position) pairs
    np.testing.assert_allclose(s, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    assert c.tolist() == [0, 0, 1, 0, 1, 1]
    np.testing.assert_array_equal(k, kernels[[0, 3, 0, 5, 2, 1]])
    # K = min(6, 5 // 2) = 2
    _, s, c = thing_candidates(centers, kernels, [(2, 3)], center_top_num=5)
    np.testing.assert_allclose(s, [0.9, 0.8])


def test_level_peaks_at_most_50_and_strictly_above_threshold():
    centers = np.linspace(0.99, 0.06, 64, dtype=np.float32)[None]  # (1, 64): an 8x8 level
    kernels = np.arange(64, dtype=np.float32)[:, None]  # (64, 1)
    k, scores, classes = thing_candidates(centers, kernels, [(8, 8)], 0.05, 100)
    assert len(scores) == 50 and k[:, 0].tolist() == list(range(50))
    centers = np.array([[0.05, 0.0500001, 0.04, 0.0]], np.float32)
    scores, _, positions = select_level_peaks(centers, 4, 0.05)
    assert positions.tolist() == [1]  # 0.05 itself is not kept (float32 comparison)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_candidates_match_two_stage_topk_over_levels(seed):
    rng = np.random.RandomState(seed)
    shapes = [(4, 5), (2, 3), (1, 2)]
    P = 20 + 6 + 2
    centers = np.where(rng.rand(3, P) < 0.5, rng.rand(3, P), 0).astype(np.float32)
    kernels = rng.randn(P, 4).astype(np.float32)
    ref = Reference(center_thresh=0.2, center_top_num=12)
    expected = [ref.things_of_level(centers[:, a:b], kernels[a:b])
                for a, b in [(0, 20), (20, 26), (26, 28)]]
    k_ref = np.concatenate([e[0] for e in expected])
    s_ref = np.concatenate([e[1] for e in expected])
    c_ref = np.concatenate([e[2] for e in expected])
    order = np.argsort(-s_ref, kind='stable')
    k, s, c = thing_candidates(centers, kernels, shapes, center_thresh=0.2, center_top_num=12)
    assert len(s) <= 6 + 6 + 2 and len(s) > 5
    np.testing.assert_array_equal(s, s_ref[order])
    np.testing.assert_array_equal(c, c_ref[order])
    np.testing.assert_array_equal(k, k_ref[order])


# ----------------------------------------------------------------------------------------------
# thing kernel fusion
# ----------------------------------------------------------------------------------------------

def unit(deg):
    return [np.cos(np.radians(deg)), np.sin(np.radians(deg)), 0]


def test_near_identical_same_class_kernels_are_averaged():
    kernels = np.array([[1, 0, 0], [2, 0.1, 0], [0, 0, 1]], np.float32)
    k, s, c = fuse_thing_kernels(kernels, np.array([0.9, 0.8, 0.7], np.float32),
                                 np.array([0, 0, 0]))
    np.testing.assert_allclose(k, [[1.5, 0.05, 0], [0, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(s, [0.9, 0.7])
    assert c.tolist() == [0, 0]


def test_different_classes_fuse_only_when_not_class_specific():
    kernels = np.array([[1, 0, 0], [1, 0.01, 0]], np.float32)
    scores, classes = np.array([0.9, 0.8], np.float32), np.array([0, 1])
    k, s, c = fuse_thing_kernels(kernels, scores, classes, class_specific=True)
    np.testing.assert_array_equal(k, kernels)
    assert c.tolist() == [0, 1]
    k, s, c = fuse_thing_kernels(kernels, scores, classes, class_specific=False)
    np.testing.assert_allclose(k, [[1, 0.005, 0]])
    assert c.tolist() == [0] and s.tolist() == [np.float32(0.9)]


def test_kernel_similar_only_to_a_dropped_kernel_is_dropped_too():
    # cos(20 deg) = 0.94 >= 0.9 > cos(40 deg) = 0.77: a ~ b, b ~ c, a !~ c.  b is fused into a;
    # c is dropped because b (itself dropped) came first -- and is averaged into nothing
    kernels = np.array([unit(0), unit(20), unit(40)], np.float32)
    k, s, c = fuse_thing_kernels(kernels, np.array([0.9, 0.8, 0.7], np.float32),
                                 np.zeros(3, int))
    np.testing.assert_allclose(k, [(np.array(unit(0)) + unit(20)) / 2], rtol=1e-6)
    assert s.tolist() == [np.float32(0.9)]
    # without b in between, c is its own instance
    k, s, c = fuse_thing_kernels(kernels[[0, 2]], np.array([0.9, 0.7], np.float32),
                                 np.zeros(2, int))
    assert len(k) == 2


def test_fusion_matches_loop_transliteration():
    rng = np.random.RandomState(3)
    base = rng.randn(5, 8).astype(np.float32)
    kernels = np.concatenate([base, base[[0, 0, 2, 3]] + rng.randn(4, 8).astype(np.float32) * 0.2])
    kernels = kernels[rng.permutation(len(kernels))]
    classes = rng.randint(0, 2, len(kernels))
    scores = np.sort(rng.rand(len(kernels)).astype(np.float32))[::-1]
    for class_specific in (True, False):
        ref = Reference(class_specific=class_specific, similarity_thresh=0.8)
        k_ref, c_ref, s_ref = ref.thing_fusion(kernels, classes, scores)
        k, s, c = fuse_thing_kernels(kernels, scores, classes, 0.8, class_specific)
        np.testing.assert_allclose(k, k_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(c, c_ref)
        np.testing.assert_array_equal(s, s_ref)
        assert len(k) < len(kernels)


def test_zero_kernel_gives_nan_and_is_dropped_at_rescoring():
    k, s, c = fuse_thing_kernels(np.array([[0, 0], [1, 0]], np.float32),
                                 np.array([0.9, 0.8], np.float32), np.array([0, 0]))
    assert np.isnan(k[0]).all() and len(k) == 2
    encoded = np.ones((2, 2, 2), np.float32)
    k, s, c = rescore_things(k, s, c, encoded)
    np.testing.assert_array_equal(k, [[1, 0]])


# ----------------------------------------------------------------------------------------------
# rescoring and upsampling
# ----------------------------------------------------------------------------------------------

def test_mask_quality_is_mean_probability_inside_the_mask():
    probs = np.array([[[0.9, 0.5], [0.3, 0.1]],
                      [[0.1, 0.2], [0.3, 0.4]]], np.float32)  # 0.4 is not > 0.4
    np.testing.assert_allclose(mask_quality(probs, 0.4), [0.7, 0.0], rtol=1e-6)


def test_rescore_sorts_filters_and_keeps_top():
    # instance i's probabilities are sigmoid(encoded[i]): identity kernels
    maps = np.array([[[0.9, 0.6], [0.1, 0.2]],    # quality 0.75
                     [[0.99, 0.99], [0.99, 0.3]],  # quality 0.99
                     [[0.1, 0.1], [0.1, 0.1]],    # empty mask: quality 0
                     [[0.5, 0.7], [0.6, 0.3]]])   # quality 0.6
    encoded = logit(maps)
    kernels = np.eye(4, dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.3], np.float32)
    k, s, c = rescore_things(kernels, scores, np.array([0, 1, 0, 1]), encoded, 0.4, 100, 0.05)
    np.testing.assert_allclose(s, [0.8 * 0.99, 0.9 * 0.75, 0.3 * 0.6], rtol=1e-5)
    assert c.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(k, kernels[[1, 0, 3]])
    _, s, _ = rescore_things(kernels, scores, np.array([0, 1, 0, 1]), encoded, 0.4, 2, 0.05)
    assert len(s) == 2
    _, s, _ = rescore_things(kernels, scores, np.array([0, 1, 0, 1]), encoded, 0.4, 100, 0.2)
    assert len(s) == 2  # 0.18 < 0.2


def test_upsample_crops_the_padded_x4_map_then_resizes():
    rng = np.random.RandomState(0)
    probs = rng.rand(2, 8, 8).astype(np.float32)
    out = upsample_to_image(probs, (27, 30), (54, 45))
    assert out.shape == (2, 54, 45) and out.dtype == np.float32
    expected = resize_bilinear(resize_bilinear(probs, 32, 32)[:, :27, :30], 54, 45)
    np.testing.assert_array_equal(out, expected)
    # not the same as resizing the uncropped map
    assert not np.allclose(out, resize_bilinear(resize_bilinear(probs, 32, 32), 54, 45))
    same = upsample_to_image(probs, (27, 30), (27, 30))
    np.testing.assert_array_equal(same, resize_bilinear(probs, 32, 32)[:, :27, :30])
    np.testing.assert_array_equal(same, resize_bilinear(same, 27, 30))  # identity: skip is exact
    # a constant stays constant; the crop is the top-left corner
    assert np.allclose(upsample_to_image(np.full((4, 4), 0.3, np.float32), (10, 13), (7, 9)), 0.3)
    step = np.zeros((4, 4), np.float32)
    step[:, 2:] = 1
    assert (upsample_to_image(step, (16, 6), (16, 6)) == 0).all()


def test_thing_masks_threshold_the_upsampled_probabilities():
    rng = np.random.RandomState(1)
    encoded = rng.randn(3, 4, 5).astype(np.float32)
    kernels = rng.randn(2, 3).astype(np.float32)
    masks = thing_masks(kernels, encoded, (14, 18), (21, 20), 0.4)
    assert masks.shape == (2, 21, 20) and masks.dtype == bool
    probs = sig(kernels.dot(encoded.reshape(3, -1))).reshape(2, 4, 5)
    expected = resize_bilinear(resize_bilinear(probs, 16, 20)[:, :14, :18], 21, 20) > 0.4
    np.testing.assert_array_equal(masks, expected)
    assert 0 < masks.sum() < masks.size
    assert thing_masks(np.zeros((0, 3), np.float32), encoded, (14, 18), (21, 20)).shape == \
        (0, 21, 20)


# ----------------------------------------------------------------------------------------------
# stuff
# ----------------------------------------------------------------------------------------------

def test_stuff_scores_and_fusion_over_levels():
    L, E = 2, 2
    kernels = np.full((L * S, E), np.nan, np.float32)
    stats = np.zeros((L * S, 2), np.float32)
    # level 0: class 0 (4 positions, mean 0.5), class 1 (2 positions, mean 0.03: dropped)
    stats[0], kernels[0] = (4, 2.0), (1, 1)
    stats[1], kernels[1] = (2, 0.06), (5, 5)
    # level 1: class 0 (mean 0.2), class 1 (exactly 0.05: dropped), class 2 (mean 0.3)
    stats[3], kernels[3] = (2, 0.4), (3, -1)
    stats[4], kernels[4] = (1, 0.05), (7, 7)
    stats[5], kernels[5] = (3, 0.9), (0, 2)
    k, s, c = stuff_candidates(kernels, stats, L, stuff_thresh=0.05)
    assert c.tolist() == [0, 0, 2]
    np.testing.assert_allclose(s, [0.5, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_array_equal(k, [[1, 1], [3, -1], [0, 2]])
    k, s, c = fuse_stuff_kernels(k, s, c)
    assert c.tolist() == [0, 2]
    np.testing.assert_allclose(k, [[2, 0], [0, 2]])
    np.testing.assert_allclose(s, [0.35, 0.3], rtol=1e-6)
    k, s, c = stuff_candidates(kernels, stats, L, stuff_thresh=0.25)
    assert c.tolist() == [0, 2]


def test_stuff_semantic_is_the_argmax_of_the_zero_filled_class_maps():
    rng = np.random.RandomState(2)
    encoded = rng.randn(3, 4, 4).astype(np.float32)
    kernels = rng.randn(3, 3).astype(np.float32)
    kernels[2] = kernels[1]  # classes 1 and 2 tie everywhere: the lower one wins
    classes = np.array([0, 1, 2])
    labels = stuff_semantic(kernels[1:], classes[1:], encoded, (13, 15), (20, 17))
    assert labels.shape == (20, 17)
    assert (labels == 1).all()
    # the reference: zeros (S, H, W), probabilities added at their classes, first-index argmax
    probs = upsample_to_image(sig(kernels.dot(encoded.reshape(3, -1))).reshape(3, 4, 4),
                              (13, 15), (20, 17))
    for subset in ([0, 2], [2, 0], [0, 1]):
        expected = np.zeros((S, 20, 17), np.float32)
        expected[classes[subset]] += probs[subset]
        got = stuff_semantic(kernels[subset], classes[subset], encoded, (13, 15), (20, 17))
        np.testing.assert_array_equal(got, expected.argmax(axis=0))
    # a probability that underflows to 0 loses to the absent class 0
    labels = stuff_semantic(np.array([[-200, 0, 0]], np.float32), np.array([2]),
                            np.ones((3, 2, 2), np.float32), (8, 8), (8, 8))
    assert (labels == 0).all()
    assert (stuff_semantic(np.zeros((0, 3), np.float32), np.zeros(0, int), encoded, (13, 15),
                           (5, 6)) == 0).all()


def test_fcn_classes_map_to_separated_classes():
    fcn = np.array([[0, 1], [2, 0]])
    np.testing.assert_array_equal(fcn_to_separated(fcn, CATEGORIES.num_stuff), [[2, 0], [1, 2]])
    # and our class 2 is the "things" class, 0 and 1 road and building
    assert CATEGORIES.semantic_class_to_category('separated') == [7, 11, -1]


# ----------------------------------------------------------------------------------------------
# end to end
# ----------------------------------------------------------------------------------------------

def test_no_things_and_no_stuff_give_an_empty_map():
    shapes = level_shapes(32, 64)
    P = sum(h * w for h, w in shapes)
    L, E = len(shapes), 4
    stats = np.zeros((L * S, 2), np.float32)
    for l, (h, w) in enumerate(shapes):
        stats[l * S] = h * w, 0.01 * h * w  # class 0 everywhere, score 0.01
    outputs = [np.zeros((1, T, P)), np.zeros((1, S, P)), np.ones((1, P, E)),
               np.ones((1, L * S, E)), stats[None], np.ones((1, E, 8, 16))]
    pan, info = panoptic_from_outputs(outputs, shapes, (30, 60), (45, 90), CATEGORIES,
                                      stuff_area_threshold=0)
    assert pan.shape == (45, 90) and (pan == 0).all() and info == []


@pytest.mark.parametrize('seed,center_top_num,img_shape,ori_shape', [
    (0, 100, (60, 52), (60, 52)),
    (1, 100, (60, 52), (75, 65)),
    (2, 10, (57, 64), (40, 45)),
    (3, 100, (64, 64), (64, 64)),
])
def test_end_to_end_matches_the_reference_transliteration(seed, center_top_num, img_shape,
                                                          ori_shape):
    raw, outputs = make_case(seed)
    options = dict(center_top_num=center_top_num, stuff_area_threshold=100)
    pan, info = panoptic_from_outputs(outputs, raw['shapes'], img_shape, ori_shape, CATEGORIES,
                                      **options)
    ref = Reference(center_top_num=center_top_num, stuff_limit=100)
    ref_pan, ref_segments = reference_to_ours(*ref(raw, img_shape, ori_shape))
    assert pan.shape == tuple(ori_shape)
    np.testing.assert_array_equal(pan, ref_pan)
    assert [(s['id'], s['category_id'], s['isthing'], s['area']) for s in info] == ref_segments
    kinds = {s['isthing'] for s in info}
    assert kinds == {0, 1}, 'the case should have both things and stuff'


def test_end_to_end_stages_fuse_things():
    raw, outputs = make_case(0)
    k, s, c = thing_candidates(raw['centers'], raw['thing_kernels'], raw['shapes'])
    fused, _, _ = fuse_thing_kernels(k, s, c)
    assert len(fused) < len(k)


# ----------------------------------------------------------------------------------------------
# predict_panoptic
# ----------------------------------------------------------------------------------------------

class MockNet(object):
    categories = CATEGORIES

    def __init__(self, outputs, options):
        self.outputs, self.inference_options, self.inputs = outputs, options, []

    def level_shapes(self, Hp, Wp):
        return level_shapes(Hp, Wp)

    def predict(self, data):
        self.inputs.append(data.shape)
        return tuple(mx.nd.array(o) for o in self.outputs)


def test_predict_panoptic_pads_runs_and_fuses_with_the_net_options():
    raw, outputs = make_case(1)
    options = dict(center_top_num=40, stuff_area_threshold=50, mask_thresh=0.45)
    net = MockNet(outputs, dict(options, test_size=None))
    data = mx.nd.ones((1, 3, 50, 60))
    pan, info = predict_panoptic(net, data)
    assert net.inputs == [(1, 3, 64, 64)]
    assert pan.shape == (50, 60)
    expected = panoptic_from_outputs(outputs, level_shapes(64, 64), (50, 60), (50, 60),
                                     CATEGORIES, **options)
    np.testing.assert_array_equal(pan, expected[0])
    assert info == expected[1]
    assert any(not s['isthing'] for s in info)
    # an explicit threshold overrides the net's
    pan, info = predict_panoptic(net, data, stuff_area_threshold=10 ** 6)
    assert all(s['isthing'] for s in info)


def test_predict_panoptic_resizes_for_the_test_size_and_back():
    """A net with a test size runs on the resized image (padded) and answers at the input size."""
    raw, outputs = make_case(1)
    net = MockNet(outputs, dict(test_size=(50, 1000), stuff_area_threshold=5))
    pan, info = predict_panoptic(net, mx.nd.zeros((1, 3, 25, 30)))
    assert net.inputs == [(1, 3, 64, 64)]  # 25x30 -> 50x60 -> padded
    expected = panoptic_from_outputs(outputs, level_shapes(64, 64), (50, 60), (25, 30), CATEGORIES,
                                     stuff_area_threshold=5)
    assert pan.shape == (25, 30)
    np.testing.assert_array_equal(pan, expected[0])


def test_inference_options_defaults_and_unknown_keys():
    assert inference_options(MockNet(None, None)) == DEFAULT_INFERENCE_OPTIONS
    assert DEFAULT_INFERENCE_OPTIONS['similarity_thresh'] == 0.9
    opts = inference_options(MockNet(None, dict(center_thresh=0.2)), score_threshold=0.3,
                             overlap_threshold=None)
    assert opts['center_thresh'] == 0.2 and opts['score_threshold'] == 0.3
    assert opts['overlap_threshold'] == 0.5
    # keys of other stages (the net's test-time resizing) are not post-processing options
    opts = inference_options(MockNet(None, dict(test_size=(800, 1333), mask_thresh=0.5)))
    assert 'test_size' not in opts and opts['mask_thresh'] == 0.5
    with pytest.raises(ValueError, match='mask_threshold'):
        inference_options(MockNet(None, {}), mask_threshold=0.5)


def test_predict_panoptic_rejects_a_batch():
    with pytest.raises(ValueError, match='one image'):
        predict_panoptic(MockNet(None, {}), mx.nd.ones((2, 3, 32, 32)))


def test_shortest_edge_sizes_are_detectron2s():
    from gluonpan.model_zoo.panoptic_fcn.inference import shortest_edge_size
    assert shortest_edge_size(1024, 2048, 512, 854) == (427, 854)  # the long side limits
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)
    assert shortest_edge_size(640, 480, 400, 666) == (533, 400)
    assert shortest_edge_size(375, 500, 600, 1000) == (600, 800)


def test_resize_for_test_recovers_the_pixels_and_resizes_with_pil():
    from PIL import Image
    import mxnet as mx
    from gluonpan.data.transforms import normalize
    from gluonpan.model_zoo.panoptic_fcn.inference import resize_for_test
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    data = mx.nd.array(normalize(image)[None])
    assert resize_for_test(data, (30, 100)) is data  # already that size
    out = resize_for_test(data, (60, 1000)).asnumpy()
    want = normalize(np.asarray(Image.fromarray(image).resize((80, 60), Image.BILINEAR)))
    np.testing.assert_array_equal(out[0], want)


def test_windowed_masks_equal_the_full_upsampling():
    """thing_masks computes only the window around each mask's support: the same pixels."""
    from gluonpan.model_zoo.panoptic_fcn.inference import thing_masks, upsample_to_image
    rng = np.random.default_rng(5)
    E, h, w = 6, 20, 30
    encoded = rng.standard_normal((E, h, w)).astype(np.float32)
    kernels = rng.standard_normal((12, E)).astype(np.float32) * 1.5
    kernels[0] = -10 * np.abs(kernels[0]) * np.sign(encoded.mean((1, 2)))  # (almost) empty mask
    for image_size in ((80, 120), (77, 113)):
        got = thing_masks(kernels, encoded, image_size, image_size, mask_thresh=0.4)
        for k, kernel in enumerate(kernels):
            probs = 1 / (1 + np.exp(-np.clip(np.einsum('e,ehw->hw', kernel, encoded), -80, 80)))
            full = upsample_to_image(probs.astype(np.float32), image_size, image_size) > 0.4
            np.testing.assert_array_equal(got[k], full)
        assert 0 < got.sum() < got.size

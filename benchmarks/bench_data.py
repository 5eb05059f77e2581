"""Training data throughput: samples/s per core at 1024x2048 with a 512x1024 crop, RPN targets included.

Runs in one process with one thread (OpenMP and OpenCV), so the figure is per core; data loading
scales with DataLoader worker processes.  Prints a per-stage breakdown, the decode-only floor as the
peer measured in the same run, and the ratio to the 5 samples/s/core target.

    OMP_NUM_THREADS=1 python benchmarks/bench_data.py [--num-images 8 --iters 40]
"""
import argparse
import logging
import os
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from gluonpan.data import (CityscapesPanoptic, PanopticTrainTransform, cityscapes_categories,  # noqa: E402
                           sampler)
from gluonpan.data.io import read_image, read_panoptic_ids  # noqa: E402
from gluonpan.data.synthetic import ensure_cityscapes  # noqa: E402
from gluonpan.data.targets import panoptic_targets, segment_index  # noqa: E402
from gluonpan.data.transforms import affine_matrix, normalize, warp_image, warp_labels  # noqa: E402
from gluonpan.nn.anchors import FPNAnchors  # noqa: E402

TARGET = 5.0


def stage_times(dataset, transform, keys):
    """Seconds per sample of each stage, running the stages by hand in the transform's order."""
    stages = dict.fromkeys(['read image', 'read panoptic png', 'segment index', 'scale+crop+flip',
                            'targets', 'normalize', 'rpn targets'], 0.0)
    for idx, seed in keys:
        rec = dataset.records[idx]
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        image = read_image(rec['image_path'])
        t1 = time.perf_counter()
        pan = read_panoptic_ids(rec['pan_path']).view(np.int32)
        t2 = time.perf_counter()
        index = segment_index(pan, rec['segments_info'])
        t3 = time.perf_counter()
        scale = rng.uniform(*transform.scale_range)
        x0, y0 = transform.choose_crop(*index.shape, scale, rec['segments_info'], rng)
        m = affine_matrix(scale, (x0, y0), transform.crop_size[1] if rng.random() < 0.5 else None)
        img = warp_image(image, m, transform.crop_size)
        idx_map = warp_labels(index, m, transform.crop_size)
        t4 = time.perf_counter()
        tg = panoptic_targets(idx_map, rec['segments_info'], dataset.categories)
        t5 = time.perf_counter()
        normalize(img)
        t6 = time.perf_counter()
        transform.rpn(tg['gt_boxes'], *transform.crop_size, rng)
        t7 = time.perf_counter()
        for k, dt in zip(stages, np.diff([t0, t1, t2, t3, t4, t5, t6, t7])):
            stages[k] += dt / len(keys)
    return stages


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='/tmp/gluonpan_bench_data')
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--iters', type=int, default=40)
    parser.add_argument('--height', type=int, default=1024)
    parser.add_argument('--width', type=int, default=2048)
    parser.add_argument('--crop', type=int, nargs=2, default=(512, 1024))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    cv2.setNumThreads(1)

    ensure_cityscapes(args.root, splits=(('train', args.num_images),), height=args.height,
                      width=args.width)
    transform = PanopticTrainTransform(cityscapes_categories(), anchors=FPNAnchors(),
                                       crop_size=tuple(args.crop))
    dataset = CityscapesPanoptic(args.root, 'train', transform=transform)
    smp = sampler.EpochSampler(len(dataset), seed=0)
    keys = [k for e in range(args.iters // len(dataset) + 1) for k in
            (smp.set_epoch(e) or list(smp))][:args.iters]
    dataset[keys[0]]  # warm up

    t = time.perf_counter()
    for k in keys:
        dataset[k]
    per_sample = (time.perf_counter() - t) / len(keys)
    t = time.perf_counter()
    for idx, _ in keys:
        read_image(dataset.records[idx]['image_path'])
        read_panoptic_ids(dataset.records[idx]['pan_path'])
    floor = (time.perf_counter() - t) / len(keys)

    logging.info('%dx%d input, %dx%d crop, %d samples, 1 thread', args.height, args.width,
                 args.crop[0], args.crop[1], len(keys))
    for name, sec in stage_times(dataset, transform, keys).items():
        logging.info('  %-20s %7.1f ms', name, 1000 * sec)
    logging.info('decode only (the floor): %7.1f ms/sample = %.2f samples/s', 1000 * floor, 1 / floor)
    logging.info('full training sample:    %7.1f ms/sample = %.2f samples/s per core', 1000 * per_sample,
                 1 / per_sample)
    logging.info('ratio full/decode-floor time: %.2fx; throughput / target (%.0f/s/core): %.2fx',
                 per_sample / floor, TARGET, 1 / per_sample / TARGET)


if __name__ == '__main__':
    main()

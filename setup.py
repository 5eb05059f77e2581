"""gluonpan: panoptic segmentation for MXNet Gluon.

Install with the MXNet build that fits the machine (MXNet itself is an extra so GPU users do not get
the CPU wheel too)::

    pip install -e ".[cpu]"      # CPU
    pip install -e ".[cu112]"    # CUDA 11.2 GPUs (Ampere or older: the wheel has kernels for sm_50..86)

Horovod (``--horovod``) compiles against the installed MXNet, so it comes second, without build
isolation (``wheel`` must be there for that)::

    pip install -e ".[cpu]" wheel
    HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \\
        HOROVOD_WITHOUT_PYTORCH=1 pip install --no-build-isolation --no-cache-dir -e ".[horovod]"
"""
from setuptools import find_packages, setup

# Known-good pins: mxnet 1.9.1 uses np.bool (gone in numpy 1.24); opencv-python 4.12+ needs numpy 2;
# unpinned scipy/pandas make pip backtrack for minutes.  numba + zlib-ng decode panoptic PNGs
# (gluonpan/data/png.py); numba 0.61+ needs numpy >= 1.24.
INSTALL_REQUIRES = [
    'numpy==1.23.5',
    'opencv-python==4.11.0.86',
    'gluoncv==0.10.5.post0',
    'pycocotools',
    'cityscapesscripts==2.3.0',
    'Pillow',
    'tqdm',
    'matplotlib==3.10.9',
    'scipy==1.15.3',
    'pandas==2.3.3',
    'numba==0.58.1',
    'zlib-ng==1.1.0',
]

EXPORT = ['onnx==1.17.0', 'onnxruntime==1.20.1']
EXTRAS = {
    'cpu': ['mxnet==1.9.1'],
    'cu112': ['mxnet-cu112==1.9.1'],
    # ONNX export and onnxruntime inference (python -m gluonpan.export), a tested pair: mxnet
    # 1.9.1's exporter imports onnx.mapping (deprecated since onnx 1.13, still in 1.17);
    # onnxruntime 1.16-1.17 need numpy >= 1.24, later ones take our numpy 1.23.5
    'export': EXPORT,
    # Horovod, the second multi-machine engine (gluonpan.utils.dist): an sdist that compiles
    # against the MXNet it finds (1.9.1 here), hence the second install step of the docstring.
    # 0.28.1 is the last release and builds with Python 3.11 + mxnet 1.9.1 + gcc 12 (gloo, no MPI;
    # ~200 s of CPU).  --no-cache-dir: pip would reuse a wheel built against another MXNet build.
    'horovod': ['horovod==0.28.1'],
    # reference evaluators the tests and benchmarks compare against, and the export's runtime
    'test': ['pytest', 'panopticapi-lite==0.2.0', 'hotcoco==1.3.0'] + EXPORT,
}

setup(
    name='gluonpan',
    version='0.1.0',
    description='Panoptic segmentation model zoo for MXNet Gluon (Panoptic FPN, Cityscapes, COCO)',
    packages=find_packages(include=['gluonpan', 'gluonpan.*']),
    package_data={'gluonpan.data': ['coco_panoptic_categories.json',
                                   'ade20k_categories.json']},
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={'console_scripts': [
        'gluonpan-synthetic=gluonpan.data.synthetic:cli',
        'gluonpan-evaluate=gluonpan.evaluate:cli',
    ]},
)

"""Small zoo models with seeded random weights, and a structured test image, for the tests of
the inference paths (export, precision)."""
import mxnet as mx
import numpy as np

from gluonpan.model_zoo import get_model


def seeded_model(name, seed=0, **kwargs):
    """A zoo model with seeded random weights, batch-norm statistics and biases."""
    mx.random.seed(seed)
    net = get_model(name, **kwargs)
    rng = np.random.RandomState(seed)
    for param_name, param in sorted(net.collect_params().items()):
        if param_name.endswith('running_var'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif param_name.endswith(('running_mean', 'beta', 'bias')) and 'anchor' not in param_name:
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
    return net


def synthetic_image(height=75, width=110, seed=0):
    """Coloured rectangles on a gradient: an image with some structure."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[:height, :width]
    image = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
    for _ in range(4):
        y0, x0 = rng.randint(0, height - 20), rng.randint(0, width - 30)
        image[y0:y0 + 20, x0:x0 + 30] = rng.randint(0, 256, 3)
    return image.astype(np.uint8)

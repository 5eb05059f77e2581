"""The toy job of ``_toy_train.py`` on Horovod, for ``test_horovod.py`` (run under horovodrun).

    horovodrun --gloo -np 2 -H localhost:2 python tests/_toy_horovod.py --save-dir DIR ...

Takes ``_toy_train.py``'s options.  Before the trainer is created, every rank but 0 shifts its
initial weights, so that the job only ends equal to a single-process run when the trainer
broadcasts rank 0's weights.
"""
import mxnet as mx  # noqa: I001  (first, as in _toy_train.py)

import _toy_train
from gluonpan.utils import dist


def _horovod_job(kv_store):
    """``create_kvstore`` of the toy job: Horovod whatever ``--kv-store`` says."""
    return dist.create_kvstore(dist.HOROVOD)


def _trainer_from_other_weights(params, kvstore, *args, **kwargs):
    """``create_trainer`` after moving the weights of every rank but 0 away from rank 0's."""
    if kvstore.rank:
        for param in params.values():
            param.set_data(param.data() + 0.5 * kvstore.rank)
        mx.nd.waitall()
    return dist.create_trainer(params, kvstore, *args, **kwargs)


def main(argv=None):
    """Run ``_toy_train.main`` with a Horovod kvstore and trainer; returns the net."""
    _toy_train.create_kvstore = _horovod_job
    _toy_train.create_trainer = _trainer_from_other_weights
    return _toy_train.main(argv)


if __name__ == '__main__':
    main()

"""Learning-rate schedule: linear warmup over iterations, then step decay at epochs or poly decay.

The schedule is a pure function of ``(epoch, iteration-in-epoch)``: the engine asks it for the rate of
every iteration and sets it with ``trainer.set_learning_rate``.  Nothing is attached to the optimizer,
so resuming needs only the schedule's configuration (``state_dict``), never a replay of past steps.
"""
import logging

__all__ = ['WarmupStepLR', 'parse_epochs']

logger = logging.getLogger(__name__)


def parse_epochs(text):
    """Parse a comma-separated epoch list such as ``'430,590'`` (the ``--lr_decay_epoch`` flag).

    Parameters
    ----------
    text : str
        Comma-separated non-negative integers; empty means no decay.

    Returns
    -------
    tuple of int
        The epochs, ascending.
    """
    try:
        epochs = tuple(sorted(int(t) for t in text.split(',') if t.strip()))
    except ValueError:
        raise ValueError('epoch list must be comma-separated integers, got {!r}'.format(text))
    return epochs


class WarmupStepLR:
    """Linear warmup from ``base_lr * warmup_factor`` over ``warmup_iters`` iterations, then step
    decay (``policy='step'``) or polynomial decay (``'poly'``).

    Step: ``lr(epoch, it) = base_lr * decay_factor ** k * w`` where ``k`` is the number of
    ``decay_epochs`` that are ``<= epoch``.  Poly (mmsegmentation's ``PolyLR``, per iteration):
    ``lr = (base_lr - min_lr) * (1 - t / T) ** power * w + min_lr`` over ``T = max_epochs *
    iters_per_epoch`` iterations.  In both ``w = warmup_factor + (1 - warmup_factor) * t /
    warmup_iters`` for the global iteration ``t = epoch * iters_per_epoch + it < warmup_iters``
    (``w = 1`` afterwards).

    Parameters
    ----------
    base_lr : float
        Learning rate after warmup and before the first decay.
    iters_per_epoch : int
        Iterations (optimizer steps) in one epoch; converts epochs to global iterations.
    warmup_iters : int, default 0
        Length of the linear warmup in iterations (``--lr-warmup``); 0 disables it.
    warmup_factor : float, default 1/3
        Fraction of ``base_lr`` at iteration 0, in ``(0, 1]``.
    decay_epochs : sequence of int, default ()
        Epochs (0-based, the first epoch trained at the lower rate) at which to decay.
    decay_factor : float, default 0.1
        Multiplier applied at each decay epoch.
    policy : str, default 'step'
        ``'step'`` or ``'poly'``.
    max_epochs : int, default 0
        Poly: the epochs the rate decays over (the run's ``--epochs``); >= 1 for ``'poly'``.
    power, min_lr : float, default 0.9, 1e-4
        Poly: exponent and final rate (mmsegmentation's schedules).
    """

    _KEYS = ('base_lr', 'iters_per_epoch', 'warmup_iters', 'warmup_factor', 'decay_epochs',
             'decay_factor', 'policy', 'max_epochs', 'power', 'min_lr')
    #: values of the keys added after the first format (states saved before them were 'step')
    _LATER_KEYS = {'policy': 'step', 'max_epochs': 0, 'power': 0.9, 'min_lr': 1e-4}
    POLICIES = ('step', 'poly')

    def __init__(self, base_lr, iters_per_epoch, warmup_iters=0, warmup_factor=1.0 / 3,
                 decay_epochs=(), decay_factor=0.1, policy='step', max_epochs=0, power=0.9,
                 min_lr=1e-4):
        self._configure(base_lr, iters_per_epoch, warmup_iters, warmup_factor, decay_epochs,
                        decay_factor, policy, max_epochs, power, min_lr)

    def _configure(self, base_lr, iters_per_epoch, warmup_iters, warmup_factor, decay_epochs,
                   decay_factor, policy='step', max_epochs=0, power=0.9, min_lr=1e-4):
        decay_epochs = tuple(int(e) for e in decay_epochs)
        checks = [
            (base_lr > 0, 'base_lr must be > 0'),
            (int(iters_per_epoch) >= 1, 'iters_per_epoch must be >= 1'),
            (int(warmup_iters) >= 0, 'warmup_iters must be >= 0'),
            (0 < warmup_factor <= 1, 'warmup_factor must be in (0, 1]'),
            (decay_factor > 0, 'decay_factor must be > 0'),
            (all(e >= 0 for e in decay_epochs), 'decay_epochs must be >= 0'),
            (list(decay_epochs) == sorted(set(decay_epochs)),
             'decay_epochs must be strictly increasing'),
            (policy in self.POLICIES, 'policy must be one of {}'.format(self.POLICIES)),
            (policy != 'poly' or int(max_epochs) >= 1, 'max_epochs must be >= 1 for poly'),
            (power > 0 and 0 <= min_lr, 'power must be > 0 and min_lr >= 0'),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError('{}: got base_lr={}, iters_per_epoch={}, warmup_iters={}, '
                                 'warmup_factor={}, decay_epochs={}, decay_factor={}, policy={}, '
                                 'max_epochs={}, power={}, min_lr={}'.format(
                                     message, base_lr, iters_per_epoch, warmup_iters,
                                     warmup_factor, decay_epochs, decay_factor, policy,
                                     max_epochs, power, min_lr))
        self.base_lr = float(base_lr)
        self.iters_per_epoch = int(iters_per_epoch)
        self.warmup_iters = int(warmup_iters)
        self.warmup_factor = float(warmup_factor)
        self.decay_epochs = decay_epochs
        self.decay_factor = float(decay_factor)
        self.policy = policy
        self.max_epochs = int(max_epochs)
        self.power = float(power)
        self.min_lr = float(min_lr)

    def __call__(self, epoch, iteration):
        """Learning rate for ``iteration`` (0-based, within the epoch) of ``epoch`` (0-based)."""
        step = epoch * self.iters_per_epoch + iteration
        warmup = 1.0
        if step < self.warmup_iters:
            warmup = self.warmup_factor + (1.0 - self.warmup_factor) * step / self.warmup_iters
        if self.policy == 'poly':
            left = max(0.0, 1.0 - step / float(self.max_epochs * self.iters_per_epoch))
            return (self.base_lr - self.min_lr) * left ** self.power * warmup + self.min_lr
        num_decays = sum(1 for e in self.decay_epochs if e <= epoch)
        lr = self.base_lr * self.decay_factor ** num_decays
        if step < self.warmup_iters:
            lr *= warmup
        return lr

    def state_dict(self):
        """The configuration as a JSON-serialisable dict (all the state there is)."""
        state = {k: getattr(self, k) for k in self._KEYS}
        state['decay_epochs'] = list(self.decay_epochs)
        return state

    def load_state_dict(self, state):
        """Restore the configuration saved by :meth:`state_dict`.

        The saved schedule wins so that a resumed run continues exactly; any difference from the
        current configuration (e.g. a changed ``--lr`` on the command line) is logged as a warning.
        """
        state = dict(self._LATER_KEYS, **state)
        missing = [k for k in self._KEYS if k not in state]
        if missing:
            raise ValueError('lr scheduler state lacks {}: {}'.format(missing, state))
        current = self.state_dict()
        changed = {k: (current[k], state[k]) for k in self._KEYS if current[k] != state[k]}
        if changed:
            logger.warning('resuming with the saved lr schedule; ignoring new values '
                           '(current, saved): %s', changed)
        self._configure(*(state[k] for k in self._KEYS))

    def __repr__(self):
        return 'WarmupStepLR({})'.format(
            ', '.join('{}={}'.format(k, v) for k, v in self.state_dict().items()))

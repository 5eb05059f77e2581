"""The contract between a task and the shared programs (:mod:`gluonpan.tools`)."""
from ..errors import UsageError

__all__ = ['Task']


class Task(object):
    """What the train / eval programs ask a task; subclasses fill in the data and metric parts.

    Parameters
    ----------
    arch : str
        Zoo prefix of the architecture (``'panoptic_fpn'``); model names are
        ``{arch}_{network}_{dataset suffix}``.
    title : str
        Its name for people (``'Panoptic FPN'``).

    Attributes
    ----------
    datasets : dict
        ``--dataset`` choice -> ``(zoo suffix, default root)``.
    train_defaults : dict
        Flag defaults of the train program for this task (a ``--config`` and the command line win).
    frozen_with_pretrained_base : str or None
        Regex of the parameters kept fixed on an ImageNet backbone with frozen batch norm.
    """

    datasets = {}
    default_dataset = 'citys'
    train_defaults = {}
    frozen_with_pretrained_base = None
    #: the validation numbers kept in val_history.jsonl
    history_keys = ()

    def __init__(self, arch, title):
        self.arch = arch
        self.title = title

    # --- names and flags ------------------------------------------------------------------
    def model_name(self, network, dataset):
        """``('resnet50_v1b', 'citys')`` -> ``'{arch}_resnet50_v1b_citys'``."""
        return '{}_{}_{}'.format(self.arch, network, self.datasets[dataset][0])

    def add_train_args(self, parser):
        """Task flags of the train program (none by default)."""

    def check_train_args(self, parser, args):
        """Parse / check the task flags after ``parse_args`` (``parser.error`` on bad ones)."""

    def add_eval_args(self, parser):
        """Task flags of the eval program (none by default)."""

    def check_eval_args(self, parser, args):
        """Parse / check the task flags of the eval program (``parser.error`` on bad ones)."""

    # --- model ------------------------------------------------------------------------------
    def model_kwargs(self, args, categories, per_device):
        """Builder options that come from flags or data rather than ``--model-kwargs``
        (``categories``: the training set's, if it has them; ``per_device``: images per
        context in a training step)."""
        return {}

    def kept_options(self, recorded):
        """The options of a run's recorded ``model_kwargs`` that a resumed run must keep
        (e.g. conventions whose default changed since); ``{}`` by default."""
        return {}

    def record(self, args, net):
        """Extra entries of a run's ``args.json`` (e.g. a COCO-format dataset's categories)."""
        return {}

    # --- a trained model, for eval / demo -----------------------------------------------------
    def recorded_kwargs(self, saved):
        """Builder options a run recorded: the ``model_kwargs`` of its ``args.json`` (``saved``,
        ``{}`` for a zoo name), which ``--model-kwargs`` then updates."""
        from ..utils.cli import json_kwargs
        return json_kwargs(saved.get('model_kwargs'),
                           "model_kwargs of the training run's args.json")

    def load_kwargs(self, saved, categories=None):
        """Builder options of a loaded model besides its recorded ``model_kwargs``: from the run
        record ``saved`` (``{}`` for a zoo name) or the ``categories`` of
        :meth:`model_categories`; ``{}`` by default."""
        return {}

    def model_categories(self, args, dataset):
        """The categories of ``dataset`` (built with ``args``) that a model evaluated on it must
        be built with, or ``None`` (the default: the model's own)."""
        return None

    # --- data -------------------------------------------------------------------------------
    def get_dataset(self, args, split, transform=None):
        """The dataset of ``--dataset`` / ``--dataset-root`` (synthetic ones made if absent)."""
        raise NotImplementedError

    def train_transform(self, args, net, dataset):
        """The training transform for ``net`` (targets the model needs included)."""
        raise NotImplementedError

    def val_transform(self):
        """The validation transform."""
        raise NotImplementedError

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, net, dataset, ctx, args, out_dir=None, overlays=0, num_workers=0,
                 saved=None):
        """Predict and score every image of ``dataset``; write official-format files and
        overlays to ``out_dir`` when given.  Returns the results dict."""
        raise NotImplementedError

    def history(self, results):
        """The numbers of ``results`` kept per validation (keys :attr:`history_keys`)."""
        raise NotImplementedError

    def summary(self, results):
        """One line of ``results`` for the log."""
        raise NotImplementedError

    # --- demo -------------------------------------------------------------------------------
    def add_demo_args(self, parser):
        """Task flags of the demo program (default: the eval program's)."""
        self.add_eval_args(parser)

    def check_demo_args(self, parser, args):
        """Parse / check the demo flags (default: as the eval program's)."""
        self.check_eval_args(parser, args)

    def demo_categories(self, args):
        """The categories argument of :func:`~gluonpan.utils.cli.load_model` in the demo."""
        return None

    def demo_image(self, net, path, out_dir, args, saved):
        """Segment image file ``path`` with :func:`gluonpan.predict`, write the prediction files
        and ``{stem}_overlay.png`` into ``out_dir``; returns ``(stem, one-line description)``."""
        raise NotImplementedError

    def check_model_name(self, name):
        """A usage error unless zoo model ``name`` belongs to this architecture."""
        if not name.startswith(self.arch + '_'):
            raise UsageError('{} is not a {} model (its names start with {}_)'.format(
                name, self.title, self.arch))

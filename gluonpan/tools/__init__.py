"""The programs behind the scripts (:mod:`.train`, :mod:`.evaluate`, :mod:`.demo`), shared by
every architecture through its task (:mod:`gluonpan.tasks`): a script is one of them bound to
its architecture by :func:`entry_points`."""

__all__ = ['entry_points']


def entry_points(program, arch):
    """``(parse_args, main)`` of ``program`` (a module of this package) for architecture
    ``arch``: each takes the script's ``argv`` (default ``sys.argv[1:]``)."""
    def parse_args(argv=None):
        return program.parse_args(arch, argv)

    def main(argv=None):
        return program.main(arch, argv)

    parse_args.__doc__ = 'The checked command line of {} (see {}.parse_args).'.format(
        arch, program.__name__)
    main.__doc__ = '{}.main for {}.'.format(program.__name__, arch)
    return parse_args, main

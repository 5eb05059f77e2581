"""Helpers of the bad-input corpus: run an entry point as a user does, check the one-line rule."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, 'scripts', 'panoptic')


def command(entry, *args):
    """The command line of an entry point: ``'train'``, ``'eval'``, ``'demo'`` (the scripts) or a
    module (``'gluonpan.evaluate'``, ``'gluonpan.data.check'``)."""
    if entry in ('train', 'eval', 'demo'):
        return [sys.executable, os.path.join(SCRIPTS, '{}_panoptic_fpn.py'.format(entry))] + list(args)
    return [sys.executable, '-m', entry] + list(args)


def run(entry, *args, cwd=None, timeout=600):
    """Run an entry point in a subprocess (OMP 1 thread, repo on the path) -> CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('GLUONPAN_DEBUG', None)
    return subprocess.run(command(entry, *args), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def error_lines(stderr):
    """The lines of ``stderr`` that report an error (``error:``), log lines included."""
    return [line for line in stderr.splitlines() if 'error:' in line or ' ERROR ' in line]


def assert_input_error(proc, status, *culprits):
    """``proc`` failed with ``status``, printed no traceback, and one error line names every
    string in ``culprits`` (a file, flag, image id, segment id or value)."""
    detail = 'exit {}\nstdout:\n{}\nstderr:\n{}'.format(proc.returncode, proc.stdout[-3000:],
                                                         proc.stderr[-3000:])
    assert proc.returncode == status, detail
    assert 'Traceback' not in proc.stderr and 'Traceback' not in proc.stdout, detail
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, detail
    for culprit in culprits:
        assert str(culprit) in lines[0], 'message does not name {!r}\n{}'.format(culprit, detail)
    return lines[0]

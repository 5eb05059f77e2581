"""Kill-and-resume soak of the training script (issue 15).

A tiny Panoptic FPN is trained on a tiny synthetic dataset (3 train, 2 val images of 128x256) twice
on the CPU with 2 OpenMP threads, MKL-DNN on and a fixed seed: once uninterrupted into
``straight/``, once into ``killed/`` while it is SIGKILLed at least ``--kills`` times, each kill
followed by a relaunch with ``--resume`` (``--resume auto`` when the script offers it: plain
``--resume`` refuses a folder without a checkpoint, which a kill during start-up leaves).  The
moments come from ``random.Random(--seed)`` and include, by design and counted separately:

(a) a random delay after the launch (start-up included);
(b) a checkpoint write: the k-th checkpoint temp file (``.NAME.tmp.PID``, see
    ``gluonpan.utils.checkpoint.atomic_write``) to appear in the run folder, polled every
    ``--poll-ms``; killed at once;
(c) a validation: the ``eval`` progress bar appearing, showing an image done, or the 'evaluated N
    images' line (the child runs on a pseudo-terminal so that tqdm draws its bars), or in the last
    validation the j-th file written under ``val/``; killed within a few ms;
(d) the end: right after the last epoch's training or its checkpoint's commit, and during the
    write of the final weights.

Kills are chosen launch by launch from the state of ``killed/`` (see :class:`Scheduler`): one (c)
per validation, the (a)/(b) kills spread over the training before each validation, then (d).  A
moment that does not come is planned again, and a launch that reaches a pending validation or
the end of the last epoch before its planned moment is killed there, so machine speed (which
varies a lot on a shared box) shifts kills but never loses them.  When the kills are spent the
run finishes with ``--resume`` and the two folders are compared: the final weights bitwise,
``val_history.jsonl`` line for line, ``val/`` byte for byte, the file names (``train.log`` aside),
leftover temp files, and the exit status of every launch.  Exit status 0 only when every check
passes.  2-10 minutes on 2 cores depending on the load::

    python benchmarks/soak_resume.py [--kills 20] [--seed 0] [--workdir /tmp/soak] [--keep]

Raw console output of every launch is in ``WORKDIR/logs`` (kept with ``--keep``).
"""
import argparse
import codecs
import collections
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import pty
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

logger = logging.getLogger('soak_resume')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(ROOT, 'scripts', 'panoptic', 'train_panoptic_fpn.py')
MODEL = 'panoptic_fpn_resnet18_v1b_citys'
FINAL = MODEL + '-final.params'
#: the tiny network of tests/test_scripts.py
TINY_MODEL = dict(fpn_channels=32, sem_seg_channels=32, sem_seg_num_groups=8, rpn_channels=32,
                  rpn_train_pre_nms=300, rpn_train_post_nms=64, rpn_test_pre_nms=300,
                  rpn_test_post_nms=64, rcnn_num_sample=32, test_max_dets=20)
#: fixed for both runs whatever the caller's environment says (bitwise repeatability needs them)
CHILD_ENV = {'OMP_NUM_THREADS': '2', 'MXNET_MKLDNN_ENABLED': '1'}
#: tqdm draws every update (not every 0.1 s): the soak sees each validation image as it is done
DISPLAY_ENV = {'TQDM_MININTERVAL': '0'}
DATA = {'train': 3, 'val': 2, 'height': 128, 'width': 256}
ITERS = DATA['train']  # steps per epoch with batch size 1
TIMING_KEY = re.compile(r'time|sec|elapsed|duration', re.IGNORECASE)
KIND_NAMES = {'a': '(a) random delay after start', 'b': '(b) checkpoint write',
              'c': '(c) validation', 'd': '(d) last epoch / final weights'}


def is_temp(name):
    """Whether a file name is an atomic-write temp file (``.NAME.tmp.PID``)."""
    return '.tmp.' in name


def is_checkpoint_temp(name):
    """Whether ``name`` is the temp file of a checkpoint write (not of the final weights)."""
    return (name.startswith('.' + MODEL + '-') and is_temp(name)
            and not name.startswith('.' + FINAL))


def is_final_temp(name):
    """Whether ``name`` is the temp file of the final weights' write."""
    return name.startswith('.' + FINAL) and is_temp(name)


def run_files(folder):
    """Relative paths of every file under ``folder`` (sorted; empty when it does not exist)."""
    found = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            found.append(os.path.relpath(os.path.join(dirpath, name), folder))
    return sorted(found)


def temp_files(folder):
    """Relative paths of the temp files left anywhere under ``folder``."""
    return [p for p in run_files(folder) if is_temp(os.path.basename(p))]


def short_list(items, limit=6):
    """``items`` as one comma-separated string, cut after ``limit`` entries."""
    items = list(items)
    text = ', '.join(str(i) for i in items[:limit])
    return text + (', ... ({} in all)'.format(len(items)) if len(items) > limit else '')


# --------------------------------------------------------------------------------------------
# the child's terminal


class Console:
    """The terminal output of one launch, read on a thread, and the training events it shows.

    The child writes its log lines (and tqdm bars, because its stdout/stderr is a pseudo-terminal)
    to ``master_fd``.  :meth:`update` parses what arrived since the last call, stamping each event
    with the time its bytes were read.

    Parameters
    ----------
    master_fd : int
        Master side of the child's pseudo-terminal (closed by :meth:`close`).
    log_path : str
        Raw copy of the output.
    """

    POSITION = re.compile(r'(saved checkpoint|resumed from) .*\(epoch (\d+), iteration (\d+)')
    EPOCH_DONE = re.compile(r'\[Epoch (\d+)\] done')
    BATCH = re.compile(r'\[Epoch \d+\]\[Batch \d+')
    VAL_DONE = re.compile(r'\[Epoch (\d+)\] validation PQ')
    EVAL_BAR = re.compile(r'(?:^|\s|\x1b\[[0-9;]*[A-Za-z])eval:\s+\d+%')
    EVAL_COUNT = re.compile(r'eval:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)')
    EVALUATED = re.compile(r'evaluated (\d+) images')
    BAR = re.compile(r'\d+%\|')
    SEGMENT = re.compile(r'[\r\n]')

    def __init__(self, master_fd, log_path):
        self._fd = master_fd
        self._log = open(log_path, 'wb')
        self._chunks = []
        self._lock = threading.Lock()
        self._decoder = codecs.getincrementaldecoder('utf-8')('replace')
        self._tail = ''
        self.position = None        # (epoch, iteration) of the last checkpoint saved / resumed
        self.resumed_from = None    # (epoch, iteration) this launch resumed from
        self.epochs_done = set()    # epochs (1-based) whose training finished in this launch
        self.in_eval = False
        self.eval_epoch = None      # epochs completed when the current validation started
        self.eval_started = None
        self.eval_images = 0        # images the current validation's progress bar counted
        self.eval_scored = False    # the current validation logged 'evaluated N images'
        self.evals = []             # (start, end, epoch) of each finished validation
        self.first_checkpoint = None
        self.batches = 0            # training steps logged
        self.final_written = False
        self.last_line = ''
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while True:
            try:
                data = os.read(self._fd, 65536)
            except OSError:  # EIO: every copy of the slave side is closed (the child is gone)
                return
            if not data:
                return
            now = time.monotonic()
            self._log.write(data)
            with self._lock:
                self._chunks.append((now, data))

    def update(self):
        """Parse the output that arrived since the last call."""
        with self._lock:
            chunks, self._chunks = self._chunks, []
        for stamp, data in chunks:
            parts = self.SEGMENT.split(self._tail + self._decoder.decode(data))
            self._tail = parts.pop()
            for part in parts:
                self._segment(part, stamp)
            if self.EVAL_BAR.search(self._tail):
                self._eval_bar(self._tail, stamp)  # a bar is drawn without a line end

    def _eval_bar(self, text, stamp):
        if not self.in_eval:
            self.in_eval, self.eval_started, self.eval_images = True, stamp, 0
            self.eval_scored = False
            self.eval_epoch = self.position[0] if self.position else None
        counts = [int(m.group(1)) for m in self.EVAL_COUNT.finditer(text)]
        self.eval_images = max([self.eval_images] + counts)

    def _segment(self, text, stamp):
        if not text.strip():
            return
        if self.EVAL_BAR.search(text):
            self._eval_bar(text, stamp)
            return
        if self.BAR.search(text):
            return
        self.last_line = text.strip()
        if self.in_eval and self.EVALUATED.search(text):
            self.eval_scored = True
        match = self.POSITION.search(text)
        if match:
            self.position = (int(match.group(2)), int(match.group(3)))
            if match.group(1) == 'resumed from':
                self.resumed_from = self.position
            elif self.first_checkpoint is None:
                self.first_checkpoint = stamp
        if self.BATCH.search(text):
            self.batches += 1
        match = self.EPOCH_DONE.search(text)
        if match:
            self.epochs_done.add(int(match.group(1)) + 1)
        if self.VAL_DONE.search(text) and self.in_eval:
            self.evals.append((self.eval_started, stamp, self.eval_epoch))
            self.in_eval = False
        if 'final weights:' in text:
            self.final_written = True

    def close(self):
        """Wait for the reader (the child must be gone), parse the rest, close the files."""
        self._thread.join(timeout=10)
        self.update()
        if self._tail.strip():
            self._segment(self._tail, time.monotonic())
            self._tail = ''
        os.close(self._fd)
        self._log.close()


# --------------------------------------------------------------------------------------------
# kill plans and their triggers


@dataclasses.dataclass
class KillPlan:
    """When to kill one launch.

    Attributes
    ----------
    kind : str
        ``'a'``, ``'b'``, ``'c'`` or ``'d'`` (see the module docstring).
    variant : str
        (a) ``delay``; (b) ``ckpt-tmp``; (c) ``eval-start``, ``eval-image`` (an image's
        prediction done), ``eval-scored`` (the 'evaluated N images' line: scores, files and the
        history line still to come), ``val-file``; (d) ``last-epoch-done``,
        ``last-ckpt-commit``, ``final-tmp``.
    delay : float
        Seconds after the launch (``delay``), else a jitter after the event.
    count : int
        Which checkpoint temp file (``ckpt-tmp``), image (``eval-image``) or new file under
        ``val/`` (``val-file``).
    epoch : int
        (c): the first validation after at least this many epochs.
    """

    kind: str
    variant: str
    delay: float = 0.0
    count: int = 0
    epoch: int = 0

    def describe(self):
        """One human-readable line."""
        text = {'delay': '{:.2f} s after start'.format(self.delay),
                'ckpt-tmp': 'checkpoint temp file #{}'.format(self.count),
                'eval-start': 'start of the validation of epoch >= {}'.format(self.epoch),
                'eval-image': 'image #{} predicted in the validation of epoch >= {}'.format(
                    self.count, self.epoch),
                'eval-scored': '"evaluated" line of the validation of epoch >= {}'.format(
                    self.epoch),
                'val-file': 'file #{} written under val/ (last validation)'.format(self.count),
                'last-epoch-done': 'right after the last epoch\'s training',
                'last-ckpt-commit': 'right after the last epoch\'s checkpoint commit',
                'final-tmp': 'during the final weights write'}[self.variant]
        return '({}) {}'.format(self.kind, text)


@dataclasses.dataclass
class Timing:
    """What the uninterrupted run measured, to aim the random kill moments.

    Attributes
    ----------
    total : float
        Seconds of the whole run.
    first_checkpoint : float
        Seconds from the launch to the first saved checkpoint (start-up plus one step).
    step : float
        Seconds per training step, checkpoint included.
    validations : dict
        Epoch -> seconds its validation took.
    """

    total: float
    first_checkpoint: float
    step: float
    validations: dict

    @classmethod
    def from_console(cls, console, t0, t_end, steps):
        """Measure from the uninterrupted run's console (defaults where an event was not seen).

        Parameters
        ----------
        console : Console
            The finished run's console.
        t0, t_end : float
            ``time.monotonic()`` at its launch and exit.
        steps : int
            Its training steps.
        """
        first = console.first_checkpoint - t0 if console.first_checkpoint else 8.0
        vals = {epoch: end - start for start, end, epoch in console.evals if epoch is not None}
        step = (t_end - t0 - first - sum(vals.values())) / max(steps - 1, 1)
        return cls(total=t_end - t0, first_checkpoint=first, step=max(step, 0.1),
                   validations=vals)


def validation_epochs(epochs, val_interval):
    """Epoch counts after which the training script validates."""
    return [e for e in range(1, epochs + 1) if e % val_interval == 0 or e == epochs]


@dataclasses.dataclass
class RunState:
    """How far a (killed) run got, read from its folder.

    Attributes
    ----------
    epoch, iteration : int
        Position of its newest checkpoint record (0, 0 without one).
    recorded : set of int
        Epochs whose validation line is in ``val_history.jsonl``.
    final : bool
        The final weights exist.
    """

    epoch: int = 0
    iteration: int = 0
    recorded: set = dataclasses.field(default_factory=set)
    final: bool = False

    @classmethod
    def read(cls, run_dir):
        """The state of ``run_dir`` (unreadable history lines are ignored)."""
        state = cls(final=os.path.exists(os.path.join(run_dir, FINAL)))
        pattern = re.compile(r'^{}-(\d{{4,}})(?:-(\d{{6,}}))?\.json$'.format(re.escape(MODEL)))
        for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
            match = pattern.match(name)
            if match:
                position = (int(match.group(1)), int(match.group(2) or 0))
                state.epoch, state.iteration = max((state.epoch, state.iteration), position)
        path = os.path.join(run_dir, 'val_history.jsonl')
        for line in open(path).read().splitlines() if os.path.isfile(path) else []:
            try:
                state.recorded.add(int(json.loads(line)['epoch']))
            except (ValueError, KeyError, TypeError):
                continue
        return state

    def __str__(self):
        return 'at ({}, {}), validated {}{}'.format(self.epoch, self.iteration,
                                                    sorted(self.recorded) or 'none',
                                                    ', final weights' if self.final else '')


def _quota_key(plan):
    """The quota a plan draws on: its kind, with (d) split into 'd2' (last epoch) and 'd1'
    (final weights write)."""
    if plan.kind != 'd':
        return plan.kind
    return 'd1' if plan.variant == 'final-tmp' else 'd2'


class Scheduler:
    """Chooses the kill of each launch from what is left of the run and of the kill budget.

    The budget is split into quotas: one (c) kill per validation, two (d) kills (right after the
    last epoch, during the final weights write), the rest (b) and (a) half and half.  The filler
    (a)/(b) kills are spread over the stretches of training before each validation in proportion
    to their steps; the (c) kill of a validation comes when its stretch's fillers are spent, then
    (d) after the last epoch, (c) in the last validation and (d) in the final write.  A kill that
    does not land (the moment never came) is planned again from the new state, so timing noise
    shifts kills but never loses them; when nothing else can happen any more (the run is complete)
    the rest are (d) final-write kills and (a) kills during start-up.

    Parameters
    ----------
    kills : int
        The budget.
    rng : random.Random
        Source of every choice.
    epochs, val_interval, iters : int
        The run's ``--epochs``, ``--val-interval`` and steps per epoch.
    timing : Timing
        Measured on the uninterrupted run.
    """

    def __init__(self, kills, rng, epochs, val_interval, iters, timing):
        self.rng, self.epochs, self.iters, self.timing = rng, epochs, iters, timing
        self.vals = validation_epochs(epochs, val_interval)
        fixed = ['c'] * len(self.vals) + ['d2', 'd1']
        if kills < len(fixed):
            fixed = rng.sample(fixed, kills)
        rest = kills - len(fixed)
        self.quota = {'a': rest - rest // 2, 'b': rest // 2, 'c': fixed.count('c'),
                      'd2': fixed.count('d2'), 'd1': fixed.count('d1')}
        self.segment, self.allowance = None, 0
        self.validations_hit = set()  # validation epochs a (c) kill already aimed at

    def delivered(self, plan, val_epoch=None):
        """Count a kill that landed against its quota.

        Parameters
        ----------
        plan : KillPlan
            The plan that fired.
        val_epoch : int, optional
            (c): the validation it hit (default: the one it aimed at).
        """
        key = _quota_key(plan)
        self.quota[key] = max(self.quota[key] - 1, 0)
        if plan.kind == 'c':
            self.validations_hit.add(val_epoch or plan.epoch)

    def _filler(self, state, reach):
        """An (a) or (b) kill, drawn in proportion to what is left of each quota.

        Parameters
        ----------
        state : RunState
        reach : float
            Steps the kill should let the run advance on average (the stretch's steps left over
            its fillers left), so that the fillers spread over the stretch.
        """
        a, b = self.quota['a'], self.quota['b']
        temps = 3 * (self.epochs * self.iters - state.epoch * self.iters - state.iteration)
        if temps and self.rng.random() < b / max(a + b, 1):  # 3 temp files per checkpoint
            top = min(temps, max(2, round(6 * reach)))
            return KillPlan('b', 'ckpt-tmp', count=self.rng.randint(1, top))
        startup = max(self.timing.first_checkpoint - self.timing.step, 0.5)
        return KillPlan('a', 'delay', delay=self.rng.uniform(
            0.05, startup + 2 * max(reach, 1) * self.timing.step))

    def _validation(self, epoch):
        """A (c) kill in the first validation after at least ``epoch`` epochs, at one of its
        events (start, an image predicted, scored, a file written) plus a jitter of a few ms."""
        jitter = {'eval-start': 0.05, 'eval-image': 0.02, 'eval-scored': 0.003, 'val-file': 0.0}
        variant = self.rng.choice(list(jitter)[:3] + ['val-file'] * 2 * (epoch == self.epochs))
        count = self.rng.randint(1, 4 if variant == 'val-file' else max(DATA['val'] - 1, 1))
        return KillPlan('c', variant, epoch=epoch, count=count,
                        delay=self.rng.uniform(0.0, jitter[variant]))

    def _end(self):
        """A kill once the run has nothing but its final write (and start-up) left."""
        if self.quota['d1'] or not self.quota['a'] or self.rng.random() < 0.5:
            return KillPlan('d', 'final-tmp')
        return KillPlan('a', 'delay', delay=self.rng.uniform(0.05, 1.0))

    def _new_segment(self, state, target):
        """Fillers for the stretch up to validation ``target``: its share of those left."""
        done = state.epoch * self.iters + state.iteration
        share = (target * self.iters - done) / max(self.epochs * self.iters - done, 1)
        expected = (self.quota['a'] + self.quota['b']) * share
        self.segment = target
        self.allowance = int(expected) + (self.rng.random() < expected - int(expected))

    def guards(self, state, plan):
        """Milestones a launch with ``plan`` must not run past: if the run reaches one first, it
        is killed there instead (so a long delay never skips a validation or the end)."""
        done = state.epoch * self.iters + state.iteration
        target = self._target(state) if done < self.epochs * self.iters else self.epochs
        found = []
        if target < self.epochs and self._wants_validation(target):
            found.append(KillPlan('c', 'eval-start', epoch=target))
        if target == self.epochs:
            if done < self.epochs * self.iters and self.quota['d2']:
                found.append(KillPlan('d', 'last-epoch-done'))
            if self.quota['c'] and self.epochs not in state.recorded:
                found.append(KillPlan('c', 'eval-start', epoch=self.epochs))
            if self.quota['d1']:
                found.append(KillPlan('d', 'final-tmp'))
        return [g for g in found if _quota_key(g) != _quota_key(plan)]

    def _wants_validation(self, epoch):
        """A (c) kill is due in the validation of ``epoch`` (one each while the quota lasts)."""
        return self.quota['c'] > 0 and epoch not in self.validations_hit

    def _target(self, state):
        """The next validation epoch the run has not recorded (or not reached)."""
        done = state.epoch * self.iters + state.iteration
        return next(v for v in self.vals if v * self.iters > done
                    or (v * self.iters == done and v not in state.recorded))

    def next_plan(self, state):
        """The kill for a launch that starts from ``state``."""
        done = state.epoch * self.iters + state.iteration
        if done < self.epochs * self.iters:
            target = self._target(state)
            if target != self.segment:
                self._new_segment(state, target)
            fillers = self.quota['a'] + self.quota['b']
            if self.allowance > 0 and fillers:
                reach = (target * self.iters - done) / self.allowance
                self.allowance -= 1
                return self._filler(state, reach)
            if target < self.epochs and self._wants_validation(target):
                return self._validation(target)
            if target == self.epochs and self.quota['d2']:
                return KillPlan('d', self.rng.choice(['last-epoch-done', 'last-ckpt-commit']))
            if fillers:
                return self._filler(state, 1)
            if self.quota['c']:
                return self._validation(self.epochs)
            return KillPlan('d', 'final-tmp')
        if self.epochs not in state.recorded and self.quota['c']:
            return self._validation(self.epochs)
        return self._end()


def _val_state(run_dir):
    """``{relative path: (size, mtime_ns)}`` of the files under ``run_dir/val``."""
    state = {}
    folder = os.path.join(run_dir, 'val')
    for rel in run_files(folder):
        try:
            st = os.stat(os.path.join(folder, rel))
        except FileNotFoundError:  # renamed away between the listing and the stat
            continue
        state[rel] = (st.st_size, st.st_mtime_ns)
    return state


class Trigger:
    """Decides, poll after poll, whether the moment of a :class:`KillPlan` has come.

    Parameters
    ----------
    plan : KillPlan
    run_dir : str
        The run folder (``--save-dir``) of the launch.
    epochs : int
        The run's ``--epochs``.
    strict : bool, default False
        A (c) trigger fires only inside its validation (a guard), never just after it ended.
    """

    def __init__(self, plan, run_dir, epochs, strict=False):
        self.plan = plan
        self.strict = strict
        self.run_dir = run_dir
        self.epochs = epochs
        self.seen = set()
        self.before = set(temp_files(run_dir))  # left by an earlier kill: not this launch's
        self._val_before = _val_state(run_dir) if plan.variant == 'val-file' else None
        self._last_json = os.path.join(run_dir, '{}-{:04d}.json'.format(MODEL, epochs))
        self._last_json_existed = os.path.exists(self._last_json)
        self._event = None

    def due(self, elapsed, console):
        """Whether to kill now.

        Parameters
        ----------
        elapsed : float
            Seconds since the launch.
        console : Console
            The launch's console, already updated.
        """
        return getattr(self, '_' + self.plan.variant.replace('-', '_'))(elapsed, console)

    def _names(self):
        try:
            return os.listdir(self.run_dir)
        except FileNotFoundError:
            return []

    def _delay(self, elapsed, console):
        return elapsed >= self.plan.delay

    def _ckpt_tmp(self, elapsed, console):
        self.seen.update(n for n in self._names() if is_checkpoint_temp(n) and n not in self.before)
        return len(self.seen) >= self.plan.count

    def _in_target_validation(self, console):
        return console.in_eval and (console.eval_epoch is None
                                    or console.eval_epoch >= self.plan.epoch)

    def _target_validation_ended(self, console):
        """The aimed-at validation ended before its moment: then kill at once, just after it."""
        return not self.strict and any(epoch is None or epoch >= self.plan.epoch
                                       for _, _, epoch in console.evals)

    def _after(self, event_time):
        """The plan's jitter has passed since ``event_time`` (a ``time.monotonic()`` value)."""
        if self._event is None:
            self._event = event_time
        return time.monotonic() - self._event >= self.plan.delay

    def _eval_start(self, elapsed, console):
        if self._in_target_validation(console):
            return self._after(console.eval_started)
        return self._target_validation_ended(console)

    def _eval_image(self, elapsed, console):
        if self._in_target_validation(console) and console.eval_images >= self.plan.count:
            return self._after(time.monotonic())
        return self._target_validation_ended(console)

    def _eval_scored(self, elapsed, console):
        if self._in_target_validation(console) and console.eval_scored:
            return self._after(time.monotonic())
        return self._target_validation_ended(console)

    def _val_file(self, elapsed, console):
        if not self._in_target_validation(console):
            return self._target_validation_ended(console)
        for rel, state in _val_state(self.run_dir).items():
            if self._val_before.get(rel) != state:
                self.seen.add((rel, state))
        return len(self.seen) >= self.plan.count

    def _last_epoch_done(self, elapsed, console):
        return self.epochs in console.epochs_done

    def _last_ckpt_commit(self, elapsed, console):
        return not self._last_json_existed and os.path.exists(self._last_json)

    def _final_tmp(self, elapsed, console):
        return any(is_final_temp(n) and n not in self.before for n in self._names())


# --------------------------------------------------------------------------------------------
# launches


@dataclasses.dataclass
class LaunchResult:
    """What happened to one launch of the training script.

    Attributes
    ----------
    index : int
        0 for the first launch of ``killed/``.
    resume : str
        Its resume flags (``''``, ``'--resume'`` or ``'--resume auto'``).
    plan : KillPlan or None
        ``None`` for a launch left to finish.
    killed : bool
        Killed by the soak (SIGKILL delivered while it ran).
    returncode : int
    seconds : float
        Launch to kill / exit.
    note : str
        What the kill hit (or why it did not happen).
    confirmed : bool
        The kill landed in the phase the plan aimed at (mid-write, mid-validation ...).
    resumed_from : tuple or None
        ``(epoch, iteration)`` the launch resumed from.
    last_line : str
        The last log line the child printed.
    timed_out : bool
        Killed because it ran longer than the timeout.
    guarded : bool
        Killed at a guard (a milestone came before the planned moment; ``plan`` is the guard's).
    hit : str
        Short label of what the kill hit (tallied in the summary).
    console : Console
        Its parsed console (event times are ``time.monotonic()`` values).
    t0 : float
        ``time.monotonic()`` at the launch.
    """

    index: int
    resume: str
    plan: object
    killed: bool = False
    returncode: int = None
    seconds: float = 0.0
    note: str = ''
    confirmed: bool = False
    resumed_from: tuple = None
    last_line: str = ''
    timed_out: bool = False
    guarded: bool = False
    hit: str = ''
    console: object = dataclasses.field(default=None, repr=False)
    t0: float = 0.0


def train_command(data_dir, save_dir, epochs, val_interval, resume):
    """The tiny CPU training command line (the model and flags of tests/test_scripts.py).

    Parameters
    ----------
    data_dir, save_dir : str
        ``--dataset-root`` and ``--save-dir``.
    epochs, val_interval : int
        ``--epochs`` and ``--val-interval``.
    resume : list of str
        Appended as they are: ``[]``, ``['--resume']`` or ``['--resume', 'auto']``.
    """
    cmd = [sys.executable, TRAIN_SCRIPT, '--dataset', 'synthetic', '--dataset-root', data_dir,
           '--network', 'resnet18_v1b', '--gpus', '', '--num-workers', '0',
           '--crop-size', '64x128', '--scale-range', '0.5,0.5', '--norm-layer', 'bn',
           '--model-kwargs', json.dumps(TINY_MODEL), '--lr', '0.01', '--lr-warmup', '2',
           '--log-interval', '1', '--batch-size', '1', '--epochs', str(epochs),
           '--ckpt-interval', '1', '--val-interval', str(val_interval), '--val-overlays', '1',
           '--save-dir', save_dir]
    return cmd + list(resume)


def resume_flags(choice):
    """The flags of a relaunch: ``--resume auto`` or plain ``--resume``.

    Parameters
    ----------
    choice : str
        ``'plain'``, ``'auto'``, or ``'detect'``: ``auto`` when the training script's ``--help``
        offers it (plain ``--resume`` is then an error in a folder without a checkpoint, which a
        kill during start-up leaves), else plain.
    """
    if choice == 'detect':
        out = subprocess.run([sys.executable, TRAIN_SCRIPT, '--help'], env=child_env(), cwd=ROOT,
                             capture_output=True, text=True)
        choice = 'auto' if re.search(r'--resume \[?auto', out.stdout) else 'plain'
    return ['--resume', 'auto'] if choice == 'auto' else ['--resume']


def child_env():
    """The caller's environment, the fixed threads / MKL-DNN settings, the repo on the path."""
    env = dict(os.environ, **CHILD_ENV, **DISPLAY_ENV)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


class Launch:
    """One training process on a pseudo-terminal, in its own session.

    Parameters
    ----------
    cmd : list of str
    log_path : str
        Where its raw terminal output goes.
    """

    def __init__(self, cmd, log_path):
        master, slave = pty.openpty()
        # tqdm draws nothing on a terminal of width 0 (a fresh pty's): give it 50 x 120
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 120, 0, 0))
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                         env=child_env(), cwd=ROOT, start_new_session=True)
        finally:
            os.close(slave)
        self.console = Console(master, log_path)

    def elapsed(self):
        """Seconds since the launch."""
        return time.monotonic() - self.t0

    def kill(self):
        """SIGKILL the process (its own process group: it and anything it started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def finish(self):
        """Wait for the exit, drain the console; returns the exit status."""
        code = self.proc.wait()
        self.console.close()
        return code


def _phase(console, temps):
    """What a process was doing when it died, from its console and the temp files it left."""
    if console.in_eval:
        return 'validation'
    names = [os.path.basename(t) for t in temps]
    if any(is_final_temp(n) for n in names):
        return 'final weights write'
    if any(is_checkpoint_temp(n) for n in names):
        return 'checkpoint write'
    if temps:
        return 'file write'
    if console.final_written:
        return 'exit'
    return 'training' if console.batches or console.resumed_from else 'start-up'


def _describe_kill(plan, run_dir, console, epochs, before):
    """What the kill of ``plan`` hit, judged once the child is gone.

    Parameters
    ----------
    plan : KillPlan
    run_dir : str
    console : Console
        The dead child's console, drained.
    epochs : int
        The run's ``--epochs``.
    before : set of str
        Temp files that were there before the launch (not its own).

    Returns
    -------
    confirmed : bool
        The kill landed in the phase the plan aimed at.
    note : str
        One line for the log.
    hit : str
        A short label of the moment, tallied in the summary.
    """
    temps = [t for t in temp_files(run_dir) if t not in before]
    left = ' (left {})'.format(short_list(temps)) if temps else ''
    if plan.variant == 'ckpt-tmp':
        hit = [t for t in temps if is_checkpoint_temp(os.path.basename(t))]
        if not hit:
            return False, 'between checkpoint files' + left, 'between files'
        ext = hit[0].split('.tmp.')[0].rsplit('.', 1)[-1]
        return True, 'mid-write of ' + short_list(hit) + left, '.' + ext
    if plan.kind == 'c':
        if not console.in_eval:
            return False, 'just after the validation ended' + left, 'after its end'
        stage = 'scored' if console.eval_scored else '{} image{} done'.format(
            console.eval_images, 's' * (console.eval_images != 1))
        return True, 'mid-validation of epoch {}, {}{}'.format(console.eval_epoch, stage,
                                                               left), stage
    if plan.variant == 'final-tmp':
        if any(is_final_temp(os.path.basename(t)) for t in temps):
            return True, 'mid-write of the final weights' + left, 'mid-write'
        return False, 'just after the final weights write' + left, 'after the write'
    if plan.kind == 'd':
        last = os.path.exists(os.path.join(run_dir, '{}-{:04d}.json'.format(MODEL, epochs)))
        hit = 'checkpoint committed' if last else 'before its checkpoint'
        return True, 'last epoch trained, {}; {}{}'.format(hit, _phase(console, temps), left), hit
    phase = _phase(console, temps)
    return True, '{}; last line: {}{}'.format(phase, console.last_line[-80:], left), phase


def run_launch(index, cmd, run_dir, log_path, plan, epochs, poll, timeout, guards=()):
    """Launch the training once and kill it at the moment ``plan`` names (or let it finish).

    Parameters
    ----------
    index : int
        Launch number (for the log).
    cmd : list of str
        The command, ``--resume`` included when wanted.
    run_dir : str
        Its ``--save-dir``.
    log_path : str
        Raw console copy.
    plan : KillPlan or None
        ``None``: no kill, wait for the exit.
    epochs : int
        The run's ``--epochs``.
    poll : float
        Seconds between two looks at the trigger.
    timeout : float
        A launch still running after this long is killed and marked as timed out.
    guards : list of KillPlan
        Moments to kill at instead if they come first (the result then carries the guard's plan).

    Returns
    -------
    LaunchResult
    """
    result = LaunchResult(index=index, resume=' '.join(cmd[cmd.index('--resume'):])
                          if '--resume' in cmd else '', plan=plan)
    launch = Launch(cmd, log_path)
    triggers = [Trigger(p, run_dir, epochs, strict=i > 0)
                for i, p in enumerate([plan] + list(guards) if plan else [])]
    before = triggers[0].before if triggers else set()
    try:
        while launch.proc.poll() is None:
            launch.console.update()
            fired = next((t for t in triggers if t.due(launch.elapsed(), launch.console)), None)
            if fired:
                launch.kill()
                result.killed, result.guarded = True, fired is not triggers[0]
                result.plan = plan = fired.plan
                break
            if launch.elapsed() > timeout:
                launch.kill()
                result.timed_out = True
                break
            time.sleep(poll)
        result.seconds = launch.elapsed()
    finally:
        if launch.proc.poll() is None and not (result.killed or result.timed_out):
            launch.kill()  # interrupted (e.g. Ctrl-C): never leave a child running
        result.returncode = launch.finish()
    console = launch.console
    result.killed = result.killed and result.returncode == -signal.SIGKILL
    result.resumed_from, result.last_line = console.resumed_from, console.last_line
    if result.timed_out:
        result.note = 'timed out after {:.0f} s'.format(timeout)
    elif result.killed:
        result.confirmed, result.note, result.hit = _describe_kill(plan, run_dir, console,
                                                                   epochs, before)
        if result.guarded:
            result.note += ' [guard: the run got there before the planned moment]'
    elif plan:
        result.note = 'not killed: exited with status {} before the moment came'.format(
            result.returncode)
    else:
        result.note = 'ran to the end (status {})'.format(result.returncode)
    result.console, result.t0 = console, launch.t0
    return result


def log_launch(result, delivered, wanted, state):
    """One progress line per launch."""
    what = result.plan.describe() if result.plan else 'no kill'
    logger.info('launch %d%s [run %s] %s -> %s at %.2f s, status %s: %s (kills %d/%d)',
                result.index + 1, ' ' + result.resume if result.resume else '', state, what,
                'killed' if result.killed else 'exited', result.seconds, result.returncode,
                result.note, delivered, wanted)


# --------------------------------------------------------------------------------------------
# comparisons


@dataclasses.dataclass
class Check:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str = ''


def _load_params(path):
    import mxnet as mx  # only here: the soak itself needs no MXNet until the comparison
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def check_weights(straight, killed):
    """The final weights, loaded with ``mx.nd.load``, bitwise equal (dtype, shape and bytes)."""
    paths = [os.path.join(d, FINAL) for d in (straight, killed)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        return Check('final weights bitwise equal', False, 'missing: ' + short_list(missing))
    a, b = (_load_params(p) for p in paths)
    if a.keys() != b.keys():
        return Check('final weights bitwise equal', False, 'different names: {}'.format(
            short_list(sorted(set(a) ^ set(b)))))
    diff = [k for k in sorted(a) if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
            or a[k].tobytes() != b[k].tobytes()]
    if diff:
        worst = max((float(abs(a[k].astype('float64') - b[k].astype('float64')).max())
                     for k in diff if a[k].shape == b[k].shape), default=float('nan'))
        return Check('final weights bitwise equal', False, '{} of {} arrays differ ({}), '
                     'max |diff| {:.3g}'.format(len(diff), len(a), short_list(diff, 3), worst))
    same_file = _read(paths[0]) == _read(paths[1])
    return Check('final weights bitwise equal', True, '{} arrays{}'.format(
        len(a), ', files byte-equal' if same_file else ', files differ in bytes'))


def check_history(straight, killed):
    """``val_history.jsonl`` equal line for line."""
    name = 'val_history.jsonl line for line'
    lines = []
    for folder in (straight, killed):
        path = os.path.join(folder, 'val_history.jsonl')
        lines.append(open(path).read().splitlines() if os.path.isfile(path) else None)
    if None in lines:
        return Check(name, False, '{}/ has no val_history.jsonl'.format(
            'killed' if lines[1] is None else 'straight'))
    if lines[0] == lines[1]:
        return Check(name, True, '{} lines'.format(len(lines[0])))

    def epochs(rows):
        """The ``epoch`` of each history line."""
        out = []
        for row in rows:
            try:
                out.append(json.loads(row).get('epoch'))
            except ValueError:
                out.append('unparsable')
        return out

    differ = sum(1 for x, y in zip(*lines) if x != y)
    return Check(name, False, 'epochs straight {} vs killed {}; {} common lines differ'.format(
        epochs(lines[0]), epochs(lines[1]), differ))


def _strip_timing(value):
    """``value`` (parsed JSON) without keys that look like timings; also returns those keys."""
    if isinstance(value, dict):
        kept, dropped = {}, []
        for key, item in value.items():
            if TIMING_KEY.search(str(key)):
                dropped.append(key)
            else:
                kept[key], sub = _strip_timing(item)
                dropped += sub
        return kept, dropped
    if isinstance(value, list):
        pairs = [_strip_timing(v) for v in value]
        return [p[0] for p in pairs], [k for p in pairs for k in p[1]]
    return value, []


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def check_files(straight, killed, name, pattern):
    """The files under ``val/`` matching ``pattern`` (a regex on the relative path) byte-equal."""
    want = [p for p in run_files(straight) if re.fullmatch(pattern, p)]
    have = [p for p in run_files(killed) if re.fullmatch(pattern, p)]
    if not want:
        return Check(name, False, 'straight/ has no such file')
    if want != have:
        return Check(name, False, 'straight has {}, killed has {}'.format(
            short_list(want, 3) or 'none', short_list(have, 3) or 'none'))
    diff = [p for p in want if _read(os.path.join(straight, p)) != _read(os.path.join(killed, p))]
    if diff:
        return Check(name, False, 'bytes differ: ' + short_list(diff, 3))
    return Check(name, True, '{} file{} byte-equal'.format(len(want), 's' * (len(want) > 1)))


def check_pq(straight, killed):
    """``val/pq.json`` byte-equal, or equal apart from timing fields when it has some."""
    name = 'val/pq.json'
    paths = [os.path.join(d, 'val', 'pq.json') for d in (straight, killed)]
    missing = [d for d, p in zip(('straight', 'killed'), paths) if not os.path.isfile(p)]
    if missing:
        return Check(name, False, 'missing in {}/'.format(' and '.join(missing)))
    if _read(paths[0]) == _read(paths[1]):
        return Check(name, True, 'byte-equal')
    try:
        a, b = (json.loads(_read(p)) for p in paths)
    except ValueError as err:
        return Check(name, False, 'unparsable in killed/ ({})'.format(err))
    (a, timing), (b, _) = _strip_timing(a), _strip_timing(b)
    if timing and a == b:
        return Check(name, True, 'equal apart from timing fields {}'.format(
            short_list(sorted(set(timing)))))
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return Check(name, False, 'differs in {}'.format(short_list(keys)))


def check_names(straight, killed):
    """The same file names in both run folders, ``train.log`` aside."""
    a = set(run_files(straight)) - {'train.log'}
    b = set(run_files(killed)) - {'train.log'}
    if a == b:
        return Check('file names (train.log aside)', True, '{} files'.format(len(a)))
    parts = []
    if a - b:
        parts.append('only in straight: ' + short_list(sorted(a - b)))
    if b - a:
        parts.append('only in killed: ' + short_list(sorted(b - a)))
    return Check('file names (train.log aside)', False, '; '.join(parts))


def check_temps(straight, killed):
    """No temp file left anywhere in either run folder."""
    left = ['killed/' + p for p in temp_files(killed)] + ['straight/' + p
                                                          for p in temp_files(straight)]
    return Check('no leftover temp files', not left, short_list(left) if left else 'none')


def check_kills(results, wanted):
    """At least ``wanted`` kills were delivered (a moment that never came is planned again)."""
    delivered = sum(r.killed for r in results)
    missed = [r for r in results if r.plan and not r.killed]
    detail = '{} delivered'.format(delivered)
    if missed:
        detail += '; {} planned moments never came (replanned): {}'.format(len(missed), ', '.join(
            sorted({'({}) {}'.format(r.plan.kind, r.plan.variant) for r in missed})))
    return Check('at least {} kills'.format(wanted), delivered >= wanted, detail)


def check_exits(results):
    """Every launch the soak did not kill exited with status 0; the last one finished the run."""
    bad = ['launch {}: status {}{}, last line: {}'.format(
        r.index + 1, r.returncode, ' (timed out)' if r.timed_out else '', r.last_line[-120:])
        for r in results if not r.killed and r.returncode != 0]
    if results and results[-1].killed:
        bad.append('the last launch did not finish')
    return Check('exit status 0 unless killed', not bad, '; '.join(bad) if bad else '{} launches, '
                 '{} killed, the rest status 0'.format(len(results),
                                                       sum(r.killed for r in results)))


def compare(straight, killed, results, wanted):
    """Every check of the soak, in the order of the summary."""
    return [check_kills(results, wanted), check_exits(results), check_weights(straight, killed),
            check_history(straight, killed),
            check_files(straight, killed, 'val/panoptic_pred.json', r'val/panoptic_pred\.json'),
            check_files(straight, killed, 'val/panoptic_pred/*.png', r'val/panoptic_pred/[^/]+'),
            check_pq(straight, killed),
            check_files(straight, killed, 'val/overlays/*.png', r'val/overlays/[^/]+'),
            check_names(straight, killed), check_temps(straight, killed)]


def args_json_note(straight, killed):
    """Informational: keys of ``args.json`` that differ between the runs, ``save_dir`` aside."""
    try:
        a, b = (json.loads(_read(os.path.join(d, 'args.json'))) for d in (straight, killed))
    except (OSError, ValueError) as err:
        return 'unreadable: {}'.format(err)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k != 'save_dir')
    return 'differs in {}'.format(keys) if keys else 'identical apart from save_dir'


# --------------------------------------------------------------------------------------------
# the soak


def source_digest():
    """SHA-256 over the package and training-script sources (edits during a soak are reported)."""
    digest = hashlib.sha256()
    for folder in ('gluonpan', os.path.join('scripts', 'panoptic')):
        for rel in run_files(os.path.join(ROOT, folder)):
            if rel.endswith(('.py', '.json')):
                digest.update(rel.encode())
                digest.update(_read(os.path.join(ROOT, folder, rel)))
    return digest.hexdigest()[:12]


def ensure_dataset(data_dir):
    """Generate the tiny synthetic Cityscapes (3 train, 2 val images of 128x256) unless present."""
    if os.path.isfile(os.path.join(data_dir, 'gtFine', 'cityscapes_panoptic_val.json')):
        logger.info('dataset: %s (existing)', data_dir)
        return
    cmd = [sys.executable, '-m', 'gluonpan.data.synthetic', '--root', data_dir]
    for key, value in DATA.items():
        cmd += ['--' + key, str(value)]
    subprocess.run(cmd, env=child_env(), cwd=ROOT, check=True, capture_output=True)
    logger.info('dataset: %s (generated)', data_dir)


def run_straight(workdir, data_dir, args):
    """The uninterrupted run; returns its folder and its :class:`Timing` (raises if it failed)."""
    straight = os.path.join(workdir, 'straight')
    cmd = train_command(data_dir, straight, args.epochs, args.val_interval, resume=[])
    logger.info('uninterrupted run into %s', straight)
    result = run_launch(0, cmd, straight, os.path.join(workdir, 'logs', 'straight.log'), None,
                        args.epochs, args.poll_ms / 1000.0, timeout=1800)
    if result.returncode != 0 or not os.path.isfile(os.path.join(straight, FINAL)):
        raise RuntimeError('the uninterrupted run failed (status {}): {}; see {}'.format(
            result.returncode, result.last_line, os.path.join(workdir, 'logs', 'straight.log')))
    return straight, Timing.from_console(result.console, result.t0, result.t0 + result.seconds,
                                         args.epochs * ITERS)


def run_killed(workdir, data_dir, args, scheduler, timing, resume):
    """Launch, kill as ``scheduler`` says, relaunch until ``--kills`` kills landed, then finish.

    Parameters
    ----------
    workdir, data_dir : str
        The soak's folder and the dataset.
    args : argparse.Namespace
        The soak's arguments.
    scheduler : Scheduler
        Chooses each launch's kill from the run's state.
    timing : Timing
        Of the uninterrupted run (sets the per-launch timeout).
    resume : list of str
        The resume flags of every launch but the first.

    Returns
    -------
    str, list of LaunchResult
        The run folder and every launch, the final (unkilled) one last.
    """
    killed = os.path.join(workdir, 'killed')
    poll = args.poll_ms / 1000.0
    timeout = max(120.0, 4 * timing.total)
    results, delivered = [], 0
    while delivered < args.kills and len(results) < 4 * args.kills + 10:
        state = RunState.read(killed)
        plan = scheduler.next_plan(state)
        result = run_launch(len(results), train_command(
            data_dir, killed, args.epochs, args.val_interval, resume if results else []),
            killed, os.path.join(workdir, 'logs', 'killed_{:02d}.log'.format(len(results))),
            plan, args.epochs, poll, timeout, scheduler.guards(state, plan))
        if result.killed:
            # a guard's kill counts as the guard's kind
            scheduler.delivered(result.plan, result.console.eval_epoch)
            delivered += 1
        log_launch(result, delivered, args.kills, state)
        results.append(result)
    result = run_launch(len(results), train_command(
        data_dir, killed, args.epochs, args.val_interval, resume), killed,
        os.path.join(workdir, 'logs', 'killed_{:02d}.log'.format(len(results))), None,
        args.epochs, poll, timeout)
    log_launch(result, delivered, args.kills, RunState.read(killed))
    return killed, results + [result]


def kill_table(results):
    """Rows ``(kind name, planned, delivered, confirmed, what the kills hit)`` per kind."""
    rows = []
    for kind, label in KIND_NAMES.items():
        mine = [r for r in results if r.plan and r.plan.kind == kind]
        hits = collections.Counter(r.hit for r in mine if r.killed)
        rows.append((label, len(mine), sum(r.killed for r in mine),
                     sum(r.killed and r.confirmed for r in mine),
                     ', '.join('{} {}'.format(n, h) for h, n in hits.most_common())))
    return rows


def summary(args, results, checks, timing, wall, notes):
    """The verdict as one multi-line string."""
    lines = ['kill-and-resume soak: {} launches ({} resumes), {} kills, seed {}, '
             'wall time {:.0f} s (uninterrupted run {:.1f} s)'.format(
                 len(results), sum(bool(r.resume) for r in results), sum(r.killed for r in results),
                 args.seed, wall, timing.total), '',
             '{:<34} {:>7} {:>9} {:>9}  {}'.format('kill moment', 'planned', 'delivered',
                                                   'confirmed', 'what the kills hit')]
    for label, planned, delivered, confirmed, hits in kill_table(results):
        lines.append('{:<34} {:>7} {:>9} {:>9}  {}'.format(label, planned, delivered, confirmed,
                                                          hits))
    lines.append('(planned: launches aimed at that moment, a moment that never came is planned '
                 'again; confirmed: (b) its checkpoint temp file was still there after the kill, '
                 '(c) the validation had not ended, (d) the final weights temp file was there)')
    lines += ['', '{:<34} {:<6} {}'.format('check', 'result', 'detail')]
    for check in checks:
        lines.append('{:<34} {:<6} {}'.format(check.name, 'PASS' if check.ok else 'FAIL',
                                              check.detail))
    lines += [''] + ['{:<34} {:<6} {}'.format(name, 'INFO', text) for name, text in notes]
    verdict = all(c.ok for c in checks)
    lines += ['', 'RESULT: {}'.format('PASS' if verdict else 'FAIL ({} of {} checks)'.format(
        sum(not c.ok for c in checks), len(checks)))]
    return '\n'.join(lines)


def parse_args(argv=None):
    """Command line of the soak."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--kills', type=int, default=20, help='SIGKILLs of the training (>= 1)')
    p.add_argument('--seed', type=int, default=0, help='seed of the kill moments')
    p.add_argument('--workdir', default=None,
                   help='dataset, run folders and console logs (default: a new temp folder); '
                        'a dataset there is reused, its straight/, killed/ and logs/ are replaced')
    p.add_argument('--keep', action='store_true',
                   help='keep the run folders and console logs (default: delete them)')
    p.add_argument('--epochs', type=int, default=16, help='training epochs (3 steps each)')
    p.add_argument('--val-interval', type=int, default=6, help='validate every N epochs (and after '
                   'the last)')
    p.add_argument('--poll-ms', type=float, default=2.0, help='trigger polling period')
    p.add_argument('--resume-arg', choices=['detect', 'auto', 'plain'], default='detect',
                   help='relaunch with "--resume auto" or plain "--resume" (detect: auto when '
                        'the training script offers it)')
    args = p.parse_args(argv)
    if args.kills < 1 or args.epochs < 1 or args.val_interval < 1 or args.poll_ms <= 0:
        p.error('--kills, --epochs and --val-interval must be >= 1 and --poll-ms > 0')
    return args


def prepare_workdir(workdir):
    """Create the work folder; remove run folders and logs of an earlier soak."""
    os.makedirs(workdir, exist_ok=True)
    for name in ('straight', 'killed', 'logs'):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    os.makedirs(os.path.join(workdir, 'logs'))


def cleanup(workdir, created):
    """Delete what the soak wrote (all of a temp work folder; the runs and logs otherwise)."""
    if created:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for name in ('straight', 'killed', 'logs'):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)


def soak(args, workdir):
    """Run the whole soak in ``workdir``; returns ``(passed, summary text)``."""
    tic = time.monotonic()
    digest = source_digest()
    prepare_workdir(workdir)
    data_dir = os.path.join(workdir, 'data')
    ensure_dataset(data_dir)
    straight, timing = run_straight(workdir, data_dir, args)
    logger.info('uninterrupted run: %.1f s, first checkpoint after %.1f s, %.2f s per step, '
                'validations %s', timing.total, timing.first_checkpoint, timing.step,
                {e: round(s, 2) for e, s in sorted(timing.validations.items())})
    scheduler = Scheduler(args.kills, random.Random(args.seed), args.epochs, args.val_interval,
                          ITERS, timing)
    logger.info('kill quotas: %s', scheduler.quota)
    resume = resume_flags(args.resume_arg)
    logger.info('relaunches use %s', ' '.join(resume))
    killed, results = run_killed(workdir, data_dir, args, scheduler, timing, resume)
    checks = compare(straight, killed, results, args.kills)
    after = source_digest()
    notes = [('relaunch flags', ' '.join(resume)),
             ('args.json', args_json_note(straight, killed)),
             ('sources during the soak', 'unchanged ({})'.format(digest) if after == digest else
              'CHANGED ({} -> {}): the runs may mix code versions'.format(digest, after)),
             ('work folder', workdir if args.keep else '{} (deleted; --keep keeps it)'.format(
                 workdir))]
    text = summary(args, results, checks, timing, time.monotonic() - tic, notes)
    return all(c.ok for c in checks), text


def main(argv=None):
    """Entry point; returns the exit status (0: every check passed)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    created = args.workdir is None
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='gluonpan_soak_'))
    try:
        passed, text = soak(args, workdir)
    except BaseException:
        logger.error('soak aborted; its files stay in %s', workdir)
        raise
    if not args.keep:
        cleanup(workdir, created)
    logger.info('summary\n%s', text)
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())

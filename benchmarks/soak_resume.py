"""Kill-and-resume soak of the training script (issue 15).

A tiny Panoptic FPN (CPU, batch 1, a checkpoint every step) is trained on synthetic images
uninterrupted into ``straight/``, and into ``killed/`` while it is SIGKILLed at least ``--kills``
times, each kill followed by a relaunch with ``--resume auto``, at moments drawn with
``random.Random(--seed)``: (a) a delay after the launch; (b) the n-th checkpoint temp file
``.NAME.tmp.PID`` appearing; (c) a small delay after a validation starts (confirmed when
``val_history.jsonl`` still lacks its epoch), once per validation; (d) twice, the final weights'
temp file appearing or the last epoch's checkpoint committed.  A moment that never comes is
planned again; kills count when confirmed.  Exit status 0 only when every check passes::

    python benchmarks/soak_resume.py [--kills 20] [--seed 0] [--workdir DIR] [--keep]
"""
import argparse
import fnmatch
import json
import logging
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

logger = logging.getLogger('soak_resume')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(ROOT, 'scripts', 'panoptic', 'train_panoptic_fpn.py')
MODEL = 'panoptic_fpn_resnet18_v1b_citys'
FINAL = MODEL + '-final.params'
TINY_MODEL = dict(fpn_channels=32, sem_seg_channels=32, sem_seg_num_groups=8, rpn_channels=32,
                  rpn_train_pre_nms=300, rpn_train_post_nms=64, rpn_test_pre_nms=300,
                  rpn_test_post_nms=64, rcnn_num_sample=32, test_max_dets=20)
#: the children's environment: fixed threads and MKL-DNN (bitwise repeatability), the repository
ENV = dict(os.environ, OMP_NUM_THREADS='2', MXNET_MKLDNN_ENABLED='1',
           PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
DATA = {'train': 3, 'val': 2, 'height': 128, 'width': 256}
ITERS = DATA['train']  # steps per epoch with batch size 1
TEMP = re.compile(r'^\..+\.tmp\.(\d+)$')
CKPT_TEMP = re.compile(r'^\.' + MODEL + r'-[\d-]+\.(?:params|states|json)\.tmp\.(\d+)$')
EVENTS = {'saved': re.compile(r'saved checkpoint .*\(epoch (\d+), iteration (\d+),'),
          'val': re.compile(r'the validation after epoch (\d+) was not recorded'),
          'val_done': re.compile(r'\[Epoch (\d+)\] validation PQ')}
KINDS = {'a': '(a) delay after start', 'b': '(b) checkpoint write', 'c': '(c) validation',
         'd': '(d) final weights'}
VAL_FILES = ['val/panoptic_pred.json', 'val/panoptic_pred/*.png', 'val/pq.json',
             'val/overlays/*.png']


def train_command(data_dir, save_dir, args, resume):
    """The tiny CPU training command line; ``resume`` adds ``--resume auto``."""
    cmd = [sys.executable, TRAIN_SCRIPT, '--dataset', 'synthetic', '--dataset-root', data_dir,
           '--network', 'resnet18_v1b', '--gpus', '', '--num-workers', '0',
           '--crop-size', '64x128', '--scale-range', '0.5,0.5', '--norm-layer', 'bn',
           '--model-kwargs', json.dumps(TINY_MODEL), '--lr', '0.01', '--lr-warmup', '2',
           '--log-interval', '1', '--batch-size', '1', '--epochs', str(args.epochs),
           '--ckpt-interval', '1', '--val-interval', str(args.val_interval),
           '--val-overlays', '1', '--save-dir', save_dir]
    return cmd + (['--resume', 'auto'] if resume else [])


def run_files(folder):
    """Sorted relative paths of every file under ``folder``."""
    return sorted(os.path.relpath(os.path.join(d, n), folder)
                  for d, _, names in os.walk(folder) for n in names)


def read(path):
    """The bytes of ``path``, ``None`` when it is missing."""
    return pathlib.Path(path).read_bytes() if os.path.isfile(path) else None


def recorded(run_dir):
    """The epochs with a line in ``run_dir/val_history.jsonl``."""
    text = read(os.path.join(run_dir, 'val_history.jsonl')) or b''
    return {json.loads(line)['epoch'] for line in text.splitlines() if line.strip()}


def steps_done(run_dir):
    """Training steps of the newest checkpoint record in ``run_dir`` (0 without one)."""
    pattern = re.compile(r'^{}-(\d{{4,}})(?:-(\d{{6,}}))?\.json$'.format(MODEL))
    found = [pattern.match(n) for n in (os.listdir(run_dir) if os.path.isdir(run_dir) else [])]
    return max([int(m.group(1)) * ITERS + int(m.group(2) or 0) for m in found if m] + [0])


class Launch:
    """One training process (``cmd``, console into ``out_path``) writing into ``run_dir``."""

    def __init__(self, cmd, run_dir, out_path):
        self.run_dir, self.log = run_dir, os.path.join(run_dir, 'train.log')
        self.offset = os.path.getsize(self.log) if os.path.isfile(self.log) else 0
        self.events = {}  # ('saved', E, I), ('val', E), ('val_done', E) -> monotonic time seen
        self.t0 = time.monotonic()
        with open(out_path, 'wb') as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env=ENV, start_new_session=True)

    def poll(self):
        """Turn the complete new lines of ``train.log`` (it is appended to) into events."""
        data = b''
        if os.path.isfile(self.log):
            with open(self.log, 'rb') as f:
                data = os.pread(f.fileno(), 1 << 24, self.offset)
        data = data[:data.rfind(b'\n') + 1]
        self.offset += len(data)
        for line in data.decode('utf-8', 'replace').splitlines():
            for key, m in ((k, r.search(line)) for k, r in EVENTS.items()):
                if m:
                    self.events.setdefault((key,) + tuple(map(int, m.groups())), time.monotonic())

    def temps(self, pattern=TEMP):
        """This process's temp files in the run folder whose names match ``pattern``."""
        names = os.listdir(self.run_dir) if os.path.isdir(self.run_dir) else []
        return {n for n in names if (m := pattern.match(n)) and int(m.group(1)) == self.proc.pid}


class Plan:
    """When to kill a launch: ``filler`` ``('a', seconds)`` or ``('b', n)`` (the n-th checkpoint
    temp file), (c) in ``vals`` ``val_delay`` s after they start, (d) ``final``, first come."""

    def __init__(self, filler, vals, val_delay, final, epochs):
        self.filler, self.vals, self.val_delay = filler, vals, val_delay
        self.final, self.epochs, self.seen = final, epochs, set()

    def due(self, launch):
        """``(kind, detail)`` of the first moment that has come, else ``None``."""
        now = time.monotonic()
        if self.final == 'final-tmp' and any(n.startswith('.' + FINAL) for n in launch.temps()):
            return 'd', 'final-tmp'
        if self.final == 'last-ckpt' and ('saved', self.epochs, 0) in launch.events:
            return 'd', 'last-ckpt'
        for epoch in sorted(self.vals):
            start = min(launch.events.get(k, now + 1)  # its checkpoint, or a resume rerunning it
                        for k in (('saved', epoch, 0), ('val', epoch)))
            if now - start >= self.val_delay:
                return 'c', epoch
        kind, value = self.filler or (None, None)
        if kind == 'a' and now - launch.t0 >= value:
            return 'a', '{:.2f} s'.format(value)
        if kind == 'b':
            self.seen |= launch.temps(CKPT_TEMP)
            if len(self.seen) >= value:
                return 'b', 'temp file #{}'.format(value)
        return None


def confirm(kind, detail, launch):
    """Whether a kill hit what it aimed at, judged once the process is gone."""
    final = any(n.startswith('.' + FINAL) for n in launch.temps()) if detail == 'final-tmp' \
        else not os.path.exists(os.path.join(launch.run_dir, FINAL))  # (d) last-ckpt
    return {'a': True, 'b': bool(launch.temps(CKPT_TEMP)), 'd': final,
            'c': detail not in recorded(launch.run_dir)}[kind]


def run_launch(cmd, run_dir, out_path, plan, poll=0.002, timeout=900):
    """Run one launch, SIGKILLed at the first due moment of ``plan`` (``None``: never).

    Returns a dict of ``rc``, ``seconds``, ``launch``, ``plan`` and the kill's ``kind``,
    ``detail`` and ``confirmed`` (``None``, ``None``, ``False`` when not killed)."""
    launch, hit = Launch(cmd, run_dir, out_path), None
    try:
        while launch.proc.poll() is None and time.monotonic() - launch.t0 < timeout:
            launch.poll()
            if plan and (hit := plan.due(launch)):
                break
            time.sleep(poll)
    finally:
        if launch.proc.poll() is None:
            os.killpg(launch.proc.pid, signal.SIGKILL)  # its process group: it is the leader
        rc = launch.proc.wait()
    launch.poll()
    hit = hit if rc == -signal.SIGKILL else None
    return {'rc': rc, 'seconds': time.monotonic() - launch.t0, 'launch': launch, 'plan': plan,
            'kind': hit and hit[0], 'detail': hit and hit[1],
            'confirmed': bool(hit) and confirm(hit[0], hit[1], launch)}


class Soak:
    """The killed run: plans each launch from the run's state, the kills wanted, and times."""

    def __init__(self, args, workdir, straight):
        self.args, self.workdir, self.run_dir = args, workdir, os.path.join(workdir, 'killed')
        self.vals = [e for e in range(1, args.epochs + 1)
                     if e % args.val_interval == 0 or e == args.epochs]
        self.startup, self.step, self.val_time = 10.0, 1.0, 0.5
        self.measure(straight['launch'])
        self.d_wanted, self.results, self.rng = min(2, args.kills), [], random.Random(args.seed)

    def measure(self, launch):
        """Update the start-up, step and validation times from a launch (the load varies)."""
        ev, saved = launch.events, sorted(t for k, t in launch.events.items() if k[0] == 'saved')
        spans = [t - min(ev.get(('saved', k[1], 0), t), ev.get(('val', k[1]), t))
                 for k, t in ev.items() if k[0] == 'val_done']
        self.startup = saved[0] - launch.t0 if saved else self.startup
        self.step = (saved[-1] - saved[0]) / (len(saved) - 1) if len(saved) > 1 else self.step
        self.val_time = min([s for s in spans if s > 0] or [self.val_time])

    def confirmed(self, kind=None):
        """The confirmed kills (of ``kind``)."""
        return [r for r in self.results if r['confirmed'] and kind in (None, r['kind'])]

    def plan(self):
        """The :class:`Plan` of the next launch."""
        done, total = steps_done(self.run_dir), self.args.epochs * ITERS
        left = self.args.kills - len(self.confirmed())
        hit = {r['detail'] for r in self.confirmed('c')} | recorded(self.run_dir)
        vals = sorted(e for e in self.vals if e not in hit and e * ITERS >= done)[:left]
        d_left = self.d_wanted - len(self.confirmed('d'))
        final = d_left > 0 and self.rng.choice(['final-tmp', 'last-ckpt'][:1 + (done < total)])
        fillers = left - len(vals) - max(d_left, 0)
        share = (total - done) / max(fillers, 1)  # steps each filler should let the run advance
        filler = None
        if fillers > 0:  # (a) and (b) alternate, (b) while there are checkpoints to come
            b = done < total and len(self.results) % 2
            filler = ('b', self.rng.randint(1, max(1, round(2 * ITERS * share)))) if b else \
                ('a', self.rng.uniform(0.05, self.startup + 2 * share * self.step))
        return Plan(filler, set(vals), self.rng.uniform(0.0, 0.7 * self.val_time), final,
                    self.args.epochs)

    def launch(self, data_dir, plan):
        """Run the next launch (``--resume auto`` but for the first) and log what happened."""
        index = len(self.results)
        self.results.append(run_launch(
            train_command(data_dir, self.run_dir, self.args, resume=index > 0), self.run_dir,
            os.path.join(self.workdir, 'logs', 'killed_{:02d}.log'.format(index)), plan))
        r = self.results[-1]
        self.measure(r['launch'])
        logger.info('launch %d: %s after %.1f s; run at step %d; kills %d/%d', index + 1,
                    'killed at ({kind}) {detail}, confirmed: {confirmed}'.format(**r)
                    if r['kind'] else 'exited with status {}'.format(r['rc']), r['seconds'],
                    steps_done(self.run_dir), len(self.confirmed()), self.args.kills)

    def run(self, data_dir):
        """Kill and relaunch until ``--kills`` kills are confirmed, then let the run finish."""
        while len(self.confirmed()) < self.args.kills and \
                len(self.results) < 4 * self.args.kills + 10:
            self.launch(data_dir, self.plan())
        self.launch(data_dir, None)
        return self.results


def check_weights(straight, killed):
    """``(ok, detail)``: the final weights (``mx.nd.load``) bitwise equal, array by array."""
    paths = [os.path.join(d, FINAL) for d in (straight, killed)]
    if not all(os.path.isfile(p) for p in paths):
        return False, 'missing'
    import mxnet as mx  # the soak needs MXNet only here
    a, b = ({k: v.asnumpy() for k, v in mx.nd.load(p).items()} for p in paths)
    diff = sorted(set(a) ^ set(b)) + [k for k in sorted(set(a) & set(b)) if (
        a[k].dtype, a[k].shape, a[k].tobytes()) != (b[k].dtype, b[k].shape, b[k].tobytes())]
    return not diff, '{} arrays, {} differ {}'.format(len(a), len(diff), diff[:3])


def check_files(straight, killed, pattern):
    """``(ok, detail)``: the files matching ``pattern`` are the same in both, byte-equal."""
    names = [[p for p in run_files(d) if fnmatch.fnmatch(p, pattern)] for d in (straight, killed)]
    diff = [p for p in names[0] if read(os.path.join(straight, p)) != read(os.path.join(killed, p))]
    ok = bool(names[0]) and names[0] == names[1] and not diff
    return ok, '{} files, {} differ {}'.format(len(names[0]), len(diff), diff[:3])


def checks(straight, killed, results, wanted):
    """Every check as ``(name, ok, detail)``."""
    kinds = {k: sum(r['confirmed'] and r['kind'] == k for r in results) for k in KINDS}
    bad = [i + 1 for i, r in enumerate(results) if not r['kind'] and r['rc'] != 0]
    history = [read(os.path.join(d, 'val_history.jsonl')) for d in (straight, killed)]
    names = [set(run_files(d)) - {'train.log'} for d in (straight, killed)]
    temps = [os.path.join(d, p) for d in (straight, killed) for p in run_files(d)
             if TEMP.match(os.path.basename(p))]
    return [('>= {} kills, each kind'.format(wanted),
             sum(kinds.values()) >= wanted and all(kinds[k] for k in KINDS),
             '{} confirmed {} of {} SIGKILLs'.format(sum(kinds.values()), kinds,
                                                     sum(bool(r['kind']) for r in results))),
            ('exit 0 unless killed', not bad and not results[-1]['kind'],
             '{} launches, failed: {}'.format(len(results), bad or 'none')),
            ('final weights bitwise',) + check_weights(straight, killed),
            ('val_history.jsonl', history[0] is not None and history[0] == history[1],
             '{} lines'.format(len((history[0] or b'').splitlines())))] + \
        [(p,) + check_files(straight, killed, p) for p in VAL_FILES] + \
        [('file names (but train.log)', names[0] == names[1],
          '{} files, differing: {}'.format(len(names[0]), sorted(names[0] ^ names[1]))),
         ('no leftover temp files', not temps, str(temps[:3]))]


def summary(results, found):
    """The kills per kind and the checks, as one table."""
    rows = ['{:<30} {:>6} {:>9}'.format('kill moment', 'killed', 'confirmed')] + [
        '{:<30} {:>6} {:>9}'.format(label, sum(r['kind'] == k for r in results),
                                    sum(r['kind'] == k and r['confirmed'] for r in results))
        for k, label in KINDS.items()]
    rows += ['', '{:<30} {:<6} {}'.format('check', 'result', 'detail')]
    return '\n'.join(rows + ['{:<30} {:<6} {}'.format(n, 'PASS' if ok else 'FAIL', d)
                             for n, ok, d in found])


def parse_args(argv=None):
    """The soak's command line."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--kills', type=int, default=20, help='kills to confirm (>= 1)')
    p.add_argument('--seed', type=int, default=0, help='seed of the kill moments')
    p.add_argument('--workdir', help='dataset, runs and logs (default: a new temp folder)')
    p.add_argument('--keep', action='store_true', help='keep the runs and logs')
    p.add_argument('--epochs', type=int, default=16, help='training epochs (3 steps each)')
    p.add_argument('--val-interval', type=int, default=6, help='validate every N epochs')
    args = p.parse_args(argv)
    if min(args.kills, args.epochs, args.val_interval) < 1:
        p.error('--kills, --epochs and --val-interval must be >= 1')
    return args


def soak(args, workdir):
    """Generate the data, run both runs, compare them; returns ``(passed, summary)``."""
    data_dir, straight = os.path.join(workdir, 'data'), os.path.join(workdir, 'straight')
    for name in ('straight', 'killed', 'logs'):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    os.makedirs(os.path.join(workdir, 'logs'))
    subprocess.run([sys.executable, '-m', 'gluonpan.data.synthetic', '--root', data_dir] +
                   [str(x) for k, v in DATA.items() for x in ('--' + k, v)],
                   env=ENV, cwd=ROOT, check=True, capture_output=True)
    result = run_launch(train_command(data_dir, straight, args, resume=False), straight,
                        os.path.join(workdir, 'logs', 'straight.log'), None)
    logger.info('uninterrupted run: status %d after %.1f s', result['rc'], result['seconds'])
    if result['rc'] != 0:
        raise RuntimeError('the uninterrupted run failed, see {}/logs'.format(workdir))
    results = Soak(args, workdir, result).run(data_dir)
    found = checks(straight, os.path.join(workdir, 'killed'), results, args.kills)
    return all(ok for _, ok, _ in found), summary(results, found)


def main(argv=None):
    """Entry point; returns the exit status (0: every check passed)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='gluonpan_soak_'))
    tic = time.monotonic()
    passed, text = soak(args, workdir)
    if not args.keep:  # a given --workdir keeps its dataset
        for name in ('straight', 'killed', 'logs') if args.workdir else ('',):
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    logger.info('summary (wall time %.0f s)\n%s\nRESULT: %s', time.monotonic() - tic, text,
                'PASS' if passed else 'FAIL')
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())

"""Benchmark of MixIT assignment: time-domain remixes vs Gram-form exhaustive vs least squares.

Batch 8 of 10 s clips at 16 kHz, N = 2 reference mixtures, M estimates. Methods:
  (a) timedomain    the public code's formulation: every one of the N^M remixes is
                    built in the time domain ([batch, N^M, N, time]) and scored
                    (written here from the formulation, not copied);
  (b) exhaustive    `mixit.losses.mixit_assignment(method='exhaustive')`;
  (c) least_squares `mixit.losses.mixit_assignment(method='least_squares')`;
  and `gram`: the Gram and cross-correlation matrices alone (the O(M^2 T) part
  that (b) and (c) share).
All run as `tf.function` (no XLA) on whatever device TF picks. Each (method, M)
runs alone in a fresh subprocess for memory: the growth of the process's peak
resident set size (`ru_maxrss`) from after the inputs are allocated to after
warm-up and two calls, i.e. the host memory the calls needed on top of their
inputs (tracing included; on a GPU this does not see device memory). Times are
medians over `--repeats` calls after a warm-up; (b), (c) and Gram are called
round-robin in one process per M so that their ratios share the machine's
load; (a) is timed in its own process (3 calls).

Usage: python benchmarks/mixit_assignment.py [--sizes 4,8,12,16,24,32] [--repeats 11]
"""
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types

from absl import app
from absl import flags

BATCH = 8
NUM_MIXTURES = 2
SAMPLE_RATE = 16000
SECONDS = 10.0
NUM_SAMPLES = int(SAMPLE_RATE * SECONDS)
# (a) is skipped where its remix tensors would exceed this.
MEMORY_LIMIT_GB = 8.0
# (b) is run up to this M; beyond it the N^M search dominates (see `_skip_reason`).
EXHAUSTIVE_MAX_M = 16
METHODS = ('timedomain', 'exhaustive', 'least_squares', 'gram')


def timedomain_estimate_gb(num_estimates):
  """Peak estimate of (a): the remixes and their squared difference to the mixtures."""
  remix_bytes = BATCH * NUM_MIXTURES**num_estimates * NUM_MIXTURES * NUM_SAMPLES * 4
  return 2 * remix_bytes / 1e9


def _skip_reason(method, num_estimates):
  if method == 'timedomain':
    estimate = timedomain_estimate_gb(num_estimates)
    if estimate > MEMORY_LIMIT_GB:
      return f'OOM (est {estimate:.3g} GB)'
  if method == 'exhaustive' and num_estimates > EXHAUSTIVE_MAX_M:
    candidates = NUM_MIXTURES**num_estimates
    if candidates > 2**31 - 1:
      return f'infeasible ({NUM_MIXTURES}^{num_estimates} candidates > int32 index)'
    return (f'skipped ({NUM_MIXTURES}^{num_estimates} = {candidates / 1e6:.1f} M candidates, '
            f'{candidates // NUM_MIXTURES**EXHAUSTIVE_MAX_M}x the M={EXHAUSTIVE_MAX_M} search)')
  return None


def _build(method, num_estimates):
  import numpy as np
  import tensorflow as tf

  from mixit import losses

  if method == 'exhaustive':
    return tf.function(lambda x, s: losses.mixit_assignment(x, s, method='exhaustive'))
  if method == 'least_squares':
    return tf.function(lambda x, s: losses.mixit_assignment(x, s, method='least_squares'))
  if method == 'gram':
    return tf.function(lambda x, s: losses._gram_and_xcorr(x, s))

  matrices = np.stack([m for m in _all_mix_matrices(NUM_MIXTURES, num_estimates)])
  matrices = tf.constant(matrices, tf.float32)  # [K, N, M]
  tau = 10.0**(-30.0 / 10.0)

  @tf.function
  def timedomain(mixtures, estimates):
    remixes = tf.einsum('knm,bmt->bknt', matrices, estimates)  # [B, K, N, T]
    error = tf.reduce_sum(tf.math.squared_difference(mixtures[:, None], remixes), axis=-1)
    power = tf.reduce_sum(tf.square(mixtures), axis=-1)[:, None]
    loss = tf.reduce_mean(10.0 * tf.math.log(error + tau * power + 1e-8), axis=-1)
    best = tf.argmin(loss, axis=1)
    return tf.gather(matrices, best)

  return timedomain


def _all_mix_matrices(num_mixtures, num_estimates):
  import itertools

  import numpy as np
  for digits in itertools.product(range(num_mixtures), repeat=num_estimates):
    matrix = np.zeros((num_mixtures, num_estimates), np.float32)
    matrix[list(digits), range(num_estimates)] = 1.0
    yield matrix


def _inputs(num_estimates):
  import numpy as np
  import tensorflow as tf

  rng = np.random.default_rng(0)
  estimates = tf.constant(
      rng.standard_normal((BATCH, num_estimates, NUM_SAMPLES), dtype=np.float32))
  mixtures = tf.constant(
      rng.standard_normal((BATCH, NUM_MIXTURES, NUM_SAMPLES), dtype=np.float32))
  return mixtures, estimates


def _call(fn, mixtures, estimates):
  import tensorflow as tf
  start = time.perf_counter()
  tf.nest.map_structure(lambda t: t.numpy(), fn(mixtures, estimates))
  return time.perf_counter() - start


def run_memory_worker(method, num_estimates, repeats):
  """Peak RSS growth (and time) of one (method, M) in this fresh process; prints JSON."""
  import tensorflow as tf

  mixtures, estimates = _inputs(num_estimates)
  fn = _build(method, num_estimates)
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  _call(fn, mixtures, estimates)  # trace + warm up
  times = [_call(fn, mixtures, estimates) for _ in range(repeats)]
  rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  device = 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'
  print(json.dumps({'median_s': statistics.median(times),
                    'peak_mb': (rss_after - rss_before) / 1024.0,  # ru_maxrss is in KiB
                    'device': device}))


def run_timing_worker(methods, num_estimates, repeats):
  """Median times of several methods called round-robin in one process.

  Interleaving makes the ratios of the target checks robust to the load of a
  shared machine drifting during the run.
  """
  mixtures, estimates = _inputs(num_estimates)
  fns = {method: _build(method, num_estimates) for method in methods}
  for fn in fns.values():
    _call(fn, mixtures, estimates)
  times = {method: [] for method in methods}
  for _ in range(repeats):
    for method, fn in fns.items():
      times[method].append(_call(fn, mixtures, estimates))
  print(json.dumps({method: statistics.median(t) for method, t in times.items()}))


def _subprocess(args):
  command = [sys.executable, os.path.abspath(__file__)] + args
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
  if result.returncode != 0:
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
    return {'skip': f'failed (rc {result.returncode}: {" ".join(tail)[:80]})'}
  return json.loads(result.stdout.strip().splitlines()[-1])


def run_size(num_estimates, repeats):
  """All methods at one M: memory in one fresh process each, times interleaved."""
  results = {}
  for method in METHODS:
    reason = _skip_reason(method, num_estimates)
    if reason:
      results[method] = {'skip': reason}
      continue
    method_repeats = min(repeats, 3) if method == 'timedomain' else 2
    results[method] = _subprocess(['--worker', method, '--num_estimates', str(num_estimates),
                                   '--repeats', str(method_repeats)])
  fast = [m for m in METHODS if m != 'timedomain' and 'skip' not in results[m]]
  timing = _subprocess(['--worker', 'timing', '--methods', ','.join(fast),
                        '--num_estimates', str(num_estimates), '--repeats', str(repeats)])
  for method in fast:
    if 'skip' in timing:
      results[method] = timing
    else:
      results[method]['median_s'] = timing[method]
  return results


def _cell(result):
  if 'skip' in result:
    return result['skip']
  return f"{result['median_s'] * 1e3:,.1f} ms / {result['peak_mb']:,.0f} MB"


_SIZES = flags.DEFINE_string('sizes', '4,8,12,16,24,32', 'Values of M to time.')
_REPEATS = flags.DEFINE_integer('repeats', 11, 'Timed calls per cell (median kept).')
_WORKER = flags.DEFINE_enum('worker', None, list(METHODS) + ['timing'],
                            'Internal: run one measurement in this process.')
_METHODS = flags.DEFINE_string('methods', '', 'Internal: the methods a timing worker runs.')
_NUM_ESTIMATES = flags.DEFINE_integer('num_estimates', None, 'Internal: M of a worker.')


def main(argv):
  del argv
  args = types.SimpleNamespace(sizes=_SIZES.value, repeats=_REPEATS.value,
                               worker=_WORKER.value, methods=_METHODS.value,
                               num_estimates=_NUM_ESTIMATES.value)
  if args.worker == 'timing':
    run_timing_worker(args.methods.split(','), args.num_estimates, args.repeats)
    return
  if args.worker:
    run_memory_worker(args.worker, args.num_estimates, args.repeats)
    return

  sizes = [int(s) for s in args.sizes.split(',')]
  results = {}
  for num_estimates in sizes:
    for method, result in run_size(num_estimates, args.repeats).items():
      results[method, num_estimates] = result
      print(f'# M={num_estimates} {method}: {_cell(result)}', file=sys.stderr, flush=True)

  devices = {r['device'] for r in results.values() if 'device' in r}
  print(f'MixIT assignment, batch {BATCH}, {SECONDS:g} s at {SAMPLE_RATE} Hz, '
        f'N = {NUM_MIXTURES}; median time per call / peak RSS growth; '
        f'{"/".join(sorted(devices))}, {os.cpu_count()} cores, '
        f'{platform.processor() or platform.machine()}.')
  print()
  print('| M | (a) time-domain remixes | (b) Gram exhaustive | (c) least squares '
        '| Gram + xcorr alone |')
  print('|---|---|---|---|---|')
  for num_estimates in sizes:
    cells = [_cell(results[m, num_estimates]) for m in METHODS]
    print(f'| {num_estimates} | ' + ' | '.join(cells) + ' |')
  print()

  def median(method, num_estimates):
    result = results.get((method, num_estimates), {})
    return result.get('median_s')

  checks = [
      ('least squares at M=16 <= 2x Gram + xcorr', 'least_squares', 16, 'gram', 16, 2.0, False),
      ('exhaustive at M=12 <= 3x least squares', 'exhaustive', 12, 'least_squares', 12, 3.0,
       False),
      ('exhaustive at M=8 >= 30x faster than time-domain', 'timedomain', 8, 'exhaustive', 8, 30.0,
       True),
  ]
  for name, m1, s1, m2, s2, factor, at_least in checks:
    a, b = median(m1, s1), median(m2, s2)
    if a is None or b is None:
      print(f'- {name}: not measured')
      continue
    ratio = a / b
    passed = ratio >= factor if at_least else ratio <= factor
    print(f'- {name}: ratio {ratio:.2f} -> {"PASS" if passed else "FAIL"}')


if __name__ == '__main__':
  app.run(main)

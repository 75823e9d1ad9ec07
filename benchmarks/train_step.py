"""Training-step speed of the paper-size TDCN++ with MixIT: the model vs. the assignment.

    python benchmarks/train_step.py [--num_sources 4,8,16 --methods exhaustive,least_squares
                                     --batch_size 2 --steps 3 --seconds 10]

For each M and each assignment method, times the full train step of
`MixITTrainer` (forward on 10 s / 16 kHz MoMs of N = 2 mixtures, MixIT +
sparsity + covariance losses, backward, all-reduce, clipping, Adam) after a
warm-up step, and separately the assignment and losses alone (the same loss
terms and their gradient with respect to fixed estimates of the same shape),
whose time over the step time is the share of the step spent in the
assignment and losses.

Model FLOPs: the TF profiler's float-operation count (shape-based, per op) of
the graph of one forward + backward pass of the network alone (gradient of a
plain sum of the outputs), cross-checked against an analytic count of the
dense and convolution layers' multiply-adds (2 FLOPs each, forward x 3 for
training). Model FLOPs/s = that count / measured step time; the peak is both
the measured float32 matmul rate of this machine (TF, 4096^2) and the
nominal peak from the core count and clock (32 FP32 FLOPs/cycle/core: two
256-bit FMA pipes, as in Zen 4 / AVX-512 double-pumped or AVX2 x 2 FMA).
Prints a markdown table.
"""
import os
import re
import time

from absl import app
from absl import flags
import numpy as np

import mixit  # noqa: F401  (KERAS_BACKEND)
import tensorflow as tf

from mixit import gin_config
from mixit import losses
from mixit import model as model_lib
from mixit.training import trainer as trainer_lib

_NUM_SOURCES = flags.DEFINE_list('num_sources', ['4', '8', '16'], 'Values of M.')
_METHODS = flags.DEFINE_list('methods', ['exhaustive', 'least_squares'], 'MixIT methods.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 2, 'MoMs per step.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Timed steps (after one warm-up step).')
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Clip length in seconds.')
_SAMPLE_RATE = flags.DEFINE_integer('sample_rate', 16000, 'Sample rate.')
_MODEL_GIN = flags.DEFINE_string('model_gin', 'models/tdcnpp_paper.gin', 'Model config.')
_JIT = flags.DEFINE_bool('jit_compile', False, 'XLA-compile the forward/backward pass.')
_LAMBDA_SPARSE = flags.DEFINE_float('lambda_sparse', 0.1, 'Sparsity loss weight.')
_LAMBDA_COV = flags.DEFINE_float('lambda_cov', 0.1, 'Covariance loss weight.')
_STEP_ONLY = flags.DEFINE_bool(
    'step_only', False, 'Time the train step only: no FLOP count, matmul peak or loss-only '
    'timing, no table (what `benchmarks/train_step_vs_official.py` runs).')

FLOPS_PER_CYCLE_FP32 = 32


def _time(fn, steps):
  fn()  # warm-up (tracing)
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  tf.nest.map_structure(lambda t: t.numpy(), out)
  return (time.perf_counter() - start) / steps


def _step_seconds(network, method: str, batch) -> float:
  """Seconds per full train step (a fresh trainer and Adam on `network`), after a warm-up."""
  trainer = trainer_lib.build_trainer(network, mixit_method=method,
                                      lambda_sparse=_LAMBDA_SPARSE.value,
                                      lambda_cov=_LAMBDA_COV.value)
  optimizer = trainer_lib.build_optimizer()
  trainer.compile(optimizer=optimizer, jit_compile=_JIT.value)
  optimizer.build(network.trainable_variables)
  step = tf.function(trainer.train_step)
  return _time(lambda: step(batch)['loss'], _STEPS.value)


def _profiler_flops(function, batch_size, time_samples) -> int:
  """Float operations of one call of `function(mom)` counted by the TF profiler.

  The graph is frozen (variables -> constants) and run once in a v1 session with
  a full trace, so the profiler completes the shapes that are only known at run
  time (dynamic reshapes) from the trace before counting.
  """
  from tensorflow.python.framework import convert_to_constants
  from tensorflow.python.profiler import model_analyzer
  from tensorflow.python.profiler import option_builder
  concrete = function.get_concrete_function(
      tf.TensorSpec([batch_size, time_samples], tf.float32))
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  graph_def = frozen.graph.as_graph_def()
  graph = tf.Graph()
  with graph.as_default():
    tf.graph_util.import_graph_def(graph_def, name='')
  inputs = [t.name for t in frozen.inputs]
  outputs = [t.name for t in frozen.outputs]
  run_meta = tf.compat.v1.RunMetadata()
  with tf.compat.v1.Session(graph=graph) as session:
    session.run(outputs, feed_dict={inputs[0]: np.zeros([batch_size, time_samples], np.float32)},
                options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
                run_metadata=run_meta)
  options = option_builder.ProfileOptionBuilder(
      option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
  return model_analyzer.profile(graph, run_meta=run_meta, options=options).total_float_ops


def _analytic_training_flops(network, batch, time_samples) -> float:
  """2 FLOPs per multiply-add of every per-frame kernel, forward x 3 (forward + 2 backward).

  Every dense layer (kernel [in, out]) and depthwise time convolution (kernel
  [taps, channels]) of the TDCN++ runs once per STFT frame and costs
  prod(kernel shape) multiply-adds there; the FFTs, norms and activations are
  left out (a few % of the total).
  """
  frames = int(np.ceil(time_samples / network.hop_samples))
  macs_per_frame = 0
  for layer in network._flatten_layers(include_self=False):
    kernel = getattr(layer, 'kernel', None)
    if kernel is not None and len(kernel.shape) == 2:
      macs_per_frame += int(np.prod(kernel.shape))
  return 3.0 * 2.0 * macs_per_frame * frames * batch


def _matmul_peak() -> float:
  a = tf.random.normal([4096, 4096])
  b = tf.random.normal([4096, 4096])
  mm = tf.function(lambda: tf.matmul(a, b))
  # Best of a few rounds: the machine may be shared.
  seconds = min(_time(mm, 3) for _ in range(4))
  return 2.0 * 4096**3 / seconds


def _nominal_peak() -> tuple:
  cores = os.cpu_count()
  mhz = None
  try:
    with open('/proc/cpuinfo') as f:
      found = re.findall(r'cpu MHz\s*:\s*([\d.]+)', f.read())
    mhz = max(float(x) for x in found) if found else None
  except OSError:
    pass
  if mhz is None:
    return cores, None, None
  return cores, mhz, cores * mhz * 1e6 * FLOPS_PER_CYCLE_FP32


def main(argv):
  del argv
  tf.random.set_seed(0)
  rng = np.random.default_rng(0)
  time_samples = int(round(_SECONDS.value * _SAMPLE_RATE.value))
  batch_size = _BATCH_SIZE.value
  matmul_peak = None if _STEP_ONLY.value else _matmul_peak()
  cores, mhz, nominal_peak = _nominal_peak()
  rows = []
  for num_sources in [int(m) for m in _NUM_SOURCES.value]:
    gin_config.parse([_MODEL_GIN.value], [f'NUM_SOURCES = {num_sources}',
                                          f'SAMPLE_RATE = {_SAMPLE_RATE.value}'])
    network = model_lib.build_network()
    params = int(sum(np.prod(v.shape) for v in network.trainable_variables))
    mixtures = tf.constant(rng.standard_normal((batch_size, 2, time_samples)).astype(np.float32)
                           * np.array([1.0, 0.3], np.float32)[None, :, None])
    batch = {'mom': tf.reduce_sum(mixtures, 1), 'mixtures': mixtures}

    @tf.function
    def forward_backward(mom, network=network):
      with tf.GradientTape() as tape:
        out = network(mom, training=True)['separated_waveforms']
        objective = tf.reduce_sum(out)
      return tape.gradient(objective, network.trainable_variables)

    if _STEP_ONLY.value:
      for method in _METHODS.value:
        step_seconds = _step_seconds(network, method, batch)
        print(f'M={num_sources} {method}: {step_seconds:.2f} s/step, params {params}',
              flush=True)
      gin_config.parse([], [])
      continue
    profiled = _profiler_flops(forward_backward, batch_size, time_samples)
    analytic = _analytic_training_flops(network, batch_size, time_samples)
    estimates = tf.constant(rng.standard_normal((batch_size, num_sources, time_samples))
                            .astype(np.float32))
    for method in _METHODS.value:
      step_seconds = _step_seconds(network, method, batch)

      @tf.function
      def loss_only(est, method=method, batch=batch):
        with tf.GradientTape() as tape:
          tape.watch(est)
          mixit_values, _ = losses.mixit_loss(batch['mixtures'], est, method=method)
          total = tf.reduce_mean(mixit_values)
          total += _LAMBDA_SPARSE.value * tf.reduce_mean(
              losses.sparsity_loss(est, batch['mom']))
          total += _LAMBDA_COV.value * tf.reduce_mean(losses.covariance_loss(est))
        return total, tape.gradient(total, est)

      loss_seconds = _time(lambda loss_only=loss_only, estimates=estimates: loss_only(estimates),
                           max(_STEPS.value, 5))
      rows.append((num_sources, method, params, step_seconds, batch_size / step_seconds,
                   loss_seconds / step_seconds, profiled, analytic,
                   profiled / step_seconds))
      print(f'M={num_sources} {method}: {step_seconds:.2f} s/step, losses {loss_seconds:.3f} s',
            flush=True)
    gin_config.parse([], [])

  if _STEP_ONLY.value:
    return
  print()
  print(f'Paper-size TDCN++ ({_MODEL_GIN.value}), {batch_size} MoMs of '
        f'{_SECONDS.value:g} s at {_SAMPLE_RATE.value} Hz per step, N = 2, float32, '
        f'jit_compile={_JIT.value}; {cores} CPU cores, measured float32 matmul peak '
        f'{matmul_peak / 1e9:.0f} GFLOP/s' +
        (f', nominal {nominal_peak / 1e9:.0f} GFLOP/s ({cores} x {mhz:.0f} MHz x '
         f'{FLOPS_PER_CYCLE_FP32} FLOP/cycle)' if nominal_peak else '') + '.')
  print()
  print('| M | method | params | s/step | MoMs/s | assignment+losses share | '
        'model GFLOP/step (profiler / analytic) | model GFLOP/s | % of matmul peak |'
        + (' % of nominal peak |' if nominal_peak else ''))
  print('|---|---|---|---|---|---|---|---|---|' + ('---|' if nominal_peak else ''))
  for (m, method, params, seconds, rate, share, profiled, analytic, flops) in rows:
    line = (f'| {m} | {method} | {params / 1e6:.2f} M | {seconds:.2f} | {rate:.2f} | '
            f'{100 * share:.1f}% | {profiled / 1e9:.0f} / {analytic / 1e9:.0f} | '
            f'{flops / 1e9:.1f} | {100 * flops / matmul_peak:.0f}% |')
    if nominal_peak:
      line += f' {100 * flops / nominal_peak:.0f}% |'
    print(line)


if __name__ == '__main__':
  app.run(main)

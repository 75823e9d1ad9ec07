"""tf.distribute tests, each in subprocesses (logical CPU devices and TF_CONFIG must be
set before TensorFlow initialises): MirroredStrategy over two logical CPUs, the
1-vs-2-replica loss scaling, the XLA-compiled step (the default) against the plain one, and two
MultiWorkerMirrored workers on 127.0.0.1 (which train with XLA, the default)."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import TINY_GIN_FILES, TINY_NETWORK

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Shared by the subprocess scripts: parse the tiny TDCN++ on synthetic FUSS data.
PRELUDE = textwrap.dedent(f'''
    import json, os, sys
    import numpy as np
    import mixit
    from absl import logging
    logging.set_verbosity('info')
    from mixit.training import strategy as strategy_lib
    if int(os.environ.get('SPLIT_CPU', '0')):
      strategy_lib.split_cpu(int(os.environ['SPLIT_CPU']))
    import keras
    import tensorflow as tf
    from data_pipeline import inputs
    from mixit import gin_config, losses, model as model_lib
    from mixit.training import loop as train_loop
    from mixit.training import settings
    from mixit.training import trainer as trainer_lib

    def parse_tiny(*params):
      gin_config.parse({list(TINY_GIN_FILES)!r},
                       ["DATA_ROOT = '" + os.environ['FUSS_ROOT'] + "'"]
                       + {list(TINY_NETWORK)!r} + ['train_data.seed = 3'] + list(params))
''')


def run_script(body, tmp_path, env_extra, name='script.py', wait=True):
  path = tmp_path / name
  path.write_text(PRELUDE + textwrap.dedent(body))
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', **env_extra)
  process = subprocess.Popen([sys.executable, str(path)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  if not wait:
    return process
  output, _ = process.communicate(timeout=600)
  assert process.returncode == 0, output[-6000:]
  return output


# The default test: one update on the same global batch of 4 with 1 and 2 replicas. Two
# examples are supervised and two unsupervised, so the replicas see different example kinds
# (each loss term is a global mean: a replica's sum over the global count). SGD, so the
# update is proportional to the gradient, and an active clip, so clipping per replica
# before the reduction would give a different update. The validation sums of the two
# replicas must also add up to the one-replica sums. Lean, to run by default: random
# batches in the training structure (no data pipeline) and eager steps (no tracing: the
# traced steps run in the slow training-loop test below).
SCALING = '''
    parse_tiny()
    rng = np.random.default_rng(0)
    time = 2000
    sources = (0.1 * rng.standard_normal((4, 4, time))).astype(np.float32)
    sources[:, 3] = 0.0
    sources[2:] = 0.0
    mixtures = np.zeros((4, 2, time), np.float32)
    mixtures[:2, 0] = sources[:2].sum(axis=1)
    mixtures[2:] = (0.1 * rng.standard_normal((2, 2, time))).astype(np.float32)
    batch = {'mom': mixtures.sum(axis=1), 'mixtures': mixtures, 'sources': sources,
             'num_sources': np.array([3, 3, 0, 0], np.int32),
             'supervised': np.array([True, True, False, False])}
    eval_batch = {'mixture': mixtures[:2, 0], 'sources': sources[:2],
                  'num_sources': np.array([3, 3], np.int32)}
    keras.utils.set_random_seed(0)
    initial = [v.numpy() for v in model_lib.build_network().trainable_variables]

    def split(strategy, values):
      n = strategy.num_replicas_in_sync
      size = len(next(iter(values.values())))
      def value_fn(context):
        i = context.replica_id_in_sync_group
        return {k: tf.constant(v[i * size // n:(i + 1) * size // n]) for k, v in values.items()}
      return strategy.experimental_distribute_values_from_function(value_fn)

    def one_step(strategy):
      with strategy.scope():
        network = model_lib.build_network()
        for v, w in zip(network.trainable_variables, initial):
          v.assign(w)
        trainer = trainer_lib.build_trainer(network, clip_norm=0.01, lambda_sparse=0.5,
                                            lambda_cov=0.5)
        optimizer = trainer_lib.build_optimizer(name='sgd', learning_rate=1.0)
        trainer.compile(optimizer=optimizer)
        optimizer.build(network.trainable_variables)
      trainer.reset_eval()
      strategy.run(trainer.test_step, args=(split(strategy, eval_batch),))
      sums = {k: float(v) for k, v in trainer.eval_sums().items()}
      logs = strategy.run(trainer.train_step, args=(split(strategy, batch),))
      logs = {k: float(strategy.experimental_local_results(v)[0]) for k, v in logs.items()}
      deltas = [v.numpy() - w for v, w in zip(network.trainable_variables, initial)]
      return logs, deltas, sums

    logs1, deltas1, sums1 = one_step(tf.distribute.get_strategy())
    mirrored = strategy_lib.get_strategy('mirrored')
    assert mirrored.num_replicas_in_sync == 2, mirrored.extended.worker_devices
    logs2, deltas2, sums2 = one_step(mirrored)
    print('LOGS1', json.dumps(logs1))
    print('LOGS2', json.dumps(logs2))
    assert logs1['grad_norm'] > 0.01, logs1
    assert logs1['supervised'] != 0 and logs1['mixit'] != 0, logs1
    for name in ('loss', 'mixit', 'supervised', 'sparsity', 'covariance', 'grad_norm'):
      np.testing.assert_allclose(logs2[name], logs1[name], rtol=1e-4, atol=1e-5, err_msg=name)
    for a, b in zip(deltas1, deltas2):
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-7)
    print('SUMS', json.dumps(sums2))
    assert sums1['num_examples'] == sums2['num_examples'] == 2, (sums1, sums2)
    for name in sums1:
      np.testing.assert_allclose(sums2[name], sums1[name], rtol=1e-5, atol=1e-6, err_msg=name)
    print('SCALING OK')
'''


def test_two_replicas_scale_the_loss_clip_after_reduce_and_sum_validation(tmp_path):
  output = run_script(SCALING, tmp_path, {'SPLIT_CPU': '2', 'FUSS_ROOT': str(tmp_path)})
  assert 'SCALING OK' in output


# XLA, the default of training (`training.jit_compile`), against the plain graph: the loop's own
# distributed step (`_build_state`, `_step_functions`) from the same initial weights on the
# same three global batches of the real pipeline, with the default strategy and with two
# mirrored replicas. SGD, so the updates follow the gradients, and sparsity and covariance
# terms on, so every loss term is compared; steps 2 and 3 run on the updated weights.
JIT_EQUIVALENCE = '''
    parse_tiny('batch_size = 4', "optimizer.name = 'sgd'", 'learning_rate = 0.01',
               'trainer.lambda_sparse = 0.5', 'trainer.lambda_cov = 0.5')
    stream = iter(inputs.train_input_fn(tf.distribute.InputContext()))
    batches = [next(stream) for _ in range(3)]
    examples = {k: tf.concat([b[k] for b in batches], axis=0) for k in batches[0]}
    keras.utils.set_random_seed(0)
    initial = [v.numpy() for v in model_lib.build_network().trainable_variables]

    def network_fn():
      network = model_lib.build_network()
      for v, w in zip(network.trainable_variables, initial):
        v.assign(w)
      return network

    builders = settings.Builders(network_fn=network_fn).resolved(validates=False)

    def three_steps(strategy, jit):
      state = train_loop._build_state(strategy, builders, jit)
      assert state.trainer.jit_compile is jit
      train_step, _ = train_loop._step_functions(strategy, state)
      dataset = tf.data.Dataset.from_tensor_slices(examples).batch(4)
      iterator = iter(strategy.experimental_distribute_dataset(dataset))
      logs = [{k: float(v) for k, v in train_step(iterator).items()} for _ in range(3)]
      assert (state.trainer._xla_forward_backward is not None) == jit
      return logs, [v.numpy() for v in state.network.trainable_variables]

    mirrored = strategy_lib.get_strategy('mirrored')
    assert mirrored.num_replicas_in_sync == 2, mirrored.extended.worker_devices
    runs = {}
    for name, strategy in (('default', tf.distribute.get_strategy()), ('mirrored', mirrored)):
      for jit in (False, True):
        runs[name, jit] = three_steps(strategy, jit)
        print('LOSSES', name, jit, [round(step['loss'], 5) for step in runs[name, jit][0]])
    plain = runs['default', False]
    # The steps train: the loss moves and the weights change.
    assert abs(plain[0][2]['loss'] - plain[0][0]['loss']) > 1e-3, plain[0]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(plain[1], initial)) > 1e-4
    for (name, jit), (logs, weights) in runs.items():
      reference_logs, reference_weights = runs[name, False] if jit else plain
      for step, (got, want) in enumerate(zip(logs, reference_logs), 1):
        assert got['finite'] == 1.0, (name, jit, step)
        for term in ('loss', 'mixit', 'sparsity', 'covariance', 'grad_norm'):
          np.testing.assert_allclose(got[term], want[term], rtol=1e-4, atol=1e-4,
                                     err_msg=f'{name} jit={jit} step {step} {term}')
      for a, b in zip(weights, reference_weights):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=f'{name} jit={jit}')
    print('JIT EQUIVALENCE OK')
'''


def test_xla_and_plain_steps_agree_under_the_default_and_a_mirrored_strategy(fuss_root,
                                                                             tmp_path):
  output = run_script(JIT_EQUIVALENCE, tmp_path, {'SPLIT_CPU': '2', 'FUSS_ROOT': fuss_root})
  assert 'JIT EQUIVALENCE OK' in output


MIRRORED_TRAINING = '''
    # A global batch that does not split evenly over the replicas is refused.
    mirrored = strategy_lib.get_strategy('mirrored')
    parse_tiny('batch_size = 3')
    try:
      mirrored.distribute_datasets_from_function(inputs.train_input_fn)
    except ValueError as e:
      assert 'divisible' in str(e), e
      print('UNEVEN REFUSED')

    # The training loop on two replicas, through the real data pipeline.
    parse_tiny('batch_size = 4', 'eval_data.batch_size = 2')
    out = train_loop.train(os.environ['MODEL_DIR'], mirrored, num_steps=3,
                           checkpoints=settings.CheckpointSettings(every=3),
                           validation=settings.ValidationSettings(every=3, steps=1),
                           logs=settings.LogSettings(every=1))
    assert out['step'] == 3 and np.isfinite(out['loss']), out
    assert out['eval/num_examples'] == 2 and np.isfinite(out['eval/si_snr']), out
    print('MIRRORED TRAINED', out['loss'], out['eval/num_examples'])
'''


@pytest.mark.slow
def test_mirrored_two_cpus_refuses_uneven_batches_and_trains(fuss_root, tmp_path):
  output = run_script(MIRRORED_TRAINING, tmp_path, {'SPLIT_CPU': '2', 'FUSS_ROOT': fuss_root,
                                                    'MODEL_DIR': str(tmp_path / 'model')})
  assert 'UNEVEN REFUSED' in output
  assert 'MIRRORED TRAINED' in output
  assert 'MirroredStrategy with 2 replica(s)' in output
  # XLA, the default, on both replicas, and validation beside it.
  assert 'XLA-compiled forward/backward pass (training.jit_compile): on' in output
  assert os.path.exists(tmp_path / 'model' / 'ckpt-3.index')


WORKER = '''
    parse_tiny('batch_size = 4')
    strategy = strategy_lib.get_strategy('multi_worker')
    assert strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(int(os.environ['WORKER_INDEX']) + 10)  # different inits
    captured = []
    def network_fn():
      captured.append(model_lib.build_network())
      return captured[-1]
    pipelines = []
    def train_input_fn(context):
      pipelines.append((context.input_pipeline_id, context.num_input_pipelines))
      return inputs.train_input_fn(context)
    out = train_loop.train(os.environ['MODEL_DIR'], strategy, num_steps=3,
                           checkpoints=settings.CheckpointSettings(every=3),
                           validation=settings.ValidationSettings(every=0),
                           logs=settings.LogSettings(every=1),
                           builders=settings.Builders(network_fn=network_fn,
                                                      train_input_fn=train_input_fn))
    print('PIPELINES', json.dumps(pipelines))
    weights = {v.path: v.numpy() for v in captured[0].trainable_variables}
    np.savez(os.environ['OUT'], **weights)
    print('WORKER DONE', out['step'], out['loss'])
'''


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.mark.slow
def test_two_multi_worker_processes_train_together_and_agree(fuss_root, tmp_path):
  workers = [f'127.0.0.1:{p}' for p in _free_ports(2)]
  model_dir = tmp_path / 'model'
  processes = []
  for index in range(2):
    tf_config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
    processes.append(run_script(
        WORKER, tmp_path,
        {'TF_CONFIG': json.dumps(tf_config), 'FUSS_ROOT': fuss_root, 'WORKER_INDEX': str(index),
         'MODEL_DIR': str(model_dir), 'OUT': str(tmp_path / f'weights{index}.npz')},
        name=f'worker{index}.py', wait=False))
  outputs = []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=600)[0])
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-6000:]
    assert 'WORKER DONE 3.0' in output
  assert 'MultiWorkerMirroredStrategy with 2 replica(s)' in outputs[0]
  # XLA, the default, on every worker (the all-reduces stay outside the compiled part).
  for output in outputs:
    assert 'XLA-compiled forward/backward pass (training.jit_compile): on' in output
  # Each worker read its own shard of the data, so agreeing weights need the all-reduce.
  pipelines = [json.loads(o.split('PIPELINES ')[1].splitlines()[0]) for o in outputs]
  assert pipelines == [[[0, 2]], [[1, 2]]]
  first = np.load(tmp_path / 'weights0.npz')
  second = np.load(tmp_path / 'weights1.npz')
  assert sorted(first.files) == sorted(second.files) and first.files
  for name in first.files:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)
  # Only the chief (worker 0) writes into the model dir.
  assert os.path.exists(model_dir / 'ckpt-3.index')
  assert os.path.exists(model_dir / 'config.gin')

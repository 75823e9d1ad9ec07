"""tf.distribute tests, each in subprocesses (logical CPU devices and TF_CONFIG must be
set before TensorFlow initialises): MirroredStrategy over two logical CPUs, the
1-vs-2-replica loss scaling, and two MultiWorkerMirrored workers on 127.0.0.1."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_pipeline import synthetic

SAMPLE_RATE = 8000
CLIP_SECONDS = 0.25
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Shared by the subprocess scripts: parse the tiny TDCN++ on synthetic FUSS data.
PRELUDE = textwrap.dedent(f'''
    import json, os, sys
    import numpy as np
    import mixit
    from absl import logging
    logging.set_verbosity('info')
    from mixit import strategy as strategy_lib
    if int(os.environ.get('SPLIT_CPU', '0')):
      strategy_lib.split_cpu(int(os.environ['SPLIT_CPU']))
    import keras
    import tensorflow as tf
    from data_pipeline import inputs
    from mixit import gin_config, losses, model as model_lib, train_lib, trainer as trainer_lib

    def parse_tiny(*params):
      gin_config.parse(
          ['models/tdcnpp_small.gin', 'datasets/synthetic.gin', 'optimization/base.gin'],
          ["DATA_ROOT = '" + os.environ['FUSS_ROOT'] + "'", 'NUM_SOURCES = 4',
           'SAMPLE_RATE = {SAMPLE_RATE}', 'CLIP_SECONDS = {CLIP_SECONDS}',
           'network.bottleneck = 16', 'network.conv_channels = 32',
           'network.num_repeats = 1', 'network.num_dilations = 2',
           'network.skip_from = []', 'network.skip_to = []',
           'train_data.shuffle_buffer = 8', 'train_data.seed = 3'] + list(params))
''')


@pytest.fixture(scope='module')
def fuss_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('fuss'))
  synthetic.make_dataset(root, num_train=12, num_validation=4, num_eval=0, seed=2,
                         sample_rate=SAMPLE_RATE, clip_seconds=CLIP_SECONDS)
  return root


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


SCALING = '''
    # One update on the same global batch of 4 (two supervised, two unsupervised
    # examples: the replicas see different example kinds) with 1 and 2 replicas.
    # SGD, so the update is proportional to the gradient, and an active clip, so
    # clipping per replica before the reduction would give a different update.
    parse_tiny('batch_size = 2')
    sup = next(iter(inputs.train_input_fn(None, mode='supervised')))
    unsup = next(iter(inputs.train_input_fn(None, mode='unsupervised')))
    batch = {k: tf.concat([sup[k], unsup[k]], 0).numpy() for k in sup}
    keras.utils.set_random_seed(0)
    initial = [v.numpy() for v in model_lib.build_network().trainable_variables]

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
      n = strategy.num_replicas_in_sync
      def value_fn(context):
        i = context.replica_id_in_sync_group
        return {k: v[i * 4 // n:(i + 1) * 4 // n] for k, v in batch.items()}
      distributed = strategy.experimental_distribute_values_from_function(value_fn)
      logs = tf.function(lambda b: strategy.run(trainer.train_step, args=(b,)))(distributed)
      logs = {k: float(strategy.experimental_local_results(v)[0]) for k, v in logs.items()}
      deltas = [v.numpy() - w for v, w in zip(network.trainable_variables, initial)]
      return logs, deltas

    logs1, deltas1 = one_step(tf.distribute.get_strategy())
    mirrored = strategy_lib.get_strategy('mirrored')
    assert mirrored.num_replicas_in_sync == 2, mirrored.extended.worker_devices
    logs2, deltas2 = one_step(mirrored)
    print('LOGS1', json.dumps(logs1))
    print('LOGS2', json.dumps(logs2))
    assert logs1['grad_norm'] > 0.01, logs1
    for name in ('loss', 'mixit', 'supervised', 'sparsity', 'covariance', 'grad_norm'):
      np.testing.assert_allclose(logs2[name], logs1[name], rtol=1e-4, atol=1e-5, err_msg=name)
    for a, b in zip(deltas1, deltas2):
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-7)
    print('SCALING OK')

    # A global batch that does not split evenly over the replicas is refused.
    parse_tiny('batch_size = 3')
    try:
      mirrored.distribute_datasets_from_function(inputs.train_input_fn)
    except ValueError as e:
      assert 'divisible' in str(e), e
      print('UNEVEN REFUSED')

    # The training loop on two replicas, through the real data pipeline.
    parse_tiny('batch_size = 4', 'eval_data.batch_size = 2')
    captured = []
    def network_fn():
      captured.append(model_lib.build_network())
      return captured[-1]
    out = train_lib.train(os.environ['MODEL_DIR'], mirrored, num_steps=3, checkpoint_every=3,
                          eval_every=3, eval_steps=1, log_every=1, network_fn=network_fn)
    assert out['step'] == 3 and np.isfinite(out['loss']), out
    network = captured[0]
    print('MIRRORED TRAINED', out['loss'], out['eval/num_examples'])
'''


@pytest.mark.slow
def test_mirrored_two_cpus_same_update_as_one_replica_and_trains(fuss_root, tmp_path):
  output = run_script(SCALING, tmp_path, {'SPLIT_CPU': '2', 'FUSS_ROOT': fuss_root,
                                          'MODEL_DIR': str(tmp_path / 'model')})
  assert 'SCALING OK' in output
  assert 'UNEVEN REFUSED' in output
  assert 'MIRRORED TRAINED' in output
  assert 'MirroredStrategy with 2 replica(s)' in output
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
    out = train_lib.train(os.environ['MODEL_DIR'], strategy, num_steps=3, checkpoint_every=3,
                          eval_every=0, log_every=1, network_fn=network_fn,
                          train_input_fn=train_input_fn)
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

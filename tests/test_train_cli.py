"""Tests of the `mixit-train` CLI (mixit/commands/train.py) and the model-dir handling of
mixit/training/model_dir.py, with the real model and data pipeline on synthetic FUSS data."""
import glob
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mixit  # noqa: F401
from absl import flags
import gin
import tensorflow as tf

from mixit import gin_config
from mixit import model as model_lib
from mixit import progress as progress_lib
from mixit.commands import train
from mixit.training import loop as train_loop
from mixit.training import model_dir as model_dir_lib

from conftest import CLIP_SECONDS, SAMPLE_RATE, TINY_GIN_FILES, tiny_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_FILES = list(TINY_GIN_FILES)
CLI_SETTINGS = ['batch_size = 2', 'eval_data.batch_size = 2', 'optimizer.decay_steps = 7',
                'training.log_every = 1', 'training.summary_every = 1']


def cli_args(fuss_root, model_dir, *params, extra=()):
  args = [f'--model_dir={model_dir}'] + [f'--gin_file={f}' for f in GIN_FILES]
  params = tiny_params(fuss_root, *CLI_SETTINGS, *params)
  return args + [f'--gin_param={p}' for p in params] + list(extra)


def run_cli(args):
  """Runs `mixit-train` in this process (absl flags re-parsed each time)."""
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['mixit-train', '--verbosity=0'] + args)
  try:
    train.main(['mixit-train'])
  finally:
    flags.FLAGS.unparse_flags()
    gin.clear_config()


def read_events(folder):
  """{tag: [(step, plugin, value)]} from the TensorBoard event files of `folder`."""
  events = {}
  for path in glob.glob(os.path.join(folder, 'events.out.tfevents.*')):
    try:
      for event in tf.compat.v1.train.summary_iterator(path):
        for value in event.summary.value:
          tensor = tf.make_ndarray(value.tensor)
          events.setdefault(value.tag, []).append(
              (event.step, value.metadata.plugin_data.plugin_name, tensor))
    except tf.errors.DataLossError:
      pass  # the last record of a killed writer may be cut short
  return events


@pytest.fixture(scope='module')
def trained(fuss_root, tmp_path_factory):
  """A model dir after `mixit-train` ran 3 steps, and the log it wrote."""
  model_dir = str(tmp_path_factory.mktemp('run') / 'model')
  logger = logging.getLogger('absl')
  handler = _ListHandler()
  logger.addHandler(handler)
  old_level = logger.level
  logger.setLevel(logging.INFO)
  try:
    run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 3',
                     'training.checkpoint_every = 2', 'training.eval_every = 3'))
  finally:
    logger.removeHandler(handler)
    logger.setLevel(old_level)
  return model_dir, '\n'.join(handler.lines)


class _ListHandler(logging.Handler):

  def __init__(self):
    super().__init__(logging.INFO)
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


def test_cli_trains_and_writes_checkpoints_configs_summaries_and_logs(trained):
  model_dir, log = trained
  assert os.path.exists(os.path.join(model_dir, 'ckpt-2.index'))
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-3')
  config = open(os.path.join(model_dir, 'config.gin')).read()
  assert 'network.bottleneck = 16' in config and 'training.num_steps = 3' in config
  operative = open(os.path.join(model_dir, 'operative_config.gin')).read()
  assert 'trainer.mixit_method' in operative and 'optimizer.decay_steps = 7' in operative

  train_events = read_events(os.path.join(model_dir, 'train'))
  for tag in ('loss', 'mixit', 'supervised', 'sparsity', 'covariance', 'classification',
              'grad_norm', 'learning_rate', 'steps_per_sec'):
    assert tag in train_events, tag
    assert [s for s, _, _ in train_events[tag]] == [1, 2, 3]
    assert all(p == 'scalars' for _, p, _ in train_events[tag])
  assert float(train_events['learning_rate'][0][2]) == pytest.approx(1e-4)
  eval_events = read_events(os.path.join(model_dir, 'eval'))
  for tag in ('si_snr', 'msi', 'one_source_si_snr', 'under_separation', 'equal_separation',
              'over_separation'):
    assert eval_events[tag][0][:2] == (3, 'scalars'), tag
  separated = eval_events['separated'][0]
  assert separated[:2] == (3, 'audio')
  clips = separated[2]
  assert clips.shape == (4, 2)  # M clips of (wav bytes, label)
  wav, rate = tf.audio.decode_wav(clips[0, 0])
  assert int(rate) == SAMPLE_RATE and wav.shape[0] == SAMPLE_RATE * CLIP_SECONDS

  assert 'strategy default strategy (no distribution) with 1 replica(s)' in log
  assert 'audio I/O backend:' in log
  assert re.search(r'network separation_network: 4 outputs, \d+ trainable parameters', log)
  assert re.search(r'step 3/3 \(100\.0%\) loss=-?\d+\.\d+ mixit=.* steps/s \| ETA', log)
  assert 'validation at step 3' in log


def test_rerun_with_the_same_config_resumes_and_other_configs_are_refused(
    trained, fuss_root, tmp_path, caplog):
  model_dir, _ = trained
  caplog.set_level(logging.INFO)
  # Same config, same num_steps: nothing left to train, the run is recognised.
  run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 3',
                   'training.checkpoint_every = 2', 'training.eval_every = 3'))
  assert re.search(r'resumed from .*ckpt-3 at step 3', caplog.text)
  assert 'nothing to train' in caplog.text

  with pytest.raises(ValueError) as refused:
    run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 3',
                     'training.checkpoint_every = 2', 'training.eval_every = 3',
                     'trainer.lambda_sparse = 0.5'))
  message = str(refused.value)
  assert 'different gin config' in message and '+trainer.lambda_sparse = 0.5' in message
  assert '--overwrite' in message
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-3')  # untouched


def test_a_run_whose_config_has_the_old_training_names_resumes_under_the_new_ones(
    trained, fuss_root, tmp_path, caplog):
  """A model dir whose config.gin the code before the settings groups wrote (the same run
  with every flat `training.*` name bound: tests/test_training_settings.py) resumes when the
  command binds `checkpoints.*`, `validation.*` and `logs.*` instead."""
  model_dir, _ = trained
  copy = str(tmp_path / 'copy')
  shutil.copytree(model_dir, copy)
  old_config = os.path.join(ROOT, 'tests', 'fixtures', 'configs_before_training_settings',
                            'cli_run.gin')
  with open(old_config) as f:
    text = f.read().replace("DATA_ROOT = '/data/fuss_dev'", f'DATA_ROOT = {fuss_root!r}')
  with open(os.path.join(copy, 'config.gin'), 'w') as f:
    f.write(text)
  caplog.set_level(logging.INFO)
  run_cli(cli_args(fuss_root, copy, 'training.num_steps = 4', 'training.jit_compile = False',
                   'training.seed = 5', 'checkpoints.every = 2', 'checkpoints.max_to_keep = 5',
                   'validation.every = 0', 'logs.audio = False'))
  assert re.search(r'resumed from .*ckpt-3 at step 3', caplog.text)
  assert tf.train.latest_checkpoint(copy).endswith('ckpt-4')


def test_overwrite_deletes_only_the_old_run(trained, tmp_path):
  model_dir, _ = trained
  copy = tmp_path / 'copy'
  tf.io.gfile.makedirs(str(copy))
  for path in glob.glob(os.path.join(model_dir, '*')):
    if os.path.isfile(path):
      tf.io.gfile.copy(path, str(copy / os.path.basename(path)))
  (copy / 'notes.txt').write_text('mine')
  gin_config.parse(GIN_FILES, ['NUM_SOURCES = 8'])
  try:
    with pytest.raises(ValueError, match='different gin config'):
      model_dir_lib.prepare_model_dir(str(copy))
    assert model_dir_lib.prepare_model_dir(str(copy), overwrite=True) is False
  finally:
    gin.clear_config()
  assert sorted(os.listdir(copy)) == ['notes.txt']


def test_checkpoints_without_a_config_are_refused(tmp_path):
  model_dir = str(tmp_path)
  tf.train.Checkpoint(step=tf.Variable(1)).save(os.path.join(model_dir, 'ckpt'))
  gin_config.parse([], [])
  try:
    with pytest.raises(ValueError, match='holds checkpoints but no config.gin'):
      model_dir_lib.prepare_model_dir(model_dir)
  finally:
    gin.clear_config()


def test_misspelt_gin_files_and_bindings_raise_naming_them(fuss_root, tmp_path):
  model_dir = str(tmp_path / 'model')
  cases = [
      (['--gin_file=models/tdcnpp_smal.gin'], 'tdcnpp_smal'),
      (['--gin_param=trainer.lamda_sparse = 1.0'], 'lamda_sparse'),
      (['--gin_param=trainr.lambda_sparse = 1.0'], 'trainr'),
      (['--gin_param=training.num_step = 5'], 'num_step'),
  ]
  bad_file = tmp_path / 'bad.gin'
  bad_file.write_text("include 'optimization/base.gin'\ntrainer.lambda_spars = 0.1\n")
  cases.append(([f'--gin_file={bad_file}'], r'lambda_spars(.|\n)*bad\.gin'))
  bad_include = tmp_path / 'bad_include.gin'
  bad_include.write_text("include 'models/tdcnpp_smal.gin'\n")
  cases.append(([f'--gin_file={bad_include}'], r'tdcnpp_smal\.gin(.|\n)*bad_include\.gin'))
  for extra, pattern in cases:
    with pytest.raises(ValueError, match=pattern):
      run_cli(cli_args(fuss_root, model_dir, extra=extra))
  assert not os.path.exists(os.path.join(model_dir, 'config.gin'))


def test_init_from_loads_the_network_and_rejects_another_architecture(trained, fuss_root):
  model_dir, _ = trained
  gin_config.parse(GIN_FILES, tiny_params(fuss_root, *CLI_SETTINGS))
  try:
    network = model_lib.build_network()
    path = model_dir_lib.initialize_from(network, model_dir)
    assert path.endswith('ckpt-3')
    reader = tf.train.load_checkpoint(path)
    # A checkpoint stores each variable once, under its shortest object path:
    # trainable weights under the optimizer's variable list, the rest under network/.
    saved = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if k.startswith(('network/', 'optimizer/_trainable_variables/'))}
    values = sorted(tuple(np.round(np.ravel(v)[:4], 6)) for v in saved.values())
    restored = sorted(tuple(np.round(np.ravel(v.numpy())[:4], 6))
                      for v in network.variables)
    assert len(saved) == len(network.variables) and values == restored
    wider = model_lib.build_network(bottleneck=24)
    with pytest.raises(ValueError, match='does not match this network'):
      model_dir_lib.initialize_from(wider, model_dir)
    with pytest.raises(ValueError, match='holds no checkpoint'):
      model_dir_lib.initialize_from(network, os.path.dirname(model_dir))
  finally:
    gin.clear_config()


def test_progress_line_and_durations():
  progress = train_loop.Progress(num_steps=110)
  first = progress.line(11, {'loss': -3.0}, now=100.0)  # no timed step yet: no rate, no ETA
  assert 'steps/s' not in first and 'ETA' not in first and 'nan' not in first, first
  line = progress.line(31, {'loss': -3.5, 'mixit': -3.5}, now=110.0)
  assert line.startswith('step 31/110 (28.2%) loss=-3.500 mixit=-3.500')
  assert '2.00 steps/s' in line and 'ETA 0m40s' in line
  assert progress_lib.format_duration(3725) == '1h02m05s'


@pytest.mark.slow
def test_sigkill_then_restart_resumes_from_the_last_checkpoint(fuss_root, tmp_path):
  model_dir = str(tmp_path / 'model')
  common = ['training.checkpoint_every = 5', 'training.eval_every = 0']
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  command = [sys.executable, '-m', 'mixit.commands.train', '--alsologtostderr']
  killed = subprocess.Popen(
      command + cli_args(fuss_root, model_dir, 'training.num_steps = 100000', *common),
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.time() + 400
    def latest_step():
      latest = tf.train.latest_checkpoint(model_dir)  # complete checkpoints only
      return int(latest.rsplit('-', 1)[1]) if latest else 0

    while latest_step() < 10:
      assert killed.poll() is None, killed.stdout.read()[-5000:]
      assert time.time() < deadline, 'no checkpoint in time'
      time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    first_log = killed.communicate(timeout=60)[0]
  finally:
    if killed.poll() is None:
      killed.kill()
  assert killed.returncode == -signal.SIGKILL
  saved = int(tf.train.latest_checkpoint(model_dir).rsplit('-', 1)[1])
  last_logged = max(int(s) for s in re.findall(r'step (\d+)/100000', first_log))
  assert saved >= 10 and saved % 5 == 0
  assert 0 <= last_logged - saved <= 5  # at most the steps since the last checkpoint are lost

  # Restart the same run (num_steps may change) for 9 more steps.
  target = saved + 9
  restarted = subprocess.run(
      command + cli_args(fuss_root, model_dir, f'training.num_steps = {target}', *common),
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      timeout=400)
  log = restarted.stdout
  assert restarted.returncode == 0, log[-5000:]
  lr = 1e-4 * 0.5**(saved // 7)
  match = re.search(r'resumed from \S*ckpt-(\d+) at step (\d+) \(learning rate (\S+)\)', log)
  assert match and int(match.group(1)) == int(match.group(2)) == saved, log[-5000:]
  assert float(match.group(3)) == pytest.approx(lr, rel=1e-2)
  steps = [int(s) for s in re.findall(rf'step (\d+)/{target}', log)]
  assert steps == list(range(saved + 1, target + 1))
  reader = tf.train.load_checkpoint(model_dir)
  names = reader.get_variable_to_shape_map()
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == target
  iterations = [k for k in names if k.startswith('optimizer/') and 'iteration' in k]
  assert reader.get_tensor(iterations[0]) == target
  # The learning rate logged at each step follows the schedule across the restart.
  events = read_events(os.path.join(model_dir, 'train'))
  for step, _, value in events['learning_rate']:
    # The lr summary is the rate of the *next* update, i.e. at iterations == step.
    assert float(value) == pytest.approx(1e-4 * 0.5**(step // 7), rel=1e-5), step

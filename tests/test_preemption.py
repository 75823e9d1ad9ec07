"""Preemption and sharing of a model dir: SIGTERM saves the step and exits 143, the rerun
resumes there with the weights an uninterrupted run has at that step; a second run on a held
model dir is refused naming the holder, while export reads it; a stale lock is taken over."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from mixit import owned_files

from conftest import TINY_GIN_FILES, tiny_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ['batch_size = 2', 'eval_data.batch_size = 2', 'training.log_every = 1',
            'training.eval_every = 0', 'training.seed = 0', 'SEED = 7',
            'training.checkpoint_every = 1000']


def _command(fuss_root, model_dir, *params):
  args = [sys.executable, '-m', 'mixit.commands.train', '--alsologtostderr',
          f'--model_dir={model_dir}'] + [f'--gin_file={f}' for f in TINY_GIN_FILES]
  return args + [f'--gin_param={p}' for p in tiny_params(fuss_root, *SETTINGS, *params)]


def _env():
  return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')


def _start(command):
  return subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait_for(process, pattern, deadline_s=600):
  """Reads the process's output until a line holds `pattern`; returns the lines read."""
  lines = []
  deadline = time.time() + deadline_s
  while time.time() < deadline:
    line = process.stdout.readline()
    if not line:
      raise AssertionError('process ended early:\n' + ''.join(lines[-60:]))
    lines.append(line)
    if pattern in line:
      return lines
  raise AssertionError(f'no {pattern!r} in time')


def _weights(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith('network/') or 'optimizer' in k}


def test_sigterm_saves_the_step_and_the_rerun_resumes_there(fuss_root, tmp_path):
  model_dir = str(tmp_path / 'run')
  process = _start(_command(fuss_root, model_dir, 'training.num_steps = 100000'))
  try:
    _wait_for(process, 'step 6/')
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
  finally:
    process.kill()
  assert process.returncode == 143, output[-3000:]
  stopped = [line for line in output.splitlines() if line.startswith('mixit-train: stopped by')]
  assert len(stopped) == 1, output[-3000:]
  assert 'Traceback' not in output
  step = int(stopped[0].split(' at step ')[1].split(':')[0])
  assert step >= 6 and f'ckpt-{step}' in stopped[0]
  saved = tf.train.latest_checkpoint(model_dir)
  assert saved.endswith(f'ckpt-{step}')  # nothing lost since the last periodic save
  assert not os.path.exists(os.path.join(model_dir, owned_files.LOCK_FILE))

  # An uninterrupted run of the same seed, to that step, has the same weights and
  # optimizer state (the CPU step and the seeded pipeline are deterministic).
  reference_dir = str(tmp_path / 'reference')
  reference = subprocess.run(_command(fuss_root, reference_dir, f'training.num_steps = {step}'),
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert reference.returncode == 0, reference.stderr[-3000:]
  got, want = _weights(saved), _weights(tf.train.latest_checkpoint(reference_dir))
  assert got.keys() == want.keys() and len(got) > 10
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)

  # The rerun of the same command resumes at exactly that step.
  rerun = subprocess.run(_command(fuss_root, model_dir, f'training.num_steps = {step + 2}'),
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f'ckpt-{step} at step {step}' in rerun.stderr
  assert tf.train.latest_checkpoint(model_dir).endswith(f'ckpt-{step + 2}')


def test_second_run_on_a_held_model_dir_is_refused_and_export_reads_it(fuss_root, tmp_path):
  model_dir = str(tmp_path / 'shared')
  first = _start(_command(fuss_root, model_dir, 'training.num_steps = 100000',
                          'training.checkpoint_every = 2'))
  try:
    _wait_for(first, 'saved ')
    second = subprocess.run(_command(fuss_root, model_dir, 'training.num_steps = 5',
                                     'learning_rate = 0.003'),
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if 'mixit-train: error:' in line]
    assert len(errors) == 1, second.stderr[-3000:]
    assert f'PID {first.pid}' in errors[0] and socket.gethostname() in errors[0]
    # The holder's config is untouched by the refused run.
    assert 'learning_rate = 0.003' not in open(os.path.join(model_dir, 'config.gin')).read()
    # Export reads the held model dir without waiting for it.
    exported = subprocess.run([sys.executable, '-m', 'mixit.commands.export',
                               f'--model_dir={model_dir}', f'--output_dir={tmp_path / "e"}'],
                              cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=300)
    assert first.returncode == 130
  finally:
    first.kill()
  assert not os.path.exists(os.path.join(model_dir, owned_files.LOCK_FILE))


def test_a_stale_lock_is_taken_over_by_the_next_run(fuss_root, tmp_path):
  model_dir = tmp_path / 'crashed'
  model_dir.mkdir()
  gone = subprocess.Popen([sys.executable, '-c', 'pass'])
  gone.wait()
  (model_dir / owned_files.LOCK_FILE).write_text(json.dumps(
      {'host': socket.gethostname(), 'pid': gone.pid, 'command': 'mixit-train'}))
  result = subprocess.run(_command(fuss_root, str(model_dir), 'training.num_steps = 2'),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'stale lock' in result.stderr and str(gone.pid) in result.stderr
  assert not (model_dir / owned_files.LOCK_FILE).exists()

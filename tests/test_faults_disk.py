"""A full disk: export and separation fail in one line naming the path, and leave nothing
that blocks a retry. A small tmpfs is used where the test may mount one (root on Linux);
elsewhere the failure is injected (ENOSPC from the writer)."""
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import soundfile

import mixit  # noqa: F401  (sets KERAS_BACKEND)
import keras
import tensorflow as tf

from mixit import gin_config
from mixit import model as model_lib
from mixit import owned_files
from mixit.serving import export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 16000


@pytest.fixture(scope='module', name='model_dir')
def fixture_model_dir(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp('model_dir'))
  gin_config.parse(['models/tdcnpp_small.gin'], ['NUM_SOURCES = 2'])
  network = model_lib.build_network()
  network(tf.zeros([1, RATE // 4]), training=False)
  checkpoint = tf.train.Checkpoint(network=network, optimizer=keras.optimizers.Adam(1e-3),
                                   step=tf.Variable(1, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=1).save(checkpoint_number=1)
  gin_config.write_config(model_dir)
  return model_dir


class SmallDisk:
  """A tmpfs of `size` at `path` (`grow()` makes room again), or None if it cannot mount."""

  def __init__(self, path, size='300k'):
    self.path = str(path)
    os.makedirs(self.path, exist_ok=True)
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', self.path],
                            capture_output=True, text=True, check=False)
    self.mounted = result.returncode == 0

  def grow(self):
    subprocess.run(['mount', '-o', 'remount,size=64m', self.path], check=True)

  def close(self):
    if self.mounted:
      subprocess.run(['umount', '-l', self.path], check=False)


@pytest.fixture(name='small_disk')
def fixture_small_disk(tmp_path):
  if sys.platform != 'linux' or os.geteuid() != 0:
    disk = None
  else:
    disk = SmallDisk(tmp_path / f'disk_{uuid.uuid4().hex[:6]}')
    if not disk.mounted:
      disk = None
  yield disk
  if disk is not None:
    disk.close()


def _inject_enospc(monkeypatch):
  """tf.saved_model.save writes a partial variables shard, then fails as a full disk does."""
  real_save = tf.saved_model.save

  def failing_save(module, output_dir, signatures=None):
    del module, signatures
    temp = os.path.join(output_dir, 'variables', 'variables_temp')
    os.makedirs(temp, exist_ok=True)
    with open(os.path.join(temp, 'part-00000-of-00001.data-00000-of-00001'), 'wb') as f:
      f.write(b'\0' * 1000)
    raise tf.errors.ResourceExhaustedError(
        None, None, f'{temp}/part-00000-of-00001.data-00000-of-00001.tempstate123; '
        'No space left on device')

  monkeypatch.setattr(tf.saved_model, 'save', failing_save)
  return real_save


def test_export_on_a_full_disk_is_one_line_and_a_retry_works(model_dir, small_disk, tmp_path,
                                                             monkeypatch):
  if small_disk is not None:
    out = os.path.join(small_disk.path, 'export')
  else:
    out = str(tmp_path / 'export')
    real_save = _inject_enospc(monkeypatch)
  with pytest.raises(OSError) as raised:
    export.export_saved_model(model_dir, out)
  message = str(raised.value)
  assert '\n' not in message and out in message and 'No space left on device' in message
  # Nothing of the failed export is left (no variables/variables_temp/).
  assert os.listdir(out) == []
  if small_disk is not None:
    small_disk.grow()
  else:
    monkeypatch.setattr(tf.saved_model, 'save', real_save)
  metadata = export.export_saved_model(model_dir, out)  # no --overwrite, no hand-cleaning
  assert 'saved_model.pb' in metadata['files']


def test_a_failed_export_removes_only_what_it_wrote(model_dir, tmp_path, monkeypatch):
  out = str(tmp_path / 'export')
  export.export_saved_model(model_dir, out)
  with open(os.path.join(out, 'notes.txt'), 'w') as f:
    f.write('mine')
  _inject_enospc(monkeypatch)
  with pytest.raises(OSError, match='No space left on device'):
    export.export_saved_model(model_dir, out, overwrite=True)
  # The earlier export was replaced (--overwrite), the failed one left nothing, the note stays.
  assert os.listdir(out) == ['notes.txt'] and open(os.path.join(out, 'notes.txt')).read() == 'mine'


def test_separate_on_a_full_disk_is_one_line(model_dir, small_disk, tmp_path):
  if small_disk is None:
    pytest.skip('needs a small tmpfs (root on Linux)')
  exported = str(tmp_path / 'export')
  export.export_saved_model(model_dir, exported)
  recording = str(tmp_path / 'long.wav')
  soundfile.write(recording, 0.1 * np.random.default_rng(0).standard_normal(RATE * 8), RATE)
  out = os.path.join(small_disk.path, 'separated')
  result = subprocess.run([sys.executable, '-m', 'mixit.commands.separate',
                           f'--saved_model={exported}', f'--input={recording}',
                           f'--output_dir={out}', '--noprogress'],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 1
  lines = [line for line in result.stderr.splitlines() if 'mixit-separate: error:' in line]
  assert len(lines) == 1, result.stderr[-3000:]
  assert 'No space left on device' in lines[0] and small_disk.path in lines[0]
  assert 'Traceback' not in result.stderr
  leftovers = [n for n in owned_files.list_files(out) if not n.startswith('.mixit_separate')]
  assert leftovers == [], leftovers


def test_training_on_a_full_disk_leaves_no_temp_checkpoint_and_a_rerun_works(small_disk,
                                                                              fuss_root):
  import gin
  from data_pipeline import inputs  # noqa: F401
  from mixit.training import loop
  from mixit.training import trainer  # noqa: F401
  from conftest import TINY_GIN_FILES, tiny_params
  if small_disk is None:
    pytest.skip('needs a small tmpfs (root on Linux)')
  small = SmallDisk(os.path.join(small_disk.path, '..', f'tiny_{uuid.uuid4().hex[:6]}'),
                    size='100k')  # the tiny network's first checkpoint needs about 175 kB
  try:
    model_dir = os.path.join(small.path, 'model')
    params = tiny_params(fuss_root, 'batch_size = 2', 'validation.every = 0',
                         'training.jit_compile = False')  # the disk is tested, not XLA
    try:
      gin_config.parse(list(TINY_GIN_FILES), params)
      with pytest.raises(OSError) as raised:
        loop.train_from_gin(model_dir, num_steps=1)
    finally:
      gin.clear_config()
    from mixit.commands import cli
    message = cli.error_line(raised.value)  # what mixit-train prints
    assert 'cannot save checkpoint ckpt-1' in message and model_dir in message
    assert 'No space left on device' in message and '\n' not in message
    assert not [n for n in os.listdir(model_dir) if '_temp' in n], os.listdir(model_dir)
    assert not os.path.exists(os.path.join(model_dir, owned_files.LOCK_FILE))
    small.grow()
    try:
      gin_config.parse(list(TINY_GIN_FILES), params)
      loop.train_from_gin(model_dir, num_steps=1)
    finally:
      gin.clear_config()
    assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-1')
  finally:
    small.close()

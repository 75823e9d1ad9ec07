"""User mistakes, damaged files and kills around `mixit-train` and `mixit-export`: nothing
the user wrote is deleted, nothing older than the last save is lost, a resume never
silently restarts, and every failure is one line naming the file or binding."""
import glob
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import mixit  # noqa: F401
import gin
import tensorflow as tf

from data_pipeline import synthetic
from mixit import checkpoints
from mixit.serving import export
from mixit import gin_config
from mixit.training import model_dir as model_dir_lib

from conftest import CLIP_SECONDS, SAMPLE_RATE, TINY_NETWORK
from test_train_cli import CLI_SETTINGS, GIN_FILES, ROOT, cli_args, run_cli

# The bindings `cli_args` adds after DATA_ROOT.
TINY = list(TINY_NETWORK) + list(CLI_SETTINGS)

# Without XLA (the default): these runs test the model dir, not the step, and most of them
# resume, which would compile the step again in every run.
RUN = ['training.checkpoint_every = 2', 'training.eval_every = 0', 'training.max_to_keep = 5',
       'training.jit_compile = False']


@pytest.fixture(scope='module')
def fuss_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('fuss'))
  synthetic.make_dataset(root, num_train=8, num_validation=4, num_eval=0, seed=4,
                         sample_rate=SAMPLE_RATE, clip_seconds=CLIP_SECONDS)
  return root


@pytest.fixture(scope='module')
def six_steps(fuss_root, tmp_path_factory):
  """A model dir after 6 steps with ckpt-2, ckpt-4 and ckpt-6 (copy it before changing it)."""
  model_dir = str(tmp_path_factory.mktemp('run') / 'model')
  run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 6', *RUN))
  return model_dir


def _copy(model_dir, tmp_path):
  copy = str(tmp_path / 'model')
  shutil.copytree(model_dir, copy)
  return copy


def _bytes(model_dir, pattern):
  return {os.path.basename(p): open(p, 'rb').read()
          for p in sorted(glob.glob(os.path.join(model_dir, pattern)))}


class _Log(logging.Handler):

  def __init__(self):
    super().__init__(logging.DEBUG)
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


@pytest.fixture
def absl_log():
  logger = logging.getLogger('absl')
  handler = _Log()
  old = logger.level
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  tf_logger = tf.get_logger()
  tf_logger.addHandler(handler)
  yield handler.lines
  logger.removeHandler(handler)
  tf_logger.removeHandler(handler)
  logger.setLevel(old)


# --------------------------------------------------------------------------------------------
# Case 1: --overwrite deletes only what the run wrote; a data folder is never a model dir.


def test_overwrite_deletes_only_files_the_run_recorded(six_steps, fuss_root, tmp_path):
  model_dir = _copy(six_steps, tmp_path)
  (tmp_path / 'model' / 'ckpt-notes.txt').write_text('my notes')
  (tmp_path / 'model' / 'config.gin.bak').write_text('my backup')
  gin_config.parse(GIN_FILES, [f"DATA_ROOT = '{fuss_root}'"] + TINY + ['NUM_SOURCES = 8'])
  try:
    with pytest.raises(ValueError, match='different gin config'):
      model_dir_lib.prepare_model_dir(model_dir)
    assert model_dir_lib.prepare_model_dir(model_dir, overwrite=True) is False
  finally:
    gin.clear_config()
  assert sorted(os.listdir(model_dir)) == ['ckpt-notes.txt', 'config.gin.bak']
  # A run of an older version, without a manifest: only the names a run writes go.
  legacy = _copy(six_steps, tmp_path / 'legacy')
  os.remove(os.path.join(legacy, 'mixit_run.json'))
  (tmp_path / 'legacy' / 'model' / 'ckpt-notes.txt').write_text('my notes')
  gin_config.parse(GIN_FILES, [f"DATA_ROOT = '{fuss_root}'"] + TINY + ['NUM_SOURCES = 8'])
  try:
    assert model_dir_lib.prepare_model_dir(legacy, overwrite=True) is False
  finally:
    gin.clear_config()
  assert sorted(os.listdir(legacy)) == ['ckpt-notes.txt']


def test_overwrite_keeps_a_user_file_that_only_has_a_run_file_name(six_steps, fuss_root,
                                                                   tmp_path):
  model_dir = _copy(six_steps, tmp_path)
  with open(os.path.join(model_dir, 'mixit_run.json')) as f:
    started = json.load(f)['started']
  # The user's file, older than the run, named exactly as a checkpoint index.
  user_file = os.path.join(model_dir, 'ckpt-99.index')
  with open(user_file, 'w') as f:
    f.write('my index')
  os.utime(user_file, (started - 3600, started - 3600))
  # A checkpoint the run wrote but was killed before recording: newer than the run's start.
  missed = os.path.join(model_dir, 'ckpt-8.index')
  shutil.copy(os.path.join(model_dir, 'ckpt-6.index'), missed)
  gin_config.parse(GIN_FILES, [f"DATA_ROOT = '{fuss_root}'"] + TINY + ['NUM_SOURCES = 8'])
  try:
    with pytest.raises(ValueError, match=r'still holds checkpoints that no run recorded '
                                         r'\(ckpt-99'):
      model_dir_lib.prepare_model_dir(model_dir, overwrite=True)
  finally:
    gin.clear_config()
  assert sorted(os.listdir(model_dir)) == ['ckpt-99.index']
  with open(user_file) as f:
    assert f.read() == 'my index'


def test_a_data_folder_is_refused_as_model_dir_and_left_alone(fuss_root, tmp_path):
  data = str(tmp_path / 'data')
  shutil.copytree(fuss_root, data)
  before = sorted(glob.glob(os.path.join(data, '**', '*'), recursive=True))
  assert any(p.endswith('.wav') for p in before)
  for extra in ([], ['--overwrite']):
    with pytest.raises(ValueError, match=r'data/train holds files that are not training logs'):
      run_cli(cli_args(data, data, 'training.num_steps = 1', *RUN, extra=extra))
  assert sorted(glob.glob(os.path.join(data, '**', '*'), recursive=True)) == before


# --------------------------------------------------------------------------------------------
# Cases 2 and 3: a lost state file or a damaged latest checkpoint never restarts the run.


def test_missing_state_file_resumes_from_the_newest_checkpoint(six_steps, fuss_root, tmp_path,
                                                               absl_log):
  model_dir = _copy(six_steps, tmp_path)
  os.remove(os.path.join(model_dir, 'checkpoint'))
  older = _bytes(model_dir, 'ckpt-*')
  run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 8', *RUN))
  log = '\n'.join(absl_log)
  assert re.search(r'resumed from \S*ckpt-6 at step 6', log), log[-3000:]
  assert _bytes(model_dir, 'ckpt-[246].*') == older  # nothing older was overwritten
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-8')
  state = tf.train.get_checkpoint_state(model_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'ckpt-2', 'ckpt-4', 'ckpt-6', 'ckpt-8']


def test_damaged_latest_checkpoint_is_named_and_skipped(six_steps, fuss_root, tmp_path,
                                                        absl_log):
  model_dir = _copy(six_steps, tmp_path)
  data_file, = glob.glob(os.path.join(model_dir, 'ckpt-6.data-*'))
  with open(data_file, 'r+b') as f:
    f.truncate(os.path.getsize(data_file) // 2)
  # Export: the damaged checkpoint is named; without --checkpoint the newest intact one is used.
  with pytest.raises(ValueError, match=re.escape(data_file) + '.*damaged'):
    export.export_saved_model(model_dir, str(tmp_path / 'e6'), checkpoint=6)
  metadata = export.export_saved_model(model_dir, str(tmp_path / 'latest'), verify=False)
  assert metadata['checkpoint'].endswith('ckpt-4') and metadata['step'] == 4
  assert any(data_file in line and 'ckpt-4' in line for line in absl_log)
  # Training: resumes from ckpt-4 with a warning naming the file, and goes on.
  gin.clear_config()
  run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 8', *RUN))
  log = '\n'.join(absl_log)
  assert re.search(r'resumed from \S*ckpt-4 at step 4', log), log[-3000:]
  assert checkpoints.damage(os.path.join(model_dir, 'ckpt-6')) is None  # saved again
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-8')
  # Nothing intact at all: refused, never trained over from step 0.
  for path in glob.glob(os.path.join(model_dir, 'ckpt-*.data-*')):
    with open(path, 'r+b') as f:
      f.truncate(10)
  with pytest.raises(ValueError, match='holds checkpoints but none is intact'):
    run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 10', *RUN))


def test_a_relative_model_dir_finds_its_latest_checkpoint_without_skipping(six_steps, tmp_path,
                                                                          monkeypatch, absl_log):
  # `mixit-demo --output_dir demo_out` passes relative model dirs. TensorFlow already joins the
  # state file's relative entries with the folder; joining them again named
  # demo_out/model/demo_out/model/ckpt-N, which was reported missing and skipped.
  model_dir = _copy(six_steps, tmp_path)
  monkeypatch.chdir(os.path.dirname(model_dir))
  relative = os.path.basename(model_dir)
  state_before = _bytes(relative, 'checkpoint')
  found, skipped = checkpoints.find_in_folder(relative)
  assert (found, skipped) == (os.path.join(relative, 'ckpt-6'), [])
  assert checkpoints.resolve(relative) == os.path.join(relative, 'ckpt-6')
  assert model_dir_lib.find_resume_checkpoint(relative) == os.path.join(relative, 'ckpt-6')
  assert _bytes(relative, 'checkpoint') == state_before  # no repair was needed
  assert not any('missing' in line for line in absl_log), absl_log


# --------------------------------------------------------------------------------------------
# Case 4: mixit-export --overwrite keeps the user's files.


def test_export_overwrite_deletes_only_the_earlier_exports_files(six_steps, tmp_path):
  out = tmp_path / 'export'
  export.export_saved_model(six_steps, str(out), checkpoint=2, verify=False)
  (out / 'README.txt').write_text('my notes about this model')
  (out / 'variables' / 'mine.txt').write_text('mine too')
  with pytest.raises(FileExistsError, match='not empty'):
    export.export_saved_model(six_steps, str(out))
  metadata = export.export_saved_model(six_steps, str(out), overwrite=True, verify=False)
  assert metadata['step'] == 6
  assert (out / 'README.txt').read_text() == 'my notes about this model'
  assert (out / 'variables' / 'mine.txt').read_text() == 'mine too'
  assert 'README.txt' not in metadata['files'] and 'saved_model.pb' in metadata['files']
  assert int(tf.saved_model.load(str(out)).num_sources.numpy()) == 4


# --------------------------------------------------------------------------------------------
# Cases 11 and 12: one-line errors, type checks, config written after validation, paths.


def _train_subprocess(args, timeout=300, extra_env=None):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(__file__)]),
             TF_CPP_MIN_LOG_LEVEL='2', **(extra_env or {}))
  return subprocess.run([sys.executable, '-m', 'mixit.commands.train'] + args, cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_train_failures_are_one_line_and_config_is_written_after_validation(fuss_root,
                                                                            tmp_path):
  model_dir = str(tmp_path / 'model')
  wrong_type = _train_subprocess(cli_args(fuss_root, model_dir, "batch_size = 'x'"))
  assert wrong_type.returncode == 1
  error_lines = [line for line in wrong_type.stderr.splitlines()
                 if 'mixit-train: error:' in line]
  assert len(error_lines) == 1, wrong_type.stderr[-3000:]
  assert "train_data.batch_size = 'x' (macro batch_size): expected int, got str" in \
      error_lines[0]
  assert 'Traceback' not in wrong_type.stderr
  missing = _train_subprocess(cli_args(str(tmp_path / 'nowhere'), model_dir))
  assert missing.returncode == 1
  error, = [line for line in missing.stderr.splitlines() if 'mixit-train: error:' in line]
  assert 'nowhere' in error and 'Traceback' not in missing.stderr
  # The error ends the output: no traceback, no configurable context after it.
  assert missing.stderr.strip().splitlines()[-1] == error
  # The failed runs left no config behind, so the corrected command is not "a different
  # config"; --traceback shows the traceback.
  assert not os.path.exists(os.path.join(model_dir, 'config.gin'))
  traced = _train_subprocess(cli_args(str(tmp_path / 'nowhere'), model_dir,
                                      extra=['--traceback']))
  assert 'Traceback (most recent call last)' in traced.stderr
  gin.clear_config()
  run_cli(cli_args(fuss_root, model_dir, 'training.num_steps = 1', *RUN))
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-1')


def test_init_from_another_architecture_is_one_error_without_warnings(six_steps, fuss_root,
                                                                      tmp_path, absl_log):
  with pytest.raises(ValueError, match=r'--init_from \S*ckpt-6 does not match this network'):
    run_cli(cli_args(fuss_root, str(tmp_path / 'fine_tuned'), 'NUM_SOURCES = 8',
                     'training.num_steps = 1', *RUN, extra=[f'--init_from={six_steps}']))
  noise = [line for line in absl_log if 'could not be found' in line]
  assert noise == []


def test_resume_compares_paths_by_the_folder_they_name(six_steps, fuss_root, tmp_path,
                                                       monkeypatch):
  model_dir = _copy(six_steps, tmp_path)
  monkeypatch.chdir(os.path.dirname(fuss_root))
  relative = os.path.join('.', os.path.basename(fuss_root)) + '/'
  gin_config.parse(GIN_FILES, [f"DATA_ROOT = '{relative}'"] + TINY + RUN)
  try:
    assert model_dir_lib.prepare_model_dir(model_dir) is True
    gin_config.parse(GIN_FILES, [f"DATA_ROOT = '{relative}'"] + TINY + RUN +
                     ['trainer.lambda_sparse = 0.5'])
    with pytest.raises(ValueError) as refused:
      model_dir_lib.prepare_model_dir(model_dir)
  finally:
    gin.clear_config()
  message = str(refused.value)
  assert '+trainer.lambda_sparse = 0.5' in message and 'DATA_ROOT' not in message
  # The way to resume is offered, not only --overwrite (which deletes the run).
  assert f'--gin_file {os.path.join(model_dir, "config.gin")}' in message


# --------------------------------------------------------------------------------------------
# Case 13: a model dir's config never runs code.


MARKER_MODULE = '''
import os
with open(os.environ['MIXIT_TEST_MARKER'], 'w') as f:
  f.write('imported')
'''


def test_model_dir_configs_never_execute_imports(six_steps, fuss_root, tmp_path, monkeypatch,
                                                 caplog):
  modules = tmp_path / 'modules'
  modules.mkdir()
  (modules / 'mixit_test_marker_module.py').write_text(MARKER_MODULE)
  marker = tmp_path / 'imported.txt'
  monkeypatch.setenv('MIXIT_TEST_MARKER', str(marker))
  monkeypatch.syspath_prepend(str(modules))
  sys.modules.pop('mixit_test_marker_module', None)
  model_dir = _copy(six_steps, tmp_path)
  config = os.path.join(model_dir, 'config.gin')
  text = open(config).read()
  with open(config, 'w') as f:
    f.write('import mixit_test_marker_module\n' + text)
  with caplog.at_level(logging.WARNING):
    export.export_saved_model(model_dir, str(tmp_path / 'export'), verify=False)
  assert not marker.exists()
  assert any('config.gin:1: ignoring' in r.getMessage()
             and 'mixit_test_marker_module' in r.getMessage() for r in caplog.records)
  # The fine-tuning recipe: mixit-train --gin_file <model dir>/config.gin.
  gin_config.parse([config], [f"DATA_ROOT = '{fuss_root}'"])
  gin.clear_config()
  assert not marker.exists()
  assert 'mixit_test_marker_module' not in sys.modules
  with open(config, 'w') as f:
    f.write("include 'models/tdcnpp_small.gin'\n" + text)
  with pytest.raises(ValueError, match=r'config\.gin:1: a model dir\'s config may not include'):
    export.export_saved_model(model_dir, str(tmp_path / 'export2'), verify=False)
  # A gin file of one's own (not in a model dir) still imports what it says.
  own = tmp_path / 'mine.gin'
  own.write_text('import mixit_test_marker_module\n')
  gin_config.parse([str(own)], [])
  gin.clear_config()
  assert marker.exists()


# --------------------------------------------------------------------------------------------
# Case 9: after a decode error in the in-the-wild pipeline the process always exits promptly.


def _wild_args(fuss_root, wild_dir, model_dir):
  args = [f'--model_dir={model_dir}', '--gin_file=models/tdcnpp_small.gin',
          '--gin_file=datasets/wild_folder.gin', '--gin_file=optimization/base.gin']
  params = [f"DATA_ROOT = '{fuss_root}'", "FUSS_SUBFOLDER = ''", f"WILD_SOURCE = '{wild_dir}'",
            'training.num_steps = 50', 'training.eval_every = 0'] + TINY
  return args + [f'--gin_param={p}' for p in params]


def _bad_wild_folder(tmp_path, kind):
  import numpy as np
  import soundfile
  wild_dir = tmp_path / 'wild'
  wild_dir.mkdir()
  rng = np.random.default_rng(0)
  for i in range(6):
    soundfile.write(str(wild_dir / f'rec{i}.wav'),
                    rng.uniform(-0.3, 0.3, 4000).astype(np.float32), SAMPLE_RATE,
                    subtype='PCM_16')
  if kind == 'truncated':
    data = (wild_dir / 'rec0.wav').read_bytes()
    (wild_dir / 'bad.wav').write_bytes(data[:len(data) // 2])
  else:
    os.symlink(str(tmp_path / 'gone.wav'), str(wild_dir / 'bad.wav'))
  return str(wild_dir)


def _assert_prompt_named_exit(fuss_root, wild_dir, model_dir, runs, deadline_s):
  outcomes = []
  for _ in range(runs):
    shutil.rmtree(model_dir, ignore_errors=True)
    started = time.monotonic()
    try:
      result = _train_subprocess(_wild_args(fuss_root, wild_dir, model_dir),
                                 timeout=deadline_s)
    except subprocess.TimeoutExpired:
      outcomes.append(('hang', time.monotonic() - started))
      continue
    named = [line for line in result.stderr.splitlines()
             if line.startswith('mixit-train: error:') and 'bad.wav' in line]
    # The file is named before any step: no traceback, and nothing left in the model dir.
    left = sorted(os.listdir(model_dir)) if os.path.isdir(model_dir) else []
    outcomes.append((result.returncode, len(named), 'Traceback' in result.stderr, left,
                     round(time.monotonic() - started, 1)))
  assert all(o[:4] == (1, 1, False, []) for o in outcomes), outcomes


@pytest.mark.parametrize('kind', ['truncated', 'broken_symlink'])
def test_wild_decode_error_exits_promptly_with_the_named_error(fuss_root, tmp_path, kind):
  wild_dir = _bad_wild_folder(tmp_path, kind)
  _assert_prompt_named_exit(fuss_root, wild_dir, str(tmp_path / 'model'), runs=2,
                            deadline_s=120)


@pytest.mark.slow
def test_wild_decode_error_exits_promptly_over_many_runs(fuss_root, tmp_path):
  wild_dir = _bad_wild_folder(tmp_path, 'truncated')
  _assert_prompt_named_exit(fuss_root, wild_dir, str(tmp_path / 'model'), runs=12,
                            deadline_s=120)


# --------------------------------------------------------------------------------------------
# Fault injection: SIGKILL during a checkpoint save, then a resume that loses nothing older.

# Runs mixit-train, stopping (for the test to SIGKILL) inside the save of ckpt-<K>: either
# in the middle of rewriting the run's config beside it (half of the text written), or
# after the checkpoint files but before the state file names them.
_PAUSING_TRAIN = textwrap.dedent('''
    import os, sys, time
    import tensorflow as tf
    from tensorflow.python.checkpoint import checkpoint_management
    point, model_dir, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ready = os.path.join(os.path.dirname(model_dir), 'paused')

    def pause():
      open(ready, 'w').close()
      time.sleep(600)

    def saving():
      return os.path.exists(os.path.join(model_dir, f'ckpt-{step}.index'))

    if point == 'config':
      write = tf.io.gfile.GFile.write
      def half_then_pause(self, data):
        if os.path.basename(self.name).startswith('config.gin') and saving():
          write(self, data[:len(data) // 2])
          self.flush()
          pause()
        return write(self, data)
      tf.io.gfile.GFile.write = half_then_pause
    else:
      record = checkpoint_management.CheckpointManager._record_state
      def pause_before_state(self):
        if saving():
          pause()
        return record(self)
      checkpoint_management.CheckpointManager._record_state = pause_before_state
    sys.argv = ['mixit-train'] + sys.argv[4:]
    from mixit.commands import train
    train.run()
''')


def _kill_during_save(fuss_root, tmp_path, point):
  model_dir = str(tmp_path / 'model')
  script = tmp_path / 'pausing_train.py'
  script.write_text(_PAUSING_TRAIN)
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  killed = subprocess.Popen(
      [sys.executable, str(script), point, model_dir, '6']
      + cli_args(fuss_root, model_dir, 'training.num_steps = 100', *RUN),
      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 300
    while not (tmp_path / 'paused').exists():
      assert killed.poll() is None, killed.stderr.read()[-3000:]
      assert time.time() < deadline, 'the save of ckpt-6 never started'
      time.sleep(0.05)
    older = _bytes(model_dir, 'ckpt-[24].*')
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
  finally:
    if killed.poll() is None:
      killed.kill()
  assert killed.returncode == -signal.SIGKILL
  assert set(older) == {'ckpt-2.index', 'ckpt-4.index', 'ckpt-2.data-00000-of-00001',
                        'ckpt-4.data-00000-of-00001'}
  resumed = _train_subprocess(
      cli_args(fuss_root, model_dir, 'training.num_steps = 8', *RUN, extra=['--alsologtostderr']))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  match = re.search(r'resumed from \S*ckpt-(\d+) at step (\d+)', resumed.stderr)
  assert match, resumed.stderr[-3000:]
  assert int(match.group(1)) == int(match.group(2)) == 6
  assert _bytes(model_dir, 'ckpt-[24].*') == older
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-8')


def test_sigkill_while_rewriting_the_config_at_a_save_loses_nothing(fuss_root, tmp_path):
  _kill_during_save(fuss_root, tmp_path, 'config')


@pytest.mark.slow
def test_sigkill_before_the_state_file_names_the_new_checkpoint_loses_nothing(fuss_root,
                                                                              tmp_path):
  _kill_during_save(fuss_root, tmp_path, 'state')


def test_a_training_run_names_the_skipped_wild_files_at_its_end(tmp_path, caplog):
  """With skip_bad, a run ends by naming (and counting) the bad files it skipped."""
  import numpy as np
  import soundfile
  folder = tmp_path / 'rec'
  folder.mkdir()
  rng = np.random.default_rng(0)
  for k in range(3):
    soundfile.write(str(folder / f'rec{k}.wav'), rng.uniform(-0.3, 0.3, 4000).astype(np.float32),
                    SAMPLE_RATE, subtype='PCM_16')
  data = (folder / 'rec0.wav').read_bytes()
  (folder / 'zz_corrupt.wav').write_bytes(data[:len(data) // 2])
  import gin
  from data_pipeline import inputs  # noqa: F401  (registers the data configurables)
  from mixit import gin_config
  from mixit import model  # noqa: F401
  from mixit.training import loop
  from mixit.training import trainer  # noqa: F401
  from conftest import TINY_GIN_FILES, tiny_params
  params = tiny_params('/unused', 'batch_size = 2', 'validation.every = 0',
                       'NUM_MIXTURES = 2',
                       'train_data.source = @wild_mixtures()',
                       f"wild_mixtures.path = '{folder}'", 'wild_mixtures.skip_bad = True',
                       f'SAMPLE_RATE = {SAMPLE_RATE}', 'training.jit_compile = False')
  try:
    gin_config.parse(list(TINY_GIN_FILES), params)
    with caplog.at_level(logging.WARNING):
      loop.train_from_gin(str(tmp_path / 'model'), num_steps=1)
  finally:
    gin.clear_config()
  ends = [r.getMessage() for r in caplog.records if 'skipped in this run' in r.getMessage()]
  assert len(ends) == 1 and 'zz_corrupt.wav' in ends[0]

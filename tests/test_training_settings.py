"""The settings groups of a training run (mixit/training/settings.py) through gin, the flat
`training.*` names they replaced, and the resume check of a model dir whose config.gin the code
before the groups wrote."""
import dataclasses
import inspect
import os
import pathlib

import gin
import pytest
import tensorflow as tf

import mixit  # noqa: F401
from data_pipeline import inputs  # noqa: F401  (registers train_data / eval_data)
from mixit import gin_config
from mixit import model as model_lib  # noqa: F401  (registers network)
from mixit.training import loop as train_loop
from mixit.training import model_dir as model_dir_lib
from mixit.training import settings as settings_lib

from conftest import TINY_GIN_FILES, tiny_params

# The config.gin a `mixit-train` run wrote before the settings groups (commit 0ec0177's code:
# tests/test_train_cli.py's tiny CLI settings with every flat `training.*` name bound;
# DATA_ROOT = '/data/fuss_dev').
OLD_CONFIG = (pathlib.Path(__file__).parent / 'fixtures' / 'configs_before_training_settings'
              / 'cli_run.gin')
OLD_COMMAND = tiny_params(
    '/data/fuss_dev', 'batch_size = 2', 'eval_data.batch_size = 2', 'optimizer.decay_steps = 7',
    'training.log_every = 1', 'training.summary_every = 1', 'training.num_steps = 3',
    'training.checkpoint_every = 2', 'training.eval_every = 3', 'training.eval_steps = 20',
    'training.max_to_keep = 5', 'training.audio_summaries = True', 'training.jit_compile = False',
    'training.seed = 5')

# The real `train` (the `train_calls` fixture replaces it).
TRAIN = train_loop.train

# Each old name with a value that is not its default, and the new binding of the same value.
OLD_AND_NEW = [
    ('training.checkpoint_every = 7', 'checkpoints.every = 7'),
    ('training.max_to_keep = 2', 'checkpoints.max_to_keep = 2'),
    ('training.eval_every = 0', 'validation.every = 0'),
    ('training.eval_steps = None', 'validation.steps = None'),
    ('training.log_every = 3', 'logs.every = 3'),
    ('training.summary_every = 4', 'logs.summary_every = 4'),
    ('training.audio_summaries = False', 'logs.audio = False'),
    ('training.network_fn = @network', 'builders.network_fn = @network'),
    ('training.eval_input_fn = @eval_data', 'builders.eval_input_fn = @eval_data'),
]


@pytest.fixture
def train_calls(monkeypatch):
  """What `train_from_gin` hands `train` (which does not run)."""
  calls = []

  def fake_train(model_dir, strategy=None, **kwargs):
    calls.append(dict(kwargs, model_dir=model_dir, strategy=strategy))
    return {}

  monkeypatch.setattr(train_loop, 'train', fake_train)
  yield calls
  gin.clear_config()


def test_every_old_name_is_a_field_of_a_group():
  for old, (group, field) in settings_lib.OLD_NAMES.items():
    assert field in {f.name for f in dataclasses.fields(settings_lib.GROUPS[group])}, old
    assert settings_lib.new_binding(old) == f'{group}.{field}'
  tested = {old.split(' = ')[0] for old, _ in OLD_AND_NEW}
  untested = {'training.trainer_fn', 'training.optimizer_fn', 'training.train_input_fn'}
  assert tested | untested == {f'training.{old}' for old in settings_lib.OLD_NAMES}


def test_groups_read_their_gin_bindings_and_explicit_arguments_win():
  assert settings_lib.CheckpointSettings() == settings_lib.CheckpointSettings(1000, 5)
  assert settings_lib.ValidationSettings() == settings_lib.ValidationSettings(5000, 20)
  assert settings_lib.LogSettings() == settings_lib.LogSettings(100, 100, True)
  gin_config.parse([], [new for _, new in OLD_AND_NEW])
  try:
    assert settings_lib.CheckpointSettings() == settings_lib.CheckpointSettings(7, 2)
    assert settings_lib.CheckpointSettings(every=9) == settings_lib.CheckpointSettings(9, 2)
    assert settings_lib.ValidationSettings() == settings_lib.ValidationSettings(0, None)
    assert settings_lib.ValidationSettings().max_batches == 2**62
    assert settings_lib.LogSettings() == settings_lib.LogSettings(3, 4, False)
    builders = settings_lib.Builders()
    assert builders.network_fn is model_lib.build_network
    assert builders.eval_input_fn is inputs.eval_input_fn
    assert builders.train_input_fn is None
    assert builders.resolved(validates=False).train_input_fn is inputs.train_input_fn
  finally:
    gin.clear_config()
  with pytest.raises(ValueError, match=r'checkpoints.every must be >= 1, got 0'):
    settings_lib.CheckpointSettings(every=0)
  with pytest.raises(ValueError, match=r'logs.every \(1\) and logs.summary_every \(0\)'):
    settings_lib.LogSettings(every=1, summary_every=0)
  with pytest.raises(ValueError, match='num_steps must be >= 1, got 0'):
    train_loop.train('unused', num_steps=0)
  # The flat keywords are not `train`'s: an old call fails loudly, not with other settings.
  with pytest.raises(TypeError, match='num_steps'):
    train_loop.train('unused')
  with pytest.raises(TypeError, match='checkpoint_every'):
    train_loop.train('unused', num_steps=3, checkpoint_every=3)


def test_old_training_names_set_the_fields_they_became(train_calls, caplog):
  common = ['training.num_steps = 12', 'training.jit_compile = True', 'training.seed = 3']
  for bindings in ([old for old, _ in OLD_AND_NEW], [new for _, new in OLD_AND_NEW]):
    gin_config.parse([], bindings + common)
    gin_config.check_binding_types()
    train_loop.train_from_gin('run', overwrite=True)
    gin.clear_config()
  old, new = train_calls
  assert old == new
  assert old['checkpoints'] == settings_lib.CheckpointSettings(every=7, max_to_keep=2)
  assert old['validation'] == settings_lib.ValidationSettings(every=0, steps=None)
  assert old['logs'] == settings_lib.LogSettings(every=3, summary_every=4, audio=False)
  assert old['builders'].network_fn is model_lib.build_network
  assert old['builders'].eval_input_fn is inputs.eval_input_fn
  assert (old['num_steps'], old['jit_compile'], old['seed'], old['overwrite'],
          old['init_from']) == (12, True, 3, True, None)
  assert 'training.checkpoint_every is now checkpoints.every' in caplog.text
  assert 'training.eval_steps is now validation.steps' in caplog.text


def test_an_old_name_wins_over_the_new_binding_and_old_keywords_work(train_calls):
  gin_config.parse([], ['checkpoints.every = 5', 'checkpoints.max_to_keep = 3',
                        'training.checkpoint_every = 7', 'logs.every = 9'])
  train_loop.train_from_gin('run')
  assert train_calls[-1]['checkpoints'] == settings_lib.CheckpointSettings(every=7, max_to_keep=3)
  assert train_calls[-1]['logs'].every == 9
  # Python callers of the gin-facing function may still pass the flat keywords.
  train_loop.train_from_gin('run', num_steps=4, eval_every=2, eval_steps=1, log_every=1)
  call = train_calls[-1]
  assert call['num_steps'] == 4 and call['logs'].every == 1
  assert call['validation'] == settings_lib.ValidationSettings(every=2, steps=1)


def test_old_names_are_type_checked_and_listed_only_when_bound(train_calls):
  gin_config.parse([], ["training.eval_every = 'often'", 'logs.audio = 1'])
  with pytest.raises(ValueError) as bad:
    gin_config.check_binding_types()
  assert "training.eval_every = 'often': expected int, got str" in str(bad.value)
  assert 'logs.audio = 1: expected bool, got int' in str(bad.value)
  for misspelt in ('training.checkpoint_evry = 2', 'checkpoints.every_steps = 2'):
    with pytest.raises(ValueError, match=misspelt.split()[0].split('.')[1]):
      gin_config.parse([], [misspelt])
  gin_config.parse([], ['training.num_steps = 2', 'training.max_to_keep = 2'])
  train_loop.train_from_gin('run')
  operative = gin.operative_config_str()
  # The settings as they ran: the old name's value under its own binding, the rest defaults.
  assert 'training.max_to_keep = 2' in operative and 'checkpoints.max_to_keep' not in operative
  assert 'checkpoints.every = 1000' in operative and 'logs.summary_every = 100' in operative
  for unbound in ('checkpoint_every', 'eval_every', 'eval_steps', 'audio_summaries'):
    assert f'training.{unbound}' not in operative


def _old_model_dir(tmp_path):
  """A model dir holding a checkpoint and the old code's config.gin."""
  model_dir = tmp_path / 'run'
  model_dir.mkdir()
  (model_dir / 'config.gin').write_text(OLD_CONFIG.read_text())
  tf.train.Checkpoint(step=tf.Variable(3)).save(str(model_dir / 'ckpt'))
  return str(model_dir)


def _prepare(model_dir, gin_files, bindings):
  gin_config.parse(gin_files, bindings)
  try:
    return model_dir_lib.prepare_model_dir(model_dir)
  finally:
    gin.clear_config()


def test_the_old_code_wrote_this_config_for_the_old_command():
  gin_config.parse(list(TINY_GIN_FILES), OLD_COMMAND)
  try:
    assert gin.config_str() == OLD_CONFIG.read_text()
  finally:
    gin.clear_config()


def test_a_model_dir_of_the_old_code_resumes_under_old_or_new_names(tmp_path, train_calls):
  model_dir = _old_model_dir(tmp_path)
  config = os.path.join(model_dir, 'config.gin')
  # Its own config (the remedy a refusal offers), with more steps.
  assert _prepare(model_dir, [config], ['training.num_steps = 10']) is True
  # The command that started it.
  assert _prepare(model_dir, list(TINY_GIN_FILES), OLD_COMMAND) is True
  # The same run under the new names, with other checkpoint, validation and log settings.
  new_command = [b for b in OLD_COMMAND if not b.startswith('training.')] + [
      'training.num_steps = 20', 'training.jit_compile = False', 'training.seed = 5',
      'checkpoints.every = 4', 'checkpoints.max_to_keep = 3', 'validation.every = 0',
      'validation.steps = None', 'logs.every = 10', 'logs.summary_every = 10',
      'logs.audio = False']
  assert _prepare(model_dir, list(TINY_GIN_FILES), new_command) is True
  # What the run computes may not change.
  with pytest.raises(ValueError) as refused:
    _prepare(model_dir, list(TINY_GIN_FILES), new_command + ['training.seed = 6'])
  message = str(refused.value)
  assert 'different gin config' in message and '+training.seed = 6' in message
  assert 'checkpoints.every' not in message and 'checkpoint_every' not in message

  # Its config read by the new code gives the settings the old code ran with.
  gin_config.parse_model_dir(model_dir)
  train_loop.train_from_gin(model_dir)
  call = train_calls[-1]
  assert call['checkpoints'] == settings_lib.CheckpointSettings(every=2, max_to_keep=5)
  assert call['validation'] == settings_lib.ValidationSettings(every=3, steps=20)
  assert call['logs'] == settings_lib.LogSettings(every=1, summary_every=1, audio=True)
  assert (call['num_steps'], call['jit_compile'], call['seed']) == (3, False, 5)


def test_xla_is_the_default_of_train_and_train_from_gin(train_calls):
  for fn in (TRAIN, train_loop.train_from_gin):
    assert inspect.signature(fn).parameters['jit_compile'].default is True, fn
  gin_config.parse(list(TINY_GIN_FILES), tiny_params('/data/fuss_dev'))
  train_loop.train_from_gin('run')
  assert train_calls[-1]['jit_compile'] is True
  assert 'training.jit_compile = True' in gin.operative_config_str()
  gin_config.parse(list(TINY_GIN_FILES), tiny_params('/data/fuss_dev',
                                                     'training.jit_compile = False'))
  train_loop.train_from_gin('run')
  assert train_calls[-1]['jit_compile'] is False


def test_a_run_of_the_old_default_resumes_under_xla_and_xla_may_be_switched_on_resume(
    tmp_path, train_calls):
  """XLA was off by default: a run of that version recorded `training.jit_compile = False` or
  no binding at all. Either resumes under the command without the binding (XLA on, the
  default now), and any run resumes with XLA switched either way (`RESUMABLE_BINDINGS`)."""
  assert 'training.jit_compile' in model_dir_lib.RESUMABLE_BINDINGS
  without = [b for b in OLD_COMMAND if not b.startswith('training.jit_compile')]
  (tmp_path / 'false').mkdir()
  (tmp_path / 'unrecorded').mkdir()
  recorded_false = _old_model_dir(tmp_path / 'false')
  unrecorded = _old_model_dir(tmp_path / 'unrecorded')
  config = pathlib.Path(unrecorded) / 'config.gin'
  config.write_text(''.join(line for line in config.read_text().splitlines(keepends=True)
                            if not line.startswith('training.jit_compile')))
  for model_dir in (recorded_false, unrecorded):
    for switch in ([], ['training.jit_compile = False'], ['training.jit_compile = True']):
      assert _prepare(model_dir, list(TINY_GIN_FILES), without + switch) is True, (model_dir,
                                                                                    switch)
  # The old run's command without the binding now trains it with XLA.
  gin_config.parse(list(TINY_GIN_FILES), without)
  train_loop.train_from_gin(unrecorded)
  assert train_calls[-1]['jit_compile'] is True

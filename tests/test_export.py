"""SavedModel export: round trip against the Keras network, checkpoint choice, a
process that cannot import the package, and the errors of a bad model dir."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mixit  # sets KERAS_BACKEND
import keras
import tensorflow as tf

from mixit.serving import export
from mixit import gin_config
from mixit import model as model_lib
from mixit.serving import separator as separator_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 16000
NUM_SOURCES = 4


def _build_small(num_sources=NUM_SOURCES):
  gin_config.parse(['models/tdcnpp_small.gin'], [f'NUM_SOURCES = {num_sources}'])
  network = model_lib.build_network()
  network(tf.zeros([1, SAMPLE_RATE // 4]), training=False)
  return network


def _outputs(network, mixture):
  return network(tf.constant(mixture), training=False)['separated_waveforms'].numpy()


def _perturb(network, seed):
  rng = np.random.default_rng(seed)
  for variable in network.trainable_variables:
    variable.assign(variable.numpy() + 0.05 * rng.standard_normal(variable.shape))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A model dir with ckpt-1 and ckpt-2 of different weights, like a training run."""
  model_dir = str(tmp_path_factory.mktemp('model_dir'))
  network = _build_small()
  optimizer = keras.optimizers.Adam(1e-3)
  step = tf.Variable(0, dtype=tf.int64)
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(network=network, optimizer=optimizer, step=step), model_dir,
      max_to_keep=5)
  gin_config.write_config(model_dir)
  # A training run's config also binds configurables that export never imports.
  with open(os.path.join(model_dir, 'config.gin'), 'a') as f:
    f.write('\nsome_training_only_configurable.batch_size = 8\n')
  probe = np.random.default_rng(1).standard_normal([2, SAMPLE_RATE + 17]).astype(np.float32)
  weights = {}
  for number in (1, 2):
    _perturb(network, number)
    step.assign(100 * number)
    manager.save(checkpoint_number=number)
    weights[number] = [v.numpy() for v in network.variables]
  export_dir = str(tmp_path_factory.mktemp('export') / 'saved_model')
  metadata = export.export_saved_model(model_dir, export_dir)
  return {'model_dir': model_dir, 'network': network, 'weights': weights, 'probe': probe,
          'export_dir': export_dir, 'metadata': metadata}


def _set_weights(network, values):
  for variable, value in zip(network.variables, values):
    variable.assign(value)


@pytest.mark.parametrize('batch,length', [(1, SAMPLE_RATE), (1, 10 * SAMPLE_RATE),
                                          (1, 10 * SAMPLE_RATE + 17), (3, 10 * SAMPLE_RATE + 17)])
def test_round_trip_matches_keras(trained, batch, length):
  network = trained['network']
  _set_weights(network, trained['weights'][2])
  loaded = tf.saved_model.load(trained['export_dir'])
  rng = np.random.default_rng(length + batch)
  mixture = (0.2 * rng.standard_normal([batch, length])).astype(np.float32)
  served = loaded.signatures['serving_default'](mixture_waveform=tf.constant(mixture))
  assert set(served) == {'separated_waveforms'}
  served = served['separated_waveforms'].numpy()
  expected = _outputs(network, mixture)
  assert served.shape == (batch, NUM_SOURCES, length)
  np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)
  # Mixture consistency survives the export: the sources add up to the input.
  np.testing.assert_allclose(served.sum(axis=1), mixture, atol=1e-4)


def test_export_restores_the_latest_checkpoint_not_a_fresh_network(trained):
  network = trained['network']
  probe = trained['probe']
  _set_weights(network, trained['weights'][2])
  latest = _outputs(network, probe)
  fresh = _outputs(_build_small(), probe)
  # Without this the comparison below could pass on an unrestored network.
  assert np.max(np.abs(fresh - latest)) > 1e-3
  loaded = tf.saved_model.load(trained['export_dir'])
  served = loaded.serving_default(tf.constant(probe))['separated_waveforms'].numpy()
  np.testing.assert_allclose(served, latest, atol=1e-5)


def test_metadata_constants_signature_and_json(trained):
  loaded = tf.saved_model.load(trained['export_dir'])
  assert int(loaded.sample_rate.numpy()) == SAMPLE_RATE
  assert int(loaded.num_sources.numpy()) == NUM_SOURCES
  metadata = {k: int(v.numpy()) for k, v in loaded.signatures['get_metadata']().items()}
  assert metadata == {'sample_rate': SAMPLE_RATE, 'num_sources': NUM_SOURCES, 'num_classes': 0}
  signature = loaded.signatures['serving_default']
  spec = signature.structured_input_signature[1]['mixture_waveform']
  assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None]
  with open(os.path.join(trained['export_dir'], 'mixit_export.json')) as f:
    info = json.load(f)
  assert info == trained['metadata']
  assert info['sample_rate'] == SAMPLE_RATE and info['num_sources'] == NUM_SOURCES
  assert info['checkpoint'] == os.path.join(trained['model_dir'], 'ckpt-2')
  assert info['step'] == 200
  assert info['model_dir'] == trained['model_dir']
  assert info['num_parameters'] == trained['network'].count_params()
  assert info['verified_max_abs_difference'] <= 1e-5


def test_loads_where_the_package_cannot_be_imported(trained, tmp_path):
  network = trained['network']
  _set_weights(network, trained['weights'][2])
  mixture = trained['probe']
  np.save(tmp_path / 'mixture.npy', mixture)
  # A meta-path finder that refuses the project's packages stands in for a
  # machine without them, whatever way (editable or not) they are installed.
  script = textwrap.dedent(f'''
      import os, sys
      os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
      import importlib.abc
      BLOCKED = ('mixit', 'data_pipeline', 'eval')
      attempts = []
      class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
          if name.split('.')[0] in BLOCKED:
            attempts.append(name)
            raise ModuleNotFoundError(name)
          return None
      sys.meta_path.insert(0, Block())
      sys.path = [p for p in sys.path if os.path.abspath(p or '.') != {REPO!r}]
      try:
        import mixit
        raise SystemExit('mixit is importable')
      except ModuleNotFoundError:
        pass
      attempts.clear()
      import numpy as np
      import tensorflow as tf
      loaded = tf.saved_model.load({trained['export_dir']!r})
      mixture = np.load('mixture.npy')
      out = loaded.signatures['serving_default'](mixture_waveform=tf.constant(mixture))
      np.save('served.npy', out['separated_waveforms'].numpy())
      print('RATE', int(loaded.sample_rate.numpy()), 'M', int(loaded.num_sources.numpy()))
      # The graph-mode loader is the one TF Serving's C++ server uses.
      with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        graph = tf.compat.v1.saved_model.loader.load(session, ['serve'], {trained['export_dir']!r})
        signature = graph.signature_def['serving_default']
        np.save('served_v1.npy', session.run(
            signature.outputs['separated_waveforms'].name,
            {{signature.inputs['mixture_waveform'].name: mixture}}))
      print('ATTEMPTS', attempts, sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))
  ''')
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  result = subprocess.run([sys.executable, '-c', script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'RATE {SAMPLE_RATE} M {NUM_SOURCES}' in result.stdout
  assert 'ATTEMPTS [] []' in result.stdout, result.stdout
  expected = _outputs(network, mixture)
  np.testing.assert_allclose(np.load(tmp_path / 'served.npy'), expected, atol=1e-5)
  np.testing.assert_allclose(np.load(tmp_path / 'served_v1.npy'), expected, atol=1e-5)


def test_cli_exports_a_chosen_checkpoint(trained, tmp_path):
  network = trained['network']
  output_dir = str(tmp_path / 'ckpt1')
  command = [sys.executable, '-m', 'mixit.commands.export', '--model_dir', trained['model_dir'],
             '--checkpoint', '1', '--output_dir', output_dir]
  result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout)['step'] == 100
  loaded = tf.saved_model.load(output_dir)
  served = loaded.serving_default(tf.constant(trained['probe']))['separated_waveforms'].numpy()
  _set_weights(network, trained['weights'][1])
  np.testing.assert_allclose(served, _outputs(network, trained['probe']), atol=1e-5)
  _set_weights(network, trained['weights'][2])
  assert np.max(np.abs(served - _outputs(network, trained['probe']))) > 1e-3

  # A second export into the same folder needs --overwrite.
  result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 1
  assert 'not empty' in result.stderr and output_dir in result.stderr


def test_bad_model_dirs(trained, tmp_path):
  with pytest.raises(ValueError, match='holds no config.gin'):
    export.export_saved_model(str(tmp_path), str(tmp_path / 'out'))
  with pytest.raises(ValueError, match=r"checkpoint 7 not found.*ckpt-1.*ckpt-2"):
    export.export_saved_model(trained['model_dir'], str(tmp_path / 'out'), checkpoint=7)

  # A config but no checkpoint.
  empty = tmp_path / 'untrained'
  empty.mkdir()
  (empty / 'config.gin').write_text(open(os.path.join(trained['model_dir'], 'config.gin')).read())
  with pytest.raises(ValueError, match='holds no checkpoint'):
    export.export_saved_model(str(empty), str(tmp_path / 'out'))

  # A checkpoint that holds no network.
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'config.gin').write_text((empty / 'config.gin').read_text())
  tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(3)), str(other), 1).save()
  with pytest.raises(ValueError, match='does not match the network'):
    export.export_saved_model(str(other), str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists()


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path):
  """A config with M=2 cannot take the M=4 weights: an error, never a silent half-restore."""
  model_dir = tmp_path / 'mismatch'
  model_dir.mkdir()
  for name in os.listdir(trained['model_dir']):
    if name.startswith(('ckpt-2', 'checkpoint')):
      with open(os.path.join(trained['model_dir'], name), 'rb') as f:
        (model_dir / name).write_bytes(f.read())
  gin_config.parse(['models/tdcnpp_small.gin'], ['NUM_SOURCES = 2'])
  gin_config.write_config(str(model_dir))
  with pytest.raises(ValueError, match='ckpt-2 does not match the network'):
    export.export_saved_model(str(model_dir), str(tmp_path / 'out'))


def test_output_dir_protection(trained, tmp_path):
  occupied = tmp_path / 'occupied'
  occupied.mkdir()
  (occupied / 'notes.txt').write_text('not an export')
  with pytest.raises(FileExistsError, match='not empty'):
    export.export_saved_model(trained['model_dir'], str(occupied))
  # --overwrite replaces earlier exports only, never an arbitrary folder.
  with pytest.raises(ValueError, match='refusing to overwrite'):
    export.export_saved_model(trained['model_dir'], str(occupied), overwrite=True)
  assert (occupied / 'notes.txt').exists()


def test_load_separator_reads_the_export(trained):
  separator = separator_lib.load_separator(trained['export_dir'], max_chunk_seconds=0)
  assert (separator.sample_rate, separator.num_sources) == (SAMPLE_RATE, NUM_SOURCES)
  network = trained['network']
  _set_weights(network, trained['weights'][2])
  mixture = trained['probe'][0]
  sources = separator(mixture, SAMPLE_RATE)
  np.testing.assert_allclose(sources, _outputs(network, mixture[None])[0], atol=1e-5)
  # The package-level lazy export is the same function.
  assert mixit.load_separator is separator_lib.load_separator


def test_classification_head_is_served_too(tmp_path):
  """A network with the semantic head also serves its per-source class logits."""
  gin_config.parse(['models/tdcnpp_small.gin'],
                   ['NUM_SOURCES = 2', 'NUM_CLASSES = 3'])
  network = model_lib.build_network()
  network(tf.zeros([1, SAMPLE_RATE // 4]), training=False)
  model_dir = str(tmp_path / 'model')
  tf.train.CheckpointManager(tf.train.Checkpoint(network=network), model_dir, 1).save()
  gin_config.write_config(model_dir)
  metadata = export.export_saved_model(model_dir, str(tmp_path / 'export'))
  assert metadata['num_classes'] == 3
  loaded = tf.saved_model.load(str(tmp_path / 'export'))
  mixture = np.random.default_rng(2).uniform(-0.5, 0.5, [2, 12345]).astype(np.float32)
  served = loaded.signatures['serving_default'](mixture_waveform=tf.constant(mixture))
  expected = network(tf.constant(mixture), training=False)
  assert set(served) == {'separated_waveforms', 'source_logits'}
  assert served['source_logits'].shape == (2, 2, 3)
  for key in served:
    np.testing.assert_allclose(served[key].numpy(), expected[key].numpy(), atol=1e-5)
  assert int(loaded.get_metadata()['num_classes'].numpy()) == 3


OLD_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures',
                           'configs_before_sources')


@pytest.mark.parametrize('old', ['semi_supervised.gin', 'wild.gin', 'supervised.gin'])
def test_a_model_dir_written_before_the_sources_still_exports(tmp_path, old):
  """config.gin files of the code before the network parts, the data sources and the
  gin-configured loss settings (`network.*`, `train_data.mode`, `trainer.*`, ...) export,
  also in a process that has imported the training configurables."""
  from data_pipeline import inputs  # noqa: F401
  from mixit.training import trainer  # noqa: F401
  model_dir = tmp_path / 'run'
  model_dir.mkdir()
  with open(os.path.join(OLD_CONFIGS, old)) as f:
    (model_dir / 'config.gin').write_text(f.read())
  import gin
  try:
    gin_config.parse_model_dir(str(model_dir), network_only=True)
    network = model_lib.build_network()
    _perturb(network, 3)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(network=network, step=tf.Variable(7, dtype=tf.int64)),
        str(model_dir), 1).save(checkpoint_number=7)
    metadata = export.export_saved_model(str(model_dir), str(tmp_path / 'export'))
  finally:
    gin.clear_config()
  assert (metadata['num_sources'], metadata['sample_rate']) == (4, SAMPLE_RATE)
  loaded = tf.saved_model.load(str(tmp_path / 'export'))
  mixture = np.random.default_rng(4).uniform(-0.5, 0.5, [1, 4321]).astype(np.float32)
  served = loaded.signatures['serving_default'](mixture_waveform=tf.constant(mixture))
  np.testing.assert_allclose(served['separated_waveforms'].numpy(), _outputs(network, mixture),
                             atol=1e-5)

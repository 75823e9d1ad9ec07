"""Tests of mixit/import_official.py against outputs of the public TF1 code.

The fixtures (`tests/fixtures/official_tdcnpp/<variant>/`) hold checkpoints
written by google-research/sound-separation with small sizes and random weights,
a mixture and the official separated output.
"""
import json
import os
import pathlib
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from mixit import gin_config
from mixit import import_official
from mixit import model

# Outputs of the public TF1 code (see fixtures/official_tdcnpp/README.md), kept in the
# repo so that CI always runs these tests.
FIXTURES = pathlib.Path(os.environ.get(
    'MIXIT_OFFICIAL_FIXTURES',
    pathlib.Path(__file__).resolve().parent / 'fixtures' / 'official_tdcnpp'))
VARIANTS = ('fuss_baseline', 'train_stft', 'mixit_neurips2020')
# Measured (2-core CPU, TF 2.21): 4.4e-7, 4.9e-7, 1.0e-6; docs/official_checkpoints.md.
TOLERANCE = 1e-5



def test_fixtures_are_present():
  assert all((FIXTURES / v / 'reference_io.npz').exists() for v in VARIANTS), FIXTURES


@pytest.fixture(autouse=True)
def clear_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def prefix(variant):
  return str(FIXTURES / variant / 'model.ckpt')


def reference(variant):
  data = np.load(FIXTURES / variant / 'reference_io.npz')
  return data['mixture'].astype(np.float32), data['separated'].astype(np.float32)


def relative_error(actual, expected):
  return float(np.abs(actual - expected).max() / np.abs(expected).max())


def restore_model_dir(model_dir):
  """Rebuilds a network the way the rest of the package does: config.gin + checkpoint."""
  gin_config.parse_model_dir(str(model_dir))
  network = model.build_network()
  status = tf.train.Checkpoint(network=network, step=tf.Variable(0, dtype=tf.int64)).restore(
      tf.train.latest_checkpoint(str(model_dir))).expect_partial()
  status.assert_existing_objects_matched()
  return network


def write_altered(source, destination, rename=None, drop=(), reshape=None, add=None):
  """Copies a name-based checkpoint with variables renamed, dropped, reshaped or added."""
  rename, reshape, add = rename or {}, reshape or {}, add or {}
  values = import_official.read_checkpoint(source)
  for name in list(rename) + list(drop) + list(reshape):
    assert name in values, name
  names, tensors = [], []
  for name, value in values.items():
    if name in drop:
      continue
    if name in reshape:
      value = value.reshape(reshape[name])
    names.append(rename.get(name, name))
    tensors.append(tf.constant(value))
  for name, value in add.items():
    names.append(name)
    tensors.append(tf.constant(value))
  tf.raw_ops.SaveV2(prefix=destination, tensor_names=names, shape_and_slices=[''] * len(names),
                    tensors=tensors)
  return destination


# ----------------------------------------------------------------------------
# Numerically exact import, through the model dir and through a SavedModel.

@pytest.mark.parametrize('variant', VARIANTS)
def test_import_reproduces_the_official_output(variant, tmp_path):
  model_dir = tmp_path / 'model'
  import_official.import_checkpoint(prefix(variant), str(model_dir))
  assert (model_dir / 'config.gin').exists() and (model_dir / 'operative_config.gin').exists()
  assert tf.train.latest_checkpoint(str(model_dir)).endswith('ckpt-1')
  gin.clear_config()

  mixture, separated = reference(variant)
  network = restore_model_dir(model_dir)
  assert network.num_sources == separated.shape[0]
  assert network.sample_rate == 16000
  actual = network(tf.constant(mixture[None]))['separated_waveforms'].numpy()[0]
  assert actual.shape == separated.shape
  assert relative_error(actual, separated) < TOLERANCE


# Exporting traces and saves the whole graph (~10 s alone, much more on a busy
# CPU): one variant by default, the others with the slow tests.
@pytest.mark.parametrize('variant', [
    'fuss_baseline',
    pytest.param('train_stft', marks=pytest.mark.slow),
    pytest.param('mixit_neurips2020', marks=pytest.mark.slow),
])
def test_exported_saved_model_reproduces_the_official_output(variant, tmp_path):
  from mixit.serving import export
  model_dir = tmp_path / 'model'
  import_official.import_checkpoint(prefix(variant), str(model_dir))
  gin.clear_config()
  export_dir = tmp_path / 'export'
  export.export_saved_model(str(model_dir), str(export_dir))
  mixture, separated = reference(variant)
  loaded = tf.saved_model.load(str(export_dir))
  served = loaded.signatures['serving_default'](
      mixture_waveform=tf.constant(mixture[None]))['separated_waveforms'].numpy()[0]
  assert relative_error(served, separated) < TOLERANCE


@pytest.mark.parametrize('variant', VARIANTS)
def test_variant_is_recognised_from_the_names(variant):
  values = import_official.read_checkpoint(prefix(variant))
  assert import_official.detect_variant(values) == variant
  found, settings = import_official.infer_settings(values)
  assert found == variant
  config = json.loads((FIXTURES / variant / 'config.json').read_text())
  assert settings['num_sources'] == config['num_sources']
  assert settings['bottleneck'] == config['bottleneck']
  assert settings['conv_channels'] == config['conv_channels']
  assert settings['num_repeats'] == config['num_repeats']
  assert settings['num_dilations'] == config['num_dilations']
  assert settings['window_seconds'] == pytest.approx(config['window_seconds'])
  assert settings['hop_seconds'] == pytest.approx(config['hop_seconds'])
  assert (settings['front_end'] == 'learned') == config['learn_basis']
  assert bool(settings['skip_from']) == (variant == 'fuss_baseline')


@pytest.mark.parametrize('num_bins,sample_rate,window,hop', [
    (257, 16000, 0.032, 0.008),
    (513, 22050, 0.032, 0.008),  # The bird MixIT models: 706-sample window, FFT 1024.
    (257, 22050, 512 / 22050, 128 / 22050),  # FFT too small for 32 ms: window = FFT.
])
def test_stft_frames_follow_the_published_hparams(num_bins, sample_rate, window, hop):
  values = import_official.read_checkpoint(prefix('train_stft'))
  values['initial_dense/dense/kernel'] = np.zeros([num_bins, 16], np.float32)
  values['dense/kernel'] = np.zeros([16, 4 * num_bins], np.float32)
  _, settings = import_official.infer_settings(values, sample_rate=sample_rate)
  assert settings['fft_length'] == 2 * (num_bins - 1)
  assert settings['window_seconds'] == pytest.approx(window)
  assert settings['hop_seconds'] == pytest.approx(hop)
  assert settings['num_sources'] == 4
  network = model.build_network(**settings)
  assert network.front_end.fft_length == 2 * (num_bins - 1)
  assert network.window_samples == int(round(window * sample_rate))


def test_command_line_with_auto_variant(tmp_path):
  model_dir = tmp_path / 'model'
  result = subprocess.run(
      [sys.executable, '-m', 'mixit.commands.import_official', '--checkpoint',
       prefix('mixit_neurips2020'), '--output_dir', str(model_dir), '--variant', 'auto'],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Imported a 8-source TDCN++' in result.stdout
  config = (model_dir / 'config.gin').read_text()
  assert "network.front_end = 'learned'" in config
  mixture, separated = reference('mixit_neurips2020')
  network = restore_model_dir(model_dir)
  actual = network(tf.constant(mixture[None]))['separated_waveforms'].numpy()[0]
  assert relative_error(actual, separated) < TOLERANCE


def test_the_zero_padding_of_models_train_matters(tmp_path):
  """The tolerance discriminates: the same weights without the start padding of
  models/train (as neurips2020_mixit's STFT path would run them) do not match."""
  _, network = import_official.import_checkpoint(prefix('train_stft'), str(tmp_path / 'm'),
                                                 variant='mixit_neurips2020')
  mixture, separated = reference('train_stft')
  actual = network(tf.constant(mixture[None]))['separated_waveforms'].numpy()[0]
  assert relative_error(actual, separated) > 100 * TOLERANCE


def test_explicit_variant_that_contradicts_the_checkpoint_fails(tmp_path):
  with pytest.raises(ValueError, match='conv_encoder'):
    import_official.import_checkpoint(prefix('mixit_neurips2020'), str(tmp_path / 'a'),
                                      variant='fuss_baseline')
  with pytest.raises(ValueError, match='instance_norm'):
    import_official.import_checkpoint(prefix('train_stft'), str(tmp_path / 'b'),
                                      variant='fuss_baseline')


def test_existing_model_dir_needs_overwrite(tmp_path):
  model_dir = str(tmp_path / 'model')
  import_official.import_checkpoint(prefix('train_stft'), model_dir)
  with pytest.raises(ValueError, match='already holds a model'):
    import_official.import_checkpoint(prefix('train_stft'), model_dir)
  import_official.import_checkpoint(prefix('train_stft'), model_dir, overwrite=True)
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-1')


# ----------------------------------------------------------------------------
# Altered checkpoints fail with an error naming the variable.

BLOCK = 'improved_tdcn/conv_block_{}/tdcn_block/'

ALTERATIONS = {
    'renamed_prelu': ('fuss_baseline',
                      dict(rename={BLOCK.format(5) + 'normact2/prelu/prelu':
                                   BLOCK.format(5) + 'normact2/prelu/alpha'}),
                      [BLOCK.format(5) + 'normact2/prelu/prelu',
                       BLOCK.format(5) + 'normact2/prelu/alpha']),
    'dropped_skip_bias': ('fuss_baseline',
                          dict(drop=['improved_tdcn/res_dense_8_to_16/dense/bias']),
                          ['improved_tdcn/res_dense_8_to_16/dense/bias']),
    'dropped_mix_weights': ('train_stft', dict(drop=['mix_weights/dense/kernel']),
                            ['mix_weights/dense/kernel']),
    'dropped_feature_norm': ('train_stft', dict(drop=['layer_norm_on_mag/beta']),
                             ['layer_norm_on_mag/beta']),
    'dropped_decoder': ('mixit_neurips2020', dict(drop=['conv_decoder/dense_1/kernel']),
                        ['conv_decoder/dense_1/kernel']),
    'reshaped_depthwise_kernel': (
        'train_stft',
        dict(reshape={BLOCK.format(3) + 'timeconv/separable_conv/depthwise_kernel': [3, 32, 1, 1]}),
        [BLOCK.format(3) + 'timeconv/separable_conv/depthwise_kernel']),
    'reshaped_first_dense1': (
        'mixit_neurips2020',
        dict(reshape={BLOCK.format(0) + 'dense1/dense/kernel': [32, 16]}),
        [BLOCK.format(0) + 'dense1/dense/kernel']),
    'reshaped_norm_gamma': (
        'fuss_baseline',
        dict(reshape={BLOCK.format(7) + 'normact1/global_layer_norm/gamma': [1, 1]}),
        [BLOCK.format(7) + 'normact1/global_layer_norm/gamma']),
    'unknown_extra_variable': ('train_stft', dict(add={'extra_layer/kernel': np.zeros([2, 2])}),
                               ['extra_layer/kernel']),
}


@pytest.mark.parametrize('case', sorted(ALTERATIONS))
def test_altered_checkpoint_fails_naming_the_variable(case, tmp_path):
  variant, alteration, names = ALTERATIONS[case]
  altered = write_altered(prefix(variant), str(tmp_path / 'altered.ckpt'), **alteration)
  with pytest.raises(ValueError) as error:
    import_official.import_checkpoint(altered, str(tmp_path / 'model'))
  for name in names:
    assert name in str(error.value)
  assert not (tmp_path / 'model' / 'config.gin').exists()


def test_training_state_is_skipped(tmp_path):
  values = import_official.read_checkpoint(prefix('train_stft'))
  extra = {'global_step': np.array(1234, np.int64), 'beta1_power': np.float32(0.9),
           'dense/kernel/Adam': np.zeros_like(values['dense/kernel']),
           'dense/kernel/Adam_1': np.zeros_like(values['dense/kernel'])}
  altered = write_altered(prefix('train_stft'), str(tmp_path / 'with_adam.ckpt'), add=extra)
  _, network = import_official.import_checkpoint(altered, str(tmp_path / 'model'))
  mixture, separated = reference('train_stft')
  actual = network(tf.constant(mixture[None]))['separated_waveforms'].numpy()[0]
  assert relative_error(actual, separated) < TOLERANCE


def test_every_official_variable_is_assigned_exactly_once():
  values = import_official.read_checkpoint(prefix('fuss_baseline'))
  variant, settings = import_official.infer_settings(values)
  network = model.build_network(**settings)
  assigned = import_official.assign_official(network, variant, values)
  assert sorted(assigned) == sorted(values)
  assert len(network.weights) == len(values)

"""LiteRT export: the interpreter against the SavedModel (1e-4 relative), builtin
operators only, the DFT-basis STFT against tf.signal, and the export's file list."""
import json
import os

import numpy as np
import pytest

import mixit  # noqa: F401  (sets KERAS_BACKEND)
import tensorflow as tf

from mixit import gin_config
from mixit import layers
from mixit import model as model_lib
from mixit.serving import export
from mixit.serving import litert
from mixit.serving import separator as separator_lib

SAMPLE_RATE = 16000
WINDOW_SECONDS = 0.5


def make_model_dir(path, bindings=()):
  """A model dir (config.gin + ckpt-1) of the demo-size TDCN++ with M = 8, random weights."""
  gin_config.parse(['models/tdcnpp_small.gin'], ['NUM_SOURCES = 8', *bindings])
  network = model_lib.build_network()
  network(tf.zeros([1, SAMPLE_RATE // 4]), training=False)
  rng = np.random.default_rng(3)
  for variable in network.trainable_variables:
    variable.assign(variable.numpy() + 0.05 * rng.standard_normal(variable.shape))
  gin_config.write_config(str(path))
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(network=network, step=tf.Variable(1, dtype=tf.int64)), str(path), 3)
  manager.save(checkpoint_number=1)
  return network


def _relative_error(model_dir, output_dir, length):
  metadata = export.export_saved_model(str(model_dir), str(output_dir), litert=True,
                                       litert_window_seconds=WINDOW_SECONDS)
  mixture = (0.1 * np.random.default_rng(5).standard_normal(length)).astype(np.float32)
  window = metadata['litert']['window_samples']
  assert window == int(WINDOW_SECONDS * SAMPLE_RATE)
  runner = litert.interpreter(os.path.join(str(output_dir), litert.TFLITE_FILENAME), 2)
  served_litert = litert.run_window(runner, mixture)
  # The SavedModel on the same zero-padded window, cut back.
  _, signature, _, _ = separator_lib.load_saved_model(str(output_dir))
  padded = np.zeros([1, window], np.float32)
  padded[0, :length] = mixture
  reference = separator_lib.serve(signature, padded)[0, :, :length]
  assert served_litert.shape == reference.shape == (8, length)
  return metadata, float(np.max(np.abs(served_litert - reference)) / np.max(np.abs(reference)))


@pytest.mark.parametrize('front_end', ['stft', 'learned'])
def test_litert_equals_saved_model(tmp_path, front_end):
  model_dir = tmp_path / 'run'
  make_model_dir(model_dir, [f"network.front_end = '{front_end}'"])
  metadata, error = _relative_error(model_dir, tmp_path / 'export', 6001)
  assert error < 1e-4
  # Builtin operators only, read from the written flatbuffer.
  with open(tmp_path / 'export' / litert.TFLITE_FILENAME, 'rb') as f:
    names = litert.operators(f.read())
  assert names and not [n for n in names if n.startswith(('Flex', 'CUSTOM'))]
  # The overlap-add is no transposed convolution, and XNNPACK takes the whole graph in one
  # piece (no operator left to LiteRT's own kernels).
  assert 'TRANSPOSE_CONV' not in names
  runner = litert.interpreter(str(tmp_path / 'export' / litert.TFLITE_FILENAME), 1)
  assert litert.delegation(runner) == (1, [])
  assert litert.TFLITE_FILENAME in metadata['files']
  with open(tmp_path / 'export' / separator_lib.EXPORT_JSON) as f:
    assert litert.TFLITE_FILENAME in json.load(f)['files']


def test_dft_bases_equal_tf_signal():
  """The conv STFT/iSTFT equal tf.signal.stft / inverse_stft (float64 references)."""
  front_end = layers.StftFrontEnd(512, 128)
  replacement = litert._DftStft(front_end)
  x = np.random.default_rng(0).standard_normal([1, 3000]).astype(np.float32)
  real, imag = replacement.encode(tf.constant(x))
  reference = front_end.encode(tf.constant(x)).numpy()
  np.testing.assert_allclose(real.numpy(), reference.real, atol=2e-4)
  np.testing.assert_allclose(imag.numpy(), reference.imag, atol=2e-4)
  mask = np.random.default_rng(1).uniform(size=[1, 2] + list(reference.shape[1:])).astype(
      np.float32)
  decoded = replacement.decode(replacement.apply_mask(tf.constant(mask), (real, imag)), 3000)
  expected = front_end.decode(front_end.apply_mask(tf.constant(mask), tf.constant(reference)),
                              3000).numpy()
  np.testing.assert_allclose(decoded.numpy(), expected, atol=2e-5)


@pytest.mark.parametrize('length,step', [(512, 128), (40, 20), (48, 20)])
def test_frames_and_overlap_add_equal_tf_signal(length, step):
  """The static framing and overlap-add (reshapes, or identity convolutions when the hop does
  not divide the window) equal tf.signal's."""
  rng = np.random.default_rng(2)
  count = 9
  waveform = rng.standard_normal([2, (count - 1) * step + length]).astype(np.float32)
  np.testing.assert_array_equal(litert._frames(tf.constant(waveform), length, step).numpy(),
                                tf.signal.frame(waveform, length, step).numpy())
  frames = rng.standard_normal([3, count, length]).astype(np.float32)
  np.testing.assert_allclose(litert._overlap_add(tf.constant(frames), step).numpy(),
                             tf.signal.overlap_and_add(frames, step).numpy(), atol=1e-6)


def test_delegate_friendly_prelu_computes_the_same():
  """The converted PReLU (a leaky ReLU, whose slope may be above 1 or negative) equals the
  layer's own, and is undone on exit."""
  import keras
  x = tf.constant(np.random.default_rng(4).standard_normal([2, 50, 6]).astype(np.float32))
  slopes = [layers.PReLU(alpha_init=a) for a in (0.1, 1.7, -0.3)]
  network = keras.Sequential([keras.Input((50, 6)), *slopes])
  expected = [prelu(x).numpy() for prelu in slopes]
  with litert.delegate_friendly_layers(network):
    converted = [prelu(x).numpy() for prelu in slopes]
  for got, want in zip(converted, expected):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  assert not any('call' in vars(prelu) for prelu in slopes)


def test_bad_window_and_long_input(tmp_path):
  model_dir = tmp_path / 'run'
  make_model_dir(model_dir)
  with pytest.raises(ValueError, match='litert_window_seconds'):
    export.export_saved_model(str(model_dir), str(tmp_path / 'e'), litert=True,
                              litert_window_seconds=0)
  assert not (tmp_path / 'e').exists()


def test_overwrite_deletes_the_tflite_only(tmp_path):
  model_dir = tmp_path / 'run'
  make_model_dir(model_dir)
  out = tmp_path / 'export'
  export.export_saved_model(str(model_dir), str(out), litert=True,
                            litert_window_seconds=0.25, verify=False)
  (out / 'notes.tflite').write_bytes(b'user')
  metadata = export.export_saved_model(str(model_dir), str(out), overwrite=True, verify=False)
  assert not (out / litert.TFLITE_FILENAME).exists()
  assert (out / 'notes.tflite').read_bytes() == b'user'
  assert 'litert' not in metadata


def _si_snr(estimate, reference):
  """SI-SNR in dB (numpy, float64), one value per row."""
  estimate = np.asarray(estimate, np.float64)
  reference = np.asarray(reference, np.float64)
  scale = np.sum(estimate * reference, -1, keepdims=True) / np.sum(reference ** 2, -1,
                                                                   keepdims=True)
  target = scale * reference
  return 10 * np.log10(np.sum(target ** 2, -1) / np.sum((estimate - target) ** 2, -1))


@pytest.mark.parametrize('quantize', ['dynamic_int8', 'float16'])
def test_quantized_litert_runs_and_stays_near_the_float_model(tmp_path, quantize):
  import keras
  keras.utils.set_random_seed(0)  # the initial weights: the bounds below hold for these
  model_dir = tmp_path / 'run'
  make_model_dir(model_dir)
  out = tmp_path / 'export'
  metadata = export.export_saved_model(str(model_dir), str(out), litert=True,
                                       litert_window_seconds=WINDOW_SECONDS,
                                       litert_quantize=quantize, verify=False)
  quantized = metadata['litert']['quantized']
  name = litert.QUANTIZED_FILENAMES[quantize]
  assert quantized['file'] == name and quantized['quantization'] == quantize
  assert quantized['size_bytes'] == (out / name).stat().st_size
  # Smaller than the float model: float16 about a half; int8 weights a quarter, but the DFT
  # bases (2.1 MB of this small model's 3.6), the first dense layer and the depthwise kernels
  # stay float32.
  ratio = quantized['size_bytes'] / metadata['litert']['size_bytes']
  assert ratio < (0.8 if quantize == 'dynamic_int8' else 0.65), ratio
  assert name in metadata['files'] and name in (out / 'README.md').read_text()
  # The same fixed window; its sources sum to the mixture and stay near the float model's.
  runner = litert.interpreter(str(out / name), 2)
  assert list(runner.get_input_details()[0]['shape']) == [1, int(WINDOW_SECONDS * SAMPLE_RATE)]
  float_runner = litert.interpreter(str(out / litert.TFLITE_FILENAME), 2)
  rng = np.random.default_rng(9)
  t = np.arange(int(WINDOW_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
  mixture = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(
      np.float32)
  sources = litert.run_window(runner, mixture)
  reference = litert.run_window(float_runner, mixture)
  assert sources.shape == reference.shape == (8, t.size)
  np.testing.assert_allclose(sources.sum(0), mixture, atol=2e-3)
  # Stated bounds on each source's SI-SNR against the float model's: float16 weights at
  # least 35 dB (46 to 70 dB measured on random weights); int8 weights with dynamically
  # quantised activations at least 15 dB (the worst source 20 to 29 dB over three seeds of
  # random weights, whose masks are far less smooth than a trained model's; 17 dB for this
  # seed when the bases and the first dense layer were int8 too).
  loud = np.sum(reference ** 2, -1) > 1e-3 * np.max(np.sum(reference ** 2, -1))
  bound = {'float16': 35.0, 'dynamic_int8': 15.0}[quantize]
  assert np.min(_si_snr(sources[loud], reference[loud])) > bound
  # The export's own check (seeded noise) is recorded and printed in the model card.
  check = quantized['check']
  assert check['si_snr_vs_float_db']['worst'] > bound
  assert check['si_snr_vs_float_db']['median'] >= check['si_snr_vs_float_db']['worst']
  assert all(value > 0 for value in check['median_seconds'].values())
  card = (out / 'README.md').read_text()
  assert f"{check['si_snr_vs_float_db']['worst']:.1f} dB for the worst source" in card
  # XNNPACK takes the whole graph (int8 depthwise convolutions it would not).
  assert litert.delegation(runner) == (1, [])
  if quantize == 'dynamic_int8':
    assert _int8_weights(out / name) == {'core/dense1', 'core/dense2', 'core/skip',
                                         'mask_head/dense'}


def _int8_weights(path):
  """The layers (name scopes without numbers) whose weights are int8 in a LiteRT model."""
  import re
  from tensorflow.lite.python import schema_py_generated as schema
  root = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
  graph = root.subgraphs[0]
  found = set()
  for op in graph.operators:
    for index in op.inputs:
      tensor = graph.tensors[index] if index >= 0 else None
      if tensor is not None and tensor.type == schema.TensorType.INT8:
        # e.g. separation_network_1/core_1/block_3_1/dense1_1/Tensordot/MatMul -> core/dense1
        layers = [re.sub(r'(_\d+)+(_to_\d+_\d+)?$', '', part)
                  for part in tensor.name.decode().split('/')[1:-2]]
        found.add('/'.join(part for part in layers if part != 'block'))
  return found


def test_quantize_needs_litert_and_a_known_kind(tmp_path):
  model_dir = tmp_path / 'run'
  make_model_dir(model_dir)
  with pytest.raises(ValueError, match='--litert_quantize needs --litert'):
    export.export_saved_model(str(model_dir), str(tmp_path / 'a'), litert_quantize='float16')
  with pytest.raises(ValueError, match='--litert_quantize must be one of'):
    export.export_saved_model(str(model_dir), str(tmp_path / 'b'), litert=True,
                              litert_quantize='int4')
  assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()

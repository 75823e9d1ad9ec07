"""On-device export: a LiteRT (`.tflite`) flatbuffer of a fixed window.

The converted graph takes `mixture_waveform float32 [1, window]` and returns
`separated_waveforms float32 [1, M, window]` (`window` = window seconds x the
model's sample rate, e.g. 160000 samples for 10 s at 16 kHz). A shorter input
is zero-padded to `window` by the caller and the outputs are cut back to its
length; a long recording is run window by window (see docs/commands.md, "On-device
export").

TensorFlow's RFFT/IRFFT convert to LiteRT only as Flex (TF select) ops, which
the plain LiteRT runtime does not have. For the conversion the STFT front end
is therefore expressed with fixed DFT bases (computed in float64, cast to
float32): analysis is a strided 1-D convolution whose kernel is the windowed
cosine/sine basis, synthesis a matrix product with the windowed inverse basis
followed by the overlap-add (splits, pads and adds when the hop divides the window).
Both give the network's own `tf.signal.stft` / `inverse_stft` up to float rounding;
`convert` checks that the flatbuffer uses builtin operators only.

Speed: the converted graph is meant to run whole in XNNPACK, the delegate LiteRT applies
on CPU by default (`delegation` tells how it took a model): an operator the delegate does
not take runs on LiteRT's own kernels and cuts the graph. Not every operator it takes is
fast: the synthesis as one TRANSPOSE_CONV (512 taps, stride 128), as this module first
wrote it, took about 75% of the paper-size model's time, 25x the matrix product and
overlap-add that replace it (docs/benchmarks.md).
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from eval import metrics as eval_metrics
from mixit import layers
from mixit.serving import separator as separator_lib

TFLITE_FILENAME = 'model.tflite'
DEFAULT_WINDOW_SECONDS = 10.0
# Operator names LiteRT prints for ops outside its builtin set.
_NON_BUILTIN = ('FlexDelegate', 'Flex', 'CUSTOM')
# Name scopes (in the converted weights' names) of the weights that 'dynamic_int8' keeps in
# float32: the DFT bases, the learned front end's encoder and decoder, and the core's first
# dense layer, whose input is the normalised linear magnitudes (`_keep_float_weights`).
_FLOAT_WEIGHT_SCOPES = ('dft_analysis_basis', 'dft_synthesis_basis', 'encoder', 'decoder',
                        'initial_dense')


def stft_bases(front_end: layers.StftFrontEnd):
  """Analysis kernel `[window, 1, 2 * bins]` and synthesis kernel `[window, 1, 2 * bins]`.

  Analysis: channel k is `w[n] cos(2 pi k n / N)`, channel bins + k is
  `-w[n] sin(2 pi k n / N)` (real and imaginary part of the windowed rfft).
  Synthesis: the irfft (weights 1 for DC and Nyquist, 2 otherwise, over N) times
  the inverse-STFT window, so that a transposed convolution with hop stride is
  `tf.signal.inverse_stft`.
  """
  length, n_fft = front_end.frame_length, front_end.fft_length
  bins = front_end.num_bins
  n = np.arange(length, dtype=np.float64)[:, None]
  k = np.arange(bins, dtype=np.float64)[None, :]
  angle = 2.0 * np.pi * n * k / n_fft
  window = np.asarray(layers.sqrt_hann_window(length, tf.float64), np.float64)
  analysis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
  weights = np.full(bins, 2.0)
  weights[0] = 1.0
  if n_fft % 2 == 0:
    weights[-1] = 1.0
  inverse_window = tf.signal.inverse_stft_window_fn(
      front_end.frame_step, forward_window_fn=layers.sqrt_hann_window)(length, tf.float64)
  inverse_window = np.asarray(inverse_window, np.float64)
  synthesis = np.concatenate([np.cos(angle) * weights, -np.sin(angle) * weights], axis=1)
  synthesis = synthesis / n_fft * inverse_window[:, None]
  return (analysis[:, None, :].astype(np.float32), synthesis[:, None, :].astype(np.float32))


def _frames(waveform, length: int, step: int):
  """`[batch, time]` -> `[batch, frame, length]` frames every `step` samples (`time` must be
  `(frame - 1) * step + length`). When `step` divides `length`, slices of the waveform seen as
  rows of `step` samples, concatenated (copies only, which LiteRT's XNNPACK delegate takes);
  otherwise a convolution with an identity kernel."""
  batch, time = (int(d) for d in waveform.shape)
  if (time - length) % step:
    raise ValueError(f'{time} samples are not whole frames of {length} every {step}')
  count = (time - length) // step + 1
  if length % step == 0:
    parts = length // step
    rows = tf.reshape(waveform, [batch, count + parts - 1, step])
    return tf.concat([rows[:, j:j + count] for j in range(parts)], axis=-1)
  identity = tf.constant(np.eye(length, dtype=np.float32)[:, None, :])
  return tf.nn.conv1d(waveform[:, :, tf.newaxis], identity, step, 'VALID')


def _overlap_add(frames, step: int):
  """`[n, frame, length]` -> `[n, (frame - 1) * step + length]`, the frames added every `step`
  samples. When `step` divides `length`: each frame split in `length / step` pieces, each
  piece padded by whole rows to its place and the pieces added (LiteRT's XNNPACK delegate
  takes SPLIT, PAD and ADD; its TRANSPOSE_CONV with a long kernel and a large stride was 25x
  slower than this at the paper size); otherwise a transposed convolution with an identity
  kernel."""
  n, count, length = (int(d) for d in frames.shape)
  if length % step == 0:
    parts = length // step
    pieces = tf.split(tf.reshape(frames, [n, count, parts, step]), parts, axis=2)
    total = None
    for j, piece in enumerate(pieces):
      piece = tf.pad(piece, [[0, 0], [j, parts - 1 - j], [0, 0], [0, 0]])
      total = piece if total is None else total + piece
    return tf.reshape(total, [n, (count + parts - 1) * step])
  identity = tf.constant(np.eye(length, dtype=np.float32)[:, None, :])
  waveform = tf.nn.conv1d_transpose(frames, identity, [n, (count - 1) * step + length, 1],
                                    step, 'VALID')
  return waveform[..., 0]


class _DftStft:
  """Replacement encode/magnitude/apply_mask/decode for a StftFrontEnd (static shapes).

  Analysis: a strided convolution with the analysis basis. Synthesis: a matrix product
  with the synthesis basis (the windowed inverse DFT of each frame) and the overlap-add.
  """

  def __init__(self, front_end: layers.StftFrontEnd):
    self.front_end = front_end
    analysis, synthesis = stft_bases(front_end)
    self.analysis = tf.constant(analysis)
    self.synthesis = tf.constant(synthesis[:, 0, :].T)  # [2 * bins, window]
    self.bins = front_end.num_bins

  def encode(self, waveform):
    fe = self.front_end
    if fe.zero_pad_start:
      waveform = tf.pad(waveform, [[0, 0], [fe.frame_length - fe.frame_step, 0]])
    length = int(waveform.shape[-1])
    frames = -(-length // fe.frame_step)  # pad_end=True
    padded = (frames - 1) * fe.frame_step + fe.frame_length
    waveform = tf.pad(waveform, [[0, 0], [0, padded - length]])
    with tf.name_scope(_FLOAT_WEIGHT_SCOPES[0]):
      coefficients = tf.nn.conv1d(waveform[:, :, tf.newaxis], self.analysis, fe.frame_step,
                                  'VALID')
    return coefficients[..., :self.bins], coefficients[..., self.bins:]

  def magnitude(self, coefficients):
    real, imag = coefficients
    return tf.sqrt(real * real + imag * imag)

  def apply_mask(self, mask, coefficients):
    real, imag = coefficients
    return mask * real[:, tf.newaxis], mask * imag[:, tf.newaxis]

  def decode(self, coefficients, length):
    fe = self.front_end
    real, imag = coefficients
    stacked = tf.concat([real, imag], axis=-1)  # [b, m, frame, 2 * bins]
    batch, sources, frames = (int(d) for d in stacked.shape[:3])
    stacked = tf.reshape(stacked, [batch * sources, frames, 2 * self.bins])
    with tf.name_scope(_FLOAT_WEIGHT_SCOPES[1]):
      frames_out = tf.tensordot(stacked, self.synthesis, 1)
    waveform = _overlap_add(frames_out, fe.frame_step)
    waveform = tf.reshape(waveform, [batch, sources, -1])
    if fe.zero_pad_start:
      waveform = waveform[..., fe.frame_length - fe.frame_step:]
    return waveform[..., :length]


class _MatmulLearned:
  """Learned-basis front end with static framing and overlap-add (`_frames`, `_overlap_add`)."""

  def __init__(self, front_end: layers.LearnedBasisFrontEnd):
    self.front_end = front_end

  def encode(self, waveform):
    fe = self.front_end
    length = int(waveform.shape[-1])
    frames = max(1 - (-(length - fe.frame_length) // fe.frame_step), 1)
    padded = (frames - 1) * fe.frame_step + fe.frame_length
    waveform = tf.pad(waveform, [[0, 0], [0, max(padded - length, 0)]])[:, :padded]
    return fe.encoder(_frames(waveform, fe.frame_length, fe.frame_step))

  def magnitude(self, coefficients):
    return coefficients

  def apply_mask(self, mask, coefficients):
    return mask * coefficients[:, tf.newaxis]

  def decode(self, coefficients, length):
    fe = self.front_end
    frames_out = fe.decoder(coefficients)  # [b, m, frame, window]
    batch, sources, frames = (int(d) for d in frames_out.shape[:3])
    flat = tf.reshape(frames_out, [batch * sources, frames, fe.frame_length])
    waveform = tf.reshape(_overlap_add(flat, fe.frame_step), [batch, sources, -1])
    # The frames cover the whole input: total >= length.
    return waveform[..., :length]


@contextlib.contextmanager
def builtin_front_end(network) -> Iterator[None]:
  """While active, the network's front end runs as convolutions with fixed bases."""
  front_end = network.front_end
  if isinstance(front_end, layers.StftFrontEnd):
    replacement = _DftStft(front_end)
  elif isinstance(front_end, layers.LearnedBasisFrontEnd):
    replacement = _MatmulLearned(front_end)
  else:
    raise ValueError(f'no LiteRT conversion for front end {type(front_end).__name__}')
  names = ('encode', 'magnitude', 'apply_mask', 'decode')
  for name in names:
    object.__setattr__(front_end, name, getattr(replacement, name))
  try:
    yield
  finally:
    for name in names:
      object.__delattr__(front_end, name)


def _leaky_relu_call(layer: layers.PReLU):
  """`layer.call` as one leaky ReLU whose slope is the layer's alpha now (a constant)."""
  alpha = float(layer.alpha.numpy())

  def call(x):
    # TF's and LiteRT's kernels are `x if x > 0 else alpha x`, right for any alpha.
    return tf.nn.leaky_relu(x, alpha)

  return call


@contextlib.contextmanager
def delegate_friendly_layers(network) -> Iterator[None]:
  """While active, `PReLU` layers convert to one LEAKY_RELU each (the same function).

  The layer's `x + (alpha - 1) min(x, 0)` converts to MINIMUM, MUL and ADD: three passes
  over the TDCN++ blocks' largest activations where LEAKY_RELU, with the slope read now as
  a constant (the converter freezes it anyway), makes one. LiteRT's XNNPACK delegate takes
  all four operators.
  """
  replaced = []
  sublayers = network._flatten_layers(include_self=False)  # pylint: disable=protected-access
  for layer in sublayers:
    if isinstance(layer, layers.PReLU):
      replaced.append((layer, _leaky_relu_call(layer)))
  for layer, call in replaced:
    object.__setattr__(layer, 'call', call)
  try:
    yield
  finally:
    for layer, _ in replaced:
      object.__delattr__(layer, 'call')


def window_samples(network, window_seconds: float) -> int:
  if not window_seconds > 0:
    raise ValueError(f'--litert_window_seconds must be positive, got {window_seconds}')
  return int(round(float(window_seconds) * int(network.sample_rate)))


# Quantised variants (`mixit-export --litert_quantize`), written beside the float model:
# - 'dynamic_int8': int8 weights, activations float (dynamic-range quantisation: kernels
#   that support it quantise activations on the fly), except the weights that
#   `_keep_float_weights` leaves in float32;
# - 'float16': float16 weights, dequantised to float32 when the model is loaded.
QUANTIZATIONS = ('none', 'dynamic_int8', 'float16')
QUANTIZED_FILENAMES = {'dynamic_int8': 'model_int8.tflite', 'float16': 'model_float16.tflite'}


def check_quantize(quantize: str) -> None:
  if quantize not in QUANTIZATIONS:
    raise ValueError(f'--litert_quantize must be one of {", ".join(QUANTIZATIONS)}, got '
                     f'{quantize!r}')


def convert(network, window: int, quantize: str = 'none',
            float_model: Optional[bytes] = None) -> bytes:
  """The LiteRT flatbuffer of `network` on `[1, window]` inputs (builtin ops only),
  quantised as `quantize` says (`QUANTIZATIONS`). 'dynamic_int8' takes some weights from the
  float model (`_keep_float_weights`): `float_model`, the float conversion of the same
  network and window, or converted here.

  Raises:
    RuntimeError: the converted model needs Flex or custom operators.
  """
  check_quantize(quantize)
  if quantize == 'dynamic_int8' and float_model is None:
    float_model = convert(network, window)
  with builtin_front_end(network), delegate_friendly_layers(network):

    @tf.function(input_signature=[
        tf.TensorSpec([1, window], tf.float32, name=separator_lib.INPUT_KEY)])
    def serve(mixture_waveform):
      outputs = network(mixture_waveform, training=False)
      return {separator_lib.OUTPUT_KEY: outputs['separated_waveforms']}

    concrete = serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], network)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != 'none':
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == 'float16':
      converter.target_spec.supported_types = [tf.float16]
    model = converter.convert()
  if quantize == 'dynamic_int8':
    model = _keep_float_weights(model, float_model)
  foreign = [op for op in operators(model) if op.startswith(_NON_BUILTIN)]
  if foreign:
    raise RuntimeError(f'the LiteRT model needs non-builtin operators {sorted(set(foreign))}')
  return model


def _keep_float_weights(quantized: bytes, float_model: bytes) -> bytes:
  """`quantized` (dynamic-range int8) with some int8 weights replaced by their float32
  values from `float_model`, which makes those operators plain float ones.

  The converter has no switch to leave a weight out of dynamic-range quantisation, so this
  edits the flatbuffer. Kept in float32 (7% of the weights at the paper size, +1.6 MB):
  - every DEPTHWISE_CONV_2D kernel (6 KB each): XNNPACK does not take the int8 (hybrid)
    depthwise convolution, which cut the delegated graph at each block;
  - the weights under `_FLOAT_WEIGHT_SCOPES`: the DFT bases (or the learned front end) and
    the core's first dense layer, whose input (normalised linear magnitudes, with a wide
    range within a frame) loses its quiet bins when quantised to int8 on the fly. On the
    paper-size model (random weights) keeping these and the depthwise kernels lifted the
    worst source's SI-SNR against the float model from 10 to 18 dB on one set of weights
    and from 24 to 30 dB on another, the first dense layer giving most of it
    (docs/benchmarks.md).

  The two models are conversions of one graph, so their operators correspond one to one,
  which is checked.
  """
  import flatbuffers
  from tensorflow.lite.python import schema_py_generated as schema
  q_model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(quantized, 0))
  f_model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(float_model, 0))
  q_names, f_names = _operator_names(q_model), _operator_names(f_model)
  if (len(q_model.subgraphs) != len(f_model.subgraphs) or
      any(len(q.operators) != len(f.operators)
          for q, f in zip(q_model.subgraphs, f_model.subgraphs))):
    raise RuntimeError('the int8 and float LiteRT models have different graphs')
  users = {}
  for graph in q_model.subgraphs:
    for tensor in graph.tensors:
      users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
  for q_graph, f_graph in zip(q_model.subgraphs, f_model.subgraphs):
    for q_op, f_op in zip(q_graph.operators, f_graph.operators):
      name = q_names[q_op.opcodeIndex]
      if name != f_names[f_op.opcodeIndex]:
        raise RuntimeError('the int8 and float LiteRT models have different operators')
      if name not in ('CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED'):
        continue
      q_weight = q_graph.tensors[q_op.inputs[1]]
      f_weight = f_graph.tensors[f_op.inputs[1]]
      weight_name = f_weight.name.decode() if f_weight.name else ''
      if q_weight.type != schema.TensorType.INT8 or not (
          name == 'DEPTHWISE_CONV_2D' or _in_float_weight_scope(weight_name)):
        continue
      if f_weight.type != schema.TensorType.FLOAT32 or list(f_weight.shape) != list(
          q_weight.shape):
        raise RuntimeError(f'no float32 weight for {weight_name}')
      users[q_weight.buffer] -= 1
      if not users[q_weight.buffer]:
        q_model.buffers[q_weight.buffer].data = None
      buffer = schema.BufferT()
      buffer.data = np.frombuffer(bytes(f_model.buffers[f_weight.buffer].data), np.uint8)
      q_model.buffers.append(buffer)
      q_weight.buffer = len(q_model.buffers) - 1
      q_weight.type = schema.TensorType.FLOAT32
      q_weight.quantization = None
  builder = flatbuffers.Builder(0)
  builder.Finish(q_model.Pack(builder), file_identifier=b'TFL3')
  return bytes(builder.Output())


def _in_float_weight_scope(weight_name: str) -> bool:
  """Whether a name scope of `weight_name` is one of `_FLOAT_WEIGHT_SCOPES` (Keras and TF
  may add a `_<n>` suffix)."""
  return any(re.fullmatch(rf'{scope}(_\d+)?', part) for part in weight_name.split('/')
             for scope in _FLOAT_WEIGHT_SCOPES)


def _operator_names(root) -> List[str]:
  """Builtin operator name of each operator code of a `schema.ModelT`."""
  from tensorflow.lite.python import schema_py_generated as schema
  codes = {value: name for name, value in vars(schema.BuiltinOperator).items()
           if not name.startswith('_')}
  return [codes.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)),
                    str(code.builtinCode)) for code in root.operatorCodes]


def operators(model: bytes) -> List[str]:
  """Names of the operators in a LiteRT flatbuffer (from TF's model analyzer)."""
  from tensorflow.lite.python import schema_py_generated as schema
  root = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
  codes = {value: name for name, value in vars(schema.BuiltinOperator).items()
           if not name.startswith('_')}
  names = []
  for code in root.operatorCodes:
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = codes.get(builtin, str(builtin))
    if name == 'CUSTOM':
      custom = code.customCode.decode() if code.customCode else ''
      name = f'Flex:{custom}' if custom.startswith('Flex') else f'CUSTOM:{custom}'
    names.append(name)
  return names


def write(network, output_dir: str, window_seconds: float = DEFAULT_WINDOW_SECONDS,
          filename: str = TFLITE_FILENAME, quantize: str = 'none') -> dict:
  """Converts and writes `output_dir/filename` and, with `quantize` ('dynamic_int8' or
  'float16'), its quantised variant (`QUANTIZED_FILENAMES`); returns their description for
  the export json (the variant's under `quantized`)."""
  check_quantize(quantize)
  window = window_samples(network, window_seconds)
  model = convert(network, window)
  path = os.path.join(output_dir, filename)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(model)
  description = {'file': filename, 'window_samples': window,
                 'window_seconds': window / int(network.sample_rate),
                 'input': separator_lib.INPUT_KEY, 'input_shape': [1, window],
                 'output': separator_lib.OUTPUT_KEY,
                 'output_shape': [1, int(network.num_sources), window],
                 'size_bytes': len(model)}
  if quantize != 'none':
    quantized = convert(network, window, quantize, float_model=model)
    name = QUANTIZED_FILENAMES[quantize]
    with tf.io.gfile.GFile(os.path.join(output_dir, name), 'wb') as f:
      f.write(quantized)
    description['quantized'] = {'file': name, 'quantization': quantize,
                                'size_bytes': len(quantized),
                                'check': compare_to_float(path, os.path.join(output_dir, name))}
  return description


def compare_to_float(float_path: str, quantized_path: str, threads: int = 2,
                     calls: int = 3) -> dict:
  """The quantised model against the float one on one seeded test window, for the model card.

  The window is seeded noise with a slow amplitude envelope (not audio anyone recorded), so
  the figures say how far quantisation moves the outputs and what it saves in time on this
  machine, not how well either separates: score both on your own eval split for that.
  """
  float_runner = interpreter(float_path, num_threads=threads)
  quantized_runner = interpreter(quantized_path, num_threads=threads)
  window = int(float_runner.get_input_details()[0]['shape'][-1])
  rng = np.random.default_rng(0)
  envelope = 0.5 + 0.5 * np.sin(np.linspace(0.0, 6.0 * np.pi, window))
  mixture = (0.1 * envelope * rng.standard_normal(window)).astype(np.float32)
  seconds = {'float32': [], 'quantized': []}
  outputs = {}
  for _ in range(calls):  # interleaved
    for key, runner in (('float32', float_runner), ('quantized', quantized_runner)):
      start = time.perf_counter()
      outputs[key] = run_window(runner, mixture)
      seconds[key].append(time.perf_counter() - start)
  snr = eval_metrics.si_snr(outputs['float32'], outputs['quantized'])
  snr = snr[np.isfinite(snr)]
  return {'input': 'seeded noise, one window', 'threads': threads,
          'si_snr_vs_float_db': {'worst': round(float(snr.min()), 2),
                                 'median': round(float(np.median(snr)), 2)},
          'median_seconds': {key: round(float(np.median(value)), 4)
                             for key, value in seconds.items()}}


def interpreter(path: str, num_threads: Optional[int] = None):
  """A LiteRT interpreter of `path` (ai-edge-litert), tensors allocated."""
  try:
    from ai_edge_litert.interpreter import Interpreter
  except ImportError:  # TensorFlow's own copy of the runtime.
    Interpreter = tf.lite.Interpreter
  runner = Interpreter(model_path=path, num_threads=num_threads)
  runner.allocate_tensors()
  return runner


def delegation(runner) -> Tuple[int, List[str]]:
  """How a delegate (XNNPACK, LiteRT's default on CPU) took an interpreter's graph: the
  number of delegated pieces and the names of the operators left to LiteRT's own kernels.

  Read from the interpreter's node list (a private method of both interpreters): a delegated
  piece is one DELEGATE node; the operators left out are those that produce, directly or
  through each other, an input of a piece or the model's output.
  """
  nodes = runner._get_ops_details()  # pylint: disable=protected-access
  pieces = [node for node in nodes if node['op_name'] == 'DELEGATE']
  producer = {int(t): node for node in nodes if node['op_name'] != 'DELEGATE'
              for t in node['outputs']}
  delegated = {int(t) for node in pieces for t in node['outputs']}
  wanted = [int(t) for node in pieces for t in node['inputs'] if t >= 0]
  wanted += [int(detail['index']) for detail in runner.get_output_details()]
  if not pieces:
    return 0, [node['op_name'] for node in nodes]
  left = {}
  while wanted:
    tensor = wanted.pop()
    node = producer.get(tensor)
    if tensor in delegated or node is None or node['index'] in left:
      continue
    left[node['index']] = node['op_name']
    wanted.extend(int(t) for t in node['inputs'] if t >= 0)
  return len(pieces), [left[index] for index in sorted(left)]


def run_window(runner, mixture: np.ndarray) -> np.ndarray:
  """Separates one `[time]` mixture of at most the window's length (zero-padded)."""
  detail = runner.get_input_details()[0]
  window = int(detail['shape'][-1])
  mixture = np.asarray(mixture, np.float32).reshape(-1)
  if mixture.size > window:
    raise ValueError(f'mixture of {mixture.size} samples is longer than the LiteRT window '
                     f'({window} samples)')
  padded = np.zeros([1, window], np.float32)
  padded[0, :mixture.size] = mixture
  runner.set_tensor(detail['index'], padded)
  runner.invoke()
  output = runner.get_output_details()[0]
  return runner.get_tensor(output['index'])[0, :, :mixture.size]

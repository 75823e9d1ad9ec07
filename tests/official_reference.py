"""A float64 numpy forward pass of the official TF1 TDCN++ (tests only).

An independent reference for `mixit/import_official.py`: it reads the official
variable names of a fixture checkpoint (tests/fixtures/official_tdcnpp/) directly,
without the importer's mapping or any Keras code, and runs the published
computation in float64 on a mixture of any length:

  STFT front end (fuss_baseline, train_stft): sqrt periodic Hann window, frames
  padded at the end, train_stft first prepends window - hop zeros; features are
  the magnitudes normalised by their mean and variance over all frames and bins
  (`layer_norm_on_mag`); synthesis by the inverse STFT with the window divided
  by its overlapped squares, then the padding removed and the mixture's length
  kept.
  Learned basis (mixit_neurips2020): frames padded at the end and cropped to
  1 + ceil((T - window) / hop), encoder relu(frames W), decoder overlap-add of
  coefficients W'.
  Core: initial dense, 4 x 8 blocks `x + s2 dense2(norm(prelu(conv(norm(prelu(
  s1 dense1(x)))))))`, skip-residual dense links (res_dense_a_to_b), sigmoid
  masks of `dense/kernel`, and mixture consistency with softmax weights of
  `mix_weights/dense/kernel` on the time-averaged core output.

Being float64, its output is the exact result up to ~1e-15, so float32
implementations (the official one and ours) can both be measured against it.
"""
import json
import pathlib
import re
from typing import Dict

import numpy as np
import tensorflow as tf

# The epsilon of tf.keras.layers.LayerNormalization, which every official norm is.
EPSILON = 1e-3
BLOCK = 'improved_tdcn/conv_block_{}/tdcn_block/'


class OfficialReference:
  """The official TDCN++ of one fixture folder, in float64."""

  def __init__(self, folder):
    folder = pathlib.Path(folder)
    self.config = json.loads((folder / 'config.json').read_text())
    reader = tf.train.load_checkpoint(str(folder / 'model.ckpt'))
    self.values: Dict[str, np.ndarray] = {
        name: np.asarray(reader.get_tensor(name), np.float64)
        for name in reader.get_variable_to_shape_map()}
    rate = self.config['sample_rate']
    self.window = int(round(self.config['window_seconds'] * rate))
    self.hop = int(round(self.config['hop_seconds'] * rate))
    self.learned = bool(self.config['learn_basis'])
    self.zero_pad_start = self.config['variant'] == 'train_stft'
    self.fft_length = 1 << (self.window - 1).bit_length()
    self.num_blocks = 1 + max(int(m.group(1)) for n in self.values
                              for m in [re.match(r'improved_tdcn/conv_block_(\d+)/', n)] if m)
    self.num_dilations = self.config['num_dilations']

  # ---- Front ends -----------------------------------------------------------

  def _frames(self, waveform):
    """Frames with zeros padded at the end: ceil(T / hop) frames of `window`."""
    num_frames = -(-len(waveform) // self.hop)
    padded = np.zeros((num_frames - 1) * self.hop + self.window)
    padded[:len(waveform)] = waveform
    index = np.arange(self.window)[None] + self.hop * np.arange(num_frames)[:, None]
    return padded[index]

  def _overlap_add(self, frames):
    """`[..., frame, window]` -> `[..., (frames - 1) * hop + window]`."""
    num_frames = frames.shape[-2]
    out = np.zeros(frames.shape[:-2] + ((num_frames - 1) * self.hop + self.window,))
    for f in range(num_frames):
      out[..., f * self.hop:f * self.hop + self.window] += frames[..., f, :]
    return out

  def _sqrt_hann(self):
    n = np.arange(self.window)
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / self.window))

  def _stft(self, waveform):
    if self.zero_pad_start:
      waveform = np.concatenate([np.zeros(self.window - self.hop), waveform])
    return np.fft.rfft(self._frames(waveform) * self._sqrt_hann(), n=self.fft_length)

  def _inverse_stft(self, coefficients, length):
    window = self._sqrt_hann()
    # The sum of the squared windows overlapping each sample of a frame.
    overlap = np.zeros(self.window)
    for k in range(-(self.window // self.hop) - 1, self.window // self.hop + 2):
      shifted = np.arange(self.window) + k * self.hop
      valid = (shifted >= 0) & (shifted < self.window)
      overlap[valid] += window[shifted[valid]] ** 2
    frames = np.fft.irfft(coefficients, n=self.fft_length)[..., :self.window]
    waveform = self._overlap_add(frames * (window / overlap))
    if self.zero_pad_start:
      waveform = waveform[..., self.window - self.hop:]
    return waveform[..., :length]

  # ---- Core -------------------------------------------------------------------

  def _dense(self, scope, x):
    y = x @ self.values[scope + '/dense/kernel']
    if scope + '/dense/bias' in self.values:
      y = y + self.values[scope + '/dense/bias']
    if scope + '/dense_scale/scale_layer' in self.values:
      y = self.values[scope + '/dense_scale/scale_layer'] * y
    return y

  def _norm(self, scope, x):
    """Scalar-parameter layer norm of `[frame, channel]` over the scope's axes."""
    name = [n for n in ('instance_norm', 'global_layer_norm', 'layer_norm')
            if f'{scope}/{n}/gamma' in self.values][0]
    gamma = self.values[f'{scope}/{name}/gamma']
    axes = {'instance_norm': (0,), 'layer_norm': (1,)}.get(name)
    if axes is None:  # global_layer_norm: bin-wise [1] (FUSS) or over both [1, 1].
      axes = (0,) if gamma.shape == (1,) else (0, 1)
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (gamma.item() * (x - mean) / np.sqrt(variance + EPSILON)
            + self.values[f'{scope}/{name}/beta'].item())

  def _prelu(self, scope, x):
    alpha = self.values[scope + '/prelu/prelu']
    return np.maximum(x, 0) - alpha * np.maximum(-x, 0)

  def _conv(self, scope, x, dilation):
    """Depthwise conv over frames, 'SAME' padding, dilated, with bias."""
    kernel = self.values[scope + '/separable_conv/depthwise_kernel'][:, 0, :, 0]
    size = kernel.shape[0]
    total = (size - 1) * dilation
    padded = np.pad(x, [(total // 2, total - total // 2), (0, 0)])
    return self.values[scope + '/separable_conv/bias'] + sum(
        kernel[i] * padded[i * dilation:i * dilation + len(x)] for i in range(size))

  def _core(self, features):
    h = self._dense('initial_dense', features)
    links = sorted((int(m.group(2)), int(m.group(1))) for n in self.values
                   for m in [re.match(r'improved_tdcn/res_dense_(\d+)_to_(\d+)/dense/kernel$',
                                      n)] if m)
    inputs = []
    for b in range(self.num_blocks):
      for dst, src in links:
        if dst == b:
          h = h + self._dense(f'improved_tdcn/res_dense_{src}_to_{dst}', inputs[src])
      inputs.append(h)
      scope = BLOCK.format(b)
      y = self._dense(scope + 'dense1', h)
      y = self._norm(scope + 'normact1', self._prelu(scope + 'normact1', y))
      y = self._conv(scope + 'timeconv', y, 2 ** (b % self.num_dilations))
      y = self._norm(scope + 'normact2', self._prelu(scope + 'normact2', y))
      h = h + self._dense(scope + 'dense2', y)
    return h

  # ---- Whole network ------------------------------------------------------

  @staticmethod
  def _normalise(magnitude, float32_sums):
    """`(x - mean) / sqrt(var + eps)` over every frame and bin.

    `float32_sums`: the mean and variance as the official code computes them
    (its `layer_norm_on_mag` runs TF's FusedBatchNorm CPU kernel): one
    sequential float32 sum of the float32 values, times float32 1 / n, then
    one sequential float32 sum of the squared centred values, times 1 / n. The
    rest stays float64.
    """
    if not float32_sums:
      mean = magnitude.mean()
      variance = ((magnitude - mean) ** 2).mean()
      return (magnitude - mean) / np.sqrt(variance + EPSILON)
    values = magnitude.astype(np.float32)
    inverse_count = np.float32(1 / values.size)
    # np.cumsum adds in order (np.sum would add pairwise, far more accurately).
    mean = np.cumsum(values, dtype=np.float32)[-1] * inverse_count
    centred = values - mean
    variance = np.cumsum(centred * centred, dtype=np.float32)[-1] * inverse_count
    return centred.astype(np.float64) / np.sqrt(np.float64(variance) + EPSILON)

  def separate(self, mixture, float32_sums=False):
    """`mixture [time]` -> float64 `separated [source, time]`.

    `float32_sums=True` computes the STFT feature normalisation's statistics
    with the float32 rounding of the official code (see `_normalise`), the one
    step where that rounding, not float32 itself, sets the official outputs.
    """
    mixture = np.asarray(mixture, np.float64)
    length = len(mixture)
    if self.learned:
      frames = self._frames(mixture)[:max(1, 1 - (-(length - self.window) // self.hop))]
      coefficients = np.maximum(frames @ self.values['conv_encoder/dense/kernel'], 0)
      features = coefficients
    else:
      coefficients = self._stft(mixture)
      features = (self.values['layer_norm_on_mag/gamma'].item()
                  * self._normalise(np.abs(coefficients), float32_sums)
                  + self.values['layer_norm_on_mag/beta'].item())
    core = self._core(features)
    num_bins = features.shape[-1]
    logits = core @ self.values['dense/kernel']
    masks = 1 / (1 + np.exp(-logits.reshape(len(core), -1, num_bins).transpose(1, 0, 2)))
    if self.learned:
      decoder = [n for n in self.values if n.startswith('conv_decoder/')][0]
      separated = self._overlap_add((masks * coefficients) @ self.values[decoder])[:, :length]
    else:
      separated = self._inverse_stft(masks * coefficients, length)
    logits = core.mean(axis=0) @ self.values['mix_weights/dense/kernel']
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    return separated + weights[:, None] * (mixture - separated.sum(axis=0))

"""Separating waveforms of any length and rate with an exported mixit SavedModel.

Notebook API:

    import mixit
    separate = mixit.load_separator('/path/to/export')
    sources = separate(waveform, sample_rate)  # np.float32 [num_sources, time]

The input is resampled to the model rate, separated, and the sources are
resampled back (`data_pipeline.audio_io.Resampler`: soxr 'HQ' run as a
stream, the resampler of `audio_io.resample` on its soundfile backend).
Inputs longer than `max_chunk_seconds` are separated in overlapping windows:
each window's sources are put in the order of the previous window's by
maximising the summed inner products on the overlap (Hungarian), and the two
are cross-faded there. A cross-fade whose
weights sum to one keeps the mixture consistency of the model: the sources of a
stitched recording still sum to the (resampled) input.

Everything runs as a stream (`SeparationStream`), so a file of any length is
separated holding about two windows of audio; `mixit.serving.separate` feeds it from
disk blocks and writes its output incrementally.

Only numpy, scipy, TensorFlow, `data_pipeline.audio_io` (which imports
nothing of the package; soxr, soundfile) and the record names of
`mixit.owned_files` (which imports nothing of the package) are used here: a
SavedModel needs nothing else of this package.
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable, List, Optional, Tuple

import numpy as np
import scipy.optimize

from data_pipeline import audio_io
from mixit import owned_files

# Names fixed by the SavedModel contract (DESIGN.md, "mixit/serving/export.py"); every reader and
# writer of SavedModels uses these.
SIGNATURE_KEY = 'serving_default'
METADATA_SIGNATURE_KEY = 'get_metadata'
INPUT_KEY = 'mixture_waveform'
OUTPUT_KEY = 'separated_waveforms'
EXPORT_JSON = owned_files.EXPORT.filename  # the export's metadata and record of its files

# 20 s windows keep the model near the 10 s clips it is trained on while adding
# only 10 % of recomputation for the 2 s overlaps, which are long enough for the
# permutation alignment to see every active source.
DEFAULT_MAX_CHUNK_SECONDS = 20.0
DEFAULT_OVERLAP_SECONDS = 2.0
# soxr accepts any ratio, but beyond this the "resampled" signal is either a few
# samples long or mostly interpolation: such a rate is a mistake, not audio.
MAX_RESAMPLE_RATIO = 64.0

# `[1, time]` float32 at the model rate -> `[1, num_sources, time]`.
ModelFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------
# Validation helpers.


def check_sample_rate(rate, model_rate: int, what: str = 'input') -> int:
  """Returns `rate` as an int, or raises a ValueError saying why it can't be used."""
  try:
    value = float(rate)
  except (TypeError, ValueError):
    raise ValueError(f'{what} sample rate {rate!r} is not a number') from None
  if not math.isfinite(value) or value <= 0 or value != int(value):
    raise ValueError(f'{what} sample rate {rate!r} must be a positive integer (Hz)')
  value = int(value)
  ratio = max(value / model_rate, model_rate / value)
  if ratio > MAX_RESAMPLE_RATIO:
    raise ValueError(
        f'{what} sample rate {value} Hz cannot be resampled to the model rate {model_rate} Hz '
        f'(ratio {ratio:.0f} exceeds {MAX_RESAMPLE_RATIO:.0f})')
  return value


def window_sizes(model_rate: int, max_chunk_seconds: Optional[float],
                 overlap_seconds: float) -> Tuple[Optional[int], int]:
  """(window, overlap) in model-rate samples; window None means one call per input."""
  if max_chunk_seconds is None or max_chunk_seconds == 0:
    return None, 0
  if not max_chunk_seconds > 0:
    raise ValueError(f'max_chunk_seconds must be positive (or 0 for no windows), '
                     f'got {max_chunk_seconds}')
  window = int(round(max_chunk_seconds * model_rate))
  overlap = int(round(overlap_seconds * model_rate))
  # Consecutive cross-fades must not overlap each other, and alignment needs samples.
  if overlap < 1 or 2 * overlap > window:
    raise ValueError(
        f'overlap must be positive and at most half of max_chunk_seconds: got overlap '
        f'{overlap_seconds} s with max_chunk_seconds {max_chunk_seconds} s')
  return window, overlap


def _output_length(input_length: int, rate_in: int, rate_out: int) -> int:
  return (input_length * rate_out + rate_in // 2) // rate_in


def _fade_in(length: int) -> np.ndarray:
  """Raised-cosine ramp from ~0 to ~1; with 1 - ramp the weights sum to one."""
  n = np.arange(length, dtype=np.float64)
  return (0.5 - 0.5 * np.cos(np.pi * (n + 0.5) / length)).astype(np.float32)


def align_to_previous(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
  """Order of `current`'s sources matching `previous` on their shared samples.

  Maximising the summed inner products is minimising the summed squared
  differences (the norms do not depend on the pairing), so silent sources pair
  with silent ones and no normalisation is needed.

  Args:
    previous: `[source, time]`.
    current: `[source, time]`, the same samples from the next window.

  Returns:
    int indices `[source]`: `current[order]` is aligned to `previous`.
  """
  scores = previous.astype(np.float64) @ current.astype(np.float64).T
  rows, cols = scipy.optimize.linear_sum_assignment(scores, maximize=True)
  order = np.empty_like(cols)
  order[rows] = cols
  return order


# --------------------------------------------------------------------------
# Streaming separation.


class _WindowStitcher:
  """Runs the model on overlapping windows of a model-rate stream.

  Windows start every `window - overlap` samples; the last one ends at the end
  of the input (starting earlier when needed, so it is a full window). Of each
  window the last `overlap` samples are held back to cross-fade with the next.
  """

  def __init__(self, model_fn: ModelFn, num_sources: int, window: Optional[int], overlap: int):
    self._model_fn = model_fn
    self._num_sources = num_sources
    self._window = window
    self._overlap = overlap
    self._chunks: List[np.ndarray] = []
    self._buffer_start = 0  # stream position of the first held input sample
    self._held = 0  # input samples held
    self._next_start = 0
    self._last_end = 0  # end of the last window run
    self._pending: Optional[np.ndarray] = None  # [M, overlap] outputs over the next cross-fade
    self.num_windows = 0
    self.peak_held_samples = 0
    self.longest_model_input = 0

  @property
  def total(self) -> int:
    return self._buffer_start + self._held

  def _input(self, start: int, end: int) -> np.ndarray:
    if len(self._chunks) > 1:
      self._chunks = [np.concatenate(self._chunks)]
    offset = start - self._buffer_start
    return self._chunks[0][offset:offset + end - start]

  def _drop_before(self, position: int) -> None:
    drop = position - self._buffer_start
    if drop <= 0:
      return
    if len(self._chunks) > 1:
      self._chunks = [np.concatenate(self._chunks)]
    self._chunks = [self._chunks[0][drop:].copy()]
    self._buffer_start = position
    self._held -= drop

  def _run(self, start: int, end: int, final: bool) -> List[np.ndarray]:
    mixture = self._input(start, end)
    self.longest_model_input = max(self.longest_model_input, end - start)
    estimates = np.asarray(self._model_fn(mixture[None, :]))
    expected = (1, self._num_sources, end - start)
    if estimates.shape != expected:
      raise ValueError(f'the model returned shape {estimates.shape} for a mixture of shape '
                       f'{(1, end - start)}; expected {expected}')
    estimates = estimates[0].astype(np.float32, copy=False)
    self.num_windows += 1
    outputs = []
    emitted_to = start
    if self._pending is not None:
      fade_start = self._last_end - self._pending.shape[1]
      shared = slice(fade_start - start, self._last_end - start)
      estimates = estimates[align_to_previous(self._pending, estimates[:, shared])]
      ramp = _fade_in(self._pending.shape[1])
      outputs.append(self._pending * (1.0 - ramp) + estimates[:, shared] * ramp)
      emitted_to = self._last_end
    keep_from = end if final else end - self._overlap
    outputs.append(estimates[:, emitted_to - start:keep_from - start])
    self._pending = None if final else estimates[:, keep_from - start:].copy()
    self._last_end = end
    return outputs

  def push(self, x: np.ndarray) -> List[np.ndarray]:
    """Adds model-rate samples `[time]`; returns finished outputs, each `[M, time]`."""
    if x.size:
      self._chunks.append(x)
      self._held += x.shape[0]
      self.peak_held_samples = max(self.peak_held_samples, self._held)
    outputs = []
    while self._window is not None and self.total >= self._next_start + self._window:
      start = self._next_start
      outputs += self._run(start, start + self._window, final=False)
      self._next_start = start + self._window - self._overlap
      # A short remainder makes the last window start anywhere after this one.
      self._drop_before(start + 1)
    return outputs

  def finish(self) -> List[np.ndarray]:
    """Separates what is left; returns the remaining outputs."""
    end = self.total
    outputs = []
    if end > self._last_end:
      start = 0 if self._window is None else max(end - self._window, 0)
      outputs += self._run(start, end, final=True)
    elif self._pending is not None:
      outputs.append(self._pending)
    self._pending = None
    self._chunks = []
    return outputs


class SeparationStream:
  """Separates a mixture arriving in blocks, yielding sources as they are final.

  `push(block [time])` and `finish()` return lists of `[M, time]` float32
  arrays at `output_rate`; concatenated, they are exactly
  `round(input_length * output_rate / sample_rate)` samples long.
  """

  def __init__(self, model_fn: ModelFn, model_rate: int, num_sources: int, sample_rate: int, *,
               output_rate: Optional[int] = None, window: Optional[int] = None,
               overlap: int = 0):
    self.sample_rate = sample_rate
    self.output_rate = sample_rate if output_rate is None else output_rate
    self.num_sources = num_sources
    self._down = audio_io.Resampler(sample_rate, model_rate, 1)
    self._up = audio_io.Resampler(model_rate, self.output_rate, num_sources)
    self._stitcher = _WindowStitcher(model_fn, num_sources, window, overlap)
    self.input_samples = 0
    self.output_samples = 0
    self._surplus = np.zeros((num_sources, 0), np.float32)
    self._finished = False

  @property
  def num_windows(self) -> int:
    return self._stitcher.num_windows

  @property
  def peak_held_samples(self) -> int:
    """Most model-rate input samples held at once (bounded by about two windows)."""
    return self._stitcher.peak_held_samples

  @property
  def longest_model_input(self) -> int:
    return self._stitcher.longest_model_input

  def _deliver(self, stitched: List[np.ndarray], last: bool) -> List[np.ndarray]:
    parts = []
    for block in stitched:
      if block.shape[1]:
        parts.append(self._up(block.T, last=False).T)
    if last:
      parts.append(self._up(np.zeros((0, self.num_sources), np.float32), last=True).T)
    if self._surplus.shape[1]:
      parts.insert(0, self._surplus)
    produced = np.concatenate(parts, axis=1) if parts else self._surplus
    # Resampler delays differ by a sample or so from the exact length: hold back
    # what runs past the input seen so far, and trim or pad at the end.
    target = _output_length(self.input_samples, self.sample_rate, self.output_rate)
    room = max(target - self.output_samples, 0)
    out, self._surplus = produced[:, :room], produced[:, room:]
    if last and out.shape[1] < room:
      out = np.pad(out, ((0, 0), (0, room - out.shape[1])))
    self.output_samples += out.shape[1]
    return [np.ascontiguousarray(out, dtype=np.float32)] if out.shape[1] else []

  def push(self, block: np.ndarray) -> List[np.ndarray]:
    if self._finished:
      raise RuntimeError('push() after finish()')
    block = np.asarray(block, dtype=np.float32)
    if block.ndim != 1:
      raise ValueError(f'expected a mono block [time], got shape {block.shape}')
    if not np.all(np.isfinite(block)):
      raise ValueError(f'the audio holds NaN or infinite samples (near sample '
                       f'{self.input_samples + int(np.argmax(~np.isfinite(block)))})')
    self.input_samples += block.shape[0]
    if not block.shape[0]:
      return []
    resampled = self._down(block[:, None])[:, 0]
    return self._deliver(self._stitcher.push(resampled), last=False)

  def finish(self) -> List[np.ndarray]:
    if self._finished:
      raise RuntimeError('finish() called twice')
    self._finished = True
    if self.input_samples == 0:
      raise ValueError('the audio holds no samples')
    tail = self._down(np.zeros((0, 1), np.float32), last=True)[:, 0]
    stitched = self._stitcher.push(tail)
    if self._stitcher.total == 0:
      raise ValueError(f'{self.input_samples} samples at {self.sample_rate} Hz are too short '
                       f'to resample to the model rate')
    stitched += self._stitcher.finish()
    return self._deliver(stitched, last=True)


# --------------------------------------------------------------------------
# The notebook API.


class Separator:
  """Separates mono or multichannel waveforms at any rate and length.

  Attributes:
    sample_rate: the model's rate (Hz).
    num_sources: M, the number of separated outputs.
  """

  def __init__(self, model_fn: ModelFn, sample_rate: int, num_sources: int, *,
               max_chunk_seconds: Optional[float] = DEFAULT_MAX_CHUNK_SECONDS,
               overlap_seconds: float = DEFAULT_OVERLAP_SECONDS, name: str = 'model'):
    self._model_fn = model_fn
    self.sample_rate = int(sample_rate)
    self.num_sources = int(num_sources)
    self.name = name
    window_sizes(self.sample_rate, max_chunk_seconds, overlap_seconds)  # validates
    self.max_chunk_seconds = max_chunk_seconds
    self.overlap_seconds = overlap_seconds

  def __repr__(self):
    return (f'Separator({self.name!r}, sample_rate={self.sample_rate}, '
            f'num_sources={self.num_sources})')

  def separate_at_model_rate(self, mixture: np.ndarray) -> np.ndarray:
    """One model call: `[time]` at the model rate -> `[M, time]`."""
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim != 1 or mixture.shape[0] == 0:
      raise ValueError(f'expected a non-empty mono mixture [time], got shape {mixture.shape}')
    stream = self.stream(self.sample_rate, max_chunk_seconds=0)
    return np.concatenate(stream.push(mixture) + stream.finish(), axis=1)

  def stream(self, sample_rate: int, *, output_rate: Optional[int] = None,
             max_chunk_seconds: Optional[float] = None,
             overlap_seconds: Optional[float] = None) -> SeparationStream:
    """A `SeparationStream` for a mono input at `sample_rate` (defaults from the separator)."""
    sample_rate = check_sample_rate(sample_rate, self.sample_rate)
    if output_rate is not None:
      output_rate = check_sample_rate(output_rate, self.sample_rate, 'output')
    window, overlap = window_sizes(
        self.sample_rate,
        self.max_chunk_seconds if max_chunk_seconds is None else max_chunk_seconds,
        self.overlap_seconds if overlap_seconds is None else overlap_seconds)
    return SeparationStream(self._model_fn, self.sample_rate, self.num_sources, sample_rate,
                            output_rate=output_rate, window=window, overlap=overlap)

  def __call__(self, waveform, sample_rate: int, *, output_rate: Optional[int] = None,
               max_chunk_seconds: Optional[float] = None,
               overlap_seconds: Optional[float] = None) -> np.ndarray:
    """Separates a waveform.

    Args:
      waveform: `[time]`, or `[channels, time]` (channels are averaged).
      sample_rate: its rate in Hz (resampled to the model rate and back).
      output_rate: rate of the result; defaults to `sample_rate`.
      max_chunk_seconds: window length for long inputs (0: one model call).
      overlap_seconds: overlap of consecutive windows.

    Returns:
      float32 `[num_sources, time]`; the sources sum to the (resampled) input.
    """
    mono = to_mono(waveform)
    stream = self.stream(sample_rate, output_rate=output_rate,
                         max_chunk_seconds=max_chunk_seconds, overlap_seconds=overlap_seconds)
    parts = []
    block = max(int(sample_rate), 1)
    for start in range(0, mono.shape[0], block):
      parts += stream.push(mono[start:start + block])
    parts += stream.finish()
    return np.concatenate(parts, axis=1)


def to_mono(waveform) -> np.ndarray:
  """`[time]` or `[channels, time]` -> float32 `[time]` (channel mean)."""
  x = np.asarray(waveform)
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise ValueError(f'waveform must be numeric, got dtype {x.dtype}')
  if np.issubdtype(x.dtype, np.integer):
    raise ValueError(f'waveform must be float audio in [-1, 1], got integer dtype {x.dtype}; '
                     f'divide int16 samples by 32768')
  if x.ndim == 2:
    # [time, channels] arrays (soundfile's layout) would be averaged over time:
    # refuse the likely mix-up instead of returning a garbage "mono" signal.
    if x.shape[0] > x.shape[1] and x.shape[1] <= 16:
      raise ValueError(f'waveform of shape {x.shape} looks like [time, channels]; pass '
                       f'[channels, time] (e.g. waveform.T) or a mono [time] array')
    x = audio_io.downmix(x, channel_axis=0)
  elif x.ndim != 1:
    raise ValueError(f'waveform must be [time] or [channels, time], got shape {x.shape}')
  if x.shape[0] == 0:
    raise ValueError('waveform holds no samples')
  return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------
# Loading SavedModels.


def _not_mixit(path: str, why: str) -> ValueError:
  return ValueError(f'{path} is not a mixit separation SavedModel: {why} (export one with '
                    f'mixit-export)')


def _read_constant(loaded, name: str, path: str, required: bool = True) -> Optional[int]:
  """An int the export records: a variable of the loaded object, the metadata signature, or
  `mixit_export.json`; None (or a ValueError when `required`) when none records it."""
  value = getattr(loaded, name, None)
  if value is not None and hasattr(value, 'numpy'):
    return int(value.numpy())
  metadata = getattr(loaded, 'signatures', {}).get(METADATA_SIGNATURE_KEY)
  if metadata is not None:
    outputs = metadata()
    if name in outputs:
      return int(outputs[name].numpy())
  json_path = os.path.join(path, EXPORT_JSON)
  import tensorflow as tf
  if tf.io.gfile.exists(json_path):
    with tf.io.gfile.GFile(json_path) as f:
      info = json.load(f)
    if info.get(name) is not None:
      return int(info[name])
  if not required:
    return None
  raise _not_mixit(path, f'it records no {name!r}')


def load_saved_model(path: str, *, require_constants: bool = True):
  """Loads and checks a mixit SavedModel (the one loader: `load_separator` and the FUSS
  evaluator both use it).

  Args:
    path: the SavedModel folder (local or any `tf.io.gfile` file system).
    require_constants: raise when the model records no `sample_rate` / `num_sources`;
      when False they come back as None (the evaluator scores any model that has the
      serving signature).

  Returns:
    (loaded object, serving signature, sample_rate, num_sources).

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: `path` is not a SavedModel, or one without the mixit signature.
  """
  import tensorflow as tf
  path = os.fspath(path)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'SavedModel not found: {path}')
  if not tf.saved_model.contains_saved_model(path):
    raise ValueError(f'{path} is not a SavedModel directory (no saved_model.pb)')
  try:
    loaded = tf.saved_model.load(path)
  except Exception as e:
    raise ValueError(f'cannot load the SavedModel at {path}: {type(e).__name__}: {e}') from e
  signatures = getattr(loaded, 'signatures', {})
  if SIGNATURE_KEY not in signatures:
    raise _not_mixit(path, f'no {SIGNATURE_KEY!r} signature (it has {sorted(signatures)})')
  signature = signatures[SIGNATURE_KEY]
  inputs = signature.structured_input_signature[1]
  spec = inputs.get(INPUT_KEY)
  if (set(inputs) != {INPUT_KEY} or spec.dtype != tf.float32 or spec.shape.rank != 2):
    raise _not_mixit(path, f'{SIGNATURE_KEY} takes {inputs}, expected one float32 '
                     f'{INPUT_KEY!r} of shape [batch, time]')
  outputs = signature.structured_outputs
  if not isinstance(outputs, dict) or OUTPUT_KEY not in outputs:
    raise _not_mixit(path, f'{SIGNATURE_KEY} returns {outputs}, expected {OUTPUT_KEY!r}')
  if outputs[OUTPUT_KEY].shape.rank != 3:
    raise _not_mixit(path, f'{OUTPUT_KEY!r} has shape {outputs[OUTPUT_KEY].shape}, '
                     f'expected [batch, source, time]')
  sample_rate = _read_constant(loaded, 'sample_rate', path, require_constants)
  num_sources = _read_constant(loaded, 'num_sources', path, require_constants)
  static_sources = outputs[OUTPUT_KEY].shape[1]
  if num_sources is not None and static_sources is not None and static_sources != num_sources:
    raise _not_mixit(path, f'it records num_sources={num_sources} but its signature returns '
                     f'{static_sources} sources')
  if any(value is not None and value <= 0 for value in (sample_rate, num_sources)):
    raise _not_mixit(path, f'invalid sample_rate={sample_rate} / num_sources={num_sources}')
  return loaded, signature, sample_rate, num_sources


def serve(signature, mixtures: np.ndarray) -> np.ndarray:
  """Runs the serving signature: `[batch, time]` float32 -> `[batch, source, time]` numpy."""
  import tensorflow as tf
  outputs = signature(**{INPUT_KEY: tf.constant(np.asarray(mixtures), dtype=tf.float32)})
  return outputs[OUTPUT_KEY].numpy()


def load_separator(path: str, *, max_chunk_seconds: Optional[float] = DEFAULT_MAX_CHUNK_SECONDS,
                   overlap_seconds: float = DEFAULT_OVERLAP_SECONDS) -> Separator:
  """Loads an exported SavedModel as a `Separator`: `separator(waveform, rate) -> [M, time]`."""
  loaded, signature, sample_rate, num_sources = load_saved_model(path)

  def model_fn(mixture: np.ndarray) -> np.ndarray:
    return serve(signature, mixture)

  separator = Separator(model_fn, sample_rate, num_sources, max_chunk_seconds=max_chunk_seconds,
                        overlap_seconds=overlap_seconds, name=os.fspath(path))
  separator.saved_model = loaded  # keeps the restored variables alive
  return separator

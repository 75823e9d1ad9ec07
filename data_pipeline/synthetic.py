"""Procedurally synthesised FUSS-format data: the embedded default dataset.

Writes the FUSS layout (see `fuss.py`) under a root folder:

    <root>/{train,validation,eval}/exampleNNNNN.wav
    <root>/{train,validation,eval}/exampleNNNNN_sources/background0_sound.wav
    <root>/{train,validation,eval}/exampleNNNNN_sources/foregroundK_sound.wav
    <root>/{train,validation,eval}_example_list.txt
    <root>/{train,validation,eval}_example_list.labels.tsv   (weak labels, see fuss.py)
    <root>/synthetic_fuss.json                               (generation settings)

Each example has one background spanning the clip and 0..3 foreground sources
(the count uniform, so 1..4 sources as in FUSS), each of one of several
acoustically distinct kinds (the class labels; `sound_kinds.py` synthesises
them). By default (`kinds='classic'`) the background is stationary noise and the
foregrounds are harmonic tones with envelopes, chirps, filtered noise bursts,
clicks and resonant impulses, and AM/FM textures; `kinds='varied'` adds
speech-like voices, babble, music, animal calls, impacts and natural textures,
over backgrounds that may also be a music bed, babble or a texture. A
foreground's SNR against the background (power over the event's active span vs
background power) is uniform in [-5, 25] dB. With
`reverb`, every source is convolved with its own impulse response of one
synthetic room per example (exponentially decaying noise tail, RT60 0.2-0.8 s,
with a direct path and a few early reflections).

Files are 16-bit PCM. Levels are set so the mixture peaks at most at
`PEAK_LEVEL` full scale, the sources are quantised, and the mixture file is the
exact integer sum of the quantised sources: read back as int16 / 32768 the
mixture equals the sum of its sources to float32 precision.

Every example is generated from its own generator seeded by
(seed, split, index), so output is deterministic and example k of a split does
not depend on how many examples are made.
"""
import json
import multiprocessing
import os
import sys
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from data_pipeline import audio_io
from data_pipeline import fuss
from data_pipeline import sound_kinds

SPLITS = ('train', 'validation', 'eval')
BACKGROUND_CLASS = sound_kinds.STATIONARY_BACKGROUND
# The classic (default) kinds; `kinds='varied'` draws from many more (sound_kinds.KIND_SETS).
FOREGROUND_CLASSES = sound_kinds.CLASSIC_FOREGROUND
CLASS_NAMES = FOREGROUND_CLASSES + (BACKGROUND_CLASS,)
# Probability of 1, 2, 3, 4 sources (background + 0..3 foregrounds).
SOURCE_COUNT_PROBS = (0.25, 0.25, 0.25, 0.25)
SNR_RANGE_DB = (-5.0, 25.0)
PEAK_LEVEL = 0.9
INFO_FILE = 'synthetic_fuss.json'
_BACKGROUND_RMS = 10 ** (-30 / 20)


# The classic kinds, under the names the first generator gave them (see sound_kinds.py).
_GENERATORS: Dict[str, Callable[[int, np.random.Generator, int], np.ndarray]] = {
    **{kind: sound_kinds.FOREGROUND_KINDS[kind] for kind in FOREGROUND_CLASSES},
    BACKGROUND_CLASS: sound_kinds.BACKGROUND_KINDS[BACKGROUND_CLASS],
}


def _room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60: float
                           ) -> np.ndarray:
  """A synthetic RIR: direct path, early reflections, exponentially decaying tail."""
  length = int(rt60 * 1.2 * sample_rate)
  t = np.arange(length) / sample_rate
  # Amplitude decays 60 dB in rt60 seconds.
  tail = rng.standard_normal(length) * 10 ** (-3 * t / rt60)
  tail[:int(0.005 * sample_rate)] = 0.0
  rir = 0.3 * tail * rng.uniform(0.5, 1.0)
  delay = int(rng.uniform(0.0005, 0.005) * sample_rate)
  rir[delay] += 1.0
  for _ in range(6):
    reflection = int(rng.uniform(0.002, 0.04) * sample_rate) + delay
    if reflection < length:
      rir[reflection] += rng.uniform(-0.6, 0.6)
  return rir / np.sqrt(np.sum(rir ** 2))


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
  size = x.size + h.size - 1
  nfft = 1 << int(np.ceil(np.log2(size)))
  return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:x.size]


def reverberate(signal: np.ndarray, rng: np.random.Generator, sample_rate: int,
                rt60: float) -> np.ndarray:
  """`signal` convolved with a fresh synthetic impulse response of the given RT60."""
  return _fft_convolve(signal, _room_impulse_response(rng, sample_rate, rt60))


def _active_power(x: np.ndarray) -> float:
  """Mean power over the samples where the event is on (a 1e-3 envelope gate)."""
  magnitude = np.abs(x)
  active = magnitude > 1e-3 * magnitude.max() if magnitude.max() > 0 else magnitude > 0
  return float(np.mean(x[active] ** 2)) if np.any(active) else 0.0


# --------------------------------------------------------------------------
# Examples.


def set_levels(signals: Sequence[np.ndarray], snrs_db: Sequence[float]) -> np.ndarray:
  """The FUSS levels, quantised: the one mixing rule of every generator here.

  Args:
    signals: float arrays [time], the background first, then the foregrounds
      (zero outside their events).
    snrs_db: one SNR per foreground: its power over its active span (a 1e-3
      envelope gate) against the background's mean power.

  Returns:
    int16 [num_sources, time]. The background is first set to -30 dB RMS, then
    one gain for all keeps the mixture and each source at most at PEAK_LEVEL, so
    their int32 sum fits int16.
  """
  if len(snrs_db) != len(signals) - 1:
    raise ValueError(f'need one SNR per foreground, got {len(snrs_db)} for '
                     f'{len(signals) - 1} foregrounds')
  levelled = []
  for index, signal in enumerate(signals):
    signal = np.asarray(signal, np.float64)
    if index == 0:
      signal = signal * (_BACKGROUND_RMS / (np.sqrt(np.mean(signal ** 2)) + 1e-12))
    else:
      target_power = _BACKGROUND_RMS ** 2 * 10 ** (snrs_db[index - 1] / 10)
      signal = signal * np.sqrt(target_power / max(_active_power(signal), 1e-20))
    levelled.append(signal)
  sources = np.stack(levelled)
  peak = max(np.max(np.abs(sources.sum(axis=0))), np.max(np.abs(sources)))
  gain = min(1.0, PEAK_LEVEL / peak) if peak > 0 else 1.0
  quantised = audio_io.quantize_pcm16(sources * gain)
  total = quantised.astype(np.int32).sum(axis=0)
  if np.max(np.abs(total)) > 32767:
    raise AssertionError('mixture overflows int16; PEAK_LEVEL leaves no margin')
  return quantised


def draw_source_count(rng: np.random.Generator, source_count_probs: Sequence[float]) -> int:
  """1..len(probs) sources, drawn with the given weights."""
  probs = np.asarray(source_count_probs, np.float64)
  return int(rng.choice(np.arange(1, probs.size + 1), p=probs / probs.sum()))


def make_example(rng: np.random.Generator, sample_rate: int = 16000, clip_seconds: float = 10.0,
                 reverb: bool = False,
                 source_count_probs: Sequence[float] = SOURCE_COUNT_PROBS,
                 kinds: sound_kinds.Kinds = 'classic') -> Tuple[np.ndarray, List[str]]:
  """One example's quantised sources.

  Args:
    kinds: the kinds drawn from (`sound_kinds.kind_set`): 'classic' (the default, whose
      output is what it was before the other kinds existed), 'varied', or foreground and
      background kind names. The foregrounds are drawn uniformly, with repetition; the
      background too, when there is more than one.

  Returns:
    (sources int16 [num_sources, time] with the background first, class names
    per source). Their int32 sum fits int16 and peaks at most at PEAK_LEVEL.
  """
  chosen = sound_kinds.kind_set(kinds)
  n = int(round(clip_seconds * sample_rate))
  if n <= 0:
    raise ValueError(f'clip_seconds must be positive, got {clip_seconds}')
  num_sources = draw_source_count(rng, source_count_probs)
  foregrounds = list(rng.choice(chosen.foreground, size=num_sources - 1))
  # One background kind (the classic set) draws nothing, so its examples stay as they were.
  background = (chosen.background[rng.integers(len(chosen.background))]
                if len(chosen.background) > 1 else chosen.background[0])
  kinds = [background] + foregrounds
  rt60 = rng.uniform(0.2, 0.8) if reverb else None
  signals, snrs_db = [], []
  for index, kind in enumerate(kinds):
    synth = (sound_kinds.BACKGROUND_KINDS if index == 0 else sound_kinds.FOREGROUND_KINDS)[kind]
    signal = synth(n, rng, sample_rate)
    if rt60 is not None:
      signal = reverberate(signal, rng, sample_rate, rt60)
    if index > 0:
      snrs_db.append(rng.uniform(*SNR_RANGE_DB))
    signals.append(signal)
  return set_levels(signals, snrs_db), [str(k) for k in kinds]


# An example maker: index -> (int16 sources [S, T] background first, a class name
# per source, and a provenance record per source or None).
ExampleMaker = Callable[[int], Tuple[np.ndarray, List[str], Optional[List[dict]]]]


# Examples are made in worker processes when a split has at least this many (fewer do not
# pay for the processes' start).
PARALLEL_MIN_EXAMPLES = 64
# The maker of the split being written, read by the forked worker processes (`_made`).
_MAKER: Optional[ExampleMaker] = None


def _made(index: int):
  return _MAKER(index)


def default_workers() -> int:
  """Worker processes that make examples: the CPUs this process may use (at most 8)."""
  try:
    cpus = len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    cpus = os.cpu_count() or 1
  return max(1, min(cpus, 8))


def _examples(make: ExampleMaker, num_examples: int, workers: Optional[int]) -> Iterator:
  """make(0), make(1), ... in order; on `workers` forked processes when there are enough
  examples. Each example is a function of its index only, so the bytes do not depend on
  the number of workers. Forking is used on Linux only (the makers are closures, which the
  other start methods cannot send; the children run numpy, never TensorFlow)."""
  global _MAKER
  workers = default_workers() if workers is None else workers
  if workers < 1:
    raise ValueError(f'workers must be at least 1, got {workers}')
  if workers == 1 or num_examples < PARALLEL_MIN_EXAMPLES or not sys.platform.startswith(
      'linux'):
    for index in range(num_examples):
      yield make(index)
    return
  _MAKER = make
  try:
    with multiprocessing.get_context('fork').Pool(workers) as pool:
      yield from pool.imap(_made, range(num_examples), chunksize=8)
  finally:
    _MAKER = None


def write_split(root: str, split: str, num_examples: int, make: ExampleMaker,
                sample_rate: int, class_names: Sequence[str],
                workers: Optional[int] = None) -> Tuple[str, List[dict]]:
  """The one FUSS-format writer: a split's examples, list and labels sidecar.

  `make` runs on `workers` processes (default `default_workers()`; 1: in this process);
  the files are written here, in index order.

  Returns (the list path, one record per example: its mixture and, per source,
  its file, class and the maker's provenance).
  """
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  lines, label_lines = [], ['\t'.join((fuss.CLASSES_HEADER,) + tuple(class_names))]
  records = []
  tf.io.gfile.makedirs(root)
  for index, (sources, kinds, provenance) in enumerate(_examples(make, num_examples, workers)):
    name = f'example{index:05d}'
    mixture_rel = f'{split}/{name}.wav'
    source_rels = []
    for position in range(len(kinds)):
      file_name = ('background0_sound.wav' if position == 0
                   else f'foreground{position - 1}_sound.wav')
      source_rels.append(f'{split}/{name}_sources/{file_name}')
    for rel, source in zip(source_rels, sources):
      audio_io.write_wav(os.path.join(root, rel), source, sample_rate)
    mixture = sources.astype(np.int32).sum(axis=0).astype(np.int16)
    audio_io.write_wav(os.path.join(root, mixture_rel), mixture, sample_rate)
    lines.append('\t'.join([mixture_rel] + source_rels))
    label_lines.append('\t'.join([mixture_rel] + list(kinds)))
    record = {'mixture': mixture_rel, 'sources': []}
    for position, (rel, kind) in enumerate(zip(source_rels, kinds)):
      entry = {'file': rel, 'class': kind}
      if provenance is not None:
        entry.update(provenance[position])
      record['sources'].append(entry)
    records.append(record)
  list_path = os.path.join(root, f'{split}_example_list.txt')
  with tf.io.gfile.GFile(list_path, 'w') as f:
    f.write('\n'.join(lines) + ('\n' if lines else ''))
  with tf.io.gfile.GFile(fuss.labels_path_for(list_path), 'w') as f:
    f.write('\n'.join(label_lines) + '\n')
  return list_path, records


def make_split(root: str, split: str, num_examples: int, seed: int = 0,
               sample_rate: int = 16000, clip_seconds: float = 10.0,
               reverb: bool = False,
               source_count_probs: Sequence[float] = SOURCE_COUNT_PROBS,
               kinds: sound_kinds.Kinds = 'classic', workers: Optional[int] = None) -> str:
  """Writes one synthetic split's examples, list and labels sidecar; returns the list path.
  `workers` as in `write_split`.

  The sidecar's classes are the kind set's (`sound_kinds.KindSet.class_names`).
  """
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  if seed < 0:
    raise ValueError(f'seed must be >= 0, got {seed}')
  chosen = sound_kinds.kind_set(kinds)

  def make(index):
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    sources, names = make_example(rng, sample_rate, clip_seconds, reverb, source_count_probs,
                                  chosen)
    return sources, names, None

  return write_split(root, split, num_examples, make, sample_rate, chosen.class_names,
                     workers)[0]


def check_counts(counts: Dict[str, int], sample_rate: int, clip_seconds: float,
                 source_count_probs: Sequence[float]) -> None:
  """Refuses negative counts, a non-positive rate or length, and bad count weights."""
  for split, count in counts.items():
    if count < 0:
      raise ValueError(f'num_{split} must be >= 0, got {count}')
  if sample_rate <= 0 or clip_seconds <= 0:
    raise ValueError(f'sample_rate and clip_seconds must be positive, got {sample_rate}, '
                     f'{clip_seconds}')
  probs = np.asarray(source_count_probs, np.float64)
  if probs.size < 1 or probs.size > fuss.MAX_SOURCES or np.any(probs < 0) or probs.sum() <= 0:
    raise ValueError(f'source_count_probs must be 1..{fuss.MAX_SOURCES} non-negative weights, '
                     f'got {list(source_count_probs)}')


def make_root(root: str) -> None:
  """Creates the dataset folder, or raises one ValueError line naming it."""
  try:
    tf.io.gfile.makedirs(root)
  except (tf.errors.OpError, OSError) as e:
    reason = getattr(e, 'message', None) or str(e)
    raise ValueError(f'cannot create the output folder {root}: {reason}') from None


def write_info(root: str, info: dict) -> str:
  """Writes the generation record `synthetic_fuss.json`; returns its path."""
  path = os.path.join(root, INFO_FILE)
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(info, indent=2) + '\n')
  return path


def make_dataset(root: str, num_train: int, num_validation: int, num_eval: int,
                 seed: int = 0, sample_rate: int = 16000, clip_seconds: float = 10.0,
                 reverb: bool = False,
                 source_count_probs: Sequence[float] = SOURCE_COUNT_PROBS,
                 kinds: sound_kinds.Kinds = 'classic',
                 workers: Optional[int] = None) -> Dict[str, str]:
  """Writes a whole synthetic FUSS root; returns {split: list path}.

  `source_count_probs[k]` is the probability of k + 1 sources (1..4); `kinds` as in
  `make_example`; `workers` (processes making examples) as in `write_split`.
  `synthetic_fuss.json` records the class names and, for any kinds but the classic ones
  (whose record is left as it was, byte for byte), the kind set under `kinds`.
  """
  counts = {'train': num_train, 'validation': num_validation, 'eval': num_eval}
  check_counts(counts, sample_rate, clip_seconds, source_count_probs)
  chosen = sound_kinds.kind_set(kinds)
  make_root(root)
  lists = {split: make_split(root, split, count, seed, sample_rate, clip_seconds, reverb,
                             source_count_probs, chosen, workers)
           for split, count in counts.items() if count > 0}
  info = {'generator': 'mixit synthetic FUSS', 'seed': seed,
          'sample_rate': sample_rate, 'clip_seconds': clip_seconds, 'reverb': reverb,
          'counts': counts, 'class_names': list(chosen.class_names),
          'snr_range_db': list(SNR_RANGE_DB),
          'source_count_probs': [float(p) for p in source_count_probs]}
  if chosen != sound_kinds.KIND_SETS['classic']:
    info['kinds'] = chosen.record()
  write_info(root, info)
  return lists

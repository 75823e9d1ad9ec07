"""FUSS-format sets from folders of real clips (`mixit-make-fuss --clips_dir`).

FUSS was mixed from FSD50K clips with a recipe; this module applies the same
recipe to a user's own clip library, and writes through the one FUSS writer of
`synthetic.py` (same layout, lists, labels sidecar, 16-bit files whose mixture
is the exact integer sum of its sources):

- every example has one background spanning it: a random excerpt of a
  background clip, looped when the clip is shorter than the example;
- 0..3 foreground events (1..4 sources in equal shares by default), each a
  clip (a random excerpt when longer than the example) at a random onset;
- each foreground's SNR against the background, its power over its active
  span against the background's mean power, is uniform in [-5, 25] dB;
- optionally, every source convolved with its own impulse response of one
  synthetic room per example.

Clips are read with `audio_io.read_audio` (any format it reads), down-mixed to
mono and resampled to the target rate. Each clip's label is the name of its
first-level subfolder under the clips folder (a file directly in the folder
takes the folder's own name).

No clip is shared between splits: each file belongs to exactly one split,
chosen from a hash of its path relative to its folder and the seed, so the
assignment does not depend on which other files exist or on the machine. Files
of `--backgrounds_dir` are split the same way. Without `--backgrounds_dir`,
backgrounds are drawn from the split's own clips.

A clip that cannot be read, is silent, or is shorter than `min_clip_seconds`
is named in one warning line, skipped and counted; a split asked for with no
usable clips is refused with one line saying why. Usable clips are held in
memory at the target rate (float32: 230 MB per hour of audio at 16 kHz).
"""
import dataclasses
import hashlib
import os
import posixpath
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from data_pipeline import audio_io
from data_pipeline import synthetic

SPLITS = synthetic.SPLITS
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# A clip whose peak is below this (-80 dBFS) is silent.
SILENCE_PEAK = 1e-4
DEFAULT_MIN_CLIP_SECONDS = 0.25
GENERATOR_NAME = 'mixit FUSS from clips'


class NoUsableClipsError(ValueError):
  """A split that was asked for has no usable clip."""


def split_of(relative_path: str, seed: int,
             fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> str:
  """The split of a clip: a SHA-256 of (seed, relative path) read as a uniform draw."""
  # surrogateescape: a name that is not UTF-8 still gets a split (and is then refused by
  # name when read).
  digest = hashlib.sha256(
      f'{int(seed)}\0{relative_path}'.encode('utf-8', 'surrogateescape')).digest()
  draw = int.from_bytes(digest[:8], 'big') / 2.0 ** 64
  total = float(sum(fractions))
  edge = 0.0
  for split, fraction in zip(SPLITS, fractions):
    edge += fraction / total
    if draw < edge:
      return split
  # Rounding can leave the last edge a hair below 1: the last split with a share.
  return [s for s, f in zip(SPLITS, fractions) if f > 0][-1]


def check_fractions(fractions: Sequence[float]) -> Tuple[float, float, float]:
  values = tuple(float(f) for f in fractions)
  if (len(values) != 3 or any(not np.isfinite(f) or f < 0 for f in values)
      or sum(values) <= 0):
    raise ValueError('split fractions must be three non-negative numbers (train, validation, '
                     f'eval) with a positive sum, got {list(fractions)}')
  return values  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Clip:
  """A usable clip: mono float32 at the target rate."""
  relative_path: str   # POSIX path under its folder
  label: str
  split: str
  audio: np.ndarray


@dataclasses.dataclass
class ClipPool:
  """The usable clips of one folder, by split, and what was skipped."""
  folder: str
  clips: Dict[str, List[Clip]]
  skipped: List[Tuple[str, str]]   # (relative path, reason)
  assignment: Dict[str, str]       # relative path -> split, for every audio file found

  @property
  def labels(self) -> List[str]:
    return sorted({clip.label for clips in self.clips.values() for clip in clips})


def _label_of(relative_path: str, folder: str) -> str:
  parts = relative_path.split('/')
  if len(parts) > 1:
    return parts[0]
  return os.path.basename(os.path.normpath(folder)) or 'clips'


def _check_clip(audio: np.ndarray, rate: int, min_seconds: float) -> Optional[str]:
  """Why a decoded clip is unusable, or None."""
  if audio.size == 0:
    return 'empty (no samples)'
  peak = float(np.max(np.abs(audio)))
  if peak < SILENCE_PEAK:
    return f'silent (peak {peak:.1e})'
  if audio.size < min_seconds * rate:
    return f'too short ({audio.size / rate:.3f} s < {min_seconds} s)'
  return None


def load_pool(folder: str, seed: int, sample_rate: int,
              fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
              splits: Sequence[str] = SPLITS,
              min_clip_seconds: float = DEFAULT_MIN_CLIP_SECONDS,
              what: str = 'clips') -> ClipPool:
  """Finds, splits and reads the clips of `folder` that belong to `splits`.

  Bad clips are logged one line each and listed in `skipped`. Raises
  FileNotFoundError naming the folder when it has no audio file at all.
  """
  fractions = check_fractions(fractions)
  folder = os.fspath(folder)
  if not os.path.isdir(folder) and not folder.startswith(('gs://', 'ram://')):
    raise FileNotFoundError(f'--{what}_dir {folder}: no such folder')
  paths = audio_io.find_audio_files(folder)
  if not paths:
    raise FileNotFoundError(f'--{what}_dir {folder}: no audio files '
                            f'({", ".join(audio_io.AUDIO_EXTENSIONS)}) found')
  clips: Dict[str, List[Clip]] = {split: [] for split in SPLITS}
  skipped, assignment = [], {}
  for path in paths:
    relative = posixpath.join(*os.path.relpath(path, folder).split(os.sep))
    split = split_of(relative, seed, fractions)
    assignment[relative] = split
    if split not in splits:
      continue
    try:
      audio, rate = audio_io.read_audio(path, sample_rate)
    except Exception as error:
      message = (str(error).splitlines() or [type(error).__name__])[0]
      shown = audio_io.printable_path(path)
      if message.startswith(shown + ': '):
        message = message[len(shown) + 2:]
      reason = 'unreadable: ' + message
    else:
      reason = _check_clip(audio, rate, min_clip_seconds)
    if reason is not None:
      logging.warning('skipping %s: %s', audio_io.printable_path(path), reason)
      skipped.append((relative, reason))
      continue
    clips[split].append(Clip(relative, _label_of(relative, folder), split, audio))
  return ClipPool(folder, clips, skipped, assignment)


def _excerpt(audio: np.ndarray, n: int, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
  """n samples from a random start; a clip shorter than n is looped from that start."""
  start = int(rng.integers(0, audio.size))
  if audio.size >= n:
    start = int(rng.integers(0, audio.size - n + 1))
    return audio[start:start + n].astype(np.float64), start
  reps = -(-(start + n) // audio.size)
  return np.tile(audio, reps)[start:start + n].astype(np.float64), start


def _foreground(audio: np.ndarray, n: int, rng: np.random.Generator
                ) -> Tuple[np.ndarray, int, int, int]:
  """The clip (an excerpt of at most n samples that is not silent) at a random onset.

  Returns (signal [n] zero outside the event, excerpt start in the clip, onset,
  length).
  """
  length = min(audio.size, n)
  start = 0
  for _ in range(8):
    start = int(rng.integers(0, audio.size - length + 1))
    if np.max(np.abs(audio[start:start + length])) >= SILENCE_PEAK:
      break
  else:
    start = int(np.argmax(np.abs(audio))) - length // 2
    start = int(np.clip(start, 0, audio.size - length))
  onset = int(rng.integers(0, n - length + 1))
  signal = np.zeros(n)
  signal[onset:onset + length] = audio[start:start + length]
  return signal, start, onset, length


def make_example(rng: np.random.Generator, foregrounds: Sequence[Clip],
                 backgrounds: Sequence[Clip], sample_rate: int, clip_seconds: float,
                 reverb: bool = False,
                 source_count_probs: Sequence[float] = synthetic.SOURCE_COUNT_PROBS
                 ) -> Tuple[np.ndarray, List[str], List[dict]]:
  """One example from clips: (int16 sources [S, T], labels, provenance per source)."""
  n = int(round(clip_seconds * sample_rate))
  num_sources = synthetic.draw_source_count(rng, source_count_probs)
  rt60 = rng.uniform(0.2, 0.8) if reverb else None
  background = backgrounds[int(rng.integers(0, len(backgrounds)))]
  signal, start = _excerpt(background.audio, n, rng)
  signals, labels, snrs_db = [signal], [background.label], []
  provenance = [{'clip': background.relative_path, 'split': background.split,
                 'role': 'background', 'clip_start': start, 'onset': 0, 'length': n}]
  for _ in range(num_sources - 1):
    clip = foregrounds[int(rng.integers(0, len(foregrounds)))]
    signal, start, onset, length = _foreground(clip.audio, n, rng)
    snr_db = float(rng.uniform(*synthetic.SNR_RANGE_DB))
    signals.append(signal)
    labels.append(clip.label)
    snrs_db.append(snr_db)
    provenance.append({'clip': clip.relative_path, 'split': clip.split, 'role': 'foreground',
                       'clip_start': start, 'onset': onset, 'length': length,
                       'snr_db': round(snr_db, 4)})
  if rt60 is not None:
    signals = [synthetic.reverberate(s, rng, sample_rate, rt60) for s in signals]
  return synthetic.set_levels(signals, snrs_db), labels, provenance


def make_dataset(root: str, clips_dir: str, num_train: int, num_validation: int, num_eval: int,
                 seed: int = 0, sample_rate: int = 16000, clip_seconds: float = 10.0,
                 reverb: bool = False, backgrounds_dir: Optional[str] = None,
                 split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
                 min_clip_seconds: float = DEFAULT_MIN_CLIP_SECONDS,
                 source_count_probs: Sequence[float] = synthetic.SOURCE_COUNT_PROBS,
                 workers: Optional[int] = None) -> Tuple[Dict[str, str], dict]:
  """Writes a FUSS-format root mixed from the clips; returns ({split: list}, summary).
  `workers` (processes mixing examples) as in `synthetic.write_split`.

  The summary (also in `synthetic_fuss.json`, with every clip's split and every
  source's clip) counts the usable and skipped clips per split.
  """
  counts = {'train': num_train, 'validation': num_validation, 'eval': num_eval}
  synthetic.check_counts(counts, sample_rate, clip_seconds, source_count_probs)
  if min_clip_seconds < 0:
    raise ValueError(f'min_clip_seconds must be >= 0, got {min_clip_seconds}')
  split_fractions = check_fractions(split_fractions)
  synthetic.make_root(root)
  wanted = [split for split, count in counts.items() if count > 0]
  for split in wanted:
    if split_fractions[SPLITS.index(split)] == 0:
      raise ValueError(f'{counts[split]} {split} examples asked for, but the split fractions '
                       f'{list(split_fractions)} give {split} no clips')
  foreground_pool = load_pool(clips_dir, seed, sample_rate, split_fractions, wanted,
                              min_clip_seconds, 'clips')
  background_pool = (foreground_pool if backgrounds_dir is None else
                     load_pool(backgrounds_dir, seed, sample_rate, split_fractions, wanted,
                               min_clip_seconds, 'backgrounds'))
  for split in wanted:
    for pool, what in ((foreground_pool, 'clips'), (background_pool, 'backgrounds')):
      if not pool.clips[split]:
        found = sum(1 for s in pool.assignment.values() if s == split)
        bad = sum(1 for rel, _ in pool.skipped if pool.assignment[rel] == split)
        raise NoUsableClipsError(
            f'--{what}_dir {pool.folder}: the {split} split has no usable clip ({found} of '
            f'{len(pool.assignment)} files fall in it, {bad} of them skipped as bad); add '
            f'clips or change --split_fractions')
  class_names = sorted(set(foreground_pool.labels) | set(background_pool.labels))
  lists, examples = {}, {}
  for split in wanted:
    foregrounds, backgrounds = foreground_pool.clips[split], background_pool.clips[split]

    def make(index, split=split, foregrounds=foregrounds, backgrounds=backgrounds):
      rng = np.random.default_rng([seed, SPLITS.index(split), index])
      return make_example(rng, foregrounds, backgrounds, sample_rate, clip_seconds, reverb,
                          source_count_probs)

    lists[split], examples[split] = synthetic.write_split(root, split, counts[split], make,
                                                          sample_rate, class_names, workers)
  summary = {}
  for name, pool in (('clips', foreground_pool), ('backgrounds', background_pool)):
    if name == 'backgrounds' and backgrounds_dir is None:
      continue
    summary[name] = {
        'folder': pool.folder,
        'files': len(pool.assignment),
        'usable': {split: len(pool.clips[split]) for split in wanted},
        'skipped': len(pool.skipped),
    }
  info = {'generator': GENERATOR_NAME, 'seed': seed, 'sample_rate': sample_rate,
          'clip_seconds': clip_seconds, 'reverb': reverb, 'counts': counts,
          'class_names': class_names, 'snr_range_db': list(synthetic.SNR_RANGE_DB),
          'source_count_probs': [float(p) for p in source_count_probs],
          'split_fractions': list(split_fractions), 'min_clip_seconds': min_clip_seconds,
          'summary': summary,
          'clip_splits': {'clips': foreground_pool.assignment,
                          'backgrounds': background_pool.assignment},
          'skipped': {'clips': [list(s) for s in foreground_pool.skipped],
                      'backgrounds': ([] if backgrounds_dir is None
                                      else [list(s) for s in background_pool.skipped])},
          'examples': examples}
  synthetic.write_info(root, info)
  return lists, summary

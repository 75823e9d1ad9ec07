r"""Writes a FUSS-format dataset (`mixit-make-fuss`), synthetic or from your own clips.

    mixit-make-fuss --output_dir D --num_train 200 --num_validation 20 --num_eval 20 \
        [--kinds varied --sample_rate 16000 --clip_seconds 10 --reverb --seed 0 --workers N]
    mixit-make-fuss --clips_dir CLIPS [--backgrounds_dir BEDS] --output_dir D ... \
        [--split_fractions 0.8,0.1,0.1 --min_clip_seconds 0.25]

Without `--clips_dir` the sounds are synthesised (`data_pipeline/synthetic.py`) from the
`--kinds` set: `varied` (the default: voices, babble, music, animal calls, impacts and
natural textures beside the first generator's tones, chirps, bursts, clicks and AM/FM
textures, over noise, music, babble or texture backgrounds) or `classic` (the first
generator's five kinds over stationary noise, byte for byte as it wrote them). With it,
they are mixed from the clips by FUSS's recipe (`data_pipeline/clips.py`): labels are the
first-level subfolder names, and every clip file belongs to one split only. The layout,
lists and labels sidecars are the same either way.
"""
import time

from absl import app
from absl import flags
from absl import logging

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from data_pipeline import clips
from data_pipeline import sound_kinds
from data_pipeline import synthetic

_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Dataset root to write (local or gs://).',
                                  required=True)
_NUM_TRAIN = flags.DEFINE_integer('num_train', 200, 'Training examples.', lower_bound=0)
_NUM_VALIDATION = flags.DEFINE_integer('num_validation', 20, 'Validation examples.',
                                       lower_bound=0)
_NUM_EVAL = flags.DEFINE_integer('num_eval', 20, 'Evaluation examples.', lower_bound=0)
_SAMPLE_RATE = flags.DEFINE_integer('sample_rate', 16000, 'Sample rate in Hz.', lower_bound=1)
_CLIP_SECONDS = flags.DEFINE_float('clip_seconds', 10.0, 'Length of every example, seconds.')
_REVERB = flags.DEFINE_boolean('reverb', False,
                               'Convolve each source with a synthetic room impulse response.')
_CLIPS_DIR = flags.DEFINE_string(
    'clips_dir', None, 'Folder of real clips (any format audio_io reads; labels are the '
    'first-level subfolder names). Without it, the sounds are synthesised.')
_BACKGROUNDS_DIR = flags.DEFINE_string(
    'backgrounds_dir', None, 'Folder of background clips (default: backgrounds are drawn '
    'from --clips_dir).')
_SPLIT_FRACTIONS = flags.DEFINE_list(
    'split_fractions', [str(f) for f in clips.DEFAULT_SPLIT_FRACTIONS],
    'Shares of the clip files in train,validation,eval (with --clips_dir); 0,0,1 puts every '
    'clip in eval.')
_MIN_CLIP_SECONDS = flags.DEFINE_float(
    'min_clip_seconds', clips.DEFAULT_MIN_CLIP_SECONDS,
    'Clips shorter than this are skipped (with --clips_dir).')
_KINDS = flags.DEFINE_enum(
    'kinds', 'varied', sorted(sound_kinds.KIND_SETS),
    'The synthetic sound kinds (without --clips_dir): varied (speech-like voices, babble, '
    'music, animal calls, impacts, textures and the classic kinds) or classic (tones, '
    'chirps, bursts, clicks, AM/FM textures over stationary noise).')
_WORKERS = flags.DEFINE_integer('workers', None, 'Processes that make examples (default: '
                                'the CPUs, at most 8); the files do not depend on it.',
                                lower_bound=1)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed; the same seed writes the same files.',
                             lower_bound=0)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CLIP_SECONDS.value <= 0:
    raise app.UsageError(f'--clip_seconds must be positive, got {_CLIP_SECONDS.value}')
  start = time.time()
  if _CLIPS_DIR.value is None:
    for flag in (_BACKGROUNDS_DIR, _SPLIT_FRACTIONS, _MIN_CLIP_SECONDS):  # clips only
      if flags.FLAGS[flag.name].present:
        raise app.UsageError(f'--{flag.name} needs --clips_dir')
    lists = synthetic.make_dataset(_OUTPUT_DIR.value, _NUM_TRAIN.value, _NUM_VALIDATION.value,
                                   _NUM_EVAL.value, seed=_SEED.value,
                                   sample_rate=_SAMPLE_RATE.value,
                                   clip_seconds=_CLIP_SECONDS.value, reverb=_REVERB.value,
                                   kinds=_KINDS.value, workers=_WORKERS.value)
  else:
    if flags.FLAGS['kinds'].present:
      raise app.UsageError('--kinds is for synthetic data; with --clips_dir the kinds are '
                           'the clips\' folders')
    try:
      fractions = [float(f) for f in _SPLIT_FRACTIONS.value]
    except ValueError:
      raise app.UsageError('--split_fractions must be three numbers, got '
                           f'{",".join(_SPLIT_FRACTIONS.value)}') from None
    lists, summary = clips.make_dataset(
        _OUTPUT_DIR.value, _CLIPS_DIR.value, _NUM_TRAIN.value, _NUM_VALIDATION.value,
        _NUM_EVAL.value, seed=_SEED.value, sample_rate=_SAMPLE_RATE.value,
        clip_seconds=_CLIP_SECONDS.value, reverb=_REVERB.value,
        backgrounds_dir=_BACKGROUNDS_DIR.value, split_fractions=fractions,
        min_clip_seconds=_MIN_CLIP_SECONDS.value, workers=_WORKERS.value)
    for name, counts in summary.items():
      usable = ', '.join(f'{split} {count}' for split, count in counts['usable'].items())
      print(f'{name} ({counts["folder"]}): {counts["files"]} files; usable: {usable}; '
            f'skipped as bad: {counts["skipped"]}')
  total = _NUM_TRAIN.value + _NUM_VALIDATION.value + _NUM_EVAL.value
  logging.info('wrote %d examples to %s in %.1f s', total, _OUTPUT_DIR.value,
               time.time() - start)
  for split, path in lists.items():
    print(f'{split}: {path}')
  return 0


def run() -> None:
  """Console script `mixit-make-fuss`."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()

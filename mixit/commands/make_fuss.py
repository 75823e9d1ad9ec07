r"""Writes a synthetic FUSS-format dataset (`mixit-make-fuss`).

    mixit-make-fuss --output_dir D --num_train 200 --num_validation 20 --num_eval 20 \
        [--sample_rate 16000 --clip_seconds 10 --reverb --seed 0]

The layout, lists and labels sidecars are described in `data_pipeline/synthetic.py`.
"""
import time

from absl import app
from absl import flags
from absl import logging

import mixit  # first: quiets TensorFlow's start-up notices in a CLI run
from data_pipeline import synthetic  # pylint: disable=g-bad-import-order

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
_SEED = flags.DEFINE_integer('seed', 0, 'Seed; the same seed writes the same files.',
                             lower_bound=0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CLIP_SECONDS.value <= 0:
    raise app.UsageError(f'--clip_seconds must be positive, got {_CLIP_SECONDS.value}')
  start = time.time()
  lists = synthetic.make_dataset(_OUTPUT_DIR.value, _NUM_TRAIN.value, _NUM_VALIDATION.value,
                                 _NUM_EVAL.value, seed=_SEED.value,
                                 sample_rate=_SAMPLE_RATE.value,
                                 clip_seconds=_CLIP_SECONDS.value, reverb=_REVERB.value)
  total = _NUM_TRAIN.value + _NUM_VALIDATION.value + _NUM_EVAL.value
  logging.info('wrote %d examples to %s in %.1f s', total, _OUTPUT_DIR.value,
               time.time() - start)
  for split, path in lists.items():
    print(f'{split}: {path}')


def run() -> None:
  """Console script `mixit-make-fuss`."""
  mixit.run_cli(main, __name__)


if __name__ == '__main__':
  run()

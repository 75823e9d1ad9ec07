r"""Imports a public TF1 TDCN++ checkpoint of google-research/sound-separation
(`mixit-import-official`).

    mixit-import-official --checkpoint PREFIX --output_dir D \
        [--variant auto|fuss_baseline|train_stft|mixit_neurips2020] [--sample_rate 16000]

Writes a model dir (`D/config.gin` and `D/ckpt-1`) that export, separation and
fine-tuning (`mixit-train --init_from D`) read. The variants, and what is taken
from the published code rather than the shapes, are described in
`mixit/import_official.py`; the flags override each of those.
"""
import sys

from absl import app
from absl import flags

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from mixit import import_official
from mixit import layers

_CHECKPOINT = flags.DEFINE_string('checkpoint', None,
                                  'Prefix (or folder) of the official TF1 checkpoint.',
                                  required=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Model dir to write.', required=True)
_VARIANT = flags.DEFINE_enum(
    'variant', 'auto', ('auto',) + import_official.VARIANTS,
    'Public code that wrote the checkpoint; auto: from the variable names.')
_SAMPLE_RATE = flags.DEFINE_integer('sample_rate', 16000, 'Sample rate of the model in Hz.')
_WINDOW_SECONDS = flags.DEFINE_float(
    'window_seconds', None, 'Override the window (default: the FFT size, or the basis length).')
_HOP_SECONDS = flags.DEFINE_float(
    'hop_seconds', None,
    'Override the hop (default: window / 4 for STFT, window / 2 for a basis).')
_NUM_DILATIONS = flags.DEFINE_integer('num_dilations', None,
                                      'Blocks per repeat (default: the official 8).')
_MIXTURE_CONSISTENCY = flags.DEFINE_enum(
    'mixture_consistency', 'pred_source', layers.CONSISTENCY_TYPES,
    'Mixture consistency of the official model (pred_source needs '
    'mix_weights/dense/kernel; published models all use it).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace a model already in --output_dir.')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    path, network = import_official.import_checkpoint(
        _CHECKPOINT.value, _OUTPUT_DIR.value, _VARIANT.value, _SAMPLE_RATE.value,
        _WINDOW_SECONDS.value, _HOP_SECONDS.value, _NUM_DILATIONS.value,
        _MIXTURE_CONSISTENCY.value, _OVERWRITE.value)
  except ValueError as e:
    print(f'mixit-import-official: error: {e}', file=sys.stderr)
    sys.exit(1)
  print(f'Imported a {network.num_sources}-source TDCN++ ({network.count_params()} '
        f'parameters) into {path}')


def run() -> None:
  """Console script `mixit-import-official`."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()

r"""Exports a trained separation network as a self-contained SavedModel (`mixit-export`).

    mixit-export --model_dir D [--checkpoint N] --output_dir E [--overwrite] \
        [--litert --litert_window_seconds 10 --litert_quantize dynamic_int8]
        [--eval_summary summary.json]

What is written (the signatures, `mixit_export.json`, the model card and, with
`--litert`, `model.tflite`) is described in `mixit/serving/export.py`.
"""
import json
import sys

from absl import app
from absl import flags

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from mixit.serving import export as export_lib
from mixit.serving import litert as litert_lib

_MODEL_DIR = flags.DEFINE_string('model_dir', None,
                                 'Training run folder (config.gin + checkpoints).', required=True)
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Step N of the checkpoint ckpt-N to export, or a checkpoint prefix path; '
    'default: the latest.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder for the SavedModel.', required=True)
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace an earlier export in --output_dir.')
_LITERT = flags.DEFINE_boolean('litert', False, 'Also write model.tflite (LiteRT, fixed window, '
                               'builtin ops only) beside the SavedModel.')
_LITERT_WINDOW_SECONDS = flags.DEFINE_float(
    'litert_window_seconds', litert_lib.DEFAULT_WINDOW_SECONDS,
    'Window length of the .tflite in seconds (e.g. the streaming separator\'s chunk).')
_LITERT_QUANTIZE = flags.DEFINE_enum(
    'litert_quantize', 'none', list(litert_lib.QUANTIZATIONS),
    'With --litert, also write a quantised .tflite beside the float one: dynamic_int8 '
    '(int8 weights, model_int8.tflite) or float16 (float16 weights, model_float16.tflite).')
_EVAL_SUMMARY = flags.DEFINE_string('eval_summary', None, 'FUSS summary.json for the model card; '
                                    'default: the model dir\'s summary.json if present.')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    metadata = export_lib.export_saved_model(
        _MODEL_DIR.value, _OUTPUT_DIR.value, _CHECKPOINT.value, overwrite=_OVERWRITE.value,
        litert=_LITERT.value, litert_window_seconds=_LITERT_WINDOW_SECONDS.value,
        litert_quantize=_LITERT_QUANTIZE.value,
        eval_summary=_EVAL_SUMMARY.value)
  except (ValueError, FileExistsError, FileNotFoundError) as e:
    print(f'mixit-export: error: {e}', file=sys.stderr)
    sys.exit(1)
  print(json.dumps(metadata, indent=2))


def run() -> None:
  """Console script `mixit-export`."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()

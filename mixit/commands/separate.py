"""Separates audio files with an exported SavedModel (`mixit-separate`).

    mixit-separate --saved_model E --input FILE_FOLDER_GLOB_OR_LIST --output_dir O
        [--max_chunk_seconds 20 --overlap 2 --drop_silent --overwrite --skip_bad]

Each input `<name>.<ext>` gives `<name>_source{i}.wav`, i = 0..M-1, listed in
`.mixit_separate.json` in their folder; see `mixit/serving/separate.py`. The flags
below are also those of `mixit-separate-beam` (the same separation on Apache Beam).
"""
import sys
import time

from absl import app
from absl import flags

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from mixit.serving import separate as separate_lib
from mixit.serving import separator as separator_lib

_SAVED_MODEL = flags.DEFINE_string('saved_model', None,
                                   'SavedModel folder written by mixit-export.', required=True)
_INPUT = flags.DEFINE_string(
    'input', None, 'An audio file, a folder searched recursively, a glob (gs://b/rec/*.flac), '
    'or a list file (.txt or .lst: one path a line, relative to the list\'s folder).',
    required=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder for <name>_source{i}.wav.',
                                  required=True)
_MAX_CHUNK_SECONDS = flags.DEFINE_float(
    'max_chunk_seconds', separator_lib.DEFAULT_MAX_CHUNK_SECONDS,
    'Longer recordings are separated in windows of this length; 0: whole files in one call.')
_OVERLAP = flags.DEFINE_float(
    'overlap', separator_lib.DEFAULT_OVERLAP_SECONDS,
    'Overlap of consecutive windows in seconds (at most half a window).')
_DROP_SILENT = flags.DEFINE_boolean('drop_silent', False,
                                    'Do not write sources quieter than --silence_db.')
_SILENCE_DB = flags.DEFINE_float(
    'silence_db', separate_lib.DEFAULT_SILENCE_DB,
    'Power relative to the mixture below which --drop_silent drops a source.')
_OUTPUT_SAMPLE_RATE = flags.DEFINE_integer('output_sample_rate', 0,
                                           'Rate of the outputs; 0: the input\'s.')
_OUTPUT_SUBTYPE = flags.DEFINE_enum('output_subtype', 'FLOAT', separate_lib.OUTPUT_SUBTYPES,
                                    'WAV sample format.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace existing outputs.')
_SKIP_BAD = flags.DEFINE_boolean(
    'skip_bad', False, 'Go on past files that fail and list them at the end (exit status 1).')
_PROGRESS = flags.DEFINE_boolean('progress', True, 'Show progress on stderr.')


def separation_options() -> dict:
  """The keyword arguments of `separate_file` that the flags set (chunking, output format);
  `mixit-separate-beam` passes the same."""
  return dict(output_sample_rate=_OUTPUT_SAMPLE_RATE.value or None,
              max_chunk_seconds=_MAX_CHUNK_SECONDS.value, overlap_seconds=_OVERLAP.value,
              drop_silent=_DROP_SILENT.value, silence_db=_SILENCE_DB.value,
              subtype=_OUTPUT_SUBTYPE.value)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  started = time.monotonic()
  try:
    separator = separator_lib.load_separator(_SAVED_MODEL.value)
    report = separate_lib.separate_files(
        separator, _INPUT.value, _OUTPUT_DIR.value, skip_bad=_SKIP_BAD.value,
        overwrite=_OVERWRITE.value, progress=_PROGRESS.value, **separation_options())
  except (ValueError, OSError) as e:
    print(f'mixit-separate: error: {e}', file=sys.stderr)
    sys.exit(1)
  seconds = sum(r.seconds for r in report.succeeded)
  print(f'separated {len(report.succeeded)} file(s), {seconds:.1f} s of audio, in '
        f'{time.monotonic() - started:.1f} s into {_OUTPUT_DIR.value}', file=sys.stderr)
  if report.failed:
    print(f'{len(report.failed)} file(s) failed:', file=sys.stderr)
    for _, message in report.failed:
      print(f'  {message}', file=sys.stderr)
    sys.exit(1)


def run() -> None:
  """Console script `mixit-separate`."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()

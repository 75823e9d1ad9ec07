r"""Scores a SavedModel or separated files with the FUSS evaluator (`mixit-evaluate`).

  mixit-evaluate --saved_model=export/ \
      --example_list=fuss/ssdata/eval_example_list.txt --output_dir=eval_out
  mixit-evaluate --separated_dir=separated/ --example_list=... --output_dir=... \
      --compare=other_run/summary.json --label=my_model

With `--separated_dir`, the outputs of example `<dir>/exampleNNNNN.wav` are read from
`<separated_dir>/exampleNNNNN_source{i}.wav`, i = 0, 1, ... (as `mixit-separate` writes
them). The record `mixit-separate` keeps there (`.mixit_separate.json`) gives each
example's output count and the outputs it dropped as silent (`--drop_silent`), which read
as silent outputs; an output beyond the count, or one missing, is an error naming the
example. Without a record every example must have as many outputs as the others.

Outputs in `--output_dir`: `scores.csv`, `summary.json`, `summary.txt`, `msi_vs_1s.png`,
`sisnri_per_count.png`, `separation_counts.png`, and `scores_<baseline>.csv` per baseline,
listed in `.mixit_evaluate.json`. An earlier report there is refused unless `--overwrite`,
which removes the files that report recorded (and nothing else) before writing the new one.
The evaluator itself is `eval/fuss.py`.
"""
import sys

from absl import app
from absl import flags

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from eval import baselines as baselines_lib
from eval import fuss as fuss_eval
from eval import report

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'Exported SavedModel to evaluate.')
_SEPARATED_DIR = flags.DEFINE_string(
    'separated_dir', None, 'Folder of separated files <example>_source{i}.wav to evaluate.')
_EXAMPLE_LIST = flags.DEFINE_string('example_list', None,
                                    'FUSS example list (e.g. eval_example_list.txt).',
                                    required=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None,
                                  'Where scores, summaries and plots are written.', required=True)
_LABEL = flags.DEFINE_string('label', None, 'Run name (default: the model or folder name).')
_COMPARE = flags.DEFINE_multi_string('compare', [],
                                     'summary.json of another run to compare with.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 4, 'Examples per SavedModel call.')
_MAX_EXAMPLES = flags.DEFINE_integer('max_examples', None, 'Evaluate only the first N examples.')
_SKIP_BAD = flags.DEFINE_boolean(
    'skip_bad', False, 'Skip and count unreadable examples and bad outputs instead of failing.')
_BASELINES = flags.DEFINE_list('baselines', list(baselines_lib.NAMES),
                               'Baselines scored beside the model (empty for none).')
_PROGRESS = flags.DEFINE_boolean('progress', True, 'Show a progress bar.')
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace an earlier report in --output_dir (only its own files).')
_ALLOW_OUTSIDE_ROOT = flags.DEFINE_boolean(
    'allow_outside_root', False,
    "Accept list lines whose paths leave the list's folder (../, absolute paths elsewhere).")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    summary = fuss_eval.evaluate_and_report(
        example_list=_EXAMPLE_LIST.value, output_dir=_OUTPUT_DIR.value,
        saved_model=_SAVED_MODEL.value, separated_dir=_SEPARATED_DIR.value,
        label=_LABEL.value, compare=_COMPARE.value, batch_size=_BATCH_SIZE.value,
        max_examples=_MAX_EXAMPLES.value, skip_bad=_SKIP_BAD.value,
        baselines=_BASELINES.value, progress=_PROGRESS.value, overwrite=_OVERWRITE.value,
        allow_outside_root=_ALLOW_OUTSIDE_ROOT.value)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    sys.stderr.write(f'mixit-evaluate: error: {e}\n')
    return 1
  sys.stdout.write(report.format_summary(summary))
  sys.stdout.write(f'Report written to {_OUTPUT_DIR.value}\n')
  return 0


def run() -> None:
  """Console script `mixit-evaluate`."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()

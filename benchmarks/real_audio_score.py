r"""The real-audio workbench, part 2: score SavedModels on the workbench's eval sets.

    python benchmarks/real_audio_score.py --saved_model real=/runs/real/export \
        --saved_model demo=/runs/demo/saved_model --work_dir /data/real_audio \
        --output_dir /data/real_audio/scores [--example_list other=/fuss/eval_example_list.txt]

For every model and eval set it runs the package's FUSS evaluator (`mixit-evaluate`'s
`eval.fuss.evaluate_and_report`: the no-separation and oracle baselines included) and writes
the report to `<output_dir>/<model>/<set>/`, then prints one markdown table: MSi, 1S, the
under / equal / over-separation rates, and the mean number of active outputs at 1, 2, 3 and
4 active references (the over-separation diagnostics).

The sets default to the workbench's (`benchmarks/real_audio_sets.py`): `main` (the eval split
of the training packages) and `heldout` (packages kept out of training). `--example_list
name=path` adds any other FUSS-format list; `--no_workbench` scores only those.
An existing report folder is reused as it is (delete it to score again).
"""
import json
import os
from typing import Dict, List, Tuple

from absl import app
from absl import flags

import mixit  # noqa: F401  (sets KERAS_BACKEND)
from eval import fuss as fuss_eval

_SAVED_MODEL = flags.DEFINE_multi_string('saved_model', [], 'name=path of a SavedModel to score.')
_WORK_DIR = flags.DEFINE_string('work_dir', None, 'The workbench folder (real_audio_sets.py).')
_EXAMPLE_LIST = flags.DEFINE_multi_string('example_list', [],
                                          'name=path of another FUSS eval list to score on.')
_NO_WORKBENCH = flags.DEFINE_boolean('no_workbench', False, 'Score only --example_list sets.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the reports go.', required=True)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 4, 'Examples per SavedModel call.')
_MAX_EXAMPLES = flags.DEFINE_integer('max_examples', None, 'Score only the first N per set.')


def _named(values: List[str], flag: str) -> List[Tuple[str, str]]:
  pairs = []
  for value in values:
    name, sep, path = value.partition('=')
    if not sep or not name or not path:
      raise app.UsageError(f'--{flag} takes name=path, got {value!r}')
    pairs.append((name, path))
  return pairs


def _sets() -> List[Tuple[str, str]]:
  sets = []
  if not _NO_WORKBENCH.value:
    if _WORK_DIR.value is None:
      raise app.UsageError('--work_dir is needed for the workbench sets (or --no_workbench)')
    for name in ('main', 'heldout'):
      path = os.path.join(_WORK_DIR.value, 'sets', name, 'eval_example_list.txt')
      if os.path.exists(path):
        sets.append((name, path))
  sets += _named(_EXAMPLE_LIST.value, 'example_list')
  if not sets:
    raise app.UsageError('no eval set found: build the workbench sets or give --example_list')
  return sets


def _fmt(value, digits=2) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def row(model: str, set_name: str, summary: Dict) -> str:
  active = summary['diagnostics']['active_outputs']
  counts = ' / '.join(_fmt(active.get(str(k), {}).get('mean'), 1) for k in range(1, 5))
  return (f'| {model} | {set_name} | {summary["num_examples"]} | {_fmt(summary["msi"])} | '
          f'{_fmt(summary["1s"])} | {_fmt(summary["under_separation"])} / '
          f'{_fmt(summary["equal_separation"])} / {_fmt(summary["over_separation"])} | '
          f'{counts} |')


def main(argv) -> None:
  del argv
  models = _named(_SAVED_MODEL.value, 'saved_model')
  if not models:
    raise app.UsageError('give at least one --saved_model name=path')
  sets = _sets()
  lines = ['| model | set | examples | MSi (dB) | 1S (dB) | under / equal / over | '
           'active outputs at 1 / 2 / 3 / 4 sources |', '|---|---|---|---|---|---|---|']
  for model, saved_model in models:
    for set_name, example_list in sets:
      out = os.path.join(_OUTPUT_DIR.value, model, set_name)
      summary_path = os.path.join(out, 'summary.json')
      if os.path.exists(summary_path):
        with open(summary_path) as f:
          summary = json.load(f)
      else:
        summary = fuss_eval.evaluate_and_report(example_list, out, saved_model=saved_model,
                                                label=model, batch_size=_BATCH_SIZE.value,
                                                max_examples=_MAX_EXAMPLES.value,
                                                progress=False)
      lines.append(row(model, set_name, summary))
      print(lines[-1], flush=True)
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)

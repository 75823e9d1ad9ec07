r"""A scaled-down reproduction of the paper's comparisons on synthetic FUSS-format data.

    python benchmarks/reproduce.py --output_dir repro_out [--num_steps 1500] \
        [--runs m4_exhaustive,m4_efficient,...] [--report REPRODUCTION.md]

Every run trains the small TDCN++ (gin/models/tdcnpp_small.gin) on mixtures of
mixtures of one shared synthetic dataset (2-s clips), in its own `mixit-train`
process, then is exported and scored by the FUSS evaluator on the held-out eval
split. The report gives MSi, 1S and the separation rates of every run, the
seconds per training step, the paper's claims beside what was measured here, and
the MSi-vs-1S plot of all runs. Runs already finished in --output_dir are reused,
so an interrupted sweep continues where it stopped.
"""
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from absl import app
from absl import flags


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  description: str
  gin_files: Sequence[str]
  gin_params: Sequence[str] = ()


_BASE = ('models/tdcnpp_small.gin', 'datasets/synthetic.gin', 'optimization/base.gin')
_LS = 'losses/mixit_least_squares.gin'
_EX = 'losses/mixit_exhaustive.gin'
_SPARSE = 'losses/sparsity_l1l2.gin'

RUNS = [
    Run('m4_exhaustive', 'M=4, exhaustive MixIT', _BASE + (_EX,), ['NUM_SOURCES = 4']),
    Run('m4_efficient', 'M=4, efficient (LS) MixIT', _BASE + (_LS,), ['NUM_SOURCES = 4']),
    Run('m8_exhaustive', 'M=8, exhaustive MixIT', _BASE + (_EX,), ['NUM_SOURCES = 8']),
    Run('m8_efficient', 'M=8, efficient MixIT', _BASE + (_LS,), ['NUM_SOURCES = 8']),
    Run('m8_efficient_sparse', 'M=8, efficient MixIT + sparsity (L1/L2)',
        _BASE + (_LS, _SPARSE), ['NUM_SOURCES = 8']),
    Run('m16_efficient', 'M=16, efficient MixIT', _BASE + (_LS,), ['NUM_SOURCES = 16']),
    Run('m16_efficient_sparse', 'M=16, efficient MixIT + sparsity (L1/L2)',
        _BASE + (_LS, _SPARSE), ['NUM_SOURCES = 16']),
    Run('m8_efficient_covariance', 'M=8, efficient MixIT + covariance',
        _BASE + (_LS, 'losses/covariance.gin'), ['NUM_SOURCES = 8']),
    Run('m8_efficient_classification', 'M=8, efficient MixIT + classification (weak labels)',
        _BASE + (_LS, 'datasets/weak_labels.gin', 'losses/classification.gin'),
        ['NUM_SOURCES = 8', 'NUM_CLASSES = 6']),
]

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'repro_out', 'Data, runs and evaluations.')
_NUM_STEPS = flags.DEFINE_integer('num_steps', 1500, 'Training steps of every run.')
_RUNS = flags.DEFINE_list('runs', [r.name for r in RUNS], 'Runs to do, by name.')
_EXTRA = flags.DEFINE_multi_string('gin_param', [], 'Bindings added to every run.')
_NUM_TRAIN = flags.DEFINE_integer('num_train', 1000, 'Synthetic training examples.')
_NUM_EVAL = flags.DEFINE_integer('num_eval', 100, 'Synthetic eval examples.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the data and every run.')
_REPORT = flags.DEFINE_string('report', 'REPRODUCTION.md', 'Markdown report to write.')

CLIP_SECONDS = 2.0


def _python(*args: str) -> None:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  subprocess.run([sys.executable, *args], check=True, env=env)


def _ensure_data(root: str, num_train: int, num_eval: int, seed: int) -> None:
  if os.path.exists(os.path.join(root, 'eval_example_list.txt')):
    return
  from data_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  synthetic.make_dataset(root, num_train, 40, num_eval, seed=seed, clip_seconds=CLIP_SECONDS)


def _train_export_evaluate(run: Run, data_root: str, out: str, num_steps: int, seed: int,
                           extra: Sequence[str]) -> dict:
  run_dir = os.path.join(out, 'runs', run.name)
  result_path = os.path.join(run_dir, 'result.json')
  if os.path.exists(result_path):
    with open(result_path) as f:
      result = json.load(f)
    if result.get('num_steps') == num_steps:
      return result
  model_dir = os.path.join(run_dir, 'model')
  args = ['-m', 'mixit.train', f'--model_dir={model_dir}', '--overwrite']
  for gin_file in run.gin_files:
    args.append(f'--gin_file={gin_file}')
  params = [f"DATA_ROOT = '{data_root}'", f'CLIP_SECONDS = {CLIP_SECONDS}', f'SEED = {seed}',
            f'training.num_steps = {num_steps}', 'training.eval_every = 0',
            'training.log_every = 250', 'learning_rate = 1e-3', *run.gin_params, *extra]
  args += [f'--gin_param={p}' for p in params]
  started = time.time()
  _python(*args)
  train_seconds = time.time() - started
  saved_model = os.path.join(run_dir, 'saved_model')
  _python('-m', 'mixit.export', f'--model_dir={model_dir}', f'--output_dir={saved_model}',
          '--overwrite')
  evaluation = os.path.join(run_dir, 'evaluation')
  _python('-m', 'eval.fuss', f'--saved_model={saved_model}',
          f'--example_list={os.path.join(data_root, "eval_example_list.txt")}',
          f'--output_dir={evaluation}', f'--label={run.name}', '--baselines=',
          '--noprogress')
  with open(os.path.join(evaluation, 'summary.json')) as f:
    summary = json.load(f)
  result = {'name': run.name, 'description': run.description, 'num_steps': num_steps,
            'train_seconds': train_seconds, 'seconds_per_step': train_seconds / num_steps,
            'summary': summary, 'summary_path': os.path.join(evaluation, 'summary.json')}
  with open(result_path, 'w') as f:
    json.dump(result, f, indent=2)
  return result


def _row(result: dict) -> str:
  s = result['summary']
  return (f"| {result['name']} | {result['description']} | {s['msi']:.2f} | {s['1s']:.2f} | "
          f"{s['under_separation']:.2f} | {s['equal_separation']:.2f} | "
          f"{s['over_separation']:.2f} | {result['seconds_per_step']:.3f} |")


def _get(results: Dict[str, dict], name: str, key: str):
  return results[name]['summary'][key] if name in results else float('nan')


def _claims(results: Dict[str, dict]) -> List[str]:
  """The paper's claims, each with the figures measured here and whether it holds."""
  lines = []

  def claim(text, holds, figures):
    verdict = 'holds' if holds else 'does NOT hold'
    lines.append(f'- **{text}**: {verdict} here ({figures}).')

  for m in (4, 8):
    ex, ls = f'm{m}_exhaustive', f'm{m}_efficient'
    if ex in results and ls in results:
      d = _get(results, ls, 'msi') - _get(results, ex, 'msi')
      claim(f'Efficient MixIT matches exhaustive MixIT at M={m}', abs(d) <= 1.0,
            f"MSi {_get(results, ls, 'msi'):.2f} vs {_get(results, ex, 'msi'):.2f} dB, "
            f"1S {_get(results, ls, '1s'):.2f} vs {_get(results, ex, '1s'):.2f} dB; "
            f"within-noise threshold 1 dB MSi")
  for m in (8, 16):
    plain, sparse = f'm{m}_efficient', f'm{m}_efficient_sparse'
    if plain in results and sparse in results:
      claim(f'Sparsity curbs over-separation at M={m}',
            _get(results, sparse, 'over_separation') < _get(results, plain, 'over_separation'),
            f"over-separation {_get(results, sparse, 'over_separation'):.2f} with vs "
            f"{_get(results, plain, 'over_separation'):.2f} without")
      claim(f'Sparsity raises 1S at M={m}',
            _get(results, sparse, '1s') > _get(results, plain, '1s'),
            f"1S {_get(results, sparse, '1s'):.2f} vs {_get(results, plain, '1s'):.2f} dB")
  if all(n in results for n in ('m16_efficient_sparse', 'm4_efficient', 'm8_efficient')):
    best_small = max(_get(results, 'm4_efficient', 'msi'), _get(results, 'm8_efficient', 'msi'))
    claim('Larger M with sparsity is best (MSi)',
          _get(results, 'm16_efficient_sparse', 'msi') >= best_small,
          f"M=16 + sparsity MSi {_get(results, 'm16_efficient_sparse', 'msi'):.2f} dB vs best of "
          f"M=4/8 without {best_small:.2f} dB")
  for extra in ('covariance', 'classification'):
    name = f'm8_efficient_{extra}'
    if name in results and 'm8_efficient' in results:
      claim(f'The {extra} loss reduces over-separation at M=8',
            _get(results, name, 'over_separation') < _get(results, 'm8_efficient',
                                                          'over_separation'),
            f"over-separation {_get(results, name, 'over_separation'):.2f} vs "
            f"{_get(results, 'm8_efficient', 'over_separation'):.2f}; MSi "
            f"{_get(results, name, 'msi'):.2f} vs {_get(results, 'm8_efficient', 'msi'):.2f} dB")
  return lines


def write_report(results: Dict[str, dict], path: str, out: str, num_steps: int,
                 seed: int, extra: Sequence[str]) -> None:
  from eval import plots  # pylint: disable=g-import-not-at-top
  plot_path = os.path.splitext(path)[0] + '_msi_vs_1s.png'
  plots.plot_msi_vs_1s([(name, r['summary']) for name, r in results.items()], plot_path)
  any_result = next(iter(results.values()))
  lines = [
      '# Reproduction of the paper\'s comparisons (scaled down, synthetic data)',
      '',
      'Written by `benchmarks/reproduce.py`. Every run: the small TDCN++ '
      '(`gin/models/tdcnpp_small.gin`), mixtures of 2 mixtures of 2-s clips of the synthetic '
      f'FUSS-format data (seed {seed}), batch 8, Adam lr 1e-3, {num_steps} steps, evaluated on '
      f"the {any_result['summary']['num_examples']} held-out eval examples with the FUSS "
      'evaluator. Extra bindings: ' + (', '.join(f'`{e}`' for e in extra) or 'none') + '.',
      f'Machine: {platform.machine()} CPU, {os.cpu_count()} cores, Python '
      f'{platform.python_version()}.',
      '',
      '| run | what | MSi (dB) | 1S (dB) | under | equal | over | s/step |',
      '|---|---|---|---|---|---|---|---|',
  ]
  lines += [_row(r) for r in results.values()]
  lines += ['', '## The paper\'s claims at this scale', '']
  lines += _claims(results)
  lines += ['', f'![MSi vs 1S]({os.path.basename(plot_path)})', '',
            f'Per-run reports (scores.csv, plots) are in `{out}/runs/<run>/evaluation/`.', '']
  with open(path, 'w') as f:
    f.write('\n'.join(lines))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  by_name = {r.name: r for r in RUNS}
  unknown = [n for n in _RUNS.value if n not in by_name]
  if unknown:
    raise app.UsageError(f'unknown runs {unknown}; known: {list(by_name)}')
  out = os.path.abspath(_OUTPUT_DIR.value)
  data_root = os.path.join(out, 'data')
  _ensure_data(data_root, _NUM_TRAIN.value, _NUM_EVAL.value, _SEED.value)
  results = {}
  for name in _RUNS.value:
    print(f'== {name}', flush=True)
    results[name] = _train_export_evaluate(by_name[name], data_root, out, _NUM_STEPS.value,
                                           _SEED.value, _EXTRA.value)
    write_report(results, _REPORT.value, out, _NUM_STEPS.value, _SEED.value, _EXTRA.value)
    print(_row(results[name]), flush=True)
  print(f'report: {_REPORT.value}')


if __name__ == '__main__':
  app.run(main)

r"""The paper's MSi-vs-1S trade-off at CPU scale, on synthetic FUSS-format data.

    python benchmarks/reproduce.py --output_dir repro_out [--num_steps 1000] \
        [--weights 0,5,10,20,40] [--report REPRODUCTION.md] [--only_report]

Every run trains the small TDCN++ (gin/models/tdcnpp_small.gin) with the demo's
recipe (batch 8 of MoMs of random 1-s crops, Adam lr 3e-3, XLA-compiled step) in its own
`mixit-train` process, is exported, and is scored by the FUSS evaluator on the
validation split (40 examples) and on the held-out eval split (100 examples).
The sweep, in the order it runs:

1. efficient (least-squares) MixIT at M = 8 for every sparsity weight (the
   paper's L1/L2 ratio, `losses/sparsity_l1l2.gin`), seed 0;
2. exhaustive MixIT at M = 8 with the best weight, seeds 0 and 1, and efficient
   MixIT at M = 8 with the best weight, seed 1;
3. the weight sweep at M = 16, then at M = 4, each followed by its best weight
   with seed 1;
4. exhaustive MixIT at M = 4 with M = 4's best weight, seeds 0 and 1; M = 8 with
   the best weight plus the covariance loss, and plus the classification loss
   (seeds 0 and 1 each);
5. both methods at M = 8 with the best weight ramped up from 0 over the first
   250 steps (`trainer.sparsity_warmup_steps`), seeds 0 and 1 each: whether the
   warm-up keeps exhaustive MixIT out of the state it falls into otherwise
   (docs/formulas.md, "MixIT").

Every comparison that the claims make at the best weights has two seeds a side:
two seeds of one configuration have differed by more than 1 dB here.

"Best weight" is fixed before the eval split is looked at: the weight with the
highest MSi + 1S on the *validation* split, per M, among the weights whose
validation MSi is at least weight 0's (a collapsed model that separates nothing
reads 1S near 80 dB and would win the sum). The report gives every run's
FUSS figures and over-separation diagnostics, the two plots (MSi vs 1S with
marker size by weight; over-separation, 1S and MSi against the weight) and a
verdict on each of the paper's claims. Finished stages (training, export,
evaluation) are reused, so an interrupted sweep continues where it stopped.
"""
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from absl import app
from absl import flags


@dataclasses.dataclass(frozen=True)
class Run:
  num_sources: int
  method: str  # 'least_squares' | 'exhaustive'
  weight: float
  seed: int = 0
  extra: str = ''  # '' | 'covariance' | 'classification' | 'warmup'

  @property
  def name(self) -> str:
    method = 'ls' if self.method == 'least_squares' else 'ex'
    suffix = f'_{self.extra}' if self.extra else ''
    return f'm{self.num_sources}_{method}_w{self.weight:g}_s{self.seed}{suffix}'

  @property
  def description(self) -> str:
    method = 'efficient' if self.method == 'least_squares' else 'exhaustive'
    extra = f' + {self.extra}' if self.extra else ''
    return f'M={self.num_sources}, {method}, sparsity {self.weight:g}{extra}, seed {self.seed}'

  def gin_files(self) -> List[str]:
    files = ['models/tdcnpp_small.gin', 'datasets/synthetic.gin', 'optimization/base.gin',
             f'losses/mixit_{self.method}.gin', 'losses/sparsity_l1l2.gin']
    if self.extra == 'covariance':
      files.append('losses/covariance.gin')
    if self.extra == 'classification':
      files += ['datasets/weak_labels.gin', 'losses/classification.gin']
    return files

  def gin_params(self) -> List[str]:
    params = [f'NUM_SOURCES = {self.num_sources}', f'trainer.lambda_sparse = {self.weight}',
              f'SEED = {self.seed}', f'training.seed = {self.seed}']
    if self.extra == 'classification':
      params.append('NUM_CLASSES = 6')
    if self.extra == 'warmup':
      params.append(f'trainer.sparsity_warmup_steps = {WARMUP_STEPS}')
    return params


_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'repro_out', 'Data, runs and evaluations.')
_NUM_STEPS = flags.DEFINE_integer('num_steps', 1000, 'Training steps of every run.')
_WEIGHTS = flags.DEFINE_list('weights', ['0', '5', '10', '20', '40'], 'Sparsity weights swept.')
_EXTRA = flags.DEFINE_multi_string('gin_param', [], 'Bindings added to every run.')
_NUM_TRAIN = flags.DEFINE_integer('num_train', 1000, 'Synthetic training examples.')
_NUM_VALIDATION = flags.DEFINE_integer('num_validation', 40, 'Synthetic validation examples.')
_NUM_EVAL = flags.DEFINE_integer('num_eval', 100, 'Synthetic eval examples.')
_DATA_SEED = flags.DEFINE_integer('data_seed', 0, 'Seed of the synthetic dataset.')
_REPORT = flags.DEFINE_string('report', 'REPRODUCTION.md', 'Markdown report to write.')
_NOTES = flags.DEFINE_string('notes', 'benchmarks/reproduce_notes.md',
                             'Hand-written reading of the figures, appended to the report '
                             '(skipped when the file does not exist).')
_ONLY_REPORT = flags.DEFINE_bool('only_report', False,
                                 'Write the report from the finished runs; train nothing.')

CLIP_SECONDS = 2.0  # of the synthetic clips, evaluated whole
TRAIN_CROP_SECONDS = 1.0  # random crops trained on: twice the steps/s of 2-s crops
LEARNING_RATE = 3e-3
# 1S above this is drawn on the plots' edge with its value: only a model that passes the
# input through (one active output, MSi near 0) reads so high, and it would squash the rest.
OFF_SCALE_1S_DB = 40.0
SPLITS = ('validation', 'eval')
# The 'warmup' runs ramp the sparsity weight up from 0 over this many steps: a quarter of the
# default 1000, as the demo ramps over a quarter of its 6000.
WARMUP_STEPS = 250


def _python(*args: str, log: Optional[str] = None) -> None:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  if log is None:
    subprocess.run([sys.executable, *args], check=True, env=env)
    return
  with open(log, 'a') as f:
    subprocess.run([sys.executable, *args], check=True, env=env, stdout=f,
                   stderr=subprocess.STDOUT)


def _ensure_data(root: str) -> None:
  if os.path.exists(os.path.join(root, 'eval_example_list.txt')):
    return
  from data_pipeline import synthetic
  synthetic.make_dataset(root, _NUM_TRAIN.value, _NUM_VALIDATION.value, _NUM_EVAL.value,
                         seed=_DATA_SEED.value, clip_seconds=CLIP_SECONDS)


def _read_json(path: str) -> Optional[dict]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_json(data: dict, path: str) -> None:
  with open(path + '.tmp', 'w') as f:
    json.dump(data, f, indent=2)
  os.replace(path + '.tmp', path)


def run_dir(out: str, run: Run) -> str:
  return os.path.join(out, 'runs', run.name)


def train_export_evaluate(run: Run, data_root: str, out: str, num_steps: int,
                          extra: Sequence[str]) -> dict:
  """Trains, exports and scores one run; finished stages are reused."""
  directory = run_dir(out, run)
  os.makedirs(directory, exist_ok=True)
  log = os.path.join(directory, 'log.txt')
  model_dir = os.path.join(directory, 'model')
  train_info_path = os.path.join(directory, 'train.json')
  train_info = _read_json(train_info_path)
  params = [f"DATA_ROOT = '{data_root}'", f'CLIP_SECONDS = {CLIP_SECONDS}',
            f'train_data.clip_seconds = {TRAIN_CROP_SECONDS}',
            f'training.num_steps = {num_steps}', 'validation.every = 0',
            'logs.every = 250', 'training.jit_compile = True',
            f'learning_rate = {LEARNING_RATE}', *run.gin_params(), *extra]
  if not train_info or train_info.get('gin_params') != params:
    if os.path.exists(model_dir):
      raise SystemExit(f'{directory} holds a run with other settings; move it away first.')
    args = ['-m', 'mixit.commands.train', f'--model_dir={model_dir}']
    args += [f'--gin_file={gin_file}' for gin_file in run.gin_files()]
    args += [f'--gin_param={p}' for p in params]
    started = time.time()
    _python(*args, log=log)
    train_info = {'num_steps': num_steps, 'train_seconds': time.time() - started,
                  'gin_files': run.gin_files(), 'gin_params': params}
    _write_json(train_info, train_info_path)
  saved_model = os.path.join(directory, 'saved_model')
  if not os.path.exists(os.path.join(saved_model, 'saved_model.pb')):
    _python('-m', 'mixit.commands.export', f'--model_dir={model_dir}',
            f'--output_dir={saved_model}', log=log)
  summaries = {}
  for split in SPLITS:
    evaluation = os.path.join(directory, f'evaluation_{split}')
    summary_path = os.path.join(evaluation, 'summary.json')
    summary = _read_json(summary_path)
    if not summary or 'diagnostics' not in summary:
      _python('-m', 'mixit.commands.evaluate', f'--saved_model={saved_model}',
              f'--example_list={os.path.join(data_root, f"{split}_example_list.txt")}',
              f'--output_dir={evaluation}', f'--label={run.name}', '--baselines=',
              '--noprogress', log=log)
      summary = _read_json(summary_path)
    summaries[split] = summary
  return {'run': dataclasses.asdict(run), 'name': run.name, 'description': run.description,
          'num_steps': num_steps, 'train_seconds': train_info['train_seconds'],
          'seconds_per_step': train_info['train_seconds'] / num_steps,
          'summary': summaries['eval'], 'validation': summaries['validation']}


def best_weight(results: Dict[str, dict], num_sources: int, weights: Sequence[float]) -> float:
  """The weight with the highest validation MSi + 1S among the seed-0 efficient runs at M.

  A weight whose validation MSi falls below that of weight 0 (no sparsity) is not a
  candidate: a model that passes the input through unseparated reads 1S near the
  evaluator's 80 dB cap and MSi 0, so the sum alone would crown the collapse that too
  strong a weight causes.
  """
  def validation(weight):
    name = Run(num_sources, 'least_squares', weight).name
    return results[name]['validation'] if name in results else None

  plain = validation(0.0)
  floor = None if plain is None or plain['msi'] is None else plain['msi']
  scored = []
  for weight in weights:
    v = validation(weight)
    if v is None or (floor is not None and (v['msi'] is None or v['msi'] < floor)):
      continue
    # A split without 1- (or multi-) source examples scores on the figure it has.
    scored.append(((v['msi'] or 0.0) + (v['1s'] or 0.0), weight))
  if not scored:
    raise ValueError(f'no finished M={num_sources} weight run to choose from')
  return max(scored)[1]


def best_weights(results: Dict[str, dict], weights: Sequence[float]) -> Dict[int, float]:
  """`best_weight` of every M that has a finished weight run."""
  best = {}
  for m in (4, 8, 16):
    try:
      best[m] = best_weight(results, m, weights)
    except ValueError:
      pass
  return best


def _plan(weights: Sequence[float], results: Dict[str, dict]):
  """Yields the runs in order; later phases read the best weights of earlier ones.

  Every configuration that a claim compares with another at its best weight runs with two
  seeds: the methods (least squares, exhaustive) at M = 4 and 8, each M for the larger-M
  claim, and the covariance and classification losses. Two seeds of one configuration
  have differed by more than 1 dB here, so one seed cannot tell such comparisons apart.
  """
  for weight in weights:
    yield Run(8, 'least_squares', weight)
  best8 = best_weight(results, 8, weights)
  yield Run(8, 'exhaustive', best8, seed=0)
  yield Run(8, 'exhaustive', best8, seed=1)
  yield Run(8, 'least_squares', best8, seed=1)
  for num_sources in (16, 4):
    for weight in weights:
      yield Run(num_sources, 'least_squares', weight)
    yield Run(num_sources, 'least_squares', best_weight(results, num_sources, weights), seed=1)
  best4 = best_weight(results, 4, weights)
  yield Run(4, 'exhaustive', best4, seed=0)
  yield Run(4, 'exhaustive', best4, seed=1)
  for extra in ('covariance', 'classification'):
    yield Run(8, 'least_squares', best8, seed=0, extra=extra)
    yield Run(8, 'least_squares', best8, seed=1, extra=extra)
  for method in ('exhaustive', 'least_squares'):
    for seed in (0, 1):
      yield Run(8, method, best8, seed=seed, extra='warmup')


# ----------------------------------------------------------------------------
# Report.

def _f(value, digits=2) -> str:
  return 'n/a' if value is None else f'{value:.{digits}f}'


def _row(result: dict) -> str:
  s, v = result['summary'], result['validation']
  d = s.get('diagnostics') or {}
  one = (d.get('active_outputs') or {}).get('1', {}).get('mean')
  return (f"| {result['name']} | {_f(v['msi'])} | {_f(v['1s'])} | {_f(s['msi'])} | "
          f"{_f(s['1s'])} | {_f(s['under_separation'])} | {_f(s['equal_separation'])} | "
          f"{_f(s['over_separation'])} | {_f(one, 1)} | "
          f"{_f(d.get('1s_loudest_output_share_db'), 1)} | "
          f"{_f(d.get('mean_abs_correlation'))} | {result['seconds_per_step']:.3f} |")


def _get(results, run: Run, key: str, split: str = 'summary'):
  result = results.get(run.name)
  return None if result is None else result[split].get(key)


def _mean(values) -> Optional[float]:
  values = [v for v in values if v is not None]
  return sum(values) / len(values) if values else None


def _seeded(results, run: Run, key: str) -> List[float]:
  """`key` of `run` on the eval split for every finished seed (0 and 1), in seed order."""
  values = [_get(results, dataclasses.replace(run, seed=seed), key) for seed in (0, 1)]
  return [v for v in values if v is not None]


def _figure(values: Sequence[float]) -> str:
  """'8.08' for one seed, '8.08, 8.27 (mean 8.17)' for two, 'n/a' for none."""
  text = ', '.join(_f(v) for v in values) or 'n/a'
  if len(values) > 1:
    text += f' (mean {_f(_mean(values))})'
  return text


def claims(results: Dict[str, dict], weights: Sequence[float]) -> List[str]:
  """A verdict with figures on each of the paper's claims (eval split, seed means)."""
  lines = []

  def claim(text, holds, figures):
    verdict = 'holds' if holds else 'does NOT hold'
    lines.append(f'- **{text}**: {verdict} here ({figures}).')

  def seeds(values):
    return f'{len(values)} seed' + ('s' if len(values) > 1 else '')

  def methods_match(title, m, extra='', note=''):
    """Least squares against exhaustive MixIT at M=m with the best weight, every seed."""
    ls_run, ex_run = (Run(m, method, best[m], extra=extra)
                      for method in ('least_squares', 'exhaustive'))
    ls, ex = _seeded(results, ls_run, 'msi'), _seeded(results, ex_run, 'msi')
    if ls and ex:
      d = _mean(ls) - _mean(ex)
      claim(f'{title} at M={m} ({seeds(ls)} vs {seeds(ex)}{note})', abs(d) <= 1.0,
            f'MSi {_figure(ls)} vs {_figure(ex)} dB, difference {d:+.2f} dB (threshold 1 dB); '
            f"1S {_figure(_seeded(results, ls_run, '1s'))} vs "
            f"{_figure(_seeded(results, ex_run, '1s'))} dB")

  best = best_weights(results, weights)
  for m in best:
    plain, sparse = Run(m, 'least_squares', 0.0), Run(m, 'least_squares', best[m])
    if plain.name in results and sparse.name in results and best[m] > 0:
      one, one0 = _seeded(results, sparse, '1s'), _seeded(results, plain, '1s')
      over, over0 = (_seeded(results, sparse, 'over_separation'),
                     _seeded(results, plain, 'over_separation'))
      msi, msi0 = _seeded(results, sparse, 'msi'), _seeded(results, plain, 'msi')
      claim(f'Sparsity raises 1S and curbs over-separation at M={m}',
            bool(one and one0 and over and over0) and _mean(one) > _mean(one0) and
            _mean(over) < _mean(over0),
            f'weight {best[m]:g} ({seeds(one)}) vs 0 ({seeds(one0)}): 1S {_figure(one)} vs '
            f'{_figure(one0)} dB, over-separation {_figure(over)} vs {_figure(over0)}, MSi '
            f'{_figure(msi)} vs {_figure(msi0)} dB')
    elif plain.name in results and sparse.name in results:
      lines.append(f'- At M={m} the best validation weight was 0: sparsity did not help there.')
  if all(m in best for m in (4, 8, 16)):
    msi = {m: _seeded(results, Run(m, 'least_squares', best[m]), 'msi') for m in (4, 8, 16)}
    one = {m: _seeded(results, Run(m, 'least_squares', best[m]), '1s') for m in (4, 8, 16)}
    plain = {m: _get(results, Run(m, 'least_squares', 0.0), 'msi') for m in (4, 8, 16)}
    # A split without 1- (or multi-) source examples counts the figure it has.
    top = max(msi, key=lambda m: (_mean(msi[m]) or 0.0) + (_mean(one[m]) or 0.0))
    claim('Larger M with sparsity is best',
          top == 16 and (_mean(msi[16]) or 0.0) >= max(_mean(v) or 0.0 for v in msi.values()),
          'MSi / 1S with each M\'s best weight, ' + seeds(msi[16]) + ' at M=16: ' +
          '; '.join(f'M={m} {_figure(msi[m])} / {_figure(one[m])} dB' for m in (4, 8, 16)) +
          '; without sparsity MSi ' + ', '.join(f'M={m} {_f(plain[m])}' for m in (4, 8, 16)))
  for m in (8, 4):
    if m in best:
      methods_match('Least squares matches exhaustive MixIT', m)
  if 8 in best:
    methods_match(f'With a sparsity warm-up ({WARMUP_STEPS} steps), least squares matches '
                  'exhaustive MixIT', 8, extra='warmup', note='; not a claim of the paper')
    base = Run(8, 'least_squares', best[8])
    for extra in ('covariance', 'classification'):
      run = Run(8, 'least_squares', best[8], extra=extra)
      over = _seeded(results, run, 'over_separation')
      over0 = _seeded(results, base, 'over_separation')
      if over and over0:
        claim(f'The {extra} loss reduces over-separation at M=8 (on top of sparsity; '
              f'{seeds(over)} vs {seeds(over0)})', _mean(over) < _mean(over0),
              f'over-separation {_figure(over)} vs {_figure(over0)}; MSi '
              f"{_figure(_seeded(results, run, 'msi'))} vs "
              f"{_figure(_seeded(results, base, 'msi'))} dB; 1S "
              f"{_figure(_seeded(results, run, '1s'))} vs "
              f"{_figure(_seeded(results, base, '1s'))} dB")
  return lines


def plot(results: Dict[str, dict], weights: Sequence[float], prefix: str) -> List[str]:
  """MSi vs 1S (marker size by weight) and the rates against the weight; returns the files."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  from eval import plots as eval_plots
  colors = {4: 'tab:blue', 8: 'tab:orange', 16: 'tab:green'}
  top = max(weights) or 1.0
  figure, axes = plt.subplots(figsize=(7, 5))
  points = []
  for result in results.values():
    run = Run(**result['run'])
    s = result['summary']
    if s['msi'] is None or s['1s'] is None:
      continue
    least_squares = run.method == 'least_squares'
    marker = {'': 'o' if least_squares else 's', 'covariance': 'D', 'classification': 'P',
              'warmup': '*' if least_squares else 'X'}[run.extra]
    points.append((s['msi'], s['1s'],
                   dict(s=30 + 270 * run.weight / top, color=colors.get(run.num_sources, 'grey'),
                        marker=marker, alpha=0.75,
                        edgecolors='black' if run.seed else 'none'), f'{run.weight:g}'))
  eval_plots.scatter_with_cap(axes, points, ceiling_db=OFF_SCALE_1S_DB, note='no separation')
  for m, color in colors.items():
    axes.scatter([], [], color=color, label=f'M={m}')
  for marker, text in (('o', 'efficient'), ('s', 'exhaustive'), ('D', '+ covariance'),
                       ('P', '+ classification'), ('*', 'efficient, warm-up'),
                       ('X', 'exhaustive, warm-up')):
    axes.scatter([], [], color='grey', marker=marker, label=text)
  axes.set_xlabel('MSi: SI-SNRi on 2-4 source mixtures (dB)')
  axes.set_ylabel('1S: SI-SNR on 1-source mixtures (dB)')
  axes.set_title('Marker size and label: sparsity weight (black edge: seed 1)', fontsize=9)
  axes.grid(True, alpha=0.3)
  axes.legend(fontsize=8)
  first = prefix + '_msi_vs_1s.png'
  figure.savefig(first, dpi=110, bbox_inches='tight')
  plt.close(figure)

  figure, panels = plt.subplots(1, 3, figsize=(13, 3.6))
  for key, axis, label in (('over_separation', panels[0], 'over-separation rate'),
                           ('1s', panels[1], '1S (dB)'), ('msi', panels[2], 'MSi (dB)')):
    for m, color in colors.items():
      xs, ys = [], []
      for weight in weights:
        value = _get(results, Run(m, 'least_squares', weight), key)
        if value is not None:
          xs.append(weight)
          ys.append(value)
      if xs:
        axis.plot(xs, [min(y, OFF_SCALE_1S_DB) for y in ys], marker='o', color=color,
                  label=f'M={m}')
        for x, y in zip(xs, ys):
          if y > OFF_SCALE_1S_DB:
            axis.scatter([x], [OFF_SCALE_1S_DB], marker='^', s=60, color=color, zorder=3)
            axis.annotate(f'{y:.0f} dB', (x, OFF_SCALE_1S_DB), textcoords='offset points',
                          xytext=(-30, -12), fontsize=7, color='grey')
    axis.set_xlabel('sparsity weight (L1/L2 ratio)')
    axis.set_ylabel(label)
    axis.grid(True, alpha=0.3)
  panels[0].legend(fontsize=8)
  second = prefix + '_vs_weight.png'
  figure.savefig(second, dpi=110, bbox_inches='tight')
  plt.close(figure)
  return [first, second]


def write_report(results: Dict[str, dict], weights: Sequence[float], path: str, out: str,
                 num_steps: int, extra: Sequence[str]) -> None:
  prefix = os.path.splitext(path)[0]
  plots = plot(results, weights, prefix)
  best = best_weights(results, weights)
  lines = [
      '# The paper\'s MSi-vs-1S trade-off at CPU scale (synthetic data)',
      '',
      'Models trained and scored on real recordings (the real-audio workbench): '
      '[docs/real_sound.md](docs/real_sound.md).',
      '',
      'Written by `benchmarks/reproduce.py`. Every run: the small TDCN++ '
      '(`gin/models/tdcnpp_small.gin`, about 0.3 M parameters), mixtures of 2 mixtures of '
      f'random {TRAIN_CROP_SECONDS:g}-s crops of the {CLIP_SECONDS:g}-s clips of the synthetic '
      f'FUSS-format data (seed {_DATA_SEED.value}), batch 8, Adam '
      f'lr {LEARNING_RATE:g}, {num_steps} steps with an XLA-compiled step, sparsity = the '
      'paper\'s L1/L2 ratio of the per-output RMS (`losses/sparsity_l1l2.gin`) with the '
      'weight given. Scored by the FUSS evaluator on the validation split '
      f"({results[next(iter(results))]['validation']['num_examples']} examples) and the "
      f"held-out eval split ({results[next(iter(results))]['summary']['num_examples']}). "
      'Extra bindings: ' + (', '.join(f'`{e}`' for e in extra) or 'none') + '.',
      f'Machine: {platform.machine()} CPU, {os.cpu_count()} cores, Python '
      f'{platform.python_version()}; s/step is wall time there, and other work may have '
      'shared the machine.',
      '',
      'Best weight per M (highest validation MSi + 1S among the weights whose validation MSi '
      'is at least weight 0\'s, chosen before the eval split is read): '
      + ', '.join(f'M={m}: {w:g}' for m, w in best.items()) + '.',
      '',
      '| run | val MSi | val 1S | MSi (dB) | 1S (dB) | under | equal | over | active outputs, '
      '1 source | loudest output, 1 source (dB) | mean abs. corr. | s/step |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  lines += [_row(r) for r in results.values()]
  lines += ['', 'The last three columns are the evaluator\'s over-separation diagnostics (eval '
            'split): mean active outputs on 1-source examples, the loudest output\'s share of '
            'the input power on 1-source examples (mean of dB; 0 dB = all of it), and the mean '
            '|correlation| between active outputs (1 = scaled copies).',
            '', '## The paper\'s claims at this scale', '']
  lines += claims(results, weights)
  lines += ['']
  lines += [f'![{os.path.basename(p)}]({os.path.basename(p)})' for p in plots]
  lines += ['', f'Per-run logs, models and reports: `{out}/runs/<run>/` (not committed).', '']
  if _NOTES.value and os.path.exists(_NOTES.value):
    with open(_NOTES.value) as f:
      lines += [f.read()]
  with open(path, 'w') as f:
    f.write('\n'.join(lines))


def _finished(out: str) -> Dict[str, dict]:
  results = {}
  runs = os.path.join(out, 'runs')
  for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
    result = _read_json(os.path.join(runs, name, 'result.json'))
    if result:
      results[name] = result
  return results


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  weights = [float(w) for w in _WEIGHTS.value]
  out = os.path.abspath(_OUTPUT_DIR.value)
  if _ONLY_REPORT.value:
    results = _finished(out)
    write_report(results, weights, _REPORT.value, out, _NUM_STEPS.value, _EXTRA.value)
    print(f'report of {len(results)} runs: {_REPORT.value}')
    return
  data_root = os.path.join(out, 'data')
  _ensure_data(data_root)
  results = {}
  for run in _plan(weights, results):
    print(f'== {run.name}: {run.description}', flush=True)
    result = train_export_evaluate(run, data_root, out, _NUM_STEPS.value, _EXTRA.value)
    _write_json(result, os.path.join(run_dir(out, run), 'result.json'))
    results[run.name] = result
    write_report(results, weights, _REPORT.value, out, _NUM_STEPS.value, _EXTRA.value)
    print(_row(result), flush=True)
  print(f'report: {_REPORT.value}')


if __name__ == '__main__':
  app.run(main)

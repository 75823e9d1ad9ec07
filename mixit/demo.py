r"""The one-command demo on the embedded default: `run_demo` (the `mixit-demo` command is
`mixit/commands/demo.py`).

With no data present it
  1. writes a synthetic FUSS-format dataset (`data_pipeline.synthetic`),
  2. trains the small TDCN++ (M = 8) with efficient MixIT + the paper's sparsity
     loss on mixtures of its mixtures (`gin/demo/synthetic_small.gin`),
  3. exports the trained model as a SavedModel,
  4. evaluates the SavedModel on the held-out eval split with the FUSS evaluator
     (MSi, 1S, separation rates, plots, beside the no-separation and oracle baselines),
  5. separates one eval mixture into one wav file per source,
and prints where each result is. Re-running resumes training where it stopped.
"""
import json
import os
import sys
import time
from typing import Dict, Sequence

from absl import logging

from mixit import gin_config

DEMO_GIN = 'demo/synthetic_small.gin'


def data_matches(info_path: str, counts: Dict[str, int], seed: int, clip_seconds: float,
                 kinds) -> bool:
  """Whether the synthetic dataset recorded in `info_path` (`synthetic_fuss.json`) was made
  with these counts, seed, clip length and kind set (`sound_kinds.KindSet`), so a rerun may
  reuse it. A record without `kinds` was made with the classic kinds."""
  from data_pipeline import sound_kinds
  if not os.path.exists(info_path):
    return False
  with open(info_path) as f:
    existing = json.load(f)
  return (existing.get('counts') == counts and existing.get('seed') == seed
          and existing.get('clip_seconds') == clip_seconds
          and existing.get('kinds', sound_kinds.KIND_SETS['classic'].record())
          == kinds.record())


def run_demo(output_dir: str,
             num_train: int = 4000,
             num_validation: int = 40,
             num_eval: int = 100,
             clip_seconds: float = 2.0,
             kinds: str = 'varied',
             num_steps: int = 4000,
             seed: int = 0,
             gin_files: Sequence[str] = (DEMO_GIN,),
             gin_params: Sequence[str] = (),
             eval_batch_size: int = 8,
             log_every: int = 100) -> Dict[str, str]:
  """Runs the whole pipeline in `output_dir`; returns the path of each result.

  `kinds` names the synthetic sound kinds (`data_pipeline.sound_kinds.KIND_SETS`): 'varied'
  (the default) or 'classic'."""
  from data_pipeline import inputs  # noqa: F401  (registers the data configurables)
  from data_pipeline import sound_kinds
  from data_pipeline import synthetic
  from eval import fuss as fuss_eval
  from eval import report as eval_report
  from mixit.serving import export as export_lib
  from mixit import model  # noqa: F401  (registers `network`)
  from mixit.serving import separate as separate_lib
  from mixit.training import loop as train_loop
  from mixit.training import trainer  # noqa: F401  (registers `trainer`, `optimizer`)

  paths = {
      'data': os.path.join(output_dir, 'data'),
      'model_dir': os.path.join(output_dir, 'model'),
      'saved_model': os.path.join(output_dir, 'saved_model'),
      'evaluation': os.path.join(output_dir, 'evaluation'),
      'separated': os.path.join(output_dir, 'separated'),
  }
  timings = {}
  chosen = sound_kinds.kind_set(kinds)

  started = time.time()
  info_path = os.path.join(paths['data'], 'synthetic_fuss.json')
  wanted = {'train': num_train, 'validation': num_validation, 'eval': num_eval}
  if data_matches(info_path, wanted, seed, clip_seconds, chosen):
    logging.info('[1/5] reusing the synthetic dataset in %s', paths['data'])
  else:
    logging.info('[1/5] writing %d synthetic FUSS-format examples (%s kinds) to %s',
                 sum(wanted.values()), chosen.name, paths['data'])
    synthetic.make_dataset(paths['data'], num_train, num_validation, num_eval, seed=seed,
                           clip_seconds=clip_seconds, kinds=chosen)
  timings['data'] = time.time() - started

  started = time.time()
  logging.info('[2/5] training for %d steps in %s', num_steps, paths['model_dir'])
  params = [f"DATA_ROOT = '{paths['data']}'", f'CLIP_SECONDS = {clip_seconds}',
            f'SEED = {seed}', f'training.num_steps = {num_steps}',
            f'logs.every = {log_every}'] + list(gin_params)
  gin_config.parse(gin_files, params)
  import keras
  keras.utils.set_random_seed(seed)
  train_loop.train_from_gin(paths['model_dir'])
  timings['train'] = time.time() - started

  started = time.time()
  logging.info('[3/5] exporting the SavedModel to %s', paths['saved_model'])
  export_lib.export_saved_model(paths['model_dir'], paths['saved_model'], overwrite=True)
  timings['export'] = time.time() - started

  started = time.time()
  eval_list = os.path.join(paths['data'], 'eval_example_list.txt')
  logging.info('[4/5] evaluating on %s', eval_list)
  summary = fuss_eval.evaluate_and_report(eval_list, paths['evaluation'],
                                          saved_model=paths['saved_model'], label='demo',
                                          batch_size=eval_batch_size, progress=False,
                                          overwrite=True)
  timings['evaluate'] = time.time() - started

  started = time.time()
  from data_pipeline import fuss
  first = fuss.read_example_list(eval_list)[0]
  logging.info('[5/5] separating %s', first.mixture_path)
  result = separate_lib.separate_files(paths['saved_model'], first.mixture_path,
                                       paths['separated'], overwrite=True)
  if result.failed:
    raise RuntimeError(f'separation failed: {result.failed}')
  timings['separate'] = time.time() - started

  paths['summary'] = os.path.join(paths['evaluation'], 'summary.json')
  paths['separated_files'] = ', '.join(
      os.path.basename(p) for r in result.succeeded for p in r.output_paths)
  sys.stdout.write('\n' + eval_report.format_summary(summary) + '\n')
  sys.stdout.write('Demo results:\n')
  for name in ['data', 'model_dir', 'saved_model', 'evaluation', 'summary', 'separated']:
    sys.stdout.write(f'  {name:12s} {paths[name]}\n')
  sys.stdout.write(f'  separated files: {paths["separated_files"]}\n')
  sys.stdout.write('  timings: ' + ', '.join(f'{k} {v:.0f} s' for k, v in timings.items())
                   + '\n')
  sys.stdout.write(f'  MSi {summary["msi"]:.2f} dB, 1S {summary["1s"]:.2f} dB, '
                   f'over-separation {summary["over_separation"]:.2f}, '
                   f'under-separation {summary["under_separation"]:.2f}\n')
  return paths

r"""The training step side by side with the official TF1 code, interleaved, in one run.

    python benchmarks/train_step_vs_official.py --peer_dir PEERS --peer_python PY \
        [--rounds 3 --steps 3 --seconds 10 --baseline_ref GIT_REF]

PEERS is a directory holding `official_train_step.py` (a script that times the
official `neurips2020_mixit` train op in tf.compat.v1 graph mode and prints
`RESULT official ... <s> s/step`) and `sound-separation/` (the public
google-research code it runs); PY is a Python whose TensorFlow runs that code
(TF 2.16 with tf-keras). Without `--peer_dir` only this package's rows run.

Every configuration runs in its own process, one after another, and the order
is repeated `--rounds` times (official, then each of ours, then again), so slow
and fast spells of a shared machine fall on all of them. Rows:

- `official`: learned basis, M = 8, exhaustive MixIT, Adam (9.07 M parameters);
- `mixit learned basis`: `models/tdcnpp_learned_basis.gin`, the same model and
  loss (exhaustive MixIT, no sparsity or covariance), without and with XLA;
- `mixit STFT paper`: `models/tdcnpp_paper.gin`, least-squares MixIT + sparsity +
  covariance (the paper's recipe), without and with XLA;
- with `--baseline_ref`, the same rows of this package at that git commit (run
  from a temporary worktree), to show what a change gained on the same machine.

Prints each round's figures and a markdown table of medians over the rounds,
with the ratio of each row to the official step.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

_PEER_DIR = flags.DEFINE_string('peer_dir', None, 'Directory with official_train_step.py and '
                                'sound-separation/ (the official code); unset: no official row.')
_PEER_PYTHON = flags.DEFINE_string('peer_python', None, 'Python that runs the official code '
                                   '(TF 2.16 + tf-keras).')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Interleaved rounds.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Timed steps per process (after a warm-up step).')
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Mixture length (s); 2 MoMs per step.')
_BASELINE_REF = flags.DEFINE_string('baseline_ref', None, 'Git commit of this package to time '
                                    'beside the working tree (from a temporary worktree).')
_BASELINE_ROWS = flags.DEFINE_list('baseline_rows', ['stft', 'stft_xla'],
                                   'Rows also run at --baseline_ref.')
_ROWS = flags.DEFINE_list('rows', ['learned', 'learned_xla', 'stft', 'stft_xla'],
                          "This package's rows: learned, learned_xla, stft, stft_xla.")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OURS = {
    'learned': ('mixit learned basis, no XLA', ['--model_gin', 'models/tdcnpp_learned_basis.gin',
                                                '--methods', 'exhaustive', '--lambda_sparse',
                                                '0', '--lambda_cov', '0', '--nojit_compile']),
    'learned_xla': ('mixit learned basis, XLA', ['--model_gin', 'models/tdcnpp_learned_basis.gin',
                                                 '--methods', 'exhaustive', '--lambda_sparse',
                                                 '0', '--lambda_cov', '0', '--jit_compile']),
    'stft': ('mixit STFT paper, no XLA', ['--model_gin', 'models/tdcnpp_paper.gin', '--methods',
                                          'least_squares', '--nojit_compile']),
    'stft_xla': ('mixit STFT paper, XLA', ['--model_gin', 'models/tdcnpp_paper.gin', '--methods',
                                           'least_squares', '--jit_compile']),
}
_OURS_RESULT = re.compile(r'^M=\d+ \w+: ([\d.]+) s/step', re.M)
_OFFICIAL_RESULT = re.compile(r'^RESULT official .*? ([\d.]+) s/step', re.M)


def _run(command, env, pattern, label):
  done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  found = pattern.search(done.stdout)
  if done.returncode != 0 or not found:
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f'{label} failed (exit {done.returncode}): ' + ' | '.join(tail))
  return float(found.group(1))


def _our_command(args):
  # The baseline runs this script too (its own copy may predate --step_only), on the
  # baseline's package (PYTHONPATH, see _our_env).
  return [sys.executable, os.path.join(_REPO, 'benchmarks', 'train_step.py'), '--step_only',
          '--num_sources', '8', '--batch_size', '2', '--seconds', str(_SECONDS.value),
          '--steps', str(_STEPS.value)] + args


def _our_env(repo):
  env = dict(os.environ)
  env['PYTHONPATH'] = repo + os.pathsep + env.get('PYTHONPATH', '')
  return env


def _configurations(baseline_repo):
  configs = []
  if _PEER_DIR.value:
    if not _PEER_PYTHON.value:
      raise app.UsageError('--peer_dir needs --peer_python (a Python with TF 2.16 + tf-keras)')
    script = os.path.join(_PEER_DIR.value, 'official_train_step.py')
    code = os.path.join(_PEER_DIR.value, 'sound-separation')
    for path in (script, code):
      if not os.path.exists(path):
        raise app.UsageError(f'--peer_dir: {path} does not exist')
    env = dict(os.environ, TF_USE_LEGACY_KERAS='1')
    configs.append(('official TF1 graph (TF 2.16)',
                    [_PEER_PYTHON.value, script, code, '--moms', '2', '--seconds',
                     str(_SECONDS.value), '--steps', str(_STEPS.value)], env, _OFFICIAL_RESULT))
  for key in _ROWS.value:
    if key not in _OURS:
      raise app.UsageError(f'--rows: unknown row {key!r}; expected some of {sorted(_OURS)}')
    label, args = _OURS[key]
    configs.append((label, _our_command(args), _our_env(_REPO), _OURS_RESULT))
    if baseline_repo and key in _BASELINE_ROWS.value:
      configs.append((f'{label} @ {_BASELINE_REF.value}', _our_command(args),
                      _our_env(baseline_repo), _OURS_RESULT))
  return configs


def _machine() -> str:
  model = 'unknown CPU'
  try:
    with open('/proc/cpuinfo') as f:
      text = f.read()
    found = re.search(r'model name\s*:\s*(.+)', text)
    model = found.group(1).strip() if found else model
    flags_line = re.search(r'^flags\s*:\s*(.+)$', text, re.M)
    extras = [name for name in ('avx512f', 'amx_tile')
              if flags_line and name in flags_line.group(1).split()]
    if extras:
      model += ' (' + ', '.join(extras) + ')'
  except OSError:
    pass
  return f'{os.cpu_count()} cores, {model}'


def main(argv):
  del argv
  worktree = None
  try:
    if _BASELINE_REF.value:
      worktree = tempfile.mkdtemp(prefix='mixit-baseline-')
      subprocess.run(['git', '-C', _REPO, 'worktree', 'add', '--detach', worktree,
                      _BASELINE_REF.value], check=True, capture_output=True)
    configs = _configurations(worktree)
    times = {label: [] for label, *_ in configs}
    for round_index in range(_ROUNDS.value):
      for label, command, env, pattern in configs:
        seconds = _run(command, env, pattern, label)
        times[label].append(seconds)
        print(f'round {round_index + 1}: {label}: {seconds:.2f} s/step', flush=True)
  finally:
    if worktree:
      subprocess.run(['git', '-C', _REPO, 'worktree', 'remove', '--force', worktree],
                     check=False, capture_output=True)
      shutil.rmtree(worktree, ignore_errors=True)

  official = times.get(configs[0][0]) if _PEER_DIR.value else None
  official_median = statistics.median(official) if official else None
  print()
  print(f'Training step, 2 MoMs of {_SECONDS.value:g} s at 16 kHz, M = 8, float32; median of '
        f'{_ROUNDS.value} interleaved rounds of {_STEPS.value} timed steps, each configuration '
        f'in its own process; {_machine()}.')
  print()
  print('| configuration | s/step (median) | rounds | vs official |')
  print('|---|---|---|---|')
  for label, values in times.items():
    median = statistics.median(values)
    ratio = f'{median / official_median:.2f}x' if official_median else 'n/a'
    print(f'| {label} | {median:.2f} | ' + ' / '.join(f'{v:.2f}' for v in values) +
          f' | {ratio} |')


if __name__ == '__main__':
  app.run(main)

"""The console scripts: `--help` lists each command's own flags first, a quiet start on a
CPU-only machine (unless the user chose a log level), and the progress line's rate."""
import ast
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from conftest import TINY_GIN_FILES, tiny_params

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent

# Console script -> (module, the flags it defines itself).
SCRIPTS = {
    'mixit-train': ('mixit.commands.train', [
        'model_dir', 'gin_file', 'gin_param', 'gin_search_path', 'strategy', 'tpu',
        'cluster_config', 'overwrite', 'init_from', 'traceback', 'virtual_cpus']),
    'mixit-export': ('mixit.commands.export', ['model_dir', 'checkpoint', 'output_dir',
                                               'overwrite', 'litert', 'litert_window_seconds',
                                               'eval_summary']),
    'mixit-separate': ('mixit.commands.separate', [
        'saved_model', 'input', 'output_dir', 'max_chunk_seconds', 'overlap', 'drop_silent',
        'silence_db', 'output_sample_rate', 'output_subtype', 'overwrite', 'skip_bad',
        'progress']),
    # mixit-separate's flags (one definition); every other flag goes to Beam.
    'mixit-separate-beam': ('mixit.commands.separate_beam', [
        'saved_model', 'input', 'output_dir', 'max_chunk_seconds', 'overlap', 'drop_silent',
        'silence_db', 'output_sample_rate', 'output_subtype', 'overwrite', 'skip_bad',
        'progress']),
    'mixit-evaluate': ('mixit.commands.evaluate', [
        'saved_model', 'separated_dir', 'example_list', 'output_dir', 'label', 'compare',
        'batch_size', 'max_examples', 'skip_bad', 'baselines', 'progress', 'overwrite',
        'allow_outside_root']),
    'mixit-make-fuss': ('mixit.commands.make_fuss', [
        'output_dir', 'num_train', 'num_validation', 'num_eval', 'sample_rate',
        'clip_seconds', 'reverb', 'clips_dir', 'backgrounds_dir', 'split_fractions',
        'min_clip_seconds', 'seed']),
    'mixit-import-official': ('mixit.commands.import_official', [
        'checkpoint', 'output_dir', 'variant', 'sample_rate', 'window_seconds', 'hop_seconds',
        'num_dilations', 'mixture_consistency', 'overwrite']),
    'mixit-demo': ('mixit.commands.demo', ['output_dir', 'num_steps', 'num_train', 'num_eval',
                                           'seed', 'gin_param']),
}
GENERIC = ('--logtostderr', '--verbosity', '--alsologtostderr', '--test_srcdir', '--xml_output')
NOISE = ('oneDNN custom operations', 'cudart_stub', 'cuInit', 'absl::InitializeLog',
         'Sharding callback duration', 'unsupported characters', 'cpu_feature_guard')


def _env(**extra):
  env = dict(os.environ, **extra)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # conftest sets it; a user's shell has it unset.
  env.update(extra)
  return env


def _script(name):
  path = BIN / name
  if not path.exists():
    found = shutil.which(name)
    if not found:
      pytest.skip(f'{name} is not installed (pip install -e .)')
    path = pathlib.Path(found)
  return str(path)


def _flag_position(text, name):
  match = re.search(rf'^\s+--(\[no\])?{name}:', text, re.M)
  return match.start() if match else None


@pytest.mark.parametrize('how', ['script', 'module'])
@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_help_lists_the_commands_own_flags_first(script, how):
  module, own = SCRIPTS[script]
  cmd = [_script(script)] if how == 'script' else [sys.executable, '-m', module]
  for option in ('--help', '--helpfull'):
    result = subprocess.run(cmd + [option], capture_output=True, text=True, timeout=120,
                            cwd=REPO, env=_env())
    assert result.returncode == 1, result.stderr  # absl's exit status for --help, as before
    text = result.stdout
    assert 'USAGE:' not in text, text[:300]
    source = REPO.joinpath(*module.split('.')).with_suffix('.py').read_text(encoding='utf-8')
    assert ast.get_docstring(ast.parse(source)).splitlines()[0] in text  # the usage paragraph
    positions = {name: _flag_position(text, name) for name in own}
    assert all(p is not None for p in positions.values()), (option, positions, text[:2000])
    generic = [text.find(g + ':') for g in GENERIC if text.find(g + ':') >= 0]
    if option == '--help':
      assert not generic, text  # only the command's own flags
    else:
      assert max(positions.values()) < min(generic), (option, text[:3000])
    assert not [n for n in NOISE if n in result.stderr], result.stderr


def test_help_shows_the_docstring_and_defaults():
  # (Read without importing: the module defines absl flags that other tests' modules define.)
  source = (REPO / 'mixit' / 'commands' / 'make_fuss.py').read_text(encoding='utf-8')
  doc = ast.get_docstring(ast.parse(source))
  text = subprocess.run([_script('mixit-make-fuss'), '--help'], capture_output=True,
                        text=True, timeout=120, env=_env()).stdout
  assert doc.strip().splitlines()[0] in text
  assert doc.strip().splitlines()[2].strip() in text  # the usage line, backslash included
  block = text[_flag_position(text, 'num_train'):]
  assert "(default: '200')" in block.split('\n  --')[0]


def test_quiet_start_and_a_users_log_level_wins(tmp_path):
  """A real make-fuss + 2-step train: no TF start-up noise unless the user asks for it."""
  data = tmp_path / 'fuss'
  made = subprocess.run([_script('mixit-make-fuss'), f'--output_dir={data}', '--num_train=8',
                         '--num_validation=2', '--num_eval=0', '--sample_rate=8000',
                         '--clip_seconds=0.25'], capture_output=True, text=True, timeout=300,
                        env=_env())
  assert made.returncode == 0, made.stderr
  assert not [n for n in NOISE if n in made.stderr], made.stderr

  def train(model_dir, **env):
    args = [f'--model_dir={model_dir}'] + [f'--gin_file={f}' for f in TINY_GIN_FILES]
    args += [f'--gin_param={p}' for p in tiny_params(
        str(data), 'training.num_steps = 2', 'batch_size = 2', 'training.eval_every = 0',
        'training.checkpoint_every = 1')]
    return subprocess.run([_script('mixit-train')] + args, capture_output=True, text=True,
                          timeout=600, cwd=REPO, env=_env(**env))

  quiet = train(tmp_path / 'm1')
  assert quiet.returncode == 0, quiet.stderr
  assert not [n for n in NOISE if n in quiet.stderr], quiet.stderr
  assert 'nan steps/s' not in quiet.stderr + quiet.stdout
  assert re.search(r'step \d+/2', quiet.stderr + quiet.stdout)  # our own log lines remain
  # ... and still name the file and line that logged them.
  assert re.search(r'loop\.py:\d+\] saved ', quiet.stderr), quiet.stderr
  loud = train(tmp_path / 'm2', TF_CPP_MIN_LOG_LEVEL='0')
  assert loud.returncode == 0, loud.stderr
  assert 'oneDNN custom operations' in loud.stderr or 'cudart_stub' in loud.stderr, loud.stderr


def test_user_chose_log_level():
  from mixit.commands import cli
  saved = os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None)
  try:
    assert not cli.user_chose_log_level(['mixit-train', '--model_dir=x'])
    assert cli.user_chose_log_level(['mixit-train', '--verbosity=1'])
    assert cli.user_chose_log_level(['mixit-train', '-v', '1'])
    assert cli.user_chose_log_level(['mixit-train', '--verbosity', '-1'])
    assert not cli.user_chose_log_level(['mixit-train', '--', '--verbosity=1'])
    assert not cli.user_chose_log_level(['mixit-train', '--vmodule=x'])
    os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'
    assert cli.user_chose_log_level(['mixit-train'])
  finally:
    os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None)
    if saved is not None:
      os.environ['TF_CPP_MIN_LOG_LEVEL'] = saved


def test_verbosity_flag_brings_the_notices_back(tmp_path):
  result = subprocess.run([_script('mixit-export'), '--verbosity=0', '--model_dir',
                           str(tmp_path / 'none'), '--output_dir', str(tmp_path / 'e')],
                          capture_output=True, text=True, timeout=120, env=_env())
  assert result.returncode != 0
  assert 'cudart_stub' in result.stderr or 'oneDNN' in result.stderr, result.stderr
  quiet = subprocess.run([_script('mixit-export'), '--model_dir', str(tmp_path / 'none'),
                          '--output_dir', str(tmp_path / 'e')],
                         capture_output=True, text=True, timeout=120, env=_env())
  assert quiet.returncode == result.returncode
  assert not [n for n in NOISE if n in quiet.stderr], quiet.stderr
  assert quiet.stderr.strip()  # the error itself is still reported


def test_progress_line_has_a_real_rate_or_none():
  from mixit.training import loop
  progress = loop.Progress(num_steps=10)
  first = progress.line(1, {'loss': 1.0}, now=100.0)
  assert 'nan' not in first and 'steps/s' not in first and 'ETA' not in first
  assert first.startswith('step 1/10 (10.0%)')
  second = progress.line(3, {'loss': 0.5}, now=104.0)
  assert '0.50 steps/s' in second  # 2 steps in 4 s
  assert 'ETA' in second and 'nan' not in second


def test_import_mixit_has_no_side_effects(tmp_path):
  """Even in a process named like a command, `import mixit` neither imports TensorFlow nor
  touches stderr (the quiet start belongs to `mixit.commands`)."""
  script = tmp_path / 'mixit-train'
  script.write_text(
      'import os, sys\n'
      'before = os.fstat(2)\n'
      'import mixit\n'
      'after = os.fstat(2)\n'
      "print('tensorflow' in sys.modules, (before.st_ino, before.st_dev) == "
      "(after.st_ino, after.st_dev), os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n")
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=_env())
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ['False', 'True', 'None']
  assert result.stderr == ''


@pytest.mark.parametrize('script, args, expected', [
    ('mixit-make-fuss', ['--output_dir=/proc/nonexistent/x', '--num_train=1',
                         '--num_validation=0', '--num_eval=0', '--clip_seconds=0.1',
                         '--sample_rate=8000'], '/proc/nonexistent/x'),
    ('mixit-demo', ['--num_steps=-5', '--output_dir={tmp}/demo'], '--num_steps must be'),
    ('mixit-export', ['--model_dir={tmp}/none', '--output_dir={tmp}/e'], '{tmp}/none'),
    ('mixit-evaluate', ['--example_list={tmp}/none.txt', '--output_dir={tmp}/r',
                        '--separated_dir={tmp}'], 'none.txt'),
    ('mixit-separate', ['--saved_model={tmp}/none', '--input={tmp}', '--output_dir={tmp}/o'],
     '{tmp}/none'),
    ('mixit-import-official', ['--checkpoint={tmp}/none', '--output_dir={tmp}/o'],
     '{tmp}/none'),
    ('mixit-train', ['--model_dir={tmp}/m', '--gin_file={tmp}/none.gin'], 'none.gin'),
])
def test_every_command_fails_in_one_error_line(tmp_path, script, args, expected):
  args = [a.format(tmp=tmp_path) for a in args]
  result = subprocess.run([_script(script)] + args, capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=_env())
  assert result.returncode == 1, result.stderr[-2000:]
  lines = [line for line in result.stderr.splitlines() if line.startswith(f'{script}: error:')]
  assert len(lines) == 1, result.stderr[-2000:]
  assert expected.format(tmp=tmp_path) in lines[0]
  assert 'Traceback' not in result.stderr and ' at 0x' not in lines[0]

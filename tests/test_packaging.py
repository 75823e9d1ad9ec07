"""The installed package finds its gin configs (a clean `pip install .` once could not)."""
import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_gin_dir_holds_the_shipped_configs():
  from mixit import gin_config
  gin_dir = pathlib.Path(gin_config.package_gin_dir())
  for name in ['demo/synthetic_small.gin', 'models/tdcnpp_paper.gin',
               'papers/waspaa2021/mixit_m16_efficient_sparse_l1l2.gin']:
    assert (gin_dir / name).is_file(), name


@pytest.mark.slow
def test_wheel_ships_every_gin_file(tmp_path):
  """Builds the wheel and checks it holds mixit/gin/<every gin file>."""
  import zipfile
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                  '-w', str(tmp_path), str(REPO)], check=True, capture_output=True)
  wheel, = tmp_path.glob('mixit-*.whl')
  names = set(zipfile.ZipFile(wheel).namelist())
  expected = {'mixit/gin/' + str(p.relative_to(REPO / 'gin')).replace(os.sep, '/')
              for p in (REPO / 'gin').rglob('*.gin')}
  assert expected and expected <= names, sorted(expected - names)[:5]


def _pyproject():
  tomllib = pytest.importorskip('tomllib')
  return tomllib.loads((REPO / 'pyproject.toml').read_text(encoding='utf-8'))


def test_pyproject_declares_the_build_and_the_metadata():
  """PEP 517/621: a pinned build backend; dependencies, extras and scripts in [project]."""
  config = _pyproject()
  requires = config['build-system']['requires']
  assert config['build-system']['build-backend'] == 'setuptools.build_meta'
  assert len(requires) == 1 and re.fullmatch(r'setuptools==\d+(\.\d+)+', requires[0]), requires
  project = config['project']
  assert project['name'] == 'mixit' and project['requires-python'] == '>=3.10'
  names = {re.split(r'[<>=!~ ;\[]', d)[0].lower() for d in project['dependencies']}
  assert {'tensorflow', 'numpy', 'absl-py', 'gin-config', 'soundfile', 'soxr'} <= names
  assert {'test', 'tfio', 'beam'} <= set(project['optional-dependencies'])
  # mixit-separate-beam's Beam (with the Dataflow runner) is an extra: the base install has none.
  assert any(d.startswith('apache-beam[gcp]') for d in project['optional-dependencies']['beam'])
  assert not any('beam' in d for d in project['dependencies'])
  assert any(d.startswith('pytest') for d in project['optional-dependencies']['test'])
  scripts = project['scripts']
  assert set(scripts) == {'mixit-train', 'mixit-export', 'mixit-separate', 'mixit-separate-beam',
                          'mixit-evaluate', 'mixit-make-fuss', 'mixit-import-official',
                          'mixit-demo'}
  for target in scripts.values():  # every entry point names a real module-level function
    module_name, function = target.split(':')
    source = REPO.joinpath(*module_name.split('.')).with_suffix('.py')
    tree = ast.parse(source.read_text(encoding='utf-8'))
    assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, target


def test_setup_py_only_installs_the_gin_folder():
  """setup.py says nothing pyproject.toml says (one source of metadata)."""
  text = (REPO / 'setup.py').read_text(encoding='utf-8')
  for keyword in ('install_requires', 'extras_require', 'entry_points', 'name=', 'version=',
                  'python_requires'):
    assert keyword not in text, keyword
  assert "package_dir={'mixit.gin': 'gin'}" in text


@pytest.mark.slow
def test_isolated_build_is_the_same_every_time(tmp_path):
  """`pip wheel` in build isolation (the pinned setuptools) twice: the same files."""
  import zipfile
  listings = []
  for i in range(2):
    out = tmp_path / str(i)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-w', str(out),
                    str(REPO)], check=True, capture_output=True)
    wheel, = out.glob('mixit-*.whl')
    listings.append(sorted(zipfile.ZipFile(wheel).namelist()))
  assert listings[0] == listings[1]
  assert 'mixit/gin/models/tdcnpp_paper.gin' in listings[0]
  assert 'mixit/commands/make_fuss.py' in listings[0]

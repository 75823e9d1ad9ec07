"""The installed package finds its gin configs (a clean `pip install .` once could not)."""
import os
import pathlib
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

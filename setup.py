"""What pyproject.toml cannot say: the top-level gin/ folder is installed as `mixit.gin`.

The experiment configs live in gin/ (beside the packages, so that they read as
the paper's experiments) and are installed as the package data of `mixit.gin`,
so `--gin_file papers/...` works from any working directory. Everything else
(metadata, dependencies, extras, console scripts) is in pyproject.toml.
"""
import pathlib

import setuptools

_ROOT = pathlib.Path(__file__).parent
_GIN_FILES = sorted(str(p.relative_to(_ROOT / 'gin')) for p in (_ROOT / 'gin').rglob('*.gin'))
_PACKAGES = setuptools.find_packages(include=['mixit', 'mixit.*', 'data_pipeline',
                                              'data_pipeline.*', 'eval', 'eval.*'])

setuptools.setup(
    packages=_PACKAGES + ['mixit.gin'],
    package_dir={'mixit.gin': 'gin'},
    package_data={'mixit.gin': _GIN_FILES},
)

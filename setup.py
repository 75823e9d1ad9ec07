"""mixit: sparse, efficient and semantic mixture invariant training (TF2 / Keras 3)."""
import pathlib

import setuptools

_ROOT = pathlib.Path(__file__).parent
_GIN_FILES = sorted(str(p.relative_to(_ROOT / 'gin')) for p in (_ROOT / 'gin').rglob('*.gin'))

setuptools.setup(
    name='mixit',
    version='0.1.0',
    description=('Sparse, efficient and semantic mixture invariant training for '
                 'unsupervised universal sound separation (TF2 / Keras 3).'),
    long_description=(_ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    # The experiment configs live in the top-level gin/ folder and are installed
    # as the package data of `mixit.gin`, so `--gin_file papers/...` works from
    # any working directory.
    packages=setuptools.find_packages(include=['mixit', 'mixit.*', 'data_pipeline',
                                               'data_pipeline.*', 'eval', 'eval.*'])
    + ['mixit.gin'],
    package_dir={'mixit.gin': 'gin'},
    package_data={'mixit.gin': _GIN_FILES},
    install_requires=[
        'tensorflow>=2.16',
        'numpy',
        'scipy',
        'soundfile',
        'soxr',
        'absl-py',
        'gin-config',
        'matplotlib',
    ],
    extras_require={
        'test': ['pytest>=7', 'pytest-timeout', 'ai-edge-litert'],
        # On-device inference of an exported model.tflite (mixit-export --litert).
        'litert': ['ai-edge-litert'],
        # The tensorflow-io backend only works with the TF 2.16 stack.
        'tfio': ['tensorflow==2.16.2', 'tensorflow-io==0.37.1', 'numpy<2'],
    },
    entry_points={
        'console_scripts': [
            'mixit-train = mixit.train:run',
            'mixit-export = mixit.serving.export:run',
            'mixit-separate = mixit.serving.separate:run',
            'mixit-evaluate = eval.fuss:run',
            'mixit-make-fuss = data_pipeline.make_synthetic_fuss:run',
            'mixit-import-official = mixit.import_official:run',
            'mixit-demo = mixit.demo:run',
        ],
    },
)

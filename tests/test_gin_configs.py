"""Every shipped gin file parses and builds its network (and trainer where it has losses)."""
import pathlib

import gin
import pytest
import tensorflow as tf

from mixit import gin_config
from mixit import model as model_lib
from mixit.training import loop as train_loop  # noqa: F401  (registers precision / training)
from mixit.training import trainer as trainer_lib
from data_pipeline import inputs  # noqa: F401  (registers train_data / eval_data)

GIN_DIR = pathlib.Path(gin_config.package_gin_dir())
GIN_FILES = sorted(str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob('*.gin'))
PAPER_BASE = 'papers/waspaa2021/base.gin'
PAPER_FILES = [f for f in GIN_FILES if f.startswith('papers/') and f != PAPER_BASE]


# Experiment files are built with a shrunken core: their structure (M, front end,
# losses, data) is what they configure; the full-size models are built in test_model.py.
_SHRINK = ['network.bottleneck = 8', 'network.conv_channels = 16', 'network.num_repeats = 1',
           'network.num_dilations = 2', 'network.skip_from = []', 'network.skip_to = []']


def _parse(gin_file, shrink=False):
  params = ["DATA_ROOT = '/nonexistent'"] + (_SHRINK if shrink else [])
  if 'NUM_CLASSES = %gin.REQUIRED' in (GIN_DIR / gin_file).read_text():
    params.append('NUM_CLASSES = 6')
  gin_config.parse([gin_file], params)


def test_there_are_paper_variants():
  names = {pathlib.Path(f).stem for f in PAPER_FILES}
  for required in ['mixit_m4_exhaustive', 'mixit_m8_efficient', 'mixit_m16_efficient_sparse_l1l2',
                   'mixit_m32_efficient', 'mixit_m8_efficient_covariance',
                   'mixit_m8_efficient_classification', 'supervised_fuss_m4',
                   'semi_supervised_m8_efficient_sparse', 'wild_m8_efficient_sparse']:
    assert required in names


@pytest.mark.parametrize('gin_file', GIN_FILES)
def test_gin_file_parses_and_builds(gin_file):
  _parse(gin_file, shrink=gin_file.startswith('papers/'))
  try:
    network = model_lib.build_network()
    out = network(tf.zeros([1, 3000]))['separated_waveforms']
    assert out.shape[0] == 1 and out.shape[2] == 3000
    assert out.shape[1] == network.num_sources
    if gin_file.startswith(('papers/', 'demo/')):
      trainer = trainer_lib.build_trainer(network)
      assert trainer.network is network
  finally:
    gin.clear_config()


def test_paper_variant_settings():
  """The file names say what the files configure."""
  for gin_file in PAPER_FILES:
    _parse(gin_file)
    try:
      stem = pathlib.Path(gin_file).stem
      m = gin.query_parameter('%NUM_SOURCES')
      assert f'_m{m}_' in stem + '_', (gin_file, m)
      if 'mixit' in stem or 'wild' in stem or 'semi' in stem:
        method = gin.query_parameter('trainer.mixit_method')
        assert method == ('exhaustive' if 'exhaustive' in stem else 'least_squares'), gin_file
      sparse = 'sparse' in stem
      try:
        lam = gin.query_parameter('trainer.lambda_sparse')
      except ValueError:
        lam = 0.0
      assert (lam > 0) == sparse, gin_file
    finally:
      gin.clear_config()


def test_paper_files_share_one_base_and_one_batch_size():
  """The includes every paper config needs stand once, in papers/waspaa2021/base.gin, and
  validation batches follow the `batch_size` macro like training batches."""
  for gin_file in PAPER_FILES:
    assert f"include '{PAPER_BASE}'" in (GIN_DIR / gin_file).read_text(), gin_file
  gin_config.parse(['papers/waspaa2021/mixit_m8_efficient.gin'],
                   ["DATA_ROOT = '/nonexistent'", 'batch_size = 4'])
  try:
    for name in ('train_data', 'eval_data'):
      binding = gin.query_parameter(f'{name}.batch_size')
      assert binding.scoped_configurable_fn() == 4, name
      assert gin.query_parameter(f'{name}.data_root').scoped_configurable_fn() == '/nonexistent'
  finally:
    gin.clear_config()

r"""The one-command demo on the embedded default (`mixit-demo`).

    mixit-demo --output_dir demo_out [--num_steps 4000 --kinds varied --seed 0]

With no data present it writes a synthetic FUSS-format dataset, trains the small
TDCN++ (M = 8) with efficient MixIT + the paper's sparsity loss, exports it as a
SavedModel, evaluates that on the held-out eval split with the FUSS evaluator and
separates one eval mixture into one wav file per source (`mixit.demo.run_demo`),
then prints where each result is. Re-running resumes training where it stopped.
"""
from absl import app
from absl import flags

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from mixit import demo

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'demo_out', 'Where every result goes.')
_NUM_STEPS = flags.DEFINE_integer('num_steps', 4000, 'Training steps (batches of 8 MoMs).')
_NUM_TRAIN = flags.DEFINE_integer('num_train', 4000, 'Synthetic training examples.')
_NUM_EVAL = flags.DEFINE_integer('num_eval', 100, 'Synthetic held-out eval examples.')
_KINDS = flags.DEFINE_enum(
    'kinds', 'varied', ['varied', 'classic'],
    'The synthetic sound kinds: varied (voices, babble, music, animal calls, impacts, '
    'textures and the classic kinds) or classic (tones, chirps, bursts, clicks, AM/FM '
    'textures over stationary noise).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the data, the pipeline and the demo run.')
_GIN_PARAM = flags.DEFINE_multi_string('gin_param', [],
                                       "Extra gin bindings, e.g. 'trainer.lambda_sparse = 0.2'.")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for flag, least in ((_NUM_STEPS, 1), (_NUM_TRAIN, 2), (_NUM_EVAL, 1), (_SEED, 0)):
    if flag.value < least:
      raise ValueError(f'--{flag.name} must be at least {least}, got {flag.value}')
  demo.run_demo(_OUTPUT_DIR.value, num_train=_NUM_TRAIN.value, num_eval=_NUM_EVAL.value,
                num_steps=_NUM_STEPS.value, seed=_SEED.value, gin_params=_GIN_PARAM.value,
                kinds=_KINDS.value)
  return 0


def run() -> None:
  """Console script `mixit-demo`."""
  cli.run(main, __name__)


if __name__ == '__main__':
  run()

"""The `mixit-make-fuss` console script.

It lives here, not in `data_pipeline/make_synthetic_fuss.py`, because
`data_pipeline/` imports nothing of `mixit`: importing `mixit` first quiets
TensorFlow's start-up notices and `mixit.run_cli` makes `--help` list the
generator's own flags, exactly as `python -m data_pipeline.make_synthetic_fuss`.
"""
import mixit


def make_synthetic_fuss() -> None:
  """Console script `mixit-make-fuss` (`data_pipeline.make_synthetic_fuss.main`)."""
  from data_pipeline import make_synthetic_fuss as make  # pylint: disable=g-import-not-at-top
  mixit.run_cli(make.main, make.__name__)

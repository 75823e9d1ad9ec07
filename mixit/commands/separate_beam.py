"""Separates a whole archive with Apache Beam, on any runner (`mixit-separate-beam`).

    mixit-separate-beam --saved_model E --input FILE_FOLDER_GLOB_OR_LIST --output_dir O
        [mixit-separate's flags] [Beam pipeline options: --runner, --direct_num_workers, ...]

The flags listed below are mixit-separate's, with the same meaning and defaults (--progress:
one line per file in the workers' logs). Every other flag is a Beam pipeline option
(PipelineOptions): --runner (default DirectRunner), --direct_num_workers 2
--direct_running_mode multi_processing, --project, --region, --temp_location,
--setup_file, ... The outputs are mixit-separate's, bit for bit; a rerun skips the inputs
whose outputs are complete; the summary is printed and written to
<output_dir>/mixit_separate_beam.json. Needs the beam extra: pip install 'mixit[beam]'.
See mixit/serving/separate_beam.py and docs/commands.md.
"""
import json
import logging
import re
import sys
import time

from absl import app
from absl import flags

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
# mixit-separate's flags are this command's: one definition, the same help and defaults.
from mixit.commands import separate as separate_command

FLAGS = flags.FLAGS
MISSING_BEAM = ('mixit-separate-beam: error: Apache Beam is not installed; install the beam '
                'extra: pip install "mixit[beam]" (in a checkout: pip install ".[beam]")')


def beam_installed() -> bool:
  try:
    import apache_beam  # noqa: F401
  except ImportError:
    return False
  return True


def pipeline_options(args):
  """Beam's PipelineOptions of `args` (the flags absl did not take); an argument that is no
  option of Beam's (nor of the runner it names) is a usage error, not a silent no-op."""
  from apache_beam.options import pipeline_options as options_lib
  options = options_lib.PipelineOptions(args)
  unknown = _not_beam_options(args, options)
  if unknown:
    raise app.UsageError(
        f'unknown flag(s) {" ".join(unknown)}: neither mixit-separate-beam\'s (--help) nor a '
        'Beam pipeline option')
  return options


def _not_beam_options(args, options):
  from apache_beam.options import pipeline_options as options_lib
  try:
    # A runner registers its own options when its module is imported.
    from apache_beam.runners import runner as runner_lib
    runner_lib.create_runner(options.view_as(options_lib.StandardOptions).runner or
                             'DirectRunner')
  except (ValueError, ImportError, TypeError):
    pass  # an unknown runner: Beam names it when the pipeline is built
  try:
    parser = options_lib._BeamArgumentParser(allow_abbrev=False)  # Beam's own parser
    classes = {str(c): c for c in options_lib.PipelineOptions.__subclasses__()}
    for cls in classes.values():
      cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(args)
  except (AttributeError, TypeError):
    return []  # another Beam version: its own warning about unparseable arguments is left
  return unknown


# Beam's loggers whose lines a user of the command does not need (--verbosity shows them all):
# the local runners' relay of their workers' lines (SDK harness chatter, and our per-file
# --progress lines, which a cluster's worker logs keep), the worker's INFO lines when it runs
# in this process, the local runners' choice of runner and ports, and the traceback of a
# failing file, whose error is the command's one error line. The other runners' lines (a
# Dataflow job's state and address) stay.
_QUIET_LOGGERS = {
    'apache_beam.runners.portability.local_job_service': logging.CRITICAL,
    'apache_beam.runners.worker': logging.WARNING,
    'apache_beam.runners.worker.bundle_processor': logging.CRITICAL,
    'apache_beam.runners.common': logging.CRITICAL,
    'apache_beam.pipeline': logging.WARNING,
    'apache_beam.runners.direct': logging.WARNING,
    'apache_beam.runners.portability.prism_runner': logging.WARNING,
    'apache_beam.runners.portability.fn_api_runner': logging.WARNING,
}


def _quiet_beam() -> None:
  for name, level in _QUIET_LOGGERS.items():
    logging.getLogger(name).setLevel(level)


def error_line(error: BaseException) -> str:
  """One line for a failed run: a runner reports a file's error inside its own (with the
  workers' tracebacks as text, and "[while running 'Separate']"): that error's message."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if not lines:
    return type(error).__name__
  line = lines[0]
  for candidate in reversed(lines):
    match = re.match(r'[A-Za-z_][\w.]*(?:Error|Exception): (.+)$', candidate)
    if match:
      line = match.group(1)
      break
  line = re.sub(r" \[while running '[^']*'\]$", '', line)
  if len(lines) > 1 or isinstance(error, (ValueError, OSError, RuntimeError)):
    return line  # (RuntimeError: the output dir's lock held by another run, named)
  return cli.error_line(error)


def main(argv) -> None:
  if not beam_installed():
    print(MISSING_BEAM, file=sys.stderr)
    sys.exit(1)
  from mixit.serving import separate_beam
  options = pipeline_options(argv[1:])
  if not FLAGS['verbosity'].present:
    _quiet_beam()
  started = time.monotonic()
  try:
    summary = separate_beam.run(
        FLAGS.saved_model, FLAGS.input, FLAGS.output_dir, options, overwrite=FLAGS.overwrite,
        skip_bad=FLAGS.skip_bad, progress=FLAGS.progress,
        **separate_command.separation_options())
  except Exception as e:
    print(f'mixit-separate-beam: error: {error_line(e)}', file=sys.stderr)
    sys.exit(1)
  print(json.dumps(summary, indent=1))
  print(f'separated {summary["separated"]} file(s) ({summary["seconds_of_audio"] / 3600:.3f} '
        f'hours of audio), skipped {summary["skipped_complete"]} complete, '
        f'{summary["failed"]} failed, in {time.monotonic() - started:.1f} s wall time, into '
        f'{FLAGS.output_dir} (summary: {separate_beam.summary_path(FLAGS.output_dir)}, '
        f'manifest: {separate_beam.MANIFEST_FILENAME}, failures: '
        f'{separate_beam.FAILURES_FILENAME})', file=sys.stderr)
  if summary['failed']:
    print(f'{summary["failed"]} file(s) failed:', file=sys.stderr)
    for failure in summary['failures']:
      print(f'  {failure["error"]}', file=sys.stderr)
    sys.exit(1)


def run() -> None:
  """Console script `mixit-separate-beam`."""
  cli.run(main, __name__, flag_modules=(separate_command.__name__,), pass_unknown_flags=True)


if __name__ == '__main__':
  run()

"""mixit/progress.py: the one rate/ETA display (training log line, mixit-separate,
mixit-evaluate): a real rate or none, redrawn on a terminal, a line per tenth in a log."""
import io

from mixit import progress


class _Terminal(io.StringIO):

  def isatty(self):
    return True


def test_meter_has_a_real_rate_or_none():
  meter = progress.Meter(total=110)
  assert meter.rate() is None and meter.eta() is None and meter.suffix('steps') == ''
  meter.update(11, now=100.0)  # the first update starts the clock: still no rate
  assert meter.rate() is None and meter.suffix('steps') == ''
  meter.update(31, now=110.0)
  assert meter.rate() == 2.0 and meter.suffix('steps') == ' | 2.00 steps/s | ETA 0m40s'
  assert meter.rate(51, now=120.0) == 2.0  # as of another point, without recording it
  assert meter.done == 31
  assert progress.format_duration(3725) == '1h02m05s'
  assert progress.format_duration(float('nan')) == '?'


def test_bar_in_a_log_writes_a_line_per_tenth():
  stream = io.StringIO()
  bar = progress.Bar(100, 'examples', stream=stream)
  for done in range(1, 101):
    bar.update(done)
  bar.update(100, force=True)
  bar.finish()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 10, lines
  assert lines[0].startswith('[##') and ' 10/100 examples (10.0%)' in lines[0]
  assert lines[-1].startswith('[' + '#' * 20 + '] 100/100 examples (100.0%)')
  assert '\r' not in stream.getvalue() and 'nan' not in stream.getvalue()
  assert 'ETA ?' not in stream.getvalue()


def test_bar_on_a_terminal_redraws_in_place():
  stream = _Terminal()
  bar = progress.Bar(3, 'examples', prefix='eval', stream=stream, interval=0.0)
  bar.update(0, force=True)
  assert stream.getvalue() == '\reval [                    ] 0/3 examples (0.0%)\033[K'
  bar.update(3)
  bar.finish('done')
  text = stream.getvalue()
  assert '\n' not in text[:-len('\r\033[Kdone\n')] and text.endswith('\r\033[Kdone\n')
  assert 'examples/s | ETA 0m00s' in text


def test_disabled_or_log_lines_zero_is_quiet():
  stream = io.StringIO()
  bar = progress.Bar(10, 's', enabled=False, stream=stream)
  bar.update(10, force=True)
  bar.finish('done')
  quiet = progress.Bar(10, 's', prefix='[1/1] a.wav', stream=stream, log_lines=0)
  quiet.update(5)
  quiet.update(10, force=True)
  assert stream.getvalue() == ''
  quiet.finish('[1/1] a.wav: 4 sources')
  assert stream.getvalue() == '[1/1] a.wav: 4 sources\n'

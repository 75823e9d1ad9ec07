"""Progress with a rate and an ETA: the one implementation behind the training log line,
`mixit-separate` and `mixit-evaluate`.

- `Meter(total)`: the rate and ETA of `total` units of work, timed from its first `update`
  (so that training's first logged step, which includes tracing, is not timed). `rate` and
  `eta` are None until there is a real figure, and `suffix(unit)` is then
  `' | 2.00 steps/s | ETA 0m40s'` (before: empty, never `nan steps/s` or `ETA ?`).
- `Bar(total, unit)`: a progress bar with rate and ETA on stderr, redrawn in place (at most
  every `interval` seconds) on a terminal; when stderr is not a terminal (a log file), one
  line per tenth of the work (`log_lines` lines in all; 0: none).
- `format_duration(seconds)`: `'1h02m05s'`, `'0m40s'`.

Imports nothing of the package (eval may import it) and nothing outside the standard library.
"""
import math
import sys
import time
from typing import Callable, Optional


def format_duration(seconds: float) -> str:
  """`'1h02m05s'`, or `'0m40s'` under an hour; `'?'` for an infinite or NaN duration."""
  if not math.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s' if hours else f'{minutes}m{seconds:02d}s'


class Meter:
  """Rate and ETA of `total` units of work, timed from the first `update`."""

  def __init__(self, total: float, clock: Callable[[], float] = time.monotonic):
    self.total = total
    self.done = 0
    self._clock = clock
    self._origin = None  # (done, time) of the first update
    self._time = None  # time of the last update

  def update(self, done: float, now: Optional[float] = None) -> None:
    """Records that `done` units are done at `now` (default: the clock)."""
    now = self._clock() if now is None else now
    if self._origin is None:
      self._origin = (done, now)
    self.done, self._time = done, now

  def rate(self, done: Optional[float] = None, now: Optional[float] = None) -> Optional[float]:
    """Units per second from the first update to the last one, or to `done` at `now` (default:
    the clock); None until both the work and the time have grown."""
    if self._origin is None:
      return None
    if done is None:
      done, now = self.done, self._time
    elif now is None:
      now = self._clock()
    units, seconds = done - self._origin[0], now - self._origin[1]
    return units / seconds if units > 0 and seconds > 0 else None

  def eta(self) -> Optional[float]:
    """Seconds left at the rate so far (None without a rate)."""
    rate = self.rate()
    return max(self.total - self.done, 0) / rate if rate else None

  def suffix(self, unit: str) -> str:
    """`' | <rate> <unit>/s | ETA <duration>'`, or '' while there is no rate."""
    rate = self.rate()
    if rate is None:
      return ''
    return f' | {rate:.2f} {unit}/s | ETA {format_duration(self.eta())}'


class Bar:
  """`prefix [#####     ] done/total unit (x%) | rate unit/s | ETA ...` on `stream` (stderr).

  On a terminal the line is redrawn in place, at most every `interval` seconds (always when
  `force` or when the work is done); otherwise one line is written per `1/log_lines` of the
  work (none with `log_lines=0`). Timing starts when the bar is made. Disabled: writes nothing.
  """

  def __init__(self, total: float, unit: str, prefix: str = '', enabled: bool = True,
               stream=None, interval: float = 0.5, log_lines: int = 10, width: int = 20):
    self.prefix = prefix
    self.meter = Meter(total)
    self.meter.update(0)
    self._unit = unit
    self._enabled = enabled
    self._stream = stream or sys.stderr
    self._tty = enabled and hasattr(self._stream, 'isatty') and self._stream.isatty()
    self._interval = interval
    self._log_lines = log_lines
    self._width = width
    self._drawn = None  # time of the last redraw (terminal)
    self._next_line = total / log_lines if log_lines else math.inf  # (log)
    self._logged = None  # `done` of the last line written (log)

  def line(self) -> str:
    """The progress line as of the last update."""
    done, total = self.meter.done, self.meter.total
    fraction = min(done / total, 1.0) if total > 0 else 1.0
    bar = '#' * int(round(self._width * fraction))
    head = f'{self.prefix} ' if self.prefix else ''
    return (f'{head}[{bar:<{self._width}}] {done:.0f}/{total:.0f} {self._unit} '
            f'({100 * fraction:.1f}%){self.meter.suffix(self._unit)}')

  def update(self, done: float, force: bool = False) -> None:
    if not self._enabled:
      return
    self.meter.update(done)
    if self._tty:
      now = time.monotonic()
      if (not force and done < self.meter.total and self._drawn is not None
          and now - self._drawn < self._interval):
        return
      self._drawn = now
      self._write(f'\r{self.line()}\033[K')
    elif self._log_lines and done != self._logged and (
        done >= self._next_line or (force and done >= self.meter.total)):
      self._logged = done
      while self._next_line <= done:
        self._next_line += self.meter.total / self._log_lines or math.inf
      self._write(self.line() + '\n')

  def finish(self, message: Optional[str] = None) -> None:
    """Ends the bar: `message` (if any) replaces it; without one a terminal keeps the last
    drawn line."""
    if not self._enabled:
      return
    if message is not None:
      self._write(('\r\033[K' if self._tty else '') + message + '\n')
    elif self._tty and self._drawn is not None:
      self._write('\n')

  def _write(self, text: str) -> None:
    self._stream.write(text)
    self._stream.flush()

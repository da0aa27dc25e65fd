"""Progress and log lines of the command-line tools: a bar on a terminal, plain lines elsewhere.

On a terminal a tool shows a tqdm bar and writes its messages above it
(through tqdm, so that the bar is not broken); in a log file or a pipe it
shows no bar and writes each message as one line on stderr, flushed, with a
count now and then. Every tool's progress goes through here.
"""
import sys


def log_line(line):
    """Writes one message line on stderr, flushed."""
    print(line, file=sys.stderr, flush=True)


class Bar:
    """A progress bar when stderr is a terminal; nothing drawn otherwise.

    Args:
      total: how many units in all.
      unit: what a unit is ("photo", "video", "step").
      desc: an optional label before the bar.
      leave: keep the finished bar on the screen.

    Attributes:
      interactive: stderr is a terminal (the bar is drawn).
    """

    def __init__(self, total, unit, desc=None, leave=True):
        from tqdm import tqdm

        self.interactive = sys.stderr.isatty()
        self._bar = tqdm(total=total, unit=unit, desc=desc, leave=leave,
                         disable=not self.interactive)

    def log(self, line):
        """Writes one message line: above the bar, or on stderr without one."""
        if self.interactive:
            self._bar.write(line)
        else:
            log_line(line)

    def advance(self, n=1):
        """Counts n more units done."""
        self._bar.update(n)

    def show(self, done, **postfix):
        """Sets the units done and the values after the bar (e.g. loss), and redraws."""
        self._bar.n = done
        self.postfix(**postfix)
        self._bar.refresh()

    def postfix(self, **values):
        """Sets the values shown after the bar (drawn at the bar's next refresh)."""
        self._bar.set_postfix(values, refresh=False)

    def close(self):
        self._bar.close()


def photo_progress(total, label=None):
    """(log, progress, close) for a folder of photos: a bar, or "[k/total]" lines every 8.

    Args:
      total: the photos.
      label: an image set's name, or None.
    """
    bar = Bar(total, "photo", label or None)
    finished = [0]

    def progress(n):
        bar.advance(n)
        finished[0] += n
        if not bar.interactive and (finished[0] % 8 == 0 or finished[0] == total):
            suffix = f" ({label})" if label else ""
            log_line(f"[{finished[0]}/{total}] photos processed{suffix}")

    return bar.log, progress, bar.close


def fit_progress(steps):
    """A fit's progress per batch: a bar (steps, loss), or one line when the batch is done.

    Returns:
      callable(batch size) -> callable(steps done, steps in all, total loss),
      the `progress` of `fitting.photo_fit.PhotoRefiner`.
    """
    interactive = sys.stderr.isatty()

    def start(batch_size):
        first = []
        bar = Bar(steps, "step", f"refining {batch_size}", leave=False) if interactive else None

        def report(done, total, loss):
            if not first:
                first.append(loss)
            if bar is not None:
                bar.show(done, loss=f"{loss:.4g}")
            if done == total:
                if bar is not None:
                    bar.close()
                else:
                    log_line(f"[refine] {batch_size} photos: {total} steps, loss {first[0]:.4g} "
                             f"-> {loss:.4g}")
        return report
    return start

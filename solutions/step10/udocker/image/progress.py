"""What a pull tells the user, on stderr (stdout belongs to the container under `run`).

On a terminal each layer has a line that counts its bytes as they arrive;
elsewhere (a log, a test) each layer gets one line when it is done.
"""
import sys
import time


def human(size):
    """1234567 -> '1.2MB' (decimal units, as docker prints sizes)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000


class Progress:
    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def say(self, text):
        print(text, file=self.stream, flush=True)

    def layer(self, digest, size):
        return LayerProgress(self, digest[len("sha256:"):][:12], size)


class LayerProgress:
    """Counts the bytes of one layer; a reader wrapper (.wrap) feeds it."""

    def __init__(self, progress, name, total):
        self.progress = progress
        self.name = name
        self.total = total
        self.count = 0
        self.shown = 0.0

    def wrap(self, source):
        layer = self

        class Counting:
            def read(self, n=-1):
                data = source.read(n)
                layer.advance(len(data))
                return data

        return Counting()

    def advance(self, n):
        self.count += n
        now = time.monotonic()
        if self.progress.tty and now - self.shown > 0.1:
            self.shown = now
            total = f" / {human(self.total)}" if self.total else ""
            self.progress.stream.write(f"\r{self.name}: downloading {human(self.count)}{total}\033[K")
            self.progress.stream.flush()

    def done(self, note):
        end = "\r" if self.progress.tty else ""
        self.progress.stream.write(f"{end}{self.name}: {note}" + ("\033[K\n" if self.progress.tty else "\n"))
        self.progress.stream.flush()

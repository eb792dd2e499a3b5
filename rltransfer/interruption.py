"""How an experiment stops on Ctrl-C or SIGTERM: whatever it is doing, the work in flight ends, the
manifest says "interrupted", and the user is told what is kept and how to resume."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltransfer.errors import Interrupted
from rltransfer.records.experiment_manifest import ExperimentManifest


@dataclass
class Interruption:
    """An experiment's answer to Ctrl-C or SIGTERM at the point it has reached (:func:`interruptible`)."""

    stop: Callable[[], None]
    """Ends what is in flight (the pool's workers, the grid's runs) and records it in the manifest."""
    said: Callable[[str], str]
    """What is kept and how to resume, given " by SIGTERM" or ""."""
    seen: str | None = None
    """The signal's name once one arrived."""

    @contextmanager
    def during(self, stop: Callable[[], None], said: Callable[[str], str]) -> Iterator[Interruption]:
        """A phase with its own ``stop`` and ``said``; the experiment's answer is back when the phase ends
        (not when an interrupt ends it: that interrupt is answered by the phase's)."""
        previous = self.stop, self.said
        self.stop, self.said = stop, said
        yield self
        self.stop, self.said = previous


@contextmanager
def interruptible(manifest: ExperimentManifest, run_dir: Path, said: Callable[[str], str]) -> Iterator[Interruption]:
    """The one way an experiment stops on Ctrl-C or SIGTERM: in the scope, either signal raises
    KeyboardInterrupt (SIGTERM, from ``kill`` or a cluster's scheduler, is stopped like Ctrl-C, so the
    manifest says the experiment was interrupted instead of a stale "running"); on the way out the phase's
    ``stop`` runs, the manifest says "interrupted", and :class:`~rltransfer.errors.Interrupted` says what
    is kept and how to resume (``said``, or a phase's: :meth:`Interruption.during`).

    An error raised once a signal arrived is the interrupt too: library code that calls back into Python
    (pydantic serialising the manifest through a function of ours, torch building a tensor from Python
    objects) reports the KeyboardInterrupt raised inside it as an error of its own. Signals are taken only
    in the main thread, and only where they have their default handler (SIGINT ignored by a shell that
    started us in the background stays ignored; a handler of the caller's is left alone)."""
    interruption = Interruption(stop=lambda: None, said=said)
    defaults: dict[signal.Signals, Any] = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    main = threading.current_thread() is threading.main_thread()
    ours = [sig for sig, default in defaults.items() if main and signal.getsignal(sig) is default]

    def handler(signum: int, frame: object) -> None:
        interruption.seen = signal.Signals(signum).name
        raise KeyboardInterrupt

    for sig in ours:
        signal.signal(sig, handler)
    try:
        yield interruption
    except (KeyboardInterrupt, Exception) as err:
        if not isinstance(err, KeyboardInterrupt) and interruption.seen is None:
            raise
        interruption.stop()
        manifest.end("interrupted")
        manifest.write(run_dir)
        how = " by SIGTERM" if interruption.seen == "SIGTERM" else ""
        raise Interrupted(interruption.said(how), interruption.seen) from None
    finally:
        for sig in ours:
            signal.signal(sig, defaults[sig])

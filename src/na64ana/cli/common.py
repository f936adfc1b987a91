"""Options shared by the subcommands, so that they mean the same everywhere, and logging setup."""

from __future__ import annotations

import _thread
import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def add_campaign(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", default="datasets.json", help="datasets file (default: %(default)s)")
    p.add_argument("--campaign", default=None, help="campaign in the datasets file (default: its default)")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN", help="runs to use (default: all)")


def add_out(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--out", default=default, required=default is None, help="output folder")


def add_seed(p: argparse.ArgumentParser, default: int = 2019) -> None:
    p.add_argument("--seed", type=int, default=default, help="random seed (default: %(default)s)")


def add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("iterative", "futures", "dask"), default="iterative",
                   help="coffea executor (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="processes for futures/dask (default: %(default)s)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="address of an existing dask scheduler (implies --executor dask)")
    from ..processing.execute import DEFAULT_CHUNKSIZE

    p.add_argument("--chunksize", type=int, default=DEFAULT_CHUNKSIZE,
                   help="events per chunk (default: %(default)s)")


CACHE_SUBDIR = ".cache"


def add_cache(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cache", default=None, metavar="DIR",
                   help=f"chunk cache folder: chunks already processed with the same input content, "
                        f"selection and code are reused, so re-running an interrupted command resumes it "
                        f"(default: OUT/{CACHE_SUBDIR})")
    g.add_argument("--no-cache", action="store_true", help="process every chunk, store nothing")


def cache_dir(args: argparse.Namespace, outdir: str | Path) -> Path | None:
    """The chunk cache folder the options of :func:`add_cache` ask for (None: no cache)."""
    if args.no_cache:
        return None
    return Path(args.cache) if args.cache else Path(outdir) / CACHE_SUBDIR


@contextlib.contextmanager
def reliable_interrupt() -> Iterator[None]:
    """Make Ctrl-C stop the guarded call even when its KeyboardInterrupt lands in a finalizer.

    Python raises KeyboardInterrupt wherever the main thread is; inside a ``__del__`` (uproot closes files
    in one, and the processors collect garbage every chunk) it is only printed ("Exception ignored") and
    the run went on to completion (~1 interrupt in 15). Such a swallowed interrupt is delivered again
    shortly after, and if the call still returns normally it raises KeyboardInterrupt on exit, so an
    interrupted run never writes outputs as if it had completed.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # SIGINT ignored or handled by someone else: leave it alone
        return
    swallowed: list[threading.Timer] = []
    previous = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            timer = threading.Timer(0.01, _thread.interrupt_main)  # re-deliver outside the finalizer
            timer.daemon = True
            swallowed.append(timer)
            timer.start()
            return  # handled: no "Exception ignored" traceback for the user
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
        for timer in swallowed:
            timer.cancel()
    if swallowed:
        raise KeyboardInterrupt


def add_unblind(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unblind", action="store_true",
                   help="reveal the signal box (recorded in provenance); default: blinded")


def show_progress() -> bool:
    """Rich progress bars only on an interactive terminal and never in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI") and not os.environ.get("NA64ANA_NO_PROGRESS")


def _may_write(folder: Path) -> bool:
    """The log may go into ``folder``: new, empty, ours (marker) or assembled from our stage folders.
    A foreign folder gets no log file: the stage refuses it (OutputError) and nothing of ours is left."""
    from ..bookkeeping.provenance import MARKER

    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    return (folder / MARKER).exists() or not any(p.name != "logs" for p in folder.iterdir()) \
        or any(folder.glob(f"*/{MARKER}"))


def setup_logging(outdir: str | Path | None, name: str) -> logging.Logger:
    """Log INFO to stderr and DEBUG to ``outdir/logs/<name>.log``."""
    logger = logging.getLogger("na64ana")
    logger.setLevel(logging.DEBUG)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if outdir is not None and _may_write(Path(outdir)):
        logdir = Path(outdir) / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(logdir / f"{name}.log", mode="w")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(fh)
    return logger

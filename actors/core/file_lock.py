"""One writer of an output file at a time: an exclusive ``flock`` taken without waiting (a run's journal,
actors/run/journal.py; a check's results, cli/_results.py). The lock is held until the descriptor is closed, or its
process ends."""

from __future__ import annotations


def lock_exclusively(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting. False when another holder has it; True when it is
    held, or where the file system has no ``flock`` (some network file systems): there is no guard there."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True

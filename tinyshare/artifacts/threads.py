"""How many threads torch uses for a block of work.

Batch-1 graphs of tiny models run op by op. Their ops are too small to split, so with more
threads each op mostly waits for the threads' hand-off, and that wait stalls whenever
another process holds a core. On the 2-core development machine, the digits PT2E graph on
its 360 test samples took 1.1 s on one thread and 1.0 s on two when idle, but 1.5 s on one
against 4.7 s on two beside one busy 2-thread process (a one-off measurement, recorded in
issue 8's note); calibration's histogram observers are about 30x slower on two threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count.

    The count is process-wide: do not use it where other threads run torch work at the
    same time.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

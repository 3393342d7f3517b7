"""An autouse fixture for modules of small-model tests: one torch thread.

On the shared 2-core test machine, two intra-op threads under load spin-wait on each
other (measured: a 3-epoch PGD training loop on digits took 58 s with 2 threads and 1.4 s
with 1). Tiny models gain nothing from a second thread, so these modules use one and
restore the previous setting afterwards. Import the fixture into a test module to use it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Run the module's tests with ``torch.set_num_threads(1)``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

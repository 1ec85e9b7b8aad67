"""Turn our user-facing errors into one line and a clean exit inside nnU-Net's own commands.

Trainers run inside ``nnUNetv2_train``, whose ``main`` we do not own: an exception there prints a long traceback.
For problems the user must fix (a missing teacher, a bad spec file), :func:`exit_on_user_error` prints one line,
``nnunet_kd: error: <message>``, and exits with status 2 before any training starts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from nnunet_kd.errors import NnunetKdError


@contextmanager
def exit_on_user_error(context: str) -> Iterator[None]:
    """Inside the block, :class:`NnunetKdError` becomes ``SystemExit(2)`` with a one-line message on stderr."""
    try:
        yield
    except NnunetKdError as error:
        print(f"nnunet_kd: error: {context}: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

"""User-facing errors, and how they reach the user.

Every problem that a user can fix (bad input, missing environment, impossible request) is raised as
:class:`NnunetKdError` with one message that names the case or the setting and the problem. The ``nnunet_kd``
command prints that message without a traceback; inside nnU-Net's own commands (whose ``main`` we do not own) the
trainers wrap their checks in :func:`exit_on_user_error`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class NnunetKdError(Exception):
    """A problem with the user's input or environment, reported as one clear message."""


class InputError(NnunetKdError):
    """Bad input data (a case, a file, a dataset) — the message names it."""


class ConfigurationError(NnunetKdError):
    """A setting, environment variable or plans configuration that cannot work."""


@contextmanager
def exit_on_user_error(context: str) -> Iterator[None]:
    """Inside the block, :class:`NnunetKdError` becomes ``SystemExit(2)`` with one line on stderr,
    ``nnunet_kd: error: <context>: <message>``, instead of ``nnUNetv2_train``'s traceback."""
    try:
        yield
    except NnunetKdError as error:
        print(f"nnunet_kd: error: {context}: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

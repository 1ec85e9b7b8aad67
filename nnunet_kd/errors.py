"""User-facing errors.

Every problem that a user can fix (bad input, missing environment, impossible request) is raised as
:class:`NnunetKdError` with one message that names the case or the setting and the problem. The ``nnunet_kd``
command prints that message without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class NnunetKdError(Exception):
    """A problem with the user's input or environment, reported as one clear message."""


class InputError(NnunetKdError):
    """Bad input data (a case, a file, a dataset) — the message names it."""


class ConfigurationError(NnunetKdError):
    """A setting, environment variable or plans configuration that cannot work."""

"""A logging filter that masks identity-card (and mobile) numbers in every log record.

The case database stores identity-card numbers whole (cadres need them); logs must never
contain them. The engines never echo SQL parameters, but handlers may log case fields or
exceptions that quote user input, so attach this filter to the log *handlers*: filters on a
logger do not see records propagated from child loggers, filters on handlers see them all.
"""

from __future__ import annotations

import logging

from cadrebot.handlers.masking import mask_sensitive

_exception_formatter = logging.Formatter()


class SensitiveDataFilter(logging.Filter):
    """Rewrites each record's message, exception text and stack with numbers masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = mask_sensitive(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_sensitive(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_sensitive(record.stack_info)
        return True


def install_sensitive_data_filter(logger: logging.Logger | None = None) -> SensitiveDataFilter:
    """Attach one :class:`SensitiveDataFilter` to every handler of ``logger`` (root by default).

    Call it after logging is configured; handlers added later need ``addFilter`` themselves.
    """
    target = logger if logger is not None else logging.getLogger()
    masking_filter = SensitiveDataFilter()
    for handler in target.handlers:
        if not any(isinstance(f, SensitiveDataFilter) for f in handler.filters):
            handler.addFilter(masking_filter)
    return masking_filter


def mask_records_of(logger: logging.Logger) -> None:
    """Mask every record *created by* ``logger`` itself (idempotent).

    For third-party loggers that may log data rows, e.g. ``sqlalchemy.engine.Engine``, which
    logs result rows when an operator turns its level to DEBUG.
    """
    if not any(isinstance(f, SensitiveDataFilter) for f in logger.filters):
        logger.addFilter(SensitiveDataFilter())


def mask_exception_args(error: BaseException) -> None:
    """Mask identifiers in an exception's message arguments, in place.

    PostgreSQL quotes row data in error details ("Failing row contains (..., {"身份证号":
    ...})"); masking the exception itself keeps the number out of every traceback, whoever
    logs it and however.
    """
    if error.args:
        error.args = tuple(mask_sensitive(a) if isinstance(a, str) else a for a in error.args)

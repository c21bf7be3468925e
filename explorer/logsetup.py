"""Debug log to a file, with every known secret and secret-looking value redacted."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
from collections.abc import Iterable
from pathlib import Path

_PATTERNS = [
    re.compile(r"(?i)((?:api[_-]?key|token|secret|authorization|password)=)[^&\s]+"),
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:x-cg-(?:demo|pro)-api-key|token|authorization)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',}]+"
    ),
]
REDACTED = "[redacted]"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets replaced; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        """Replace known secret values and secret-looking assignments."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Freeze the formatted message, redacted, into the record."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates the log (and each one after a rotation) as 0600: hosts and errors are private."""

    def _open(self) -> io.TextIOWrapper:  # logging's own hook for (re)opening the file
        stream = open(  # the handler owns and closes the stream
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=lambda name, flags: os.open(name, flags, 0o600),
        )
        assert isinstance(stream, io.TextIOWrapper)  # the handler's modes are text ("a", "w")
        return stream


def setup_logging(path: Path, secrets: Iterable[str] = ()) -> None:
    """Log DEBUG and up to ``path`` (rotated at 1 MiB x 3); httpx and httpcore at WARNING."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = PrivateRotatingFileHandler(path, maxBytes=1 << 20, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, logging.handlers.RotatingFileHandler):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for noisy in ("httpx", "httpcore", "asyncio", "markdown_it"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""A fast, strict parser of the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.

Exporter bodies come from machines we do not control, so the parse is all or nothing: any
malformed line, any limit exceeded, or (for OpenMetrics) a missing ``# EOF`` raises
:class:`ExpositionError` and no sample is returned. See ``docs/parser.md`` for what is accepted
and refused, and why this is not ``prometheus_client.parser``.

Two tiers, one grammar. The fast tier matches the whole body with one compiled regex that only
knows the canonical layout every client library writes (``name{a="b",c="d"} value``, one
space, ``# HELP``/``# TYPE``): ``findall`` runs in C and hands back one tuple per sample line,
comment lines are consumed inside the match, and the tuples become samples through ``map``,
with no Python loop per line. Anything the fast tier does not recognise (extra whitespace,
escapes, timestamps, exemplars, long lines, a malformed line) sends that slice of the body to
the exact tier, which implements the whole grammar and the limits line by line and says what
is wrong. The fast tier accepts a subset of what the exact tier accepts, so the result never
depends on which tier ran. Every pattern is linear: possessive quantifiers and unrolled
quoted-string loops leave nothing to backtrack into.
"""

from __future__ import annotations

import functools
import gc
import re
from itertools import repeat
from typing import NamedTuple

from sources.text import safe_text

__all__ = ["ExpositionError", "Sample", "parse_exposition"]

_EXCERPT = 60
# Bodies are matched in slices of about this many characters, cut at line ends, so that the
# sample cap stops a huge body early and the per-slice tuple list stays small.
_CHUNK = 1 << 18


class Sample(NamedTuple):
    """One sample line: metric name, label set and value (NaN and ±Inf kept as floats)."""

    name: str
    labels: dict[str, str]
    value: float


class ExpositionError(ValueError):
    """A body that must be rejected whole.

    ``reason`` is one of ``parse``, ``truncated``, ``sample_limit``, ``line_too_long``,
    ``label_limit``, ``label_name_too_long`` or ``label_value_too_long``; ``line`` is the 1-based
    line number when one line is to blame. The message is one line and quotes at most a
    sanitised 60-character excerpt of the body.
    """

    def __init__(self, message: str, *, reason: str = "parse", line: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.line = line


# --- patterns ----------------------------------------------------------------------------------

_METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*+"
# A quoted label value, unrolled (no nested quantifier to backtrack); never crosses a line end.
# Lone surrogates are refused: they cannot be encoded, so they cannot be stored.
_QUOTED = r'"[^"\\\n\ud800-\udfff]*+(?:\\[^\n\ud800-\udfff][^"\\\n\ud800-\udfff]*+)*+"'
_PAIR = rf"{_LABEL}[ \t]*+=[ \t]*+{_QUOTED}[ \t]*+"
# The inside of a label set: pairs separated by commas, an optional trailing comma.
_LABELS = rf"[ \t]*+(?:{_PAIR}(?:,[ \t]*+{_PAIR})*+(?:,[ \t]*+)?)?"
# Go's ParseFloat forms without hex or underscores: NaN is unsigned, Inf may be signed.
_VALUE = (
    r"[+-]?(?:(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)|[nN][aA][nN]"
)
_TIMESTAMP = r"-?[0-9]++(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?"
# Longest first and closed by a lookahead: the comment patterns are atomic, so "gauge" must not
# win over "gaugehistogram" and then fail.
_TYPES = (
    r"(?:gaugehistogram|counter|gauge|histogram|summary|untyped|unknown|stateset|info)"
    r"(?![a-zA-Z0-9_])"
)

# Text 0.0.4: "# HELP name ..." and "# TYPE name type" must be well formed; any other comment
# is free text. OpenMetrics allows only HELP, TYPE and UNIT (and the final EOF, cut off first).
_META_TEXT = (
    rf"[ \t]*+#(?:[ \t]*+HELP[ \t]++{_METRIC}(?:[ \t][^\n]*+)?"
    rf"|[ \t]*+TYPE[ \t]++{_METRIC}[ \t]++{_TYPES}[ \t]*+"
    r"|(?![ \t]*+(?:HELP|TYPE)[ \t])[^\n]*+)"
)
_META_OM = (
    rf"#[ \t]++(?:HELP[ \t]++{_METRIC}(?:[ \t][^\n]*+)?"
    rf"|TYPE[ \t]++{_METRIC}[ \t]++{_TYPES}[ \t]*+"
    rf"|UNIT[ \t]++{_METRIC}(?:[ \t]++[a-zA-Z0-9_:]*+)?[ \t]*+)"
)
_EXEMPLAR = rf"(?:[ \t]++#[ \t]++\{{{_LABELS}\}}[ \t]++(?:{_VALUE})(?:[ \t]++{_TIMESTAMP})?)?"


def _body_pattern(meta: str, exemplar: str) -> re.Pattern[str]:
    # Skipped lines (comments, blanks), then one sample line, or else the bad line itself.
    # Groups: 1 name, 2 label set (inside the braces), 3 value, 4 a line that is not valid.
    # Every attempt succeeds at a line start (the bad-line branch takes anything), so findall
    # walks the body line by line without skipping.
    return re.compile(
        rf"(?:(?:{meta})?+[ \t]*+\n)*+"
        rf"(?:[ \t]*+({_METRIC})(?:[ \t]*+\{{({_LABELS})\}}[ \t]*+|[ \t]++)({_VALUE})"
        rf"(?:[ \t]++{_TIMESTAMP})?{exemplar}[ \t]*+\n"
        r"|([^\n]*+)\n|\Z)"
    )


_BODY_TEXT = _body_pattern(_META_TEXT, "")
_BODY_OM = _body_pattern(_META_OM, _EXEMPLAR)
_PAIRS = re.compile(rf"({_LABEL})[ \t]*+=[ \t]*+\"([^\"\\\n]*+(?:\\[^\n][^\"\\\n]*+)*+)\"")
_EOF_LINE = re.compile(r"^# EOF[ \t]*$", re.MULTILINE)
# Pieces used only to explain a bad line (the slow path).
_NAME_AT = re.compile(rf"[ \t]*({_METRIC})")
_LABELS_AT = re.compile(rf"\{{{_LABELS}\}}")
_VALUE_AT = re.compile(rf"[ \t]*+({_VALUE})(?=[ \t]|$)")

# --- the fast tier's patterns: canonical layout only, a subset of the grammar above ----------
# Bounded runs keep every line the fast tier accepts under max_line (the label set is measured
# after the match), so it needs no separate line-length pass.
_FAST_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]{0,200}+"
_FAST_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*+)="([^"]*+)"')
# Python's float() takes this where Go's ParseFloat does not (underscores are checked apart).
_SIGNED_NAN = re.compile(r"[+-][nN]")
_FAST_MIN_LINE = 4096


@functools.lru_cache(maxsize=16)
def _fast_pattern(openmetrics: bool, line_chars: int, max_label_name: int) -> re.Pattern[str]:
    text = rf"[^\n]{{0,{line_chars - 256}}}+"
    if openmetrics:
        meta = (
            rf"# (?:HELP {_FAST_NAME}(?: {text})?|TYPE {_FAST_NAME} {_TYPES}"
            rf"|UNIT {_FAST_NAME}(?: [a-zA-Z0-9_:]{{0,64}}+)?)\n"
        )
    else:
        # A free comment here is "#" alone or "# " and a character that cannot start HELP or
        # TYPE, so it can never be a malformed HELP or TYPE line that the exact tier refuses.
        meta = (
            rf"#(?: HELP {_FAST_NAME}(?: {text})?| TYPE {_FAST_NAME} {_TYPES}"
            rf"|(?= [^HT \t\n]|\n) ?{text})\n"
        )
    pair = rf'[a-zA-Z_][a-zA-Z0-9_]{{0,{max_label_name - 1}}}+="[^"\\\n\ud800-\udfff]*+"'
    sample = rf"({_FAST_NAME})(?:\{{((?:{pair}(?:,{pair})*+,?)?)\}})? ([^ \t\n]{{1,64}}+)\n"
    # Groups: 1 name, 2 label set, 3 value, 4 a line the fast tier does not take.
    return re.compile(rf"(?:{meta}|\n)*+(?:{sample}|([^\n]*+)\n|\Z)")


class _Limits(NamedTuple):
    max_samples: int
    max_labels: int
    max_label_value: int
    max_label_name: int
    label_limit: int
    """A label set no longer than this cannot hold an over-long name or value (UTF-8 has at most
    4 bytes a character), so only longer sets are measured."""
    block_cap: int
    """The fast tier's longest label set: keeps its lines under max_line bytes."""


def _unescape(value: str) -> str:
    r"""Undo ``\\``, ``\"`` and ``\n``; any other backslash pair is kept verbatim.

    That is what the Go parser and prometheus_client do. Splitting on ``\\`` first keeps the
    pairs aligned (in a valid value every backslash starts a pair), and it all runs in C, so
    a value made of a million escapes costs milliseconds.
    """
    parts = value.split("\\\\")
    quotes = map(str.replace, parts, repeat('\\"'), repeat('"'))
    return "\\".join(map(str.replace, quotes, repeat("\\n"), repeat("\n")))


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _fail(message: str, *, reason: str = "parse", line: int | None = None) -> ExpositionError:
    where = f"line {line}: " if line is not None else ""
    return ExpositionError(safe_text(f"{where}{message}", 200), reason=reason, line=line)


def _excerpt(line: str) -> str:
    return safe_text(line.strip(" \t"), _EXCERPT)


def _line_of(body: str, offset: int) -> tuple[int, str]:
    """1-based line number and text of the line holding ``offset``."""
    start = body.rfind("\n", 0, offset) + 1
    end = body.find("\n", offset)
    return body.count("\n", 0, start) + 1, body[start : end if end >= 0 else len(body)]


def _quotes_balanced(text: str) -> bool:
    inside = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = inside
        elif char == '"':
            inside = not inside
    return not inside


def _diagnose(line: str, openmetrics: bool) -> str:
    """Say what is wrong with a line the body pattern refused (slow path, errors only)."""
    stripped = line.strip(" \t")
    if stripped.startswith("#"):
        if openmetrics and stripped.rstrip() == "# EOF":
            return "content after # EOF"
        if openmetrics:
            return "comment is not HELP, TYPE or UNIT (OpenMetrics)"
        return "malformed HELP or TYPE line"
    name = _NAME_AT.match(line)
    if name is None:
        return "invalid metric name"
    rest = line[name.end() :]
    if not rest.strip(" \t"):
        return "missing value"
    if not rest.startswith((" ", "\t", "{")):
        return "invalid metric name"
    rest = rest.lstrip(" \t")
    if rest.startswith("{"):
        if not _quotes_balanced(rest):
            return "unbalanced quotes in label set"
        labels = _LABELS_AT.match(rest)
        if labels is None:
            return "unbalanced braces or malformed label set"
        rest = rest[labels.end() :]
    if not rest.strip(" \t"):
        return "missing value"
    value = _VALUE_AT.match(rest)
    if value is None:
        return "invalid value"
    tail = rest[value.end() :].strip(" \t")
    if tail.startswith("#"):
        return "malformed exemplar" if openmetrics else "exemplar outside OpenMetrics"
    if tail:
        return "invalid timestamp or text after the value"
    return "malformed sample line"


def _check_long_lines(body: str, max_line: int) -> None:
    """Refuse any line over ``max_line`` UTF-8 bytes, before the body is parsed."""
    # A line over max_line bytes has over max_line / 4 characters; only those get encoded.
    threshold = max_line // 4 + 1
    if len(body) < threshold:
        return
    for match in re.finditer(rf"^[^\n]{{{threshold}}}", body, re.MULTILINE):
        number, line = _line_of(body, match.start())
        size = _utf8_len(line)
        if size > max_line:
            raise _fail(
                f"line is {size} bytes, over the {max_line}-byte limit: {_excerpt(line)}",
                reason="line_too_long",
                line=number,
            )


def _locate(body: str, pattern: re.Pattern[str], start: int, end: int, index: int) -> int:
    """Body offset of the ``index``-th sample line found in ``body[start:end]`` (errors only)."""
    for position, match in enumerate(pattern.finditer(body, start, end)):
        if position == index:
            group = 1 if match.group(1) is not None else 4
            return match.start(group) if match.start(group) >= 0 else match.start()
    return start


def _strip_eof(text: str) -> str:
    """OpenMetrics: the body must end with a ``# EOF`` line; return what precedes it."""
    if text.endswith("\n# EOF\n") or text == "# EOF\n":
        return text[:-6]
    if text.endswith("\n# EOF") or text == "# EOF":
        return text[:-5]
    match = _EOF_LINE.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start()) + 1
        raise _fail("content after # EOF", line=line)
    raise _fail("OpenMetrics body does not end with # EOF (truncated)", reason="truncated")


def parse_exposition(
    text: str,
    *,
    openmetrics: bool = False,
    max_samples: int = 20_000,
    max_line: int = 65_536,
    max_labels: int = 64,
    max_label_value: int = 4096,
    max_label_name: int = 128,
) -> list[Sample]:
    r"""Parse a whole exposition body into samples, or refuse it whole.

    Accepts ``# HELP`` (any text), ``# TYPE`` and free comments (text format), ``# UNIT`` and
    exemplars (OpenMetrics), label values with any character and the ``\\``, ``\"`` and
    ``\n`` escapes, exponent floats, ``NaN``, ``±Inf``, optional timestamps (ignored), blank
    lines, CRLF line ends and a last line without a newline.

    Args:
        text: The decoded body.
        openmetrics: Parse as OpenMetrics 1.0: the body must end with ``# EOF`` (otherwise it
            was truncated) and comments other than HELP, TYPE and UNIT are refused.
        max_samples: Most sample lines accepted (Prometheus' ``sample_limit``).
        max_line: Longest line accepted, in UTF-8 bytes; checked before parsing.
        max_labels: Most labels on one sample.
        max_label_value: Longest label value, in UTF-8 bytes (after unescaping).
        max_label_name: Longest label name, in bytes.

    Returns:
        The samples in body order. An empty list for a body without samples: callers decide
        whether that is a failure (a scrape must not read it as "all zero").

    Raises:
        ExpositionError: The body is malformed, truncated or over a limit.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if openmetrics:
        text = _strip_eof(text)
    if text and not text.endswith("\n"):
        text += "\n"
    line_chars = max_line // 4
    limits = _Limits(
        max_samples,
        max_labels,
        max_label_value,
        max_label_name,
        min(max_label_name, max_label_value // 4),
        max(0, line_chars - 300),
    )
    # The fast tier's bounds assume room for a 200-character name on a line; below that, the
    # exact tier alone (which measures every line) is used.
    fast = None
    if max_line >= _FAST_MIN_LINE and max_label_name >= 1:
        fast = _fast_pattern(openmetrics, line_chars, max_label_name)
    exact = _BODY_OM if openmetrics else _BODY_TEXT
    out: list[Sample] = []
    lines_checked = False
    length = len(text)
    start = 0
    # The parse allocates a few container objects per sample and none of them can form a
    # cycle, so the cyclic collector has nothing to find here; pausing it avoids several
    # collections of the young generation per body (about a tenth of the parse time).
    # Only a pause this call started is ended, so concurrent parses cannot leave it off.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        while start < length:
            end = text.find("\n", start + _CHUNK)
            end = length if end < 0 else end + 1
            samples = None if fast is None else _fast_slice(text, start, end, fast, limits)
            if samples is None:
                if not lines_checked:
                    _check_long_lines(text, max_line)
                    lines_checked = True
                samples = _exact_slice(text, start, end, exact, limits, openmetrics)
            out += samples
            if len(out) > max_samples:
                raise _fail(f"more than {max_samples} samples", reason="sample_limit")
            start = end
    finally:
        if paused:
            gc.enable()
    return out


def _fast_slice(
    text: str, start: int, end: int, pattern: re.Pattern[str], limits: _Limits
) -> list[Sample] | None:
    """Samples of ``text[start:end]`` in canonical layout, or None to hand it to the exact tier.

    Whole-slice operations only: one findall, then ``zip``/``map`` over its columns.
    """
    found = pattern.findall(text, start, end)
    while found and not found[-1][0] and not found[-1][3]:
        found.pop()  # the empty match(es) at the end of the slice
    if not found:
        return []
    names, blocks, values, bad = zip(*found, strict=False)
    if any(bad):
        return None
    joined = "".join(values)
    if "_" in joined or not joined.isascii() or not joined.isprintable():
        return None
    if _SIGNED_NAN.search(joined):
        return None
    try:
        floats = list(map(float, values))
    except ValueError:
        return None
    labels = list(map(dict, map(_FAST_PAIRS.findall, blocks)))
    sets = "".join(blocks)
    # Fast-tier values hold no quote, so each pair has exactly two; dict() keeps one entry per
    # name, so fewer entries than pairs means a duplicate name.
    if sum(map(len, labels)) * 2 != sets.count('"') or "__name__" in sets:
        return None
    # Label names are bounded by the pattern; a set this short cannot hold too many labels
    # (5 characters a pair at least) or an over-long value (4 bytes a character at most).
    longest = max(map(len, blocks))
    if longest >= limits.max_label_value // 4 or longest >= 5 * limits.max_labels:
        if longest > limits.block_cap:
            return None
        if max(map(len, labels)) > limits.max_labels:
            return None
        if any(map(_label_size_problem, labels, repeat(limits))):
            return None
    # tuple.__new__ is what NamedTuple's own __new__ calls, minus a Python frame per sample.
    return list(map(tuple.__new__, repeat(Sample), zip(names, labels, floats, strict=True)))


def _label_size_problem(labels: dict[str, str], limits: _Limits) -> tuple[str, str] | None:
    """(reason, message) for the first over-long label name or value, if any."""
    for key, item in labels.items():
        if len(key) > limits.max_label_name:
            return "label_name_too_long", f"label name over {limits.max_label_name} bytes"
        if len(item) > limits.max_label_value // 4 and _utf8_len(item) > limits.max_label_value:
            return "label_value_too_long", f"label value over {limits.max_label_value} bytes"
    return None


def _exact_slice(
    text: str,
    start: int,
    end: int,
    pattern: re.Pattern[str],
    limits: _Limits,
    openmetrics: bool,
) -> list[Sample]:
    """Samples of ``text[start:end]`` under the whole grammar, line by line.

    Raises on the first problem in body order, with its line number and what is wrong.
    """
    out: list[Sample] = []
    for name, block, value, bad in pattern.findall(text, start, end):
        if block:
            pairs = _PAIRS.findall(block)
            labels = dict(pairs)
            if len(pairs) > limits.max_labels or len(labels) != len(pairs) or "__name__" in labels:
                where = _line_of(text, _locate(text, pattern, start, end, len(out)))
                raise _label_error(where, pairs, limits.max_labels)
            if "\\" in block:
                labels = {key: _unescape(item) for key, item in pairs}
            if len(block) > limits.label_limit:
                problem = _label_size_problem(labels, limits)
                if problem is not None:
                    number, line = _line_of(text, _locate(text, pattern, start, end, len(out)))
                    raise _fail(f"{problem[1]}: {_excerpt(line)}", reason=problem[0], line=number)
        elif name:
            labels = {}
        else:
            if bad:
                number, line = _line_of(text, _locate(text, pattern, start, end, len(out)))
                what = _diagnose(line, openmetrics)
                raise _fail(f"{what}: {_excerpt(line)}", line=number)
            continue
        out.append(Sample(name, labels, float(value)))
    return out


def _label_error(
    where: tuple[int, str], pairs: list[tuple[str, str]], max_labels: int
) -> ExpositionError:
    number, line = where
    if len(pairs) > max_labels:
        return _fail(
            f"{len(pairs)} labels, over the limit of {max_labels}: {_excerpt(line)}",
            reason="label_limit",
            line=number,
        )
    if "__name__" in (key for key, _ in pairs):
        return _fail(f"metric name given twice (__name__ label): {_excerpt(line)}", line=number)
    return _fail(f"duplicate label name: {_excerpt(line)}", line=number)

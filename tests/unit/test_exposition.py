"""The exposition parser (sources/exposition.py) on the real node_exporter body and hostile input.

Malformed-line cases follow docs/parser.md and PR-04/05/08/09/11 of docs/reliability.md: each is
placed after 100 valid lines and must reject the whole body.
"""

from __future__ import annotations

import gc
import math
import random
import re
import time
from pathlib import Path

import pytest

from sources.exposition import ExpositionError, Sample, parse_exposition

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NODE = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_text(encoding="utf-8")
NODE_LINES = NODE.splitlines()
# The first 100 lines of the real body end on a sample line: a valid prefix for PR-04.
PREFIX = "\n".join(NODE_LINES[:100]) + "\n"
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def by_name(samples: list[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == name]


def as_tuples(samples: list[Sample]) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for s in samples]


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- the real body ------------------------------------------------------------------------------


def test_fixture_parses_to_507_samples():
    samples = parse_exposition(NODE)
    assert len(samples) == 507
    assert all(type(s) is Sample for s in samples)
    assert all(isinstance(s.value, float) for s in samples)
    assert len({s.name for s in samples}) == 285  # 283 families; the summary adds _sum, _count


def test_later_fixture_differs_only_in_values():
    later = parse_exposition((FIXTURES / "node_exporter_1.5.0_2cpu_later.prom").read_text())
    first = parse_exposition(NODE)
    assert [(s.name, s.labels) for s in later] == [(s.name, s.labels) for s in first]
    assert sum(a.value != b.value for a, b in zip(first, later, strict=True)) == 12


def test_fixture_values_and_labels():
    samples = parse_exposition(NODE)
    (boot,) = by_name(samples, "node_boot_time_seconds")
    assert boot.labels == {} and boot.value == 1.79563484e09
    (size,) = by_name(samples, "node_filesystem_size_bytes")
    assert size.labels == {"device": "/dev/vda", "fstype": "ext4", "mountpoint": "/"}
    assert size.value == 2.70553174016e11
    cpu = by_name(samples, "node_cpu_seconds_total")
    assert len(cpu) == 16
    assert {s.labels["cpu"] for s in cpu} == {"0", "1"}
    assert cpu[0].labels == {"cpu": "0", "mode": "idle"} and cpu[0].value == 1140.52


def test_label_values_with_spaces_and_hash_survive():
    samples = parse_exposition(NODE)
    (uname,) = by_name(samples, "node_uname_info")
    assert uname.labels["version"] == "#1 SMP PREEMPT_DYNAMIC @0"
    assert uname.labels["domainname"] == "(none)"
    (os_info,) = by_name(samples, "node_os_info")
    assert os_info.labels["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert os_info.labels["build_id"] == ""
    assert len(os_info.labels) == 12


def test_layout_does_not_change_the_result():
    # Extra whitespace, CRLF and a missing final newline leave the canonical layout, so these
    # bodies go through the exact tier; both tiers must give the same samples.
    expected = as_tuples(parse_exposition(NODE))
    spaced = NODE.replace("} ", "}  ").replace(",mode=", ", mode = ")
    crlf = NODE.replace("\n", "\r\n").rstrip("\r\n")
    indented = "\n".join(" " + line for line in NODE_LINES)
    for body in (spaced, crlf, indented):
        assert as_tuples(parse_exposition(body)) == expected


def test_exact_tier_alone_gives_the_same_samples():
    # Below 4096 bytes a line the fast tier is off, so this is the line-by-line grammar alone.
    fast = as_tuples(parse_exposition(NODE))
    exact = as_tuples(parse_exposition(NODE, max_line=4095))
    assert exact == fast


def test_same_samples_as_prometheus_client():
    parser = pytest.importorskip(
        "prometheus_client.parser", reason="prometheus_client is not installed"
    )
    theirs = [s for family in parser.text_string_to_metric_families(NODE) for s in family.samples]
    ours = parse_exposition(NODE)
    assert len(theirs) == len(ours) == 507
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.name == other.name
        assert mine.labels == other.labels
        assert same_value(mine.value, float(other.value)), (mine, other)


def test_same_samples_as_prometheus_client_on_edge_cases():
    parser = pytest.importorskip(
        "prometheus_client.parser", reason="prometheus_client is not installed"
    )
    body = (
        '# HELP x weird help \\n with } and " and # inside\n'
        "# TYPE x gauge\n"
        'x{a="sp ace",b="#hash",c="co,mma",d="br}ace",e="eq=ual",f="es\\\\c\\"a\\npe"} 1e3\n'
        'x{a="2"} NaN\n'
        'x{a="3"} +Inf\n'
        'x{a="4"} -Inf\n'
        'x{a="5"} -1.5e-3 1700000000000\n'
        "\n"
        "y 123456789012345678901234567890\n"
    )
    theirs = [s for family in parser.text_string_to_metric_families(body) for s in family.samples]
    ours = parse_exposition(body)
    assert [(s.name, s.labels) for s in ours] == [(s.name, s.labels) for s in theirs]
    assert all(same_value(a.value, float(b.value)) for a, b in zip(ours, theirs, strict=True))


# --- what is accepted ---------------------------------------------------------------------------


def test_label_values_may_hold_any_punctuation():
    body = 'm{a="x y",b="#1 # 2",c="a,b",d="}{",e="k=v",f="",g="ünï ☃"} 1\n'
    (sample,) = parse_exposition(body)
    assert sample.labels == {
        "a": "x y",
        "b": "#1 # 2",
        "c": "a,b",
        "d": "}{",
        "e": "k=v",
        "f": "",
        "g": "ünï ☃",
    }


def test_escapes_in_label_values():
    body = 'm{a="back\\\\slash",b="say \\"hi\\"",c="two\\nlines",d="tab\\t",e="end\\\\"} 1\n'
    (sample,) = parse_exposition(body)
    assert sample.labels == {
        "a": "back\\slash",
        "b": 'say "hi"',
        "c": "two\nlines",
        "d": "tab\\t",  # not an escape: kept verbatim, like the Go parser and prometheus_client
        "e": "end\\",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("-0", 0.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("2.70553174016e+11", 2.70553174016e11),
        ("1E-3", 0.001),
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("Inf", math.inf),
        ("inf", math.inf),
        ("+infinity", math.inf),
        ("1e999", math.inf),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("NaN", math.nan),
        ("nan", math.nan),
    ],
)
def test_values(text, expected):
    for body in (f"m {text}\n", f'm{{a="b"}} {text}\n', f"m {text} 1700000000000\n"):
        (sample,) = parse_exposition(body)
        assert same_value(sample.value, expected), body


def test_layout_variants():
    body = (
        "\n"
        "   \n"
        '# a free comment with anything: { " } \\ \x1b[31m\n'
        "#HELPER is not HELP\n"
        "#\n"
        "  # TYPE indented gauge\n"
        "# HELP m \n"
        "# HELP m2\n"
        "# TYPE m gaugehistogram\n"
        "# TYPE m3 untyped\n"
        "m 1\n"
        "m\t2\n"
        "  m 3  \n"
        'm {a="b"} 4\n'
        'm{ a = "b" , c="d" , } 5\n'
        'm{a="b",} 6\n'
        "m{} 7\n"
        "m 8 -1700000000000\n"
        "m 9"
    )
    samples = parse_exposition(body)
    assert [s.value for s in samples] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert samples[4].labels == {"a": "b", "c": "d"}
    assert samples[6].labels == {}


def test_help_text_may_hold_anything():
    hostile = '\x1b]52;c;ZWNobyBwd25lZA==\x07 {"}\\ \x00 \ufeff \u202e'
    body = f"# HELP m {hostile}\n# TYPE m gauge\nm 1\n"
    assert parse_exposition(body) == [Sample("m", {}, 1.0)]


@pytest.mark.parametrize("body", ["", "\n", "\n\n\n", "# just a comment\n", "# HELP m text"])
def test_bodies_without_samples_give_an_empty_list(body):
    assert parse_exposition(body) == []


def test_crlf_line_ends():
    body = '# HELP m h\r\n# TYPE m gauge\r\nm{a="b"} 1\r\nm 2\r\n'
    assert as_tuples(parse_exposition(body)) == [("m", {"a": "b"}, 1.0), ("m", {}, 2.0)]


def test_the_gc_is_left_as_it_was():
    assert gc.isenabled()
    parse_exposition(NODE)
    assert gc.isenabled()
    with pytest.raises(ExpositionError):
        parse_exposition(PREFIX + "broken{\n")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_exposition(NODE)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- what is refused ----------------------------------------------------------------------------

MALFORMED = {
    "cut mid-labels": 'node_cpu_seconds_total{cpu="0",mo',
    "cut mid-value": "node_load1 1.2e",
    "cut inside a quote": 'node_uname_info{version="#1 SMP',
    "missing value": "node_load1",
    "missing value after labels": 'm{a="b"}',
    "word as value": "node_load1 abc",
    "hex value": "node_load1 0x10",
    "underscore value": "node_load1 1_000",
    "signed NaN": "node_load1 -NaN",
    "non-ASCII digits": "node_load1 \u0661\u0662",
    "unterminated quote": 'm{a="b} 1',
    "escaped closing quote": 'm{a="b\\"} 1',
    "unclosed brace": 'm{a="b" 1',
    "extra closing brace": 'm{a="b"}} 1',
    "second label set": 'm{a="b"}{c="d"} 1',
    "unquoted label value": "m{a=b} 1",
    "single-quoted label value": "m{a='b'} 1",
    "duplicate label name": 'm{a="1",a="2"} 1',
    "name given twice": 'm{__name__="n"} 1',
    "label name with a dash": 'm{a-b="1"} 1',
    "label name starting with a digit": 'm{1a="1"} 1',
    "double comma": 'm{a="1",,b="2"} 1',
    "missing comma": 'm{a="1" b="2"} 1',
    "metric name starting with a digit": "1bad 1",
    "metric name with a dash": "bad-name 1",
    "quoted metric name": '{"m"} 1',
    "bad timestamp": "m 1 abc",
    "cut timestamp": "m 1 17e",
    "three fields": "m 1 2 3",
    "exemplar in text format": 'm 1 # {trace_id="a"} 1',
    "unknown TYPE": "# TYPE m bogus",
    "TYPE without a type": "# TYPE m",
    "TYPE with a bad name": "# TYPE 1m gauge",
    "HELP with a bad name": "# HELP 1m text",
    "HTML error page": "<html><body>502 Bad Gateway</body></html>",
    "JSON": '{"status":"error","error":"x"}',
    "BOM": "\ufeffnode_load1 1",
    "NUL in name": "node_load1\x00 1",
    "lone CR": "node_load1 1\rnode_load5 2",
    "lone surrogate in label value": 'm{a="\ud800"} 1',
}


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_line_after_100_valid_ones_rejects_the_body(line):
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(PREFIX + line + "\n" + "node_load15 0.26\n")
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.line == 101
    message = str(error)
    assert message.startswith("line 101: ")
    assert "\n" not in message and not UNSAFE.search(message)
    assert len(message) < 200


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_line_is_refused_alone_and_as_last_line(line):
    for body in (line, line + "\n", PREFIX + line):
        with pytest.raises(ExpositionError):
            parse_exposition(body)


def test_the_error_quotes_a_sanitised_excerpt_only():
    secret = "S3CR3T" * 200
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(PREFIX + f'm{{token="{secret}"\x1b]52;c;x\x07 1\n')
    message = str(caught.value)
    assert message.count("S3CR3T") <= 10  # 60 characters of excerpt at most
    assert "\x1b" not in message and "\x07" not in message
    assert message.endswith("\u2026")


def test_the_diagnosis_names_the_problem():
    cases = {
        'm{a="b} 1': "unbalanced quotes",
        'm{a="b" 1': "unbalanced braces",
        "m": "missing value",
        "m abc": "invalid value",
        "1m 1": "invalid metric name",
        'm{a="1",a="2"} 1': "duplicate label name",
        "# TYPE m bogus": "malformed HELP or TYPE",
        "m 1 x": "invalid timestamp",
    }
    for line, words in cases.items():
        with pytest.raises(ExpositionError, match=words):
            parse_exposition(line + "\n")


# --- limits -------------------------------------------------------------------------------------


def test_sample_limit():
    body = "".join(f'm{{i="{i}"}} {i}\n' for i in range(20_001))
    assert len(parse_exposition(body, max_samples=20_001)) == 20_001
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(body)  # PR-08: the default limit is 20,000
    assert caught.value.reason == "sample_limit"
    assert len(parse_exposition(NODE, max_samples=507)) == 507
    with pytest.raises(ExpositionError, match="more than 506 samples"):
        parse_exposition(NODE, max_samples=506)


def test_sample_limit_stops_a_huge_body_early():
    body = "m 1\n" * 1_000_000
    started = time.perf_counter()
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(body)
    assert caught.value.reason == "sample_limit"
    assert time.perf_counter() - started < 1.0


def test_line_limit_in_bytes():
    ok = 'm{a="' + "\u20ac" * 21_000 + '"} 1\n'  # 63,000 bytes
    too_long = 'm{a="' + "\u20ac" * 22_000 + '"} 1\n'  # 66,000 bytes, 22,010 characters
    assert (
        parse_exposition(PREFIX + ok, max_label_value=100_000)[-1].labels["a"] == "\u20ac" * 21_000
    )
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(PREFIX + too_long, max_label_value=100_000)
    assert caught.value.reason == "line_too_long"
    assert caught.value.line == 101
    with pytest.raises(ExpositionError, match="line_too_long|over the"):
        parse_exposition("# HELP m " + "x" * 70_000 + "\nm 1\n")


@pytest.mark.parametrize(
    "line",
    [
        "m{" + ",".join(f'l{i}=""' for i in range(20_000)) + "} 1",  # PR-09: 20k labels
        'm{a="' + '\\"' * 500_000 + '"} 1',  # PR-09: 1 MB of \" in a label value
    ],
    ids=["20k-labels", "escaped-quotes"],
)
def test_pathological_lines_are_refused_by_the_line_cap_quickly(line):
    # the reason shows the line cap refused it before any pattern ran; the time bound only
    # catches a runaway (a regex gone super-linear takes minutes), not a loaded machine
    started = time.perf_counter()
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(PREFIX + line + "\n")
    assert caught.value.reason == "line_too_long"
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "value",
    ['\\"' * 500_000, "a" * 1_000_000, "\\" * 1_000_001],
    ids=["escaped-quotes", "plain", "backslashes-unterminated"],
)
def test_the_grammar_is_linear_on_huge_lines(value):
    # With the line cap lifted, the patterns themselves must not go super-linear.
    body = PREFIX + 'm{a="' + value + '"} 1\n'
    started = time.perf_counter()
    try:
        parse_exposition(body, max_line=1 << 24, max_label_value=1 << 24)
    except ExpositionError:
        pass
    assert time.perf_counter() - started < 0.5


def test_label_count_limit():
    def line(count: int) -> str:
        return "m{" + ",".join(f'l{i}="v"' for i in range(count)) + "} 1\n"

    assert len(parse_exposition(line(64))[0].labels) == 64
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(PREFIX + line(65))
    assert caught.value.reason == "label_limit"
    assert caught.value.line == 101
    with pytest.raises(ExpositionError):
        parse_exposition(line(31), max_labels=30)


def test_label_length_limits():
    assert parse_exposition('m{a="' + "x" * 4096 + '"} 1\n')[0].labels["a"] == "x" * 4096
    with pytest.raises(ExpositionError) as caught:
        parse_exposition('m{a="' + "x" * 4097 + '"} 1\n')
    assert caught.value.reason == "label_value_too_long"
    with pytest.raises(ExpositionError) as caught:
        parse_exposition('m{a="' + "\u20ac" * 1400 + '"} 1\n')  # 4,200 bytes
    assert caught.value.reason == "label_value_too_long"
    name = "n" * 129
    with pytest.raises(ExpositionError) as caught:
        parse_exposition(f'm{{{name}="v"}} 1\n')
    assert caught.value.reason == "label_name_too_long"
    assert parse_exposition(f'm{{{name[:128]}="v"}} 1\n')[0].labels == {name[:128]: "v"}


# --- OpenMetrics --------------------------------------------------------------------------------


def test_openmetrics_needs_eof():
    assert len(parse_exposition(NODE + "# EOF\n", openmetrics=True)) == 507
    assert len(parse_exposition(NODE + "# EOF", openmetrics=True)) == 507
    assert parse_exposition("# EOF\n", openmetrics=True) == []
    for body in (NODE, "", "m 1\n", PREFIX):  # PR-05: cut at a line boundary
        with pytest.raises(ExpositionError) as caught:
            parse_exposition(body, openmetrics=True)
        assert caught.value.reason == "truncated"


def test_openmetrics_refuses_content_after_eof():
    for body in (NODE + "# EOF\nm 1\n", "m 1\n# EOF\n# EOF\n", "# EOF\n\n"):
        with pytest.raises(ExpositionError, match="after # EOF"):
            parse_exposition(body, openmetrics=True)


def test_eof_is_only_a_comment_in_the_text_format():
    assert len(parse_exposition("m 1\n# EOF\nm 2\n")) == 2


def test_openmetrics_features():
    body = (
        "# TYPE req counter\n"
        "# UNIT req_seconds seconds\n"
        "# HELP req Requests.\n"
        'req_total{path="/"} 12 1700000000.125 # {trace_id="abc 1"} 1 1700000000.1\n'
        'req_created{path="/"} 1.7e9\n'
        "# TYPE state stateset\n"
        'state{state="a"} 1\n'
        "# EOF\n"
    )
    assert as_tuples(parse_exposition(body, openmetrics=True)) == [
        ("req_total", {"path": "/"}, 12.0),
        ("req_created", {"path": "/"}, 1.7e9),
        ("state", {"state": "a"}, 1.0),
    ]


def test_openmetrics_refuses_free_comments_and_bad_exemplars():
    for line in ("# a comment", 'm 1 # {a="b"}', "m 1 # junk"):
        with pytest.raises(ExpositionError):
            parse_exposition(f"m 0\n{line}\n# EOF\n", openmetrics=True)


# --- fuzzing ------------------------------------------------------------------------------------

_INSERTS = ['"', "{", "}", "\n", "\\", "=", ",", " ", "#", "\r", "\x00", "\ud800", "\u2028", "é"]


def _mutate(rng: random.Random, text: str) -> str:
    kind = rng.randrange(6)
    at = rng.randrange(len(text) + 1)
    if kind == 0:  # flip a character's bits
        if not text:
            return text
        at = min(at, len(text) - 1)
        return text[:at] + chr(ord(text[at]) ^ (1 << rng.randrange(7))) + text[at + 1 :]
    if kind == 1:  # truncate
        return text[:at]
    if kind == 2:  # insert a syntax character
        return text[:at] + rng.choice(_INSERTS) + text[at:]
    if kind == 3:  # delete a run
        return text[:at] + text[at + rng.randrange(1, 40) :]
    if kind == 4:  # random unicode, any plane
        junk = "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(1, 8)))
        return text[:at] + junk + text[at:]
    other = rng.randrange(len(text) + 1)  # duplicate a slice elsewhere
    return text[:at] + text[other : other + rng.randrange(1, 80)] + text[at:]


def test_fuzzed_bodies_raise_only_exposition_error():
    rng = random.Random(20240630)
    started = time.perf_counter()
    accepted = rejected = 0
    for round_ in range(3000):
        body = NODE
        for _ in range(rng.randrange(1, 4)):
            body = _mutate(rng, body)
        openmetrics = round_ % 5 == 0
        if openmetrics and rng.random() < 0.8:
            body += "# EOF\n"
        try:
            samples = parse_exposition(body, openmetrics=openmetrics)
        except ExpositionError as error:
            rejected += 1
            assert "\n" not in str(error) and len(str(error)) < 200
        else:
            accepted += 1
            assert all(
                type(s) is Sample
                and isinstance(s.name, str)
                and isinstance(s.labels, dict)
                and isinstance(s.value, float)
                for s in samples
            )
    assert accepted > 100 and rejected > 100
    assert time.perf_counter() - started < 20


def test_fuzzed_bodies_get_the_same_answer_from_both_tiers():
    # The fast tier must accept only what the exact tier accepts, with the same samples.
    rng = random.Random(7)
    for _ in range(2000):
        body = PREFIX
        for _ in range(rng.randrange(1, 3)):
            body = _mutate(rng, body)
        try:
            fast = as_tuples(parse_exposition(body))
        except ExpositionError:
            fast = None
        try:
            exact = as_tuples(parse_exposition(body, max_line=4095))
        except ExpositionError:
            exact = None
        if fast is None or exact is None:
            assert fast is exact is None, body
        else:
            assert len(fast) == len(exact)
            for a, b in zip(fast, exact, strict=True):
                assert a[:2] == b[:2] and same_value(a[2], b[2])

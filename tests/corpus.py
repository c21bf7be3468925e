"""The malicious-string corpus, for pytest ``parametrize``.

Every literal is kept exactly as designed (only over-long comments were re-wrapped). The
screenshot payload keeps its ``TMPDIR`` placeholder: a test that uses it replaces the placeholder
with its own ``tmp_path`` and then asserts that no file appeared there.
"""

from __future__ import annotations

# fmt: off
MARKUP_PAYLOADS = [
    "[bold red]ALERT[/]",
    "[@click=app.quit]Refresh[/]",
    "[@click=app.screenshot('pwned.svg','TMPDIR')]Refresh[/]",
    "[@click=app.suspend_process]x[/]",
    "[@click=app.simulate_key('ctrl+q')]x[/]",
    "[@click=app.push_screen('help')]x[/]",
    "[link=https://evil.example]coingecko.com[/link]",
    "[link='file:///etc/passwd']docs[/link]",
    "proj [/]",                                   # MarkupError: nothing to close
    "proj [/bold]",                               # MarkupError: no matching open tag
    "[@click=foo(]x[/]",                          # MarkupError in literal_eval
    "[type=x, v={'a[0]'}]",                       # defeats textual.markup.escape (#6614)
    "[link=x[y]]z",                               # same
    "name\\",                                     # trailing backslash
    "C:\\[bold]x",                                # backslash before a tag
    "\\[not a tag]",
    ":skull: :warning: :rocket:",                 # emoji code substitution
    "$accent ${name} $$",                         # Textual template / CSS variable syntax
    "[$accent on $error]x[/]",
    "[blink reverse]x[/]",
]

# Each must produce ZERO raw bytes matching [\x00-\x08\x0b-\x1f\x7f-\x9f] in the pty output.
ESCAPE_PAYLOADS = [
    "pwn\x1b]52;c;ZWNobyBwd25lZCB8IHNo\x07",         # OSC 52 clipboard write ("echo pwned | sh")
    "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\",              # same, ST terminator
    "\x1b]8;;https://evil.example/\x1b\\coingecko.com\x1b]8;;\x1b\\",   # OSC 8 spoof
    "\x1b]0;PWNED\x07",                               # OSC 0 window title
    "\x1b[21t",                                       # report title -> reply typed into stdin
    "\x1b[6n",                                        # DSR cursor report -> reply typed into stdin
    "\x1bP$qm\x1b\\",                                 # DECRQSS
    "\x1bP+q544e\x1b\\",                              # XTGETTCAP (DCS)
    "x\x1b[2J\x1b[H",                                 # clear screen
    "\x1b[1A\x1b[2K\r[OK] all nodes healthy",         # forge a previous line
    "good\rEVIL",                                     # CR overwrite
    "safe\b\b\b\bevil",                               # BS overwrite
    "\x1bc",                                          # reset
    "\x1b(0lqqk",                                     # DEC graphics charset
    "\x1b[?1049l",                                    # leave alt screen
    "\x1b[?25l",                                      # hide cursor
    "a\x9b2Jb",                                       # 8-bit C1 CSI
    "a\x9d0;T\x9cb",                                  # 8-bit C1 OSC + ST
    "\x07" * 50,                                      # BEL spam
    "a\x00b",                                         # NUL
    "a\x7fb",                                         # DEL
    "abc\u202edcba",                                  # bidi override (Trojan Source)
    "\u2066x\u2069",                                  # bidi isolate
    "a\u200bb",                                       # zero-width space
    "\ufeffname",                                     # BOM
    "node-\ud800-x",                                  # lone surrogate (also as JSON "\\ud800")
    "Z" + "\u0301" * 100_000,                         # zalgo
    "🧨" * 1000,                                      # wide chars
    "ｆｕｌｌｗｉｄｔｈ",                              # fullwidth
    "A" * 1_000_000,                                  # huge string
    # Cyrillic і homoglyph (shown as is; test that it is not "verified")
    "іo.net",
]
# fmt: on

ALL = MARKUP_PAYLOADS + ESCAPE_PAYLOADS

# Byte sequences that must never reach the terminal from data (UI-02 of docs/reliability.md).
FORBIDDEN_SEQUENCES = (
    "\x1b]52",
    "\x1b]8;;http",
    "\x1b]0;",
    "\x1b[21t",
    "\x1b[6n",
    "\x1bP",
    "\x9b",
    "\x9d",
)

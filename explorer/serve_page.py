"""The pages ``serve`` answers with: the console page, and the short refusals.

The console page replaces textual-serve's ``app_index.html`` (1.1.3), which loads its font from
fonts.googleapis.com: this one names only same-origin URLs (``/static/…`` from the textual-serve
package, the websocket on the page's own host), so it works on a box without internet, and its
Content-Security-Policy (``headers``) forbids anything else. The websocket URL is built in the
browser from ``location``, so the page works unchanged behind a TLS reverse proxy (``wss:``).
"""

from __future__ import annotations

from html import escape

import jinja2

STATIC = "/static/"
"""Where textual-serve's own static files (textual.js, xterm.css, the Roboto Mono fonts) are."""

_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<link rel="stylesheet" href="{{ static }}css/xterm.css">
<link rel="preload" href="{{ static }}fonts/RobotoMono-VariableFont_wght.ttf" as="font"
  type="font/ttf" crossorigin>
<style>
@font-face {
  font-family: "Roboto Mono";
  src: url("{{ static }}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
  font-weight: 100 700; font-style: normal;
}
@font-face {
  font-family: "Roboto Mono";
  src: url("{{ static }}fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype");
  font-weight: 100 700; font-style: italic;
}
html, body { margin: 0; height: 100%; background: #0c181f; }
.textual-terminal { width: 100vw; height: 100vh; opacity: 0; transition: opacity 0.3s; }
body.-first-byte .textual-terminal { opacity: 1; }
.dialog { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; z-index: 10; background: #0c181f; }
.intro { max-width: 640px; padding: 32px; font: 16px "Roboto Mono", monospace;
  color: rgba(255, 255, 255, 0.95); background: #12232d; text-align: center; }
body.-first-byte .starting, .ended { display: none; }
body.-closed .ended { display: flex; }
button { margin-top: 16px; padding: 12px 28px; border: none; background: #5e0ba7;
  color: #fff; font: inherit; cursor: pointer; }
#start { display: none; }
</style>
</head>
<body>
<div class="dialog starting"><div class="intro">{{ title }}: starting a read-only viewer…
  <button type="button" id="start">Start</button></div></div>
<div class="dialog ended"><div class="intro"><div id="ended-message">Session ended.</div>
  <button type="button" id="restart">Start a new session</button></div></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url=""
  data-font-size="{{ font_size }}"></div>
<script nonce="{{ nonce }}">
(function () {
  // textual.js reads the websocket URL from this attribute when the window loads
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  document.getElementById("terminal").dataset.sessionWebsocketUrl =
    scheme + "//" + location.host + "/ws";
  // the server says why a session ended (cap, idle timeout) in the close frame's reason
  var Native = window.WebSocket;
  function Socket(url, protocols) {
    var socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("close", function (event) {
      if (event.reason) {
        document.getElementById("ended-message").textContent = event.reason;
      }
    });
    return socket;
  }
  Socket.prototype = Native.prototype;
  Object.setPrototypeOf(Socket, Native);  // WebSocket.OPEN and friends
  window.WebSocket = Socket;
  // keys go to the console from the start, without a click into it first
  window.addEventListener("load", function () {
    setTimeout(function () {
      var input = document.querySelector(".xterm-helper-textarea");
      if (input) { input.focus(); }
    }, 0);
  });
  function restart() { location.replace("/"); }
  document.getElementById("restart").addEventListener("click", restart);
  document.getElementById("start").addEventListener("click", restart);
})();
</script>
<script src="{{ static }}js/textual.js"></script>
</body>
</html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_INDEX_TEMPLATE = _ENV.from_string(_INDEX)


def index_page(*, title: str, nonce: str, font_size: int) -> str:
    """The console page: xterm.js from textual-serve, connected to this server's ``/ws``."""
    return _INDEX_TEMPLATE.render(title=title, nonce=nonce, font_size=font_size, static=STATIC)


def headers(nonce: str | None = None) -> dict[str, str]:
    """Headers for every answer: same-origin only, never framed, never cached, no referrer.

    Args:
        nonce: the console page's inline script nonce (other pages run no script).
    """
    script = f"'self' 'nonce-{nonce}'" if nonce else "'none'"
    policy = (
        "default-src 'none'; "
        f"script-src {script}; "
        # xterm.js sets inline styles on its rows; styles cannot fetch anything off-origin here
        "style-src 'self' 'unsafe-inline'; "
        "font-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _plain(title: str, text: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>\n"
    )


UNAUTHORIZED = _plain(
    "401 Unauthorized",
    "This depin-explorer console needs its access token: open the URL that "
    "`depin-explorer serve` printed (it ends in ?token=…).",
)
"""No token, or a wrong one: nothing else is said, and no viewer is started."""

FORBIDDEN_ORIGIN = _plain(
    "403 Forbidden", "This console's websocket answers only its own page (the Origin differs)."
)


def full_message(sessions: int) -> str:
    """The line for the session after the cap: on the page and in the websocket's close frame."""
    return f"{sessions} session{' is' if sessions == 1 else 's are'} open; try later."


def full_page(sessions: int) -> str:
    """The page a browser gets while the session cap is reached (503, no viewer started)."""
    return _plain("503 Busy", full_message(sessions))


def landing_page() -> str:
    """After ``?token=`` from another site: a same-origin step to ``/`` so the cookie is sent.

    A SameSite=Strict cookie is withheld on a redirect whose chain began on another site (a link
    in a chat or a mail); a navigation this page starts itself is same-site.
    """
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        '<meta http-equiv="refresh" content="0; url=/"><title>depin-explorer</title></head>\n'
        '<body><p><a href="/">Open the console</a></p></body></html>\n'
    )

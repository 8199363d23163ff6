"""Helpers shared by weir's integration test modules (no test module imports
another): the config builder and the monitor endpoint's HTTP and Prometheus
text helpers. The forward protocol's byte builders, its client and the
shared-key handshake helpers are in fwd.py.

Config pieces: every `extra`/`body` argument is inserted verbatim as the lines
of a section body (indented by the caller, e.g. "  idle_timeout 0.5s" in a
<source>, "    flush_interval 1s" in a <buffer>); a missing final newline is
added, an empty one adds nothing.
"""
import re
import urllib.error
import urllib.request

# The <inject> of the standard test config (conftest's Weir.config): the time
# as "SEC.NANOSECONDS" (a string: Fluentd's float time_type keeps only
# microseconds; conftest.read_json_lines turns it into a float) and the tag.
TIME_TAG_INJECT = """    time_key time
    time_type string
    time_format %s.%N
    tag_key tag"""


# ------------------------------------------------------------------ config --

def _body(text):
    if not text:
        return ""
    return text if text.endswith("\n") else text + "\n"


def _sub(name, body, arg=""):
    """A subsection of a <match>: <name arg> body </name>."""
    head = f"<{name} {arg}>" if arg else f"<{name}>"
    return f"  {head}\n{_body(body)}  </{name}>\n"


def system_block(body):
    return f"<system>\n{_body(body)}</system>\n" if body else ""


def forward_source(port, extra="", bind="127.0.0.1"):
    """<source> @type forward on port (bind None: no bind line), plus extra lines."""
    bind_line = f"  bind {bind}\n" if bind else ""
    return f"<source>\n  @type forward\n  port {port}\n{bind_line}{_body(extra)}</source>\n"


def monitor_source(port, type="monitor_agent", extra="", bind="127.0.0.1"):
    """The monitor HTTP endpoint (@type monitor_agent or prometheus) on port."""
    return f"<source>\n  @type {type}\n  bind {bind}\n  port {port}\n{_body(extra)}</source>\n"


def match(pattern="**", type="file", *, id=None, path=None, append=None, extra="", fmt=None,
          inject=None, buffer=None, buffer_keys="", sections=""):
    """<match pattern> @type type: [@id] [path] [append] extra lines, then
    <format> @type fmt, <inject> inject, <buffer buffer_keys> buffer (each only
    when given; buffer "" is an empty <buffer>), then `sections` verbatim."""
    text = f"<match {pattern}>\n  @type {type}\n"
    if id:
        text += f"  @id {id}\n"
    if path is not None:
        text += f"  path {path}\n"
    if append is not None:
        text += f"  append {'true' if append else 'false'}\n"
    text += _body(extra)
    if fmt:
        text += _sub("format", f"    @type {fmt}")
    if inject is not None:
        text += _sub("inject", inject)
    if buffer is not None:
        text += _sub("buffer", buffer, buffer_keys)
    return text + _body(sections) + "</match>\n"


def file_match(path, pattern="**", *, append=True, fmt="json", **kw):
    """A file output: path, append true, JSON lines (see match for the rest)."""
    return match(pattern, "file", path=path, append=append, fmt=fmt, **kw)


def config(port, path=None, *, bind="127.0.0.1", source_extra="", monitor=None, monitor_type="monitor_agent",
           monitor_extra="", system="", before="", matches=None, pattern="**", out_type="file", out_id=None,
           append=True, fmt="json", match_extra="", inject=None, buffer=None, buffer_keys="", after=""):
    """A weir config, in this order:

      <system> system (if any)
      <source> @type forward on port (bind, source_extra)
      <source> @type monitor_type on port `monitor` (if given; monitor_extra)
      before             (verbatim, as are matches and after: filters, labels, ...)
      matches            the <match> sections, or by default one output:
                         <match pattern> @type out_type, @id out_id, path, append
                         (None: no line), match_extra, <format> fmt (None: none),
                         <inject> inject (None: none), <buffer buffer_keys> buffer
                         (None: none)
      after              (more sections)

    The defaults are a forward source to JSON lines in files at `path`, appended,
    nothing injected; conftest's Weir.config adds TIME_TAG_INJECT.
    """
    text = system_block(system) + forward_source(port, source_extra, bind)
    if monitor is not None:
        text += monitor_source(monitor, monitor_type, monitor_extra)
    text += _body(before)
    if matches is None:
        matches = match(pattern, out_type, id=out_id, path=path, append=append, extra=match_extra, fmt=fmt,
                        inject=inject, buffer=buffer, buffer_keys=buffer_keys)
    return text + _body(matches) + _body(after)


# ----------------------------------------------------------------- metrics --

def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path (error statuses too)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    """The value of the sample `name{labels}` in Prometheus text (asserts it is there)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    rx = re.compile(rf"^{re.escape(name)}(\{{{re.escape(want)}\}})? (\S+)$", re.M) if want else \
        re.compile(rf"^{re.escape(name)} (\S+)$", re.M)
    m = rx.search(text)
    assert m, f"{name}{{{want}}} not in metrics"
    return float(m.group(m.lastindex))

"""The stdout filter (Fluentd's filter_stdout) and record_modifier
(fluent-plugin-record-modifier) in a running weir: records from a forward
client go through both filters to a file; the stdout filter prints each one
as out_stdout does and passes it on."""
import json

import fwd
import helpers


def test_stdout_filter_and_record_modifier(weir, tmp_path):
    before = """<filter app.**>
  @type stdout
</filter>
<filter app.**>
  @type record_modifier
  remove_keys drop
  prepare_value require 'socket'; @env = ENV.fetch('WEIR_NO_SUCH_VAR', 'prod'); @tier = [@env, 'eu'].join('-')
  <record>
    tier ${@tier}
    service ${tag_parts[1]}
    n ${record["n"]}
    text n=${record["n"]}
  </record>
</filter>
"""
    weir.start(before=before)
    with weir.conn() as c:
        c.send(fwd.forward("app.web", [fwd.entry(fwd.et(1700000000, 5), {"n": 7, "drop": 1}),
                                       fwd.entry(fwd.et(1700000001), {"n": 8})]))
    recs = weir.wait_records(2)
    assert [{k: v for k, v in r.items() if k not in ("time", "tag")} for r in recs] == [
        {"n": 7, "tier": "prod-eu", "service": "web", "text": "n=7"},
        {"n": 8, "tier": "prod-eu", "service": "web", "text": "n=8"},
    ]
    weir.stop_ok()
    lines = [l for l in weir.stdout_text().splitlines() if " app.web: " in l]
    assert lines == [
        '2023-11-14 22:13:20.000000005 +0000 app.web: {"n":7,"drop":1}',
        '2023-11-14 22:13:21.000000000 +0000 app.web: {"n":8}',
    ]


def test_record_modifier_refusals(weir, tmp_path):
    import subprocess
    from conftest import WEIR_BIN
    cfg = tmp_path / "rm.conf"
    cfg.write_text(helpers.forward_source(weir.port) + """<filter **>
  @type record_modifier
  prepare_value require 'socket'; @host = Socket.gethostname; system('rm -rf /')
  char_encoding euc-jp:utf-8
</filter>
<match **>
  @type null
</match>
""")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert ("prepare_value: only `@name = expression` statements (and require) are supported, not "
            "'system('rm -rf /')'") in p.stderr + p.stdout
    assert "char_encoding 'euc-jp:utf-8' is not supported" in p.stderr + p.stdout

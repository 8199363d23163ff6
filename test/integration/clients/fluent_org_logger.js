// Sends events to weir with the npm @fluent-org/logger client (FluentClient).
//
// Usage: node fluent_org_logger.js SPEC.json
// SPEC = {
//   "port": 24224, "host": "127.0.0.1",
//   "tagPrefix": "node",                 // tag = tagPrefix + "." + label
//   "eventMode": "Message" | "Forward" | "PackedForward" | "CompressedPackedForward",
//   "ack": true | false,                  // ack: {ackTimeout} option (the client then sets `chunk`)
//   "events": [ {"label": "a", "record": {...}, "time": {"sec": S, "nsec": N}} |
//               {"label": "a", "record": {...}, "millis": MS} ],  // a number: the client sends integer seconds
//   "security": {"clientHostname": "c", "sharedKey": "k", "username": "u", "password": "p"},  // optional
//   "tls": {"ca": "/path/ca.pem", "cert": "/path/client.pem", "key": "/path/client.key",       // optional;
//           "servername": "localhost", "minVersion": "TLSv1.2", "maxVersion": "TLSv1.3"}       // files are read here
// }
// Every emit() promise must resolve (with acks: after the server's ack). Prints one JSON line
// {"ok": true, "sent": N} and exits 0, or prints the error and exits 1.
"use strict";
const fs = require("fs");
const { FluentClient, EventTime } = require("@fluent-org/logger");

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const options = {
    eventMode: spec.eventMode || "Forward",
    socket: {
      host: spec.host || "127.0.0.1",
      port: spec.port,
      timeout: 10000,
      disableReconnect: true,
    },
    disableAutoconnect: true,
    disconnect: { waitForPending: true, waitForPendingDelay: 10000, socketDisconnectDelay: 0 },
  };
  if (spec.ack) options.ack = { ackTimeout: 10000 };
  if (spec.security) options.security = spec.security;
  if (spec.tls) {
    const tls = {};
    for (const k of ["ca", "cert", "key"]) if (spec.tls[k]) tls[k] = fs.readFileSync(spec.tls[k]);
    for (const k of ["servername", "minVersion", "maxVersion"]) if (spec.tls[k]) tls[k] = spec.tls[k];
    options.socket.tls = tls;
  }
  const client = new FluentClient(spec.tagPrefix, options);
  await client.connect();
  // All emits in the same tick: the client batches them into one request per tag
  // (Forward / PackedForward / CompressedPackedForward) or one request per event (Message).
  const promises = spec.events.map((ev) => {
    const ts = ev.time ? new EventTime(ev.time.sec, ev.time.nsec) : ev.millis;
    return client.emit(ev.label, ev.record, ts);
  });
  await Promise.all(promises);
  await client.disconnect();
  process.stdout.write(JSON.stringify({ ok: true, sent: promises.length }) + "\n");
}

const watchdog = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, error: "timeout after 20 s" }) + "\n");
  process.exit(2);
}, 20000);
watchdog.unref();

main().then(
  () => process.exit(0),
  (err) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + "\n");
    process.exit(1);
  }
);

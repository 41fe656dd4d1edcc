// The node-ws peer of scripts/bench-fanout: Node's `ws` package, one set of subscribers,
// and per event one JSON frame sent to each (`ws.send` of one shared Buffer: the
// idiomatic broadcast loop of ws's README, with the string encoded once).
//
//   node --expose-gc scripts/bench/node/server.mjs
//
// Same contract as the Python bench servers (scripts/bench/common.py): serves WebSocket
// on 127.0.0.1 (ephemeral port), a message containing "subscribe" adds the client and
// gets the snapshot frame; prints `PORT <n>`, then reads commands on stdin:
//   run <burst> <groups> <period_us> <gap_us>  -> done <events> <subscribers>
//   count                                      -> subscribers <n>
//   gc                                         -> collected 0 (a full V8 collection)
// and exits at the end of its input. Compression off, as in every mode.
import { createInterface } from "node:readline";
import { WebSocketServer } from "ws";

const TOPIC = "bench";
const NOTE = "x".repeat(106); // keep in step with scripts/bench/common.py
const SNAPSHOT = `{"type":"snapshot","topic":"${TOPIC}","seq":0,"payload":{"count":0}}`;
const BACKLOG = 4096;

// Byte for byte common.event_text(seq, t): compact JSON in the hub's field order.
function eventText(seq, t) {
  const volume = 1000 + (seq % 1000);
  return (
    `{"type":"event","topic":"${TOPIC}","seq":${seq},"payload":{"op":"tick","n":${seq},` +
    `"symbol":"ACME","price":1234.5,"volume":${volume},"t":${t},"note":"${NOTE}"}}`
  );
}

const subscribers = new Set();
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  backlog: BACKLOG,
  perMessageDeflate: false,
  clientTracking: false,
});

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.toString().includes('"subscribe"')) {
      subscribers.add(ws);
      ws.send(SNAPSHOT);
    }
  });
  ws.on("close", () => subscribers.delete(ws));
  ws.on("error", () => subscribers.delete(ws));
});

function publish(seq) {
  const frame = Buffer.from(eventText(seq, process.hrtime.bigint()));
  for (const ws of subscribers) {
    if (ws.readyState === 1) ws.send(frame, { binary: false });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function runSchedule(burst, groups, periodUs, gapUs) {
  let seq = 0;
  for (let g = 0; g < groups; g++) {
    const started = performance.now();
    for (let i = 0; i < burst; i++) publish(++seq);
    const now = performance.now();
    const waitMs = Math.max(0, started + periodUs / 1000 - now, gapUs / 1000);
    if (waitMs > 0) await sleep(waitMs);
    else await new Promise((resolve) => setImmediate(resolve));
  }
  return seq;
}

wss.on("listening", () => {
  process.stdout.write(`PORT ${wss.address().port}\n`);
  const commands = [];
  let busy = false;
  const rl = createInterface({ input: process.stdin });
  async function drain() {
    if (busy) return;
    busy = true;
    while (commands.length) {
      const [cmd, ...args] = commands.shift().trim().split(/\s+/);
      if (cmd === "run") {
        const [burst, groups, periodUs, gapUs] = args.map(Number);
        const published = await runSchedule(burst, groups, periodUs, gapUs);
        process.stdout.write(`done ${published} ${subscribers.size}\n`);
      } else if (cmd === "gc") {
        if (globalThis.gc) globalThis.gc(); // started with --expose-gc
        process.stdout.write("collected 0\n");
      } else if (cmd === "count") {
        process.stdout.write(`subscribers ${subscribers.size}\n`);
      } else if (cmd) {
        process.stdout.write(`error unknown command ${cmd}\n`);
      }
    }
    busy = false;
  }
  rl.on("line", (line) => {
    commands.push(line);
    drain();
  });
  rl.on("close", () => process.exit(0));
});
process.on("SIGTERM", () => process.exit(0));

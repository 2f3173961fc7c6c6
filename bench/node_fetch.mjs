// A peer at the same concurrency: Node.js's built-in fetch (undici, keep-alive by default),
// one token fetched at the start, N async workers pulling the next start from a shared
// counter until the time is up: the pool a Node user writes to cap requests in flight.
// No npm packages. Usage: node bench/node_fetch.mjs SECONDS CONCURRENCY, with
// SAPWF_BENCH_TOKEN_URL, SAPWF_BENCH_API_URL, SAPWF_BENCH_CLIENT_ID,
// SAPWF_BENCH_CLIENT_SECRET and SAPWF_BENCH_USER_AGENT in the environment (an https
// emulator's CA through NODE_EXTRA_CA_CERTS). Node's fetch speaks HTTP/1.1 only.
// Prints: starts N seconds S failures N ended T
const seconds = Number(process.argv[2]);
const concurrency = Number(process.argv[3] || 32);
const env = process.env;
const api = env.SAPWF_BENCH_API_URL + "/v1/workflow-instances";

// CLOCK_MONOTONIC (libuv's hrtime), as bench/turns.c logs its slots.
const now = () => Number(process.hrtime.bigint()) / 1e9;

const basic = Buffer.from(env.SAPWF_BENCH_CLIENT_ID + ":" + env.SAPWF_BENCH_CLIENT_SECRET)
  .toString("base64");
const tokenAnswer = await fetch(env.SAPWF_BENCH_TOKEN_URL, {
  method: "POST",
  headers: { Authorization: "Basic " + basic,
             "Content-Type": "application/x-www-form-urlencoded" },
  body: "grant_type=client_credentials",
});
const token = (await tokenAnswer.json()).access_token;

// The headers sapwf sends (bench/common.h says why each row sends the same ones).
const headers = {
  Authorization: "Bearer " + token,
  Accept: "application/json",
  "Content-Type": "application/json",
  "User-Agent": env.SAPWF_BENCH_USER_AGENT,
};
const body = JSON.stringify({ definitionId: "simple", context: { order: 1 } });

let starts = 0, failures = 0;
const start = now();
async function worker() {
  while (now() - start < seconds) {
    try {
      const r = await fetch(api, { method: "POST", headers, body });
      await r.arrayBuffer();                  // read to the end: the connection goes back
      if (r.status === 201) starts++; else failures++;
    } catch (e) {
      failures++;
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const ended = now();
console.log(`starts ${starts} seconds ${(ended - start).toFixed(3)} failures ${failures} ` +
            `ended ${ended.toFixed(6)}`);

// tus uploads through the server: create, PATCH in chunks, HEAD, finish.
// `k6 run -e VUS=10 -e DURATION=30s -e SIZE=4194304 -e CHUNK=1048576 k6/tus-upload.js`
import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";
import encoding from "k6/encoding";
import { BASE_URL, auth, signup } from "./lib.js";

const SIZE = Number(__ENV.SIZE || 4 * 1024 * 1024);
const CHUNK = Number(__ENV.CHUNK || 1024 * 1024);
const TUS = { "Tus-Resumable": "1.0.0" };

export const options = {
  scenarios: {
    tus: { executor: "constant-vus", vus: Number(__ENV.VUS || 10), duration: __ENV.DURATION || "30s" },
  },
  thresholds: {
    http_req_failed: ["rate<0.001"],
    "http_req_duration{name:PATCH /api/v1/tus/{id}}": ["p(95)<500", "p(99)<1000"],
    checks: ["rate>0.999"],
  },
};

const chunk = new Uint8Array(CHUNK).map((_, i) => i % 251).buffer;
let user = null;

export default function () {
  if (user === null) user = signup("tus");
  const name = encoding.b64encode(`tus-${exec.vu.idInTest}-${exec.scenario.iterationInTest}.bin`);
  const created = http.post(`${BASE_URL}/api/v1/tus`, null, {
    headers: { ...auth(user.token).headers, ...TUS, "Upload-Length": String(SIZE), "Upload-Metadata": `filename ${name}` },
    tags: { name: "POST /api/v1/tus" },
  });
  if (!check(created, { "create 201": (r) => r.status === 201 })) return;
  const url = created.headers["Location"];
  let offset = 0;
  while (offset < SIZE) {
    const n = Math.min(CHUNK, SIZE - offset);
    const body = n === CHUNK ? chunk : chunk.slice(0, n);
    const res = http.patch(url, body, {
      headers: {
        ...auth(user.token).headers,
        ...TUS,
        "Upload-Offset": String(offset),
        "Content-Type": "application/offset+octet-stream",
      },
      tags: { name: "PATCH /api/v1/tus/{id}" },
    });
    if (!check(res, { "PATCH 204": (r) => r.status === 204 })) return;
    offset = Number(res.headers["Upload-Offset"]);
  }
  const head = http.request("HEAD", url, null, {
    headers: { ...auth(user.token).headers, ...TUS },
    tags: { name: "HEAD /api/v1/tus/{id}" },
  });
  check(head, { "finished": (r) => r.status === 200 && Number(r.headers["Upload-Offset"]) === SIZE });
}

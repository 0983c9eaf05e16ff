// Mixed API load: each virtual user logs in once, then lists, reads, renames
// and shares, with THINK seconds (default 1) between rounds, as a person
// would. `k6 run -e VUS=200 -e DURATION=60s k6/api-mixed.js`
// (THINK=0 turns it into a closed loop that measures throughput instead).
//
// Start the server with budgets for a load test, e.g.
//   STOWAGE_RATE_LIMIT_AUTH=100000/min STOWAGE_RATE_LIMIT_API=10000000/min
// (one k6 host is one client IP and would exhaust the per-IP auth budget).
import http from "k6/http";
import { check, sleep } from "k6";
import exec from "k6/execution";
import { BASE_URL, auth, directUpload, json, login, signup } from "./lib.js";

const VUS = Number(__ENV.VUS || 200);
const USERS = Number(__ENV.USERS || 20);
const THINK = Number(__ENV.THINK ?? 1);

export const options = {
  setupTimeout: "5m",
  scenarios: {
    mixed: {
      executor: "constant-vus",
      vus: VUS,
      duration: __ENV.DURATION || "60s",
    },
  },
  thresholds: {
    http_req_failed: ["rate<0.001"],
    "http_req_duration{phase:load}": ["p(95)<25", "p(99)<50"],
    // The load phase did happen (and its count is in the summary).
    "http_reqs{phase:load}": ["count>0"],
    checks: ["rate>0.999"],
  },
};

// Accounts with a few files each, shared by the virtual users.
export function setup() {
  const users = [];
  for (let u = 0; u < USERS; u++) {
    const user = signup("mixed");
    user.files = [];
    for (let f = 0; f < 5; f++) {
      const id = directUpload(user.token, `seed-${u}-${f}.txt`, `seed file ${u}/${f}\n`);
      if (id) user.files.push(id);
    }
    users.push({ email: user.email, files: user.files });
  }
  return { users };
}

let token = null;

export default function (data) {
  const users = data.users;
  const me = users[(exec.vu.idInTest - 1) % users.length];
  if (token === null) {
    token = login(me.email); // once per virtual user
  }
  const tags = { phase: "load" };
  const list = http.get(`${BASE_URL}/api/v1/files?view=owned&limit=20`, {
    ...auth(token),
    tags: { ...tags, name: "GET /api/v1/files" },
  });
  check(list, { "list 200": (r) => r.status === 200 });
  const id = me.files[exec.scenario.iterationInTest % me.files.length];
  const read = http.get(`${BASE_URL}/api/v1/files/${id}`, {
    ...auth(token),
    tags: { ...tags, name: "GET /api/v1/files/{id}" },
  });
  check(read, { "read 200": (r) => r.status === 200 });
  const rename = http.patch(
    `${BASE_URL}/api/v1/files/${id}`,
    JSON.stringify({ name: `renamed-${exec.vu.idInTest}-${exec.scenario.iterationInTest}.txt` }),
    {
      ...json(token),
      tags: { ...tags, name: "PATCH /api/v1/files/{id}" },
      // Virtual users of one account rename the same files at once; the
      // loser of a race gets 409 (the file changed meanwhile): an answer, not a failure.
      responseCallback: http.expectedStatuses(200, 409),
    },
  );
  check(rename, { "rename 200": (r) => r.status === 200 || r.status === 409 });
  const other = users[(exec.vu.idInTest) % users.length];
  if (other.email !== me.email) {
    const share = http.post(
      `${BASE_URL}/api/v1/files/${id}/shares`,
      JSON.stringify({ email: other.email, role: exec.scenario.iterationInTest % 2 ? "viewer" : "editor" }),
      { ...json(token), tags: { ...tags, name: "POST /api/v1/files/{id}/shares" } },
    );
    check(share, { "share 200/201": (r) => r.status === 200 || r.status === 201 });
  }
  sleep(THINK);
}

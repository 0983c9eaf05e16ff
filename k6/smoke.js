// Smoke: one user walks the main routes once. `k6 run k6/smoke.js`
import http from "k6/http";
import { check } from "k6";
import { BASE_URL, auth, directUpload, json, signup } from "./lib.js";

export const options = {
  vus: 1,
  iterations: 1,
  thresholds: {
    checks: ["rate==1"],
    http_req_failed: ["rate==0"],
  },
};

export default function () {
  check(http.get(`${BASE_URL}/healthz`), { "healthz 200": (r) => r.status === 200 });
  check(http.get(`${BASE_URL}/readyz`), { "readyz 200": (r) => r.status === 200 });
  const owner = signup("smoke-owner");
  const friend = signup("smoke-friend");
  check(http.get(`${BASE_URL}/api/v1/me`, auth(owner.token)), { "me 200": (r) => r.status === 200 });
  const id = directUpload(owner.token, `smoke-${Date.now()}.txt`, "hello from k6\n");
  check(id, { "file available": (v) => v !== null });
  const list = http.get(`${BASE_URL}/api/v1/files?view=owned`, auth(owner.token));
  check(list, { "list 200": (r) => r.status === 200 && r.json().items.length >= 1 });
  const share = http.post(
    `${BASE_URL}/api/v1/files/${id}/shares`,
    JSON.stringify({ email: friend.email, role: "viewer" }),
    json(owner.token),
  );
  check(share, { "share 201": (r) => r.status === 201 });
  const shared = http.get(`${BASE_URL}/api/v1/files?view=shared`, auth(friend.token));
  check(shared, { "shared view": (r) => r.status === 200 && r.json().items.length === 1 });
  const content = http.get(`${BASE_URL}/api/v1/files/${id}/content`, auth(friend.token));
  check(content, { "download": (r) => r.status === 200 && r.body === "hello from k6\n" });
  check(http.del(`${BASE_URL}/api/v1/files/${id}`, null, auth(owner.token)), {
    "delete 204": (r) => r.status === 204,
  });
  check(http.get(`${BASE_URL}/metrics`), { "metrics 200": (r) => r.status === 200 });
}

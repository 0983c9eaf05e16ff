// Helpers the Stowage k6 scripts share. BASE_URL from the environment
// (default http://127.0.0.1:8080).
import http from "k6/http";
import { check, fail } from "k6";

export const BASE_URL = (__ENV.BASE_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
export const PASSWORD = __ENV.PASSWORD || "k6 load-test password";

const JSON_HEADERS = { "Content-Type": "application/json" };

export function auth(token, extra = {}) {
  return { headers: { Authorization: `Bearer ${token}`, ...extra } };
}

export function json(token) {
  return auth(token, JSON_HEADERS);
}

/// A fresh account; returns {token, id, email}.
export function signup(prefix) {
  const email = `${prefix}-${__VU}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@k6.example`;
  const res = http.post(
    `${BASE_URL}/api/v1/auth/signup`,
    JSON.stringify({ email, password: PASSWORD }),
    { headers: JSON_HEADERS, tags: { name: "signup" } },
  );
  if (!check(res, { "signup 201": (r) => r.status === 201 })) {
    fail(`signup failed: ${res.status} ${res.body}`);
  }
  const s = res.json();
  return { token: s.access_token, id: s.user.id, email };
}

export function login(email) {
  const res = http.post(
    `${BASE_URL}/api/v1/auth/login`,
    JSON.stringify({ email, password: PASSWORD }),
    { headers: JSON_HEADERS, tags: { name: "login" } },
  );
  if (!check(res, { "login 200": (r) => r.status === 200 })) {
    fail(`login failed: ${res.status} ${res.body}`);
  }
  return res.json().access_token;
}

/// Uploads `body` directly: presign, PUT, wait until available. Returns the file id.
export function directUpload(token, name, body) {
  const created = http.post(
    `${BASE_URL}/api/v1/uploads`,
    JSON.stringify({ name, size: body.length, content_type: "text/plain" }),
    { ...json(token), tags: { name: "POST /api/v1/uploads" } },
  );
  check(created, { "presign 201": (r) => r.status === 201 });
  if (created.status !== 201) return null;
  const { file, upload } = created.json();
  const put = http.put(upload.url, body, { headers: upload.headers, tags: { name: "PUT blob" } });
  check(put, { "PUT 200": (r) => r.status === 200 });
  // The store's event makes it available (embedded store, MinIO); a store
  // that sends no events (plain S3) is asked with confirm.
  for (let i = 0; i < 5; i++) {
    const got = http.get(`${BASE_URL}/api/v1/files/${file.id}`, {
      ...auth(token),
      tags: { name: "GET /api/v1/files/{id}" },
    });
    if (got.status === 200 && got.json().status === "available") return file.id;
  }
  const confirmed = http.post(`${BASE_URL}/api/v1/files/${file.id}/confirm`, null, {
    ...auth(token),
    tags: { name: "POST /api/v1/files/{id}/confirm" },
  });
  check(confirmed, { "confirm 200": (r) => r.status === 200 });
  return confirmed.status === 200 ? file.id : null;
}

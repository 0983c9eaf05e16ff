import { describe, expect, it } from "vitest";
import { Session, SESSION_KEY } from "./session";

class MemoryStorage implements Storage {
  private map = new Map<string, string>();
  get length() {
    return this.map.size;
  }
  clear() {
    this.map.clear();
  }
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  key(i: number) {
    return [...this.map.keys()][i] ?? null;
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
  setItem(k: string, v: string) {
    this.map.set(k, v);
  }
}

const user = { id: "u1", email: "ada@example.com", display_name: "ada", created_at: "2026-12-06T00:00:00Z" };
const pair = (n: number) => ({
  access_token: `access-${n}`,
  refresh_token: `refresh-${n}`,
  expires_in: 900,
  token_type: "Bearer",
  user,
});

/** A fake /auth/refresh: answers with `status`, counting calls. */
function server(status: number) {
  const calls: string[] = [];
  let n = 1;
  const fetcher = (async (_url: string, init: RequestInit) => {
    calls.push(JSON.parse(String(init.body)).refresh_token);
    await new Promise((r) => setTimeout(r, 5));
    if (status !== 200) return new Response("{}", { status });
    n += 1;
    return new Response(JSON.stringify(pair(n)), { status: 200 });
  }) as unknown as typeof fetch;
  return { calls, fetcher };
}

describe("Session", () => {
  it("refreshes once for many callers when the token is about to expire", async () => {
    let now = 0;
    const { calls, fetcher } = server(200);
    const s = new Session(new MemoryStorage(), fetcher, () => now);
    s.accept(pair(1));
    expect(await s.accessToken()).toBe("access-1");
    now = 850_000; // within a minute of expiry
    const tokens = await Promise.all([s.accessToken(), s.accessToken(), s.accessToken()]);
    expect(tokens).toEqual(["access-2", "access-2", "access-2"]);
    expect(calls).toEqual(["refresh-1"]);
  });

  it("ends the session when the server refuses the refresh token", async () => {
    const { fetcher } = server(401);
    const storage = new MemoryStorage();
    const s = new Session(storage, fetcher);
    s.accept(pair(1));
    let changes = 0;
    s.subscribe(() => (changes += 1));
    expect(await s.refresh("access-1")).toBe(false);
    expect(s.signedIn).toBe(false);
    expect(s.ended).toBe("expired");
    expect(storage.getItem(SESSION_KEY)).toBeNull();
    expect(changes).toBe(1);
  });

  it("keeps the session when the server cannot be reached", async () => {
    const failing = (async () => {
      throw new TypeError("offline");
    }) as unknown as typeof fetch;
    const s = new Session(new MemoryStorage(), failing);
    s.accept(pair(1));
    expect(await s.refresh("access-1")).toBe(false);
    expect(s.signedIn).toBe(true);
  });

  it("takes over a pair another tab rotated instead of spending the old refresh token", async () => {
    const storage = new MemoryStorage();
    const { calls, fetcher } = server(200);
    const mine = new Session(storage, fetcher);
    mine.accept(pair(1));
    const other = new Session(storage, fetcher);
    other.accept(pair(7)); // the other tab refreshed
    expect(await mine.refresh("access-1")).toBe(true);
    expect(await mine.accessToken()).toBe("access-7");
    expect(calls).toEqual([]);
  });

  it("reads back what it stored and ignores garbage", () => {
    const storage = new MemoryStorage();
    new Session(storage, fetch).accept(pair(3));
    expect(new Session(storage, fetch).user?.email).toBe("ada@example.com");
    storage.setItem(SESSION_KEY, "{not json");
    expect(new Session(storage, fetch).signedIn).toBe(false);
  });
});

// The signed-in person's tokens: kept in localStorage (so a reload, or an
// upload resumed after one, stays signed in), refreshed before they expire
// (one refresh at a time, shared by every caller), and handed over between
// tabs: a tab that rotated the pair writes it, the others pick it up.
// A refresh the server refuses (the login was revoked, e.g. because a spent
// refresh token was used again) ends the session: `ended` is set and the
// app sends the person to the login page.

import type { components } from "./schema";

export type User = components["schemas"]["UserBody"];
type SessionBody = components["schemas"]["SessionBody"];

export interface Tokens {
  access: string;
  refresh: string;
  /** Epoch milliseconds when the access token stops working. */
  expiresAt: number;
  user: User;
}

/** Why there is no session: never signed in, signed out, or ended by the server. */
export type Ended = "signed-out" | "expired" | null;

const KEY = "stowage.session";
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

export class Session {
  private tokens: Tokens | null;
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<() => void>();
  ended: Ended = null;

  constructor(
    private storage: Storage,
    private fetcher: typeof fetch,
    private now: () => number = Date.now,
  ) {
    this.tokens = read(storage);
  }

  get user(): User | null {
    return this.tokens?.user ?? null;
  }

  get signedIn(): boolean {
    return this.tokens !== null;
  }

  /** Calls `listener` whenever the session changes; returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts (or continues) a session with a pair the server just issued. */
  accept(body: SessionBody) {
    this.tokens = {
      access: body.access_token,
      refresh: body.refresh_token,
      expiresAt: this.now() + body.expires_in * 1000,
      user: body.user,
    };
    this.ended = null;
    this.storage.setItem(KEY, JSON.stringify(this.tokens));
    this.emit();
  }

  /** Forgets the tokens (`signed-out` after a logout, `expired` when the server ended it). */
  end(reason: Exclude<Ended, null>) {
    this.tokens = null;
    this.ended = reason;
    this.storage.removeItem(KEY);
    this.emit();
  }

  /** Another tab changed the stored session: take it over. */
  adoptStored() {
    const stored = read(this.storage);
    if (JSON.stringify(stored) === JSON.stringify(this.tokens)) return;
    this.tokens = stored;
    if (!stored && !this.ended) this.ended = "signed-out";
    this.emit();
  }

  /** A usable access token (refreshed first when it is about to expire), or null. */
  async accessToken(): Promise<string | null> {
    if (!this.tokens) return null;
    if (this.tokens.expiresAt - EARLY_MS <= this.now()) {
      await this.refresh();
    }
    return this.tokens?.access ?? null;
  }

  /** The refresh token, for logging out. */
  get refreshToken(): string | null {
    return this.tokens?.refresh ?? null;
  }

  /**
   * Exchanges the refresh token for a new pair; concurrent callers share
   * one exchange. `rejected`: the access token the server just refused
   * (refresh even if it has not expired). False when there is no session
   * afterwards, or the server could not be reached (the tokens are kept:
   * being offline is no logout).
   */
  refresh(rejected?: string): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.exchange(rejected).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async exchange(rejected?: string): Promise<boolean> {
    // Another tab may have rotated the pair already.
    this.adoptStored();
    const tokens = this.tokens;
    if (!tokens) return false;
    const fresh = rejected
      ? tokens.access !== rejected
      : tokens.expiresAt - EARLY_MS > this.now();
    if (fresh) return true;
    let res: Response;
    try {
      res = await this.fetcher("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh }),
      });
    } catch {
      return false;
    }
    if (res.ok) {
      this.accept((await res.json()) as SessionBody);
      return true;
    }
    if (res.status === 401 || res.status === 400) {
      // Revoked, reused or expired: this login is over everywhere.
      this.end("expired");
    }
    return false;
  }

  private emit() {
    for (const listener of this.listeners) listener();
  }
}

function read(storage: Storage): Tokens | null {
  try {
    const raw = storage.getItem(KEY);
    if (!raw) return null;
    const t = JSON.parse(raw) as Tokens;
    return t && typeof t.access === "string" && typeof t.refresh === "string" ? t : null;
  } catch {
    return null;
  }
}

export const SESSION_KEY = KEY;

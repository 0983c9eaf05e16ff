// The top bar: search, what is used of the quota, and logging out.

import { useLocation } from "preact-iso";
import { useState } from "preact/hooks";
import { api, session } from "../api/client";
import { bytes, percentUsed } from "../format";
import { useApp } from "../state";

export function Header() {
  const { query, route, path } = useLocation();
  const [q, setQ] = useState(path === "/search" ? (query.q ?? "") : "");
  return (
    <header class="top">
      <a class="brand" href="/files">
        Stowage
      </a>
      <form
        role="search"
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          if (q.trim()) route(`/search?q=${encodeURIComponent(q.trim())}`);
        }}
      >
        <label for="search" class="visually-hidden">
          Search your files by name
        </label>
        <input
          id="search"
          type="search"
          placeholder="Search by name"
          value={q}
          onInput={(e) => setQ(e.currentTarget.value)}
        />
        <button type="submit">Search</button>
      </form>
      <Usage />
      <Account />
    </header>
  );
}

function Usage() {
  const { me } = useApp();
  if (!me) return <div class="usage" />;
  const used = me.usage.bytes + me.usage.reserved_bytes;
  const pct = percentUsed(used, me.quota_bytes);
  const label =
    pct === null
      ? `${bytes(me.usage.bytes)} used`
      : `${bytes(used)} of ${bytes(me.quota_bytes ?? 0)} used`;
  return (
    <div class="usage" title={`${me.usage.files} files`}>
      <span>{label}</span>
      {pct !== null && (
        <progress max={100} value={pct} aria-label="Storage used" class={pct >= 90 ? "full" : ""}>
          {pct}%
        </progress>
      )}
    </div>
  );
}

function Account() {
  const { route } = useLocation();
  async function logout() {
    const refresh_token = session.refreshToken;
    if (refresh_token) {
      await api.POST("/api/v1/auth/logout", { body: { refresh_token } }).catch(() => {});
    }
    session.end("signed-out");
    route("/login", true);
  }
  return (
    <div class="account">
      <span class="who">{session.user?.email}</span>
      <button type="button" onClick={logout}>
        Log out
      </button>
    </div>
  );
}

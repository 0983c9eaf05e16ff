// The lower parts of an item's panel: its revisions, the people it is
// shared with, and its links.

import { useEffect, useState } from "preact/hooks";
import { api, describe, ok, type FileItem, type Item, type Link, type Revision, type Share } from "../api/client";
import { bytes, when } from "../format";
import { useAttempt } from "./notices";

const revisionsOf = (id: string) =>
  ok(api.GET("/api/v1/files/{id}/revisions", { params: { path: { id } } }));
const sharesOf = (item: Item): Promise<{ items: Share[] }> => {
  const init = { params: { path: { id: item.id } } };
  return item.type === "folder"
    ? ok(api.GET("/api/v1/folders/{id}/shares", init))
    : ok(api.GET("/api/v1/files/{id}/shares", init));
};
const linksOf = (item: Item): Promise<{ items: Link[] }> => {
  const init = { params: { path: { id: item.id } } };
  return item.type === "folder"
    ? ok(api.GET("/api/v1/folders/{id}/links", init))
    : ok(api.GET("/api/v1/files/{id}/links", init));
};

/** Loads `load()` now and whenever `again` is called. */
function useLoaded<T>(load: () => Promise<T>, deps: unknown[]): [T | null, () => void, string | null] {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (v) => live && (setValue(v), setError(null)),
      (e) => live && setError(describe(e)),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return [value, () => setN((x) => x + 1), error];
}

export function Revisions(props: { file: FileItem; canRestore: boolean; onChanged: () => void }) {
  const attempt = useAttempt();
  const id = props.file.id;
  const [list, reload, error] = useLoaded(() => revisionsOf(id), [id, props.file.revision]);
  const download = (r: Revision) =>
    attempt(async () => {
      const signed = await ok(
        api.GET("/api/v1/files/{id}/revisions/{n}/download-url", {
          params: { path: { id, n: r.number }, query: { disposition: "attachment" } },
        }),
      );
      // Straight from the store: the browser downloads it, nothing is held here.
      window.location.assign(signed.url);
    });
  return (
    <section class="section" aria-labelledby="revisions-title">
      <h3 id="revisions-title">Revisions</h3>
      {error && <p class="error">{error}</p>}
      <ol class="revisions">
        {(list?.items ?? []).map((r) => (
          <li key={r.number}>
            <span>
              #{r.number} · {bytes(r.size)} · {when(r.created_at)}
              {r.current && <strong> (current)</strong>}
            </span>
            <button type="button" class="link" onClick={() => download(r)}>
              Download<span class="visually-hidden"> revision {r.number}</span>
            </button>
            {props.canRestore && !r.current && (
              <button
                type="button"
                class="link"
                onClick={() =>
                  attempt(async () => {
                    await ok(
                      api.POST("/api/v1/files/{id}/revisions/{n}/restore", {
                        params: { path: { id, n: r.number } },
                      }),
                    );
                    reload();
                    props.onChanged();
                    return `Revision ${r.number} restored as the newest revision.`;
                  })
                }
              >
                Restore<span class="visually-hidden"> revision {r.number}</span>
              </button>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}

export function Shares(props: { item: Item }) {
  const attempt = useAttempt();
  const { item } = props;
  const folder = item.type === "folder";
  const path = { params: { path: { id: item.id } } };
  const [list, reload, error] = useLoaded(() => sharesOf(item), [item.id]);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<"viewer" | "editor">("viewer");
  return (
    <section class="section" aria-labelledby="shares-title">
      <h3 id="shares-title">People</h3>
      {error && <p class="error">{error}</p>}
      <ul class="shares">
        {(list?.items ?? []).map((s) => (
          <li key={s.user_id}>
            <span>
              {s.email} · {s.role}
            </span>
            <button
              type="button"
              class="link"
              onClick={() =>
                attempt(async () => {
                  const p = { params: { path: { id: item.id, user_id: s.user_id } } };
                  if (folder) await ok(api.DELETE("/api/v1/folders/{id}/shares/{user_id}", p));
                  else await ok(api.DELETE("/api/v1/files/{id}/shares/{user_id}", p));
                  reload();
                  return `${s.email} no longer has access.`;
                })
              }
            >
              Remove<span class="visually-hidden"> {s.email}</span>
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void attempt(async () => {
            const body = { email: email.trim(), role };
            if (folder) await ok(api.POST("/api/v1/folders/{id}/shares", { ...path, body }));
            else await ok(api.POST("/api/v1/files/{id}/shares", { ...path, body }));
            setEmail("");
            reload();
            return `Shared with ${body.email} as ${role}.`;
          });
        }}
      >
        <label>
          Share with (email)
          <input type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.currentTarget.value as "viewer" | "editor")}>
            <option value="viewer">viewer</option>
            <option value="editor">editor</option>
          </select>
        </label>
        <button type="submit">Share</button>
      </form>
    </section>
  );
}

export function Links(props: { item: Item }) {
  const attempt = useAttempt();
  const { item } = props;
  const folder = item.type === "folder";
  const path = { params: { path: { id: item.id } } };
  const [list, reload, error] = useLoaded(() => linksOf(item), [item.id]);
  const [password, setPassword] = useState("");
  const [expires, setExpires] = useState("");
  const [max, setMax] = useState("");
  const [mode, setMode] = useState<"view" | "upload">("view");
  return (
    <section class="section" aria-labelledby="links-title">
      <h3 id="links-title">Links</h3>
      {error && <p class="error">{error}</p>}
      <ul class="links">
        {(list?.items ?? []).map((l) => (
          <li key={l.id}>
            <input readOnly value={l.url} aria-label={`Link (${l.mode})`} class="copy" />
            <span class="hint">
              {l.mode === "upload" ? "drop folder" : "view"}
              {l.has_password && " · password"}
              {l.expires_at && ` · until ${when(l.expires_at)}`}
              {l.max_downloads !== null && ` · ${l.downloads}/${l.max_downloads} downloads`}
            </span>
            <button
              type="button"
              class="link"
              onClick={() =>
                attempt(async () => {
                  await ok(api.DELETE("/api/v1/links/{id}", { params: { path: { id: l.id } } }));
                  reload();
                  return "The link no longer works.";
                })
              }
            >
              Revoke<span class="visually-hidden"> link {l.url}</span>
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void attempt(async () => {
            const body = {
              password: password || null,
              expires_at: expires ? new Date(expires).toISOString() : null,
              max_downloads: max ? Number(max) : null,
              mode: folder ? mode : "view",
            } as const;
            const made = folder
              ? await ok(api.POST("/api/v1/folders/{id}/links", { ...path, body }))
              : await ok(api.POST("/api/v1/files/{id}/links", { ...path, body }));
            setPassword("");
            setExpires("");
            setMax("");
            reload();
            return `Link created: ${made.url}`;
          });
        }}
      >
        <label>
          Password (optional)
          <input type="password" autoComplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <label>
          Expires (optional)
          <input type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
        </label>
        {!folder && (
          <label>
            Download limit (optional)
            <input type="number" min={1} value={max} onInput={(e) => setMax(e.currentTarget.value)} />
          </label>
        )}
        {folder && (
          <label>
            Kind
            <select value={mode} onChange={(e) => setMode(e.currentTarget.value as "view" | "upload")}>
              <option value="view">view and download</option>
              <option value="upload">drop folder (upload only)</option>
            </select>
          </label>
        )}
        <button type="submit">Create link</button>
      </form>
    </section>
  );
}

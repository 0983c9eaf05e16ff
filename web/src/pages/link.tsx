// A share link opened in a browser, signed in or not: the password form
// when the link has one, a linked folder's items (sub-folders open in
// place, files download through the link), a file's download, or a drop
// folder's upload form (tus to /s/{token}/tus).

import Uppy from "@uppy/core";
import Tus from "@uppy/tus";
import { useLocation } from "preact-iso";
import { useEffect, useMemo, useState } from "preact/hooks";
import type { components } from "../api/schema";
import { FileIcon, FolderIcon } from "../components/icons";
import { bytes } from "../format";

type Item = components["schemas"]["ItemBody"];
type Folder = components["schemas"]["FolderBody"];
type Page = { folder: Folder; items: Item[]; next_cursor?: string | null };

type State =
  | { kind: "loading" }
  | { kind: "password"; wrong: boolean }
  | { kind: "folder"; page: Page }
  | { kind: "file" }
  | { kind: "drop" }
  | { kind: "gone"; message: string };

async function problem(res: Response): Promise<{ code: string; detail: string }> {
  try {
    const p = await res.json();
    return { code: p.code ?? "", detail: p.detail ?? p.title ?? "" };
  } catch {
    return { code: "", detail: "" };
  }
}

export function LinkPage(props: { params: { token: string } }) {
  const token = props.params.token;
  const { query, route } = useLocation();
  const folderId = query.folder;
  const base = `/s/${encodeURIComponent(token)}`;
  const [state, setState] = useState<State>({ kind: "loading" });
  const [n, setN] = useState(0);

  useEffect(() => {
    document.title = "Shared with you · Stowage";
    let live = true;
    (async () => {
      const url = folderId ? `${base}/items/${encodeURIComponent(folderId)}` : base;
      // A file answers with a redirect that counts a download: not followed here.
      const res = await fetch(url, { headers: { accept: "application/json" }, redirect: "manual" });
      if (!live) return;
      if (res.type === "opaqueredirect" || (res.status >= 300 && res.status < 400)) {
        setState({ kind: "file" });
      } else if (res.ok) {
        setState({ kind: "folder", page: (await res.json()) as Page });
      } else {
        const p = await problem(res);
        if (p.code === "link_password_required") setState({ kind: "password", wrong: false });
        else if (p.code === "link_upload_only") setState({ kind: "drop" });
        else setState({ kind: "gone", message: p.detail || "This link does not work (any more)." });
      }
    })().catch(() => live && setState({ kind: "gone", message: "The server could not be reached." }));
    return () => {
      live = false;
    };
  }, [token, folderId, n]);

  return (
    <main class="centered link-page">
      <h1>Shared with you</h1>
      {state.kind === "loading" && <p role="status">Opening the link…</p>}
      {state.kind === "gone" && <p class="error">{state.message}</p>}
      {state.kind === "password" && <Unlock base={base} wrong={state.wrong} onOpen={() => setN((x) => x + 1)} />}
      {state.kind === "file" && (
        <p>
          <a class="button primary" href={base}>
            Download the file
          </a>
        </p>
      )}
      {state.kind === "folder" && (
        <section aria-labelledby="linked-folder">
          <h2 id="linked-folder">
            <FolderIcon /> {state.page.folder.name}
          </h2>
          {folderId && (
            <p>
              <button type="button" class="link" onClick={() => route(base)}>
                Back to the top of the shared folder
              </button>
            </p>
          )}
          <ul class="linked-items">
            {state.page.items.map((i) => (
              <li key={i.id}>
                {i.type === "folder" ? (
                  <a href={`${base}?folder=${i.id}`}>
                    <FolderIcon /> {i.name}
                  </a>
                ) : (
                  <a href={`${base}/items/${i.id}`} download>
                    <FileIcon /> {i.name} <span class="hint">({bytes(i.size)})</span>
                  </a>
                )}
              </li>
            ))}
            {state.page.items.length === 0 && <li class="hint">This folder is empty.</li>}
          </ul>
        </section>
      )}
      {state.kind === "drop" && <DropFolder base={base} />}
    </main>
  );
}

function Unlock(props: { base: string; wrong: boolean; onOpen: () => void }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        const res = await fetch(`${props.base}/unlock`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ password }),
        });
        if (res.ok) props.onOpen();
        else setError((await problem(res)).detail || "That password does not open this link.");
      }}
    >
      <p>This link is protected by a password.</p>
      <label>
        Password
        <input
          type="password"
          required
          autoComplete="off"
          value={password}
          aria-invalid={error ? true : undefined}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="primary">
        Open
      </button>
    </form>
  );
}

/** A drop folder: files go in; nothing in it is shown. */
function DropFolder(props: { base: string }) {
  const uppy = useMemo(() => {
    const u = new Uppy({ autoProceed: true });
    u.use(Tus, {
      endpoint: new URL(`${props.base}/tus`, window.location.origin).toString(),
      retryDelays: [0, 1000, 3000],
      allowedMetaFields: ["name", "type"],
      // The unlock cookie (for a password link) goes along.
      withCredentials: true,
    });
    return u;
  }, [props.base]);
  const [, tick] = useState(0);
  useEffect(() => {
    const update = () => tick((x) => x + 1);
    uppy.on("state-update", update);
    return () => {
      uppy.off("state-update", update);
      uppy.destroy();
    };
  }, [uppy]);
  const files = uppy.getFiles();
  return (
    <section aria-labelledby="drop-title">
      <h2 id="drop-title">Send files</h2>
      <p>Files you send here go to the folder's owner. You will not see what is in it.</p>
      <label class="button primary">
        Choose files to send
        <input
          type="file"
          multiple
          class="visually-hidden"
          data-testid="drop-files"
          onChange={(e) => {
            for (const file of Array.from(e.currentTarget.files ?? [])) {
              try {
                uppy.addFile({ name: file.name, type: file.type || "application/octet-stream", data: file });
              } catch {
                // Already sent.
              }
            }
            e.currentTarget.value = "";
          }}
        />
      </label>
      <ul class="drop-list">
        {files.map((f) => (
          <li key={f.id} data-state={f.progress.uploadComplete ? "done" : f.error ? "failed" : "uploading"}>
            {f.name}: {f.progress.uploadComplete ? "sent" : f.error ? "failed" : `${f.progress.percentage ?? 0}%`}
          </li>
        ))}
      </ul>
    </section>
  );
}

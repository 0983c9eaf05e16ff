// Modal dialogs on the native <dialog> (focus moves in, Escape closes,
// focus goes back): asking for a name, and choosing a folder to move to.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, describe, ok, type Folder } from "../api/client";
import { FolderIcon } from "./icons";

function Modal(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current!;
    const before = document.activeElement as HTMLElement | null;
    dialog.showModal();
    return () => {
      dialog.close();
      before?.focus();
    };
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="dialog-title" onClose={props.onClose} onCancel={props.onClose}>
      <h2 id="dialog-title">{props.title}</h2>
      {props.children}
    </dialog>
  );
}

/** Asks for one line of text (a folder's name, a new name). */
export function PromptDialog(props: {
  title: string;
  label: string;
  submit: string;
  initial?: string;
  onSubmit: (value: string) => Promise<void>;
  onClose: () => void;
}) {
  const [value, setValue] = useState(props.initial ?? "");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title={props.title} onClose={props.onClose}>
      <form
        method="dialog"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await props.onSubmit(value.trim());
            props.onClose();
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          {props.label}
          <input
            value={value}
            required
            maxLength={255}
            autoFocus
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? "prompt-error" : undefined}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p id="prompt-error" class="error" role="alert">
            {error}
          </p>
        )}
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {props.submit}
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Picks a folder of one's own to move an item into, browsing from the root. */
export function MoveDialog(props: {
  name: string;
  itemId: string;
  onMove: (to: string | null) => Promise<void>;
  onClose: () => void;
}) {
  const [at, setAt] = useState<Folder[]>([]);
  const [folders, setFolders] = useState<Folder[]>([]);
  const [error, setError] = useState<string | null>(null);
  const here = at[at.length - 1];

  useEffect(() => {
    let live = true;
    (async () => {
      const found: Folder[] = [];
      let cursor: string | undefined;
      // Folders come first in a listing: stop at the first file.
      for (let pages = 0; pages < 20; pages++) {
        const page = await ok(
          api.GET("/api/v1/folders/{id}/children", {
            params: { path: { id: here?.id ?? "root" }, query: { limit: 200, cursor } },
          }),
        );
        const mine = page.items.filter((i): i is Folder => i.type === "folder");
        found.push(...mine);
        if (mine.length < page.items.length || !page.next_cursor) break;
        cursor = page.next_cursor;
      }
      if (live) setFolders(found.filter((f) => f.id !== props.itemId));
    })().catch((e) => live && setError(describe(e)));
    return () => {
      live = false;
    };
  }, [here?.id]);

  return (
    <Modal title={`Move “${props.name}”`} onClose={props.onClose}>
      <nav aria-label="Destination path" class="crumbs">
        <ol>
          <li>
            <button type="button" class="link" onClick={() => setAt([])}>
              My files
            </button>
          </li>
          {at.map((f, i) => (
            <li key={f.id}>
              <button type="button" class="link" onClick={() => setAt(at.slice(0, i + 1))}>
                {f.name}
              </button>
            </li>
          ))}
        </ol>
      </nav>
      <ul class="folder-picker" aria-label="Folders here">
        {folders.map((f) => (
          <li key={f.id}>
            <button type="button" class="link" onClick={() => setAt([...at, f])}>
              <FolderIcon /> {f.name}
            </button>
          </li>
        ))}
        {folders.length === 0 && <li class="hint">No folders inside.</li>}
      </ul>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button
          type="button"
          class="primary"
          onClick={async () => {
            try {
              await props.onMove(here?.id ?? null);
              props.onClose();
            } catch (e) {
              setError(describe(e));
            }
          }}
        >
          Move to {here ? `“${here.name}”` : "My files"}
        </button>
      </div>
    </Modal>
  );
}

/** Asks before doing something that cannot be undone. */
export function ConfirmDialog(props: {
  title: string;
  message: string;
  confirm: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title={props.title} onClose={props.onClose}>
      <p>{props.message}</p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="buttons">
        <button type="button" onClick={props.onClose} autoFocus>
          Cancel
        </button>
        <button
          type="button"
          class="primary danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await props.onConfirm();
              props.onClose();
            } catch (e) {
              setError(describe(e));
            } finally {
              setBusy(false);
            }
          }}
        >
          {props.confirm}
        </button>
      </div>
    </Modal>
  );
}

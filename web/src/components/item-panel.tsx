// The selected file's or folder's panel: what it is, a preview where the
// browser can show one (from a signed URL straight from the store), and
// what can be done with it; revisions, people and links below.

import { useLocation } from "preact-iso";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ok, type FileItem, type Item } from "../api/client";
import { bytes, when } from "../format";
import type { View } from "../pages/listing";
import { MoveDialog, PromptDialog } from "./dialogs";
import { useAttempt, useNotify } from "./notices";
import { Links, Revisions, Shares } from "./panel-sections";
import { PdfPreview } from "./pdf-preview";

export function ItemPanel(props: {
  item: Item;
  view: View;
  onClose: () => void;
  onChanged: () => void;
}) {
  const { item, view } = props;
  const { say } = useNotify();
  const attempt = useAttempt();
  const { route } = useLocation();
  const [renaming, setRenaming] = useState(false);
  const [moving, setMoving] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const folder = item.type === "folder";
  const owner = item.role === "owner";
  const editor = owner || item.role === "editor";
  const trashed = view === "trash" || !!item.deleted_at;

  useEffect(() => heading.current?.focus(), [item.id]);

  const act = (what: string, call: () => Promise<unknown>) =>
    attempt(async () => {
      await call();
      props.onChanged();
      return what;
    });

  const path = { params: { path: { id: item.id } } };
  const rename = (name: string) =>
    folder
      ? ok(api.PATCH("/api/v1/folders/{id}", { ...path, body: { name } }))
      : ok(api.PATCH("/api/v1/files/{id}", { ...path, body: { name } }));
  const move = (to: string | null) =>
    folder
      ? ok(api.PATCH("/api/v1/folders/{id}", { ...path, body: { parent_id: to } }))
      : ok(api.PATCH("/api/v1/files/{id}", { ...path, body: { parent_id: to } }));

  return (
    <aside class="panel" aria-labelledby="panel-title">
      <header>
        <h2 id="panel-title" tabIndex={-1} ref={heading}>
          {item.name}
        </h2>
        <button type="button" onClick={props.onClose}>
          Close<span class="visually-hidden"> details of {item.name}</span>
        </button>
      </header>
      <dl class="facts">
        <dt>Kind</dt>
        <dd>{folder ? "Folder" : (item as FileItem).content_type}</dd>
        {!folder && (
          <>
            <dt>Size</dt>
            <dd>{bytes((item as FileItem).size)}</dd>
            <dt>Revision</dt>
            <dd>{(item as FileItem).revision}</dd>
          </>
        )}
        <dt>Modified</dt>
        <dd>{when(item.updated_at)}</dd>
        <dt>Your access</dt>
        <dd>{item.role}</dd>
        {trashed && (
          <>
            <dt>Purged on</dt>
            <dd>{when(item.purge_at)}</dd>
          </>
        )}
      </dl>
      {!folder && !trashed && (item as FileItem).status === "available" && <Preview file={item as FileItem} />}
      <div class="panel-actions">
        {folder && !trashed && (
          <button type="button" onClick={() => route(`/folders/${item.id}`)}>
            Open
          </button>
        )}
        {!folder && !trashed && <Download file={item as FileItem} />}
        {!trashed && editor && (
          <button type="button" onClick={() => setRenaming(true)}>
            Rename
          </button>
        )}
        {!trashed && owner && (
          <button type="button" onClick={() => setMoving(true)}>
            Move
          </button>
        )}
        {!trashed && owner && (
          <button
            type="button"
            class="danger"
            onClick={() =>
              act(`“${item.name}” moved to the trash.`, async () => {
                if (folder) await ok(api.DELETE("/api/v1/folders/{id}", path));
                else await ok(api.DELETE("/api/v1/files/{id}", path));
                props.onClose();
              })
            }
          >
            Delete
          </button>
        )}
        {trashed && owner && (
          <button
            type="button"
            onClick={() =>
              act(`“${item.name}” restored.`, async () => {
                if (folder) await ok(api.POST("/api/v1/folders/{id}/restore", path));
                else await ok(api.POST("/api/v1/files/{id}/restore", path));
                props.onClose();
              })
            }
          >
            Restore
          </button>
        )}
        {!folder && !trashed && !owner && !(item as FileItem).shortcut_id && (
          <button
            type="button"
            onClick={() =>
              act("Shortcut added.", () => ok(api.POST("/api/v1/shortcuts", { body: { file_id: item.id } })))
            }
          >
            Add shortcut
          </button>
        )}
        {!folder && (item as FileItem).shortcut_id && (
          <button
            type="button"
            onClick={() =>
              act("Shortcut removed.", () =>
                ok(
                  api.DELETE("/api/v1/shortcuts/{shortcut_id}", {
                    params: { path: { shortcut_id: (item as FileItem).shortcut_id! } },
                  }),
                ),
              )
            }
          >
            Remove shortcut
          </button>
        )}
      </div>
      {!folder && !trashed && owner && <PublicToggle file={item as FileItem} onChanged={props.onChanged} />}
      {!trashed && owner && <Shares item={item} />}
      {!trashed && owner && <Links item={item} />}
      {!folder && !trashed && <Revisions file={item as FileItem} canRestore={editor} onChanged={props.onChanged} />}
      {renaming && (
        <PromptDialog
          title={`Rename “${item.name}”`}
          label="New name"
          submit="Rename"
          initial={item.name}
          onSubmit={async (name) => {
            await rename(name);
            say(`Renamed to “${name}”.`);
            props.onChanged();
          }}
          onClose={() => setRenaming(false)}
        />
      )}
      {moving && (
        <MoveDialog
          name={item.name}
          itemId={item.id}
          onMove={async (to) => {
            await move(to);
            say(`“${item.name}” moved.`);
            props.onChanged();
          }}
          onClose={() => setMoving(false)}
        />
      )}
    </aside>
  );
}

async function signedUrl(file: FileItem, disposition: "inline" | "attachment"): Promise<string> {
  const got = await ok(
    api.GET("/api/v1/files/{id}/download-url", {
      params: { path: { id: file.id }, query: { disposition } },
    }),
  );
  return got.url;
}

function Download(props: { file: FileItem }) {
  const attempt = useAttempt();
  return (
    <button
      type="button"
      class="primary"
      onClick={() =>
        attempt(async () => {
          window.location.assign(await signedUrl(props.file, "attachment"));
        })
      }
    >
      Download
    </button>
  );
}

/** What the browser can show by itself. */
function previewKind(type: string): "image" | "video" | "audio" | "pdf" | "text" | null {
  const t = type.toLowerCase();
  if (/^image\/(png|jpe?g|gif|webp|avif|bmp|svg\+xml)/.test(t)) return "image";
  if (t.startsWith("video/")) return "video";
  if (t.startsWith("audio/")) return "audio";
  if (t.startsWith("application/pdf")) return "pdf";
  if (t.startsWith("text/") || /^application\/(json|xml)/.test(t)) return "text";
  return null;
}

function Preview(props: { file: FileItem }) {
  const kind = previewKind(props.file.content_type);
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!kind) return;
    let live = true;
    signedUrl(props.file, "inline").then((u) => live && setUrl(u), () => {});
    return () => {
      live = false;
    };
  }, [props.file.id, props.file.revision]);
  if (!kind || !url) return null;
  const label = `Preview of ${props.file.name}`;
  return (
    <figure class="preview">
      {kind === "image" && <img src={url} alt={label} />}
      {kind === "video" && <video src={url} controls aria-label={label} />}
      {kind === "audio" && <audio src={url} controls aria-label={label} />}
      {kind === "text" && <iframe src={url} title={label} sandbox="" />}
      {kind === "pdf" && <PdfPreview url={url} name={props.file.name} />}
    </figure>
  );
}

function PublicToggle(props: { file: FileItem; onChanged: () => void }) {
  const attempt = useAttempt();
  // Switched at once; switched back if the server says no.
  const [pub, setPub] = useState(props.file.visibility === "public");
  useEffect(() => setPub(props.file.visibility === "public"), [props.file.visibility]);
  return (
    <section class="section" aria-labelledby="public-title">
      <h3 id="public-title">Public link</h3>
      <label class="switch">
        <input
          type="checkbox"
          checked={pub}
          onChange={async () => {
            const want = !pub;
            setPub(want);
            const done = await attempt(async () => {
              await ok(
                api.PATCH("/api/v1/files/{id}", {
                  params: { path: { id: props.file.id } },
                  body: { visibility: want ? "public" : "private" },
                }),
              );
              props.onChanged();
              return want ? "Anyone with the public link can download it now." : "The file is private again.";
            });
            if (!done) setPub(!want);
          }}
        />{" "}
        Anyone with the link can download
      </label>
      {pub && props.file.public_url && (
        <p>
          <input readOnly value={props.file.public_url} aria-label="Public link address" class="copy" />
        </p>
      )}
    </section>
  );
}

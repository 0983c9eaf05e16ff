// A view of the drive: a folder of one's own (with breadcrumbs, new
// folders, uploads and moving by drag and drop), what others shared, the
// shortcuts, the trash, or a search; the selected item's panel beside it.

import { useLocation } from "preact-iso";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, describe, ok, type Folder, type Item } from "../api/client";
import { ItemPanel } from "../components/item-panel";
import { ItemTable } from "../components/item-table";
import { ConfirmDialog, PromptDialog } from "../components/dialogs";
import { useNotify } from "../components/notices";
import { UploadButtons } from "../components/upload-buttons";
import { useApp } from "../state";
import { isFolder, useListing, useTrail, type Sort, type View } from "./listing";

export type { View };

const TITLES: Record<View, string> = {
  owned: "My files",
  shared: "Shared with me",
  shortcuts: "Shortcuts",
  trash: "Trash",
  search: "Search",
};

export function Drive(props: { view: View; folderId?: string }) {
  const { view, folderId } = props;
  const { query } = useLocation();
  const { revision, bump } = useApp();
  const { say, fail } = useNotify();
  const [sort, setSort] = useState<Sort>("name");
  const q = view === "search" ? query.q : undefined;
  const listing = useListing(view, folderId, q, sort, revision);
  const trail = useTrail(view === "owned" ? folderId : undefined, revision);
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [emptying, setEmptying] = useState(false);
  const here = trail[trail.length - 1] as Folder | undefined;
  const canWrite = view === "owned" && (!here || here.role === "owner" || here.role === "editor");

  useEffect(() => setSelected(null), [view, folderId, q]);
  const item = useMemo(
    () => listing.items.find((i) => i.id === selected) ?? null,
    [listing.items, selected],
  );
  const title = view === "owned" && here ? here.name : TITLES[view];
  useEffect(() => {
    document.title = `${title} · Stowage`;
  }, [title]);

  async function createFolder(name: string) {
    await ok(api.POST("/api/v1/folders", { body: { name, parent_id: folderId ?? null } }));
    say(`Folder “${name}” created.`);
    bump();
  }

  async function move(itemId: string, kind: Item["type"], to: string | null, name: string) {
    try {
      if (kind === "folder") {
        await ok(api.PATCH("/api/v1/folders/{id}", { params: { path: { id: itemId } }, body: { parent_id: to } }));
      } else {
        await ok(api.PATCH("/api/v1/files/{id}", { params: { path: { id: itemId } }, body: { parent_id: to } }));
      }
      say(`“${name}” moved.`);
      bump();
    } catch (e) {
      fail(`“${name}” was not moved: ${describe(e)}`);
    }
  }

  return (
    <div class={`drive ${item ? "with-panel" : ""}`}>
      <section class="listing" aria-labelledby="view-title">
        {view === "owned" ? (
          <Breadcrumbs trail={trail} onDropItem={move} />
        ) : null}
        <div class="toolbar">
          <h1 id="view-title">{view === "search" ? `Search: “${q ?? ""}”` : title}</h1>
          <div class="actions">
            {canWrite && (
              <>
                <button type="button" onClick={() => setCreating(true)}>
                  New folder
                </button>
                <UploadButtons folderId={folderId ?? null} />
              </>
            )}
            {(view === "owned" || view === "search") && (
              <label class="sort">
                Sort by{" "}
                <select value={sort} onChange={(e) => setSort(e.currentTarget.value as Sort)}>
                  <option value="name">Name (A–Z)</option>
                  <option value="-name">Name (Z–A)</option>
                  <option value="-created_at">Newest first</option>
                  <option value="created_at">Oldest first</option>
                  <option value="-size">Largest first</option>
                  <option value="size">Smallest first</option>
                </select>
              </label>
            )}
          </div>
        </div>
        {view === "trash" && (
          <div class="toolbar">
            <p class="hint">
              Items in the trash are purged for good on the date shown. Restore one to bring it back.
            </p>
            {listing.items.length > 0 && (
              <button type="button" class="danger" onClick={() => setEmptying(true)}>
                Empty trash
              </button>
            )}
          </div>
        )}
        <ItemTable
          view={view}
          listing={listing}
          selected={selected}
          onSelect={setSelected}
          onDropItem={move}
        />
      </section>
      {item && (
        <ItemPanel
          key={item.id}
          item={item}
          view={view}
          onClose={() => setSelected(null)}
          onChanged={bump}
        />
      )}
      {emptying && (
        <ConfirmDialog
          title="Empty the trash?"
          message="Everything in the trash is deleted for good. This cannot be undone."
          confirm="Empty trash"
          onConfirm={async () => {
            const done = await ok(api.DELETE("/api/v1/trash"));
            setSelected(null);
            // The server purges at once; wait (a little) until it has.
            for (let i = 0; i < 40; i++) {
              const left = await ok(api.GET("/api/v1/files", { params: { query: { view: "trash", limit: 1 } } }));
              if (left.items.length === 0) break;
              await new Promise((r) => setTimeout(r, 250));
            }
            say(`${done.emptied} items deleted for good.`);
            bump();
          }}
          onClose={() => setEmptying(false)}
        />
      )}
      {creating && (
        <PromptDialog
          title="New folder"
          label="Folder name"
          submit="Create"
          onSubmit={createFolder}
          onClose={() => setCreating(false)}
        />
      )}
    </div>
  );
}

/** Where this folder is, each step a link and a place to drop items. */
function Breadcrumbs(props: {
  trail: Folder[];
  onDropItem: (id: string, kind: Item["type"], to: string | null, name: string) => void;
}) {
  const { trail } = props;
  const top = trail[0];
  // A folder shared with the caller starts from "Shared with me".
  const sharedTop = top && top.role !== "owner" && top.parent_id !== null;
  return (
    <nav aria-label="Folder path" class="crumbs">
      <ol>
        <li>
          {sharedTop ? (
            <a href="/shared">Shared with me</a>
          ) : (
            <DropLink href="/files" to={null} onDropItem={props.onDropItem}>
              My files
            </DropLink>
          )}
        </li>
        {trail.map((f, i) => (
          <li key={f.id}>
            {i === trail.length - 1 ? (
              <span aria-current="page">{f.name}</span>
            ) : (
              <DropLink href={`/folders/${f.id}`} to={f.id} onDropItem={props.onDropItem}>
                {f.name}
              </DropLink>
            )}
          </li>
        ))}
      </ol>
    </nav>
  );
}

function DropLink(props: {
  href: string;
  to: string | null;
  children: string;
  onDropItem: (id: string, kind: Item["type"], to: string | null, name: string) => void;
}) {
  const [over, setOver] = useState(false);
  return (
    <a
      href={props.href}
      class={over ? "drop-over" : ""}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes("application/x-stowage-item")) {
          e.preventDefault();
          setOver(true);
        }
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        setOver(false);
        const raw = e.dataTransfer?.getData("application/x-stowage-item");
        if (!raw) return;
        e.preventDefault();
        const dragged = JSON.parse(raw) as { id: string; type: Item["type"]; name: string };
        props.onDropItem(dragged.id, dragged.type, props.to, dragged.name);
      }}
    >
      {props.children}
    </a>
  );
}

export { isFolder };

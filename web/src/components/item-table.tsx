// The items of a view as a table: a folder's name opens it, a file's name
// shows its panel; rows drag onto folders (and breadcrumbs) to move; more
// pages load as the end of the list comes into view (or with the button).

import { useEffect, useRef, useState } from "preact/hooks";
import type { Item } from "../api/client";
import { bytes, when } from "../format";
import { FileIcon, FolderIcon } from "./icons";
import { isFolder, type Listing, type View } from "../pages/listing";

const DRAG_TYPE = "application/x-stowage-item";

export function ItemTable(props: {
  view: View;
  listing: Listing;
  selected: string | null;
  onSelect: (id: string) => void;
  onDropItem: (id: string, kind: Item["type"], to: string | null, name: string) => void;
}) {
  const { view, listing } = props;
  const sentinel = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !listing.more) return;
    const watcher = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) listing.loadMore();
    });
    watcher.observe(el);
    return () => watcher.disconnect();
  }, [listing.more, listing.loading, listing.items.length]);

  if (listing.error) {
    return (
      <p class="error" role="alert">
        {listing.error}
      </p>
    );
  }
  if (!listing.loading && listing.items.length === 0) {
    return <p class="empty">{EMPTY[view]}</p>;
  }
  const trash = view === "trash";
  return (
    <>
      <table class="items" aria-busy={listing.loading}>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">{trash ? "Purged on" : "Modified"}</th>
            {view !== "owned" && <th scope="col">Access</th>}
          </tr>
        </thead>
        <tbody>
          {listing.items.map((item) => (
            <Row
              key={item.id}
              item={item}
              view={view}
              selected={props.selected === item.id}
              onSelect={props.onSelect}
              onDropItem={props.onDropItem}
            />
          ))}
        </tbody>
      </table>
      <div ref={sentinel} class="more">
        {listing.loading && <span role="status">Loading…</span>}
        {listing.more && !listing.loading && (
          <button type="button" onClick={listing.loadMore}>
            Show more
          </button>
        )}
      </div>
    </>
  );
}

const EMPTY: Record<View, string> = {
  owned: "Nothing here yet. Upload files or create a folder.",
  shared: "Nobody has shared anything with you yet.",
  shortcuts: "No shortcuts. Add one from a shared item's panel.",
  trash: "The trash is empty.",
  search: "No file or folder has a name that starts like that.",
};

function Row(props: {
  item: Item;
  view: View;
  selected: boolean;
  onSelect: (id: string) => void;
  onDropItem: (id: string, kind: Item["type"], to: string | null, name: string) => void;
}) {
  const { item, view } = props;
  const [over, setOver] = useState(false);
  const folder = isFolder(item);
  const movable = view === "owned" && (item.role === "owner" || item.role === "editor");
  const trash = view === "trash";
  const name = folder && !trash ? (
    <a href={`/folders/${item.id}`} class="name folder">
      <FolderIcon />
      {item.name}
    </a>
  ) : (
    <button
      type="button"
      class="name link"
      aria-pressed={props.selected}
      onClick={() => props.onSelect(item.id)}
    >
      {folder ? <FolderIcon /> : <FileIcon />}
      {item.name}
    </button>
  );
  return (
    <tr
      class={`${props.selected ? "selected" : ""} ${over ? "drop-over" : ""}`}
      draggable={movable}
      onDragStart={(e) => {
        e.dataTransfer?.setData(DRAG_TYPE, JSON.stringify({ id: item.id, type: item.type, name: item.name }));
        e.dataTransfer && (e.dataTransfer.effectAllowed = "move");
      }}
      onDragOver={(e) => {
        if (folder && !trash && e.dataTransfer?.types.includes(DRAG_TYPE)) {
          e.preventDefault();
          setOver(true);
        }
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        setOver(false);
        const raw = e.dataTransfer?.getData(DRAG_TYPE);
        if (!raw || !folder) return;
        e.preventDefault();
        const dragged = JSON.parse(raw) as { id: string; type: Item["type"]; name: string };
        if (dragged.id !== item.id) props.onDropItem(dragged.id, dragged.type, item.id, dragged.name);
      }}
    >
      <td>
        {name}
        {folder && !trash && (
          <button type="button" class="link details" onClick={() => props.onSelect(item.id)}>
            Details<span class="visually-hidden"> of {item.name}</span>
          </button>
        )}
        {!folder && item.status === "pending" && <span class="badge">uploading</span>}
        {!folder && item.visibility === "public" && <span class="badge">public</span>}
      </td>
      <td class="num">{folder ? "—" : bytes(item.size)}</td>
      <td>{trash ? when(item.purge_at) : when(item.updated_at)}</td>
      {view !== "owned" && <td>{item.role}</td>}
    </tr>
  );
}

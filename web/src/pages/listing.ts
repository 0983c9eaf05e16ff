// Loading a view page by page (keyset paging: each page asks for the items
// after the last one's cursor, so the thousandth page costs what the first
// did), and the folder chain above a folder for its breadcrumbs.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, describe, ok, type Folder, type Item } from "../api/client";

export type View = "owned" | "shared" | "shortcuts" | "trash" | "search";
export type Sort = "name" | "-name" | "created_at" | "-created_at" | "size" | "-size";

export const PAGE = 100;

export interface Listing {
  items: Item[];
  loading: boolean;
  error: string | null;
  more: boolean;
  loadMore: () => void;
}

async function page(
  view: View,
  folderId: string | undefined,
  q: string | undefined,
  sort: Sort,
  cursor: string | undefined,
): Promise<{ items: Item[]; next_cursor?: string | null }> {
  if (view === "owned") {
    return ok(
      api.GET("/api/v1/folders/{id}/children", {
        params: { path: { id: folderId ?? "root" }, query: { limit: PAGE, cursor, sort } },
      }),
    );
  }
  const listed = await ok(
    api.GET("/api/v1/files", {
      params: {
        query: {
          view: view === "search" ? "owned" : view,
          q: view === "search" ? q : undefined,
          limit: PAGE,
          cursor,
          // The flat views sort files by name, size or date alike.
          sort: view === "search" ? sort : undefined,
        },
      },
    }),
  );
  return listed as { items: Item[]; next_cursor?: string | null };
}

/** The items of a view (and folder), reloaded whenever `revision` grows. */
export function useListing(
  view: View,
  folderId: string | undefined,
  q: string | undefined,
  sort: Sort,
  revision: number,
): Listing {
  const [items, setItems] = useState<Item[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  // Answers to an older request (the person moved on) are dropped.
  const generation = useRef(0);

  async function load(after: string | undefined, replace: boolean) {
    const mine = ++generation.current;
    setLoading(true);
    setError(null);
    try {
      const got = await page(view, folderId, q, sort, after);
      if (mine !== generation.current) return;
      setItems((old) => (replace ? got.items : [...old, ...got.items]));
      setCursor(got.next_cursor ?? null);
    } catch (e) {
      if (mine === generation.current) setError(describe(e));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }

  // Another view or folder starts empty; the same one, reloaded after a
  // change, keeps its rows until the new ones arrive.
  const shown = `${view}|${folderId ?? ""}|${q ?? ""}|${sort}`;
  const last = useRef(shown);
  useEffect(() => {
    if (last.current !== shown) {
      last.current = shown;
      setItems([]);
      setCursor(null);
    }
    load(undefined, true);
  }, [shown, revision]);

  return {
    items,
    loading,
    error,
    more: cursor !== null,
    loadMore: () => {
      if (cursor && !loading) load(cursor, false);
    },
  };
}

/** A folder, or null when the caller may not see it. */
async function folderOf(id: string): Promise<Folder | null> {
  const { data, response } = await api.GET("/api/v1/folders/{id}", { params: { path: { id } } });
  return response.ok && data ? data : null;
}

/** The folders from the top the caller can see down to `folderId`. */
export function useTrail(folderId: string | undefined, revision: number): Folder[] {
  const [trail, setTrail] = useState<Folder[]>([]);
  useEffect(() => {
    let live = true;
    (async () => {
      const chain: Folder[] = [];
      let id: string | null | undefined = folderId;
      // A folder the caller may not see (above a shared one) ends the walk.
      while (id && chain.length < 64) {
        const folder: Folder | null = await folderOf(id);
        if (!folder) break;
        chain.unshift(folder);
        id = folder.parent_id;
      }
      if (live) setTrail(chain);
    })();
    return () => {
      live = false;
    };
  }, [folderId, revision]);
  return trail;
}

export function isFolder(item: Item): item is Folder {
  return item.type === "folder";
}

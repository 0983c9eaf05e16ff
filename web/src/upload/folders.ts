// Folder uploads: the folders a set of dropped or chosen files sit in are
// made (or found, when one of that name exists) before the files go.

import { api, ok, toError, type Folder } from "../api/client";
import { folderSegments } from "../format";

/** The folder called `name` in `parent`, made if missing. */
async function ensureFolder(name: string, parent: string | null): Promise<string> {
  const { data, error, response } = await api.POST("/api/v1/folders", {
    body: { name, parent_id: parent },
  });
  if (response.ok && data) return data.id;
  if (response.status !== 409) throw toError(response, error);
  // Taken: use the folder of that name if there is one.
  const page = await ok(
    api.GET("/api/v1/folders/{id}/children", {
      params: { path: { id: parent ?? "root" }, query: { q: name, limit: 1000 } },
    }),
  );
  const existing = page.items.find((i): i is Folder => i.type === "folder" && i.name === name);
  if (!existing) throw toError(response, error);
  return existing.id;
}

/**
 * For files with relative paths ("Photos/2026/a.jpg"), makes the folders
 * under `root` and says where each file goes.
 */
export async function placeInFolders(
  files: { file: File; relativePath: string }[],
  root: string | null,
): Promise<{ file: File; parentId: string | null; relativePath: string }[]> {
  const made = new Map<string, string | null>([["", root]]);
  const placed = [];
  for (const { file, relativePath } of files) {
    const segments = folderSegments(relativePath);
    let path = "";
    let parent = root;
    for (const name of segments) {
      const next = path ? `${path}/${name}` : name;
      if (!made.has(next)) made.set(next, await ensureFolder(name, parent));
      parent = made.get(next)!;
      path = next;
    }
    placed.push({ file, parentId: parent, relativePath });
  }
  return placed;
}

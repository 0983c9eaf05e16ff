// Uploads through tus with Uppy: resumable (a paused, failed or reloaded
// upload goes on from the server's offset), each with its folder and what
// to do on a name clash in its metadata. What is still unfinished is also
// remembered here (names and sizes, never bytes), so after a reload the
// tray can ask for those files again; Uppy's tus plugin finds their upload
// URLs by fingerprint and resumes them.

import Uppy, { type UppyFile } from "@uppy/core";
import Tus from "@uppy/tus";
import { session } from "../api/client";

export type OnConflict = "rename" | "revision" | "fail";

export interface Meta {
  name: string;
  type: string;
  parent_id?: string;
  on_conflict: OnConflict;
  [key: string]: unknown;
}

/** An upload left unfinished by an earlier page. */
export interface Unfinished {
  id: string;
  name: string;
  size: number;
  parentId: string | null;
  onConflict: OnConflict;
  relativePath?: string;
}

const UNFINISHED_KEY = "stowage.uploads";

export class Uploader {
  readonly uppy: Uppy<Meta, Record<string, never>>;
  onConflict: OnConflict = "rename";
  private landed = new Set<() => void>();

  constructor() {
    this.uppy = new Uppy<Meta, Record<string, never>>({ autoProceed: true, allowMultipleUploadBatches: true });
    let lastToken: string | null = null;
    this.uppy.use(Tus, {
      endpoint: new URL("/api/v1/tus", window.location.origin).toString(),
      // Big requests, but bounded: a pause or a lost connection keeps
      // every byte the server acknowledged.
      chunkSize: 64 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      allowedMetaFields: ["name", "type", "parent_id", "on_conflict"],
      async onBeforeRequest(req) {
        lastToken = await session.accessToken();
        if (lastToken) req.setHeader("Authorization", `Bearer ${lastToken}`);
      },
      onShouldRetry(err, attempt, _options, next) {
        const status = err.originalResponse?.getStatus() ?? 0;
        if (status === 401 && lastToken && attempt < 2) {
          void session.refresh(lastToken);
          return true;
        }
        return next(err);
      },
    });
    this.uppy.on("file-added", (file) => this.remember(file));
    this.uppy.on("upload-success", (file) => {
      if (file) this.forget(file.id);
      for (const l of this.landed) l();
    });
    this.uppy.on("file-removed", (file) => this.forget(file.id));
  }

  /** Calls `listener` whenever an upload completes; returns the unsubscribe. */
  onLanded(listener: () => void): () => void {
    this.landed.add(listener);
    return () => this.landed.delete(listener);
  }

  /** Queues files, each for its folder (null: the root); they start at once. */
  add(files: { file: File; parentId: string | null; relativePath?: string }[]) {
    for (const { file, parentId, relativePath } of files) {
      const type = file.type || "application/octet-stream";
      try {
        this.uppy.addFile({
          name: file.name,
          type,
          data: file,
          source: "Local",
          meta: {
            name: file.name,
            type,
            on_conflict: this.onConflict,
            // Tells apart same-named files of different folders (not sent).
            ...(relativePath ? { relativePath } : {}),
            ...(parentId ? { parent_id: parentId } : {}),
          },
        });
      } catch {
        // Uppy holds this very file already. Still on its way: leave it.
        // Done or failed: it is sent again (with today's choices).
        const held = this.uppy
          .getFiles()
          .find(
            (f) =>
              f.name === file.name &&
              f.size === file.size &&
              (f.data as File).lastModified === file.lastModified &&
              (f.meta.relativePath ?? undefined) === relativePath,
          );
        if (held && (held.progress.uploadComplete || held.error)) {
          this.uppy.removeFile(held.id);
          this.add([{ file, parentId, relativePath }]);
        }
      }
    }
  }

  /** Picks up an unfinished upload again with the file the person chose. */
  resume(entry: Unfinished, file: File) {
    const before = this.onConflict;
    this.onConflict = entry.onConflict;
    this.add([{ file, parentId: entry.parentId, relativePath: entry.relativePath }]);
    this.onConflict = before;
  }

  unfinished(): Unfinished[] {
    try {
      const all = JSON.parse(localStorage.getItem(UNFINISHED_KEY) ?? "[]") as Unfinished[];
      const live = new Set(this.uppy.getFiles().map((f) => f.id));
      return Array.isArray(all) ? all.filter((u) => !live.has(u.id)) : [];
    } catch {
      return [];
    }
  }

  /** Gives up on an unfinished upload from before. */
  drop(id: string) {
    this.forget(id);
  }

  close() {
    this.uppy.destroy();
  }

  private remember(file: UppyFile<Meta, Record<string, never>>) {
    const list = this.stored().filter((u) => u.id !== file.id);
    list.push({
      id: file.id,
      name: file.name ?? "file",
      size: file.size ?? 0,
      parentId: (file.meta.parent_id as string | undefined) ?? null,
      onConflict: file.meta.on_conflict,
      relativePath: typeof file.meta.relativePath === "string" ? file.meta.relativePath : undefined,
    });
    localStorage.setItem(UNFINISHED_KEY, JSON.stringify(list.slice(-200)));
  }

  private forget(id: string) {
    localStorage.setItem(UNFINISHED_KEY, JSON.stringify(this.stored().filter((u) => u.id !== id)));
  }

  private stored(): Unfinished[] {
    try {
      const all = JSON.parse(localStorage.getItem(UNFINISHED_KEY) ?? "[]");
      return Array.isArray(all) ? all : [];
    } catch {
      return [];
    }
  }
}

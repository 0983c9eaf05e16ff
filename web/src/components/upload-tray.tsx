// The uploads in flight: progress, pause and resume (each or all), retry,
// cancel; and the ones an earlier page left unfinished, to resume by
// choosing the same file again.

import { useEffect, useState } from "preact/hooks";
import { bytes } from "../format";
import { useApp } from "../state";
import type { Unfinished } from "../upload/uploader";

/** The message in a failed tus request's problem+json, if there is one. */
function reason(error: unknown): string {
  const text = String(error ?? "");
  const detail = /"detail"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(text);
  if (detail) return JSON.parse(`"${detail[1]}"`);
  return "The upload failed. Retry, or check the connection.";
}

export function UploadTray() {
  const { uploader } = useApp();
  const uppy = uploader.uppy;
  const [, tick] = useState(0);
  const [unfinished, setUnfinished] = useState<Unfinished[]>(() => uploader.unfinished());
  // Open while something is going on; folded to its header once all is done.
  const [open, setOpen] = useState<boolean | null>(null);
  useEffect(() => {
    const update = () => tick((n) => n + 1);
    uppy.on("state-update", update);
    return () => uppy.off("state-update", update);
  }, []);
  const files = uppy.getFiles();
  if (files.length === 0 && unfinished.length === 0) return null;
  const active = files.filter((f) => !f.progress.uploadComplete && !f.error);
  const allPaused = active.length > 0 && active.every((f) => f.isPaused);
  const done = files.filter((f) => f.progress.uploadComplete).length;
  const busy = active.length > 0 || unfinished.length > 0 || files.some((f) => f.error);
  const shown = open ?? busy;

  return (
    <section class={`tray ${shown ? "" : "folded"}`} aria-labelledby="tray-title">
      <header>
        <h2 id="tray-title">
          Uploads <span class="hint">{done} of {files.length} done</span>
        </h2>
        <button type="button" aria-expanded={shown} aria-controls="tray-list" onClick={() => setOpen(!shown)}>
          {shown ? "Hide" : "Show"}
        </button>
        {active.length > 0 && (
          <button type="button" onClick={() => (allPaused ? uppy.resumeAll() : uppy.pauseAll())}>
            {allPaused ? "Resume all" : "Pause all"}
          </button>
        )}
        {active.length === 0 && files.length > 0 && (
          <button type="button" onClick={() => uppy.clear()}>
            Clear
          </button>
        )}
      </header>
      <ul id="tray-list" hidden={!shown}>
        {files.map((f) => {
          const total = f.size ?? 0;
          const sent = f.progress.bytesUploaded || 0;
          const pct = total ? Math.floor((sent / total) * 100) : f.progress.uploadComplete ? 100 : 0;
          const state = f.error
            ? "failed"
            : f.progress.uploadComplete
              ? "done"
              : f.isPaused
                ? "paused"
                : "uploading";
          return (
            <li key={f.id} class={`upload ${state}`} data-state={state}>
              <span class="name">{f.name}</span>
              <progress max={100} value={pct} aria-label={`${f.name}: ${pct}%`} />
              <span class="hint">
                {state === "failed" ? reason(f.error) : `${bytes(sent)} of ${bytes(total)} · ${state}`}
              </span>
              {state === "uploading" || state === "paused" ? (
                <>
                  <button type="button" onClick={() => uppy.pauseResume(f.id)}>
                    {state === "paused" ? "Resume" : "Pause"}
                    <span class="visually-hidden"> {f.name}</span>
                  </button>
                  <button type="button" onClick={() => uppy.removeFile(f.id)}>
                    Cancel<span class="visually-hidden"> {f.name}</span>
                  </button>
                </>
              ) : null}
              {state === "failed" && (
                <button type="button" onClick={() => uppy.retryUpload(f.id)}>
                  Retry<span class="visually-hidden"> {f.name}</span>
                </button>
              )}
            </li>
          );
        })}
        {unfinished.map((u) => (
          <li key={u.id} class="upload unfinished" data-state="unfinished">
            <span class="name">{u.name}</span>
            <span class="hint">
              Not finished ({bytes(u.size)}). Choose the same file to resume where it stopped.
            </span>
            <label class="button">
              Choose file<span class="visually-hidden"> to resume {u.name}</span>
              <input
                type="file"
                class="visually-hidden"
                data-testid="resume-file"
                onChange={(e) => {
                  const file = e.currentTarget.files?.[0];
                  if (!file) return;
                  uploader.resume(u, file);
                  setUnfinished(uploader.unfinished());
                }}
              />
            </label>
            <button
              type="button"
              onClick={() => {
                uploader.drop(u.id);
                setUnfinished(uploader.unfinished());
              }}
            >
              Forget<span class="visually-hidden"> {u.name}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

// A PDF's first page, drawn by pdf.js from the signed URL (the browser's
// own PDF viewer does not run in a sandboxed frame, and the store's
// responses are sandboxed). pdf.js and its worker load only when a PDF is
// shown; no eval, no WebAssembly, so the app's CSP holds.

import { useEffect, useRef, useState } from "preact/hooks";

export function PdfPreview(props: { url: string; name: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [state, setState] = useState<"loading" | "shown" | "failed">("loading");
  useEffect(() => {
    let live = true;
    let cancel: (() => void) | undefined;
    (async () => {
      const pdfjs = await import("pdfjs-dist");
      const worker = await import("pdfjs-dist/build/pdf.worker.min.mjs?url");
      pdfjs.GlobalWorkerOptions.workerSrc = worker.default;
      const task = pdfjs.getDocument({ url: props.url, useWasm: false, isOffscreenCanvasSupported: false });
      cancel = () => void task.destroy();
      const doc = await task.promise;
      const page = await doc.getPage(1);
      const el = canvas.current;
      if (!live || !el) return;
      const unscaled = page.getViewport({ scale: 1 });
      const viewport = page.getViewport({ scale: Math.min(2, 640 / unscaled.width) });
      el.width = Math.floor(viewport.width);
      el.height = Math.floor(viewport.height);
      await page.render({ canvas: el, viewport }).promise;
      if (live) setState("shown");
    })().catch(() => live && setState("failed"));
    return () => {
      live = false;
      cancel?.();
    };
  }, [props.url]);
  return (
    <>
      <canvas
        ref={canvas}
        class="pdf"
        role="img"
        aria-label={`First page of ${props.name}`}
        data-state={state}
        hidden={state === "failed"}
      />
      {state === "failed" && <p class="hint">This PDF cannot be shown here; download it to read it.</p>}
    </>
  );
}

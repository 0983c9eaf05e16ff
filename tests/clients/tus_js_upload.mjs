// Uploads a file to Stowage with tus-js-client (npm) under Node.
//
// Usage: node tus_js_upload.mjs <base URL> <access token> <file>
//
// Sends 2 MiB chunks, aborts (pauses) once a third has gone, starts again
// (the client asks the server for the offset and resumes), and prints the
// upload URL.

import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const [base, token, path] = process.argv.slice(2);
const data = readFileSync(path);

function run() {
  return new Promise((resolve, reject) => {
    let paused = false;
    const upload = new tus.Upload(data, {
      endpoint: `${base}/api/v1/tus`,
      headers: { Authorization: `Bearer ${token}` },
      chunkSize: 2 * 1024 * 1024,
      retryDelays: [0, 500, 1000, 2000],
      metadata: { filename: "tus-js.bin", filetype: "application/x-tus-js" },
      onProgress(sent, total) {
        if (!paused && sent >= total / 3) {
          paused = true;
          upload.abort().then(() => {
            // Resume: tus-js-client HEADs the upload URL and goes on.
            setTimeout(() => upload.start(), 200);
          });
        }
      },
      onError: reject,
      onSuccess() {
        if (!paused) reject(new Error("the upload was never paused"));
        else resolve(upload.url);
      },
    });
    upload.start();
  });
}

run().then(
  (url) => console.log(url),
  (err) => {
    console.error(`tus-js-client failed: ${err}`);
    process.exit(1);
  },
);

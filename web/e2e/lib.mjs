// What the end-to-end run needs around Chromium: launching Debian's
// chromium through playwright-core, throttling uploads, the axe-core check,
// screenshots, files to upload, and calls to the API beside the browser.

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const BASE = (process.env.BASE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
export const STACK = process.env.STACK ?? "embedded";
export const OUT = process.env.SCREENSHOTS ?? new URL("./out", import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A fresh browser context (its own storage: one person, or nobody). */
export async function person(browser, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // A CSP violation is a failure: the app must pass the server's policy.
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  return { context, page, errors };
}

/** Uploads from this page go at most `bytesPerSecond` (0: unthrottled). */
export async function throttle(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond > 0 ? bytesPerSecond : -1,
  });
  return cdp;
}

/** No serious or critical axe-core violation on what the page shows now. */
export async function accessible(page, screen) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) {
    throw new Error(`axe on ${screen}: ${JSON.stringify(bad, null, 2)}`);
  }
  return result.length;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(OUT, `${STACK}-${name}.png`), fullPage: false });
}

/** A directory of files to upload; returns their paths and digests. */
export function makeFiles() {
  const dir = join(tmpdir(), `stowage-e2e-${process.pid}-${Date.now()}`);
  mkdirSync(join(dir, "Trip", "day1"), { recursive: true });
  mkdirSync(join(dir, "report-v2"), { recursive: true });
  const files = {};
  const put = (rel, bytes) => {
    const path = join(dir, rel);
    writeFileSync(path, bytes);
    files[rel] = { path, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length };
  };
  put("report.txt", Buffer.from("The quarterly report.\nAll numbers are up.\n"));
  // A 2×2 PNG.
  put(
    "photo.png",
    Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==",
      "base64",
    ),
  );
  put("paper.pdf", minimalPdf("A page for the preview"));
  put("sound.wav", silence(8000, 0.5));
  put("big-pause.bin", randomBytes(20 * 1024 * 1024));
  put("big-reload.bin", randomBytes(20 * 1024 * 1024));
  put("Trip/day1/notes.txt", Buffer.from("Day one: the sea.\n"));
  put("Trip/map.txt", Buffer.from("North is up.\n"));
  put("dropped.txt", Buffer.from("Sent through a drop folder.\n"));
  put("from-bob.txt", Buffer.from("Bob's notes, in Ada's folder.\n"));
  put("report-v2/report.txt", Buffer.from("The quarterly report, revised.\n"));
  return { dir, files };
}

/** `seconds` of 8-bit mono silence at `rate` Hz, as a WAV file. */
function silence(rate, seconds) {
  const samples = Math.floor(rate * seconds);
  const b = Buffer.alloc(44 + samples, 128);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + samples, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate, 28);
  b.writeUInt16LE(1, 32);
  b.writeUInt16LE(8, 34);
  b.write("data", 36);
  b.writeUInt32LE(samples, 40);
  return b;
}

/** A one-page PDF that says `text`, with a correct cross-reference table. */
function minimalPdf(text) {
  const stream = `BT /F1 24 Tf 72 720 Td (${text}) Tj ET`;
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  let pdf = "%PDF-1.4\n";
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(pdf.length);
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) pdf += `${String(o).padStart(10, "0")} 00000 n \n`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, "latin1");
}

/** The page's access token (from the session it keeps). */
export async function tokenOf(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("stowage.session")).access);
}

export async function apiGet(token, path) {
  const res = await fetch(`${BASE}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Waits until `fn()` is truthy (polling), or fails with `what`. */
export async function until(what, fn, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

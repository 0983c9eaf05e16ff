/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// `npm run dev` serves the app with hot reload and hands every API call to
// a running Stowage (STOWAGE_URL, default http://127.0.0.1:8080).
const server = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
  .STOWAGE_URL ?? "http://127.0.0.1:8080";
const proxied = ["/api", "/blobs", "/public", "/s/"];

export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // No inline scripts or data: URLs: the server's CSP allows 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: {
    proxy: Object.fromEntries(proxied.map((p) => [p, { target: server, changeOrigin: false }])),
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});

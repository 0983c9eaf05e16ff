// Numbers and dates as people read them.

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/** 1234567 → "1.2 MB" (powers of 1000, as file managers show sizes). */
export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i += 1;
  }
  const digits = i === 0 || v >= 100 ? 0 : 1;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

/** A timestamp in the reader's locale, to the minute. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Share of a quota used, 0–100, or null without a quota. */
export function percentUsed(used: number, quota: number | null | undefined): number | null {
  if (quota === null || quota === undefined || quota <= 0) return null;
  return Math.min(100, Math.round((used / quota) * 100));
}

/** The folder part of a relative path ("a/b/c.txt" → ["a", "b"]). */
export function folderSegments(relativePath: string): string[] {
  const parts = relativePath.split("/").filter((p) => p !== "" && p !== "." && p !== "..");
  return parts.slice(0, -1);
}

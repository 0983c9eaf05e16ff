import { describe, expect, it } from "vitest";
import { bytes, folderSegments, percentUsed } from "./format";

describe("format", () => {
  it("shows sizes the way file managers do", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(999)).toBe("999 B");
    expect(bytes(1234)).toBe("1.2 KB");
    expect(bytes(20 * 1024 * 1024)).toBe("21.0 MB");
    expect(bytes(150_000_000)).toBe("150 MB");
    expect(bytes(-1)).toBe("–");
  });

  it("computes quota use only when there is a quota", () => {
    expect(percentUsed(50, 200)).toBe(25);
    expect(percentUsed(500, 200)).toBe(100);
    expect(percentUsed(5, null)).toBeNull();
  });

  it("splits a dropped file's folders off its relative path", () => {
    expect(folderSegments("Photos/2026/a.jpg")).toEqual(["Photos", "2026"]);
    expect(folderSegments("a.jpg")).toEqual([]);
    expect(folderSegments("/x/../y/./b.txt")).toEqual(["x", "y"]);
  });
});

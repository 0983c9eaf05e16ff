// The web app end to end in Chromium, against a running Stowage
// (BASE_URL): two people in two browser contexts and a third, logged-out
// one go through the app. Exits non-zero at the first thing that does not
// work. Screenshots land in e2e/out (SCREENSHOTS), one per main screen.
//
//   BASE_URL=http://127.0.0.1:8080 STACK=embedded node e2e/run.mjs

import {
  BASE,
  accessible,
  apiGet,
  check,
  launch,
  makeFiles,
  person,
  shot,
  throttle,
  tokenOf,
  until,
} from "./lib.mjs";

const run = Math.random().toString(36).slice(2, 8);
const ada = { email: `ada-${run}@example.com`, password: "correct horse battery" };
const bob = { email: `bob-${run}@example.com`, password: "tr0ub4dor and three" };
const { files } = makeFiles();
const step = (s) => console.log(`· ${s}`);

async function signUp(page, who) {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login/);
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "My files" }).waitFor();
}

/** Selects an item's row (its panel opens). */
async function select(page, name, { folder = false } = {}) {
  const row = page.locator("table.items tr", { hasText: name });
  const button = folder
    ? row.getByRole("button", { name: `Details of ${name}` })
    : row.getByRole("button", { name, exact: true });
  await button.first().click();
  await page.getByRole("complementary").getByRole("heading", { name }).waitFor();
}

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function uploaded(page, name) {
  await page.locator("li.upload", { hasText: name }).and(page.locator('[data-state="done"]')).waitFor({ state: "attached", timeout: 120_000 });
}

/** The upload offset of the first PATCH for a tus upload sent from now on. */
function firstPatchOffset(page) {
  return new Promise((resolve) => {
    const onRequest = (req) => {
      if (req.method() === "PATCH" && req.url().includes("/api/v1/tus/")) {
        page.off("request", onRequest);
        resolve(Number(req.headers()["upload-offset"]));
      }
    };
    page.on("request", onRequest);
  });
}

async function fileNamed(token, name) {
  const page = await apiGet(token, `/api/v1/files?q=${encodeURIComponent(name)}&limit=50`);
  return page.items.find((i) => i.name === name && i.status === "available");
}

const browser = await launch();
const failures = [];
const people = {};
try {
  const A = (people.ada = await person(browser));
  const B = (people.bob = await person(browser));
  const nobody = (people.nobody = await person(browser));

  step("sign up (Bob first, so Ada can share with him), the login page and its checks");
  await B.page.goto(`${BASE}/login`);
  await accessible(B.page, "login");
  await shot(B.page, "login");
  await signUp(B.page, bob);
  await signUp(A.page, ada);
  await accessible(A.page, "empty drive");

  step("a folder, files into it, and a whole folder");
  await A.page.getByRole("button", { name: "New folder" }).click();
  await A.page.getByRole("dialog").getByLabel("Folder name").fill("Reports");
  await A.page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
  await A.page.getByRole("link", { name: /Reports/ }).click();
  await A.page.getByRole("heading", { name: "Reports", level: 1 }).waitFor();
  await A.page
    .getByTestId("upload-files")
    .setInputFiles([files["report.txt"].path, files["photo.png"].path, files["paper.pdf"].path, files["sound.wav"].path]);
  await uploaded(A.page, "report.txt");
  await uploaded(A.page, "photo.png");
  await uploaded(A.page, "paper.pdf");
  await uploaded(A.page, "sound.wav");
  await A.page.getByTestId("upload-folder").setInputFiles(files["Trip/map.txt"].path.replace(/\/map\.txt$/, ""));
  await uploaded(A.page, "notes.txt");
  await uploaded(A.page, "map.txt");
  await A.page.getByRole("link", { name: /Trip/ }).waitFor();
  await A.page.getByRole("link", { name: /Trip/ }).click();
  await A.page.getByRole("link", { name: /day1/ }).click();
  await A.page.locator("table.items", { hasText: "notes.txt" }).waitFor();
  await A.page.getByRole("navigation", { name: "Folder path" }).getByRole("link", { name: "Reports" }).click();
  await A.page.locator("table.items", { hasText: "photo.png" }).waitFor();
  await shot(A.page, "drive");

  step("the panel: previews (a text in a sandboxed frame, an image), rename, move by dialog");
  await select(A.page, "report.txt");
  await A.page.frameLocator('iframe[title="Preview of report.txt"]').getByText("The quarterly report.").waitFor();
  await select(A.page, "sound.wav");
  const audio = A.page.getByRole("complementary").locator("audio");
  await until("the audio to load", () => audio.evaluate((a) => a.readyState >= 1));
  await select(A.page, "paper.pdf");
  await A.page.locator('canvas[aria-label="First page of paper.pdf"][data-state="shown"]').waitFor();
  await select(A.page, "photo.png");
  await A.page.getByRole("img", { name: "Preview of photo.png" }).waitFor();
  await accessible(A.page, "file panel");
  await shot(A.page, "file-panel");
  await A.page.getByRole("button", { name: "Rename" }).click();
  await A.page.getByRole("dialog").getByLabel("New name").fill("holiday.png");
  await A.page.getByRole("dialog").getByRole("button", { name: "Rename" }).click();
  await A.page.locator("table.items", { hasText: "holiday.png" }).waitFor();
  await select(A.page, "holiday.png");
  await A.page.getByRole("complementary").getByRole("button", { name: "Move" }).click();
  await A.page.getByRole("dialog").getByRole("button", { name: /Reports/ }).click();
  await A.page.getByRole("dialog").getByRole("button", { name: /Trip/ }).click();
  await A.page.getByRole("dialog").getByRole("button", { name: "Move to “Trip”" }).click();
  await until("holiday.png to leave Reports", async () => (await A.page.locator("table.items", { hasText: "holiday.png" }).count()) === 0);

  step("move by drag and drop onto a folder, and back by the breadcrumbs");
  await A.page.dragAndDrop("table.items tr:has-text('report.txt')", "table.items tr:has-text('Trip')");
  await until("report.txt to move into Trip", async () => (await A.page.locator("table.items tr", { hasText: "report.txt" }).count()) === 0);
  await A.page.getByRole("link", { name: /Trip/ }).click();
  await A.page.locator("table.items", { hasText: "report.txt" }).waitFor();
  await A.page.dragAndDrop("table.items tr:has-text('report.txt')", "nav[aria-label='Folder path'] a:has-text('Reports')");
  await until("report.txt back in Reports", async () => (await A.page.locator("table.items tr", { hasText: "report.txt" }).count()) === 0);
  await A.page.getByRole("navigation", { name: "Folder path" }).getByRole("link", { name: "Reports" }).click();
  await A.page.locator("table.items", { hasText: "report.txt" }).waitFor();

  step("a 20 MiB upload paused and resumed");
  const throttled = await throttle(A.page, 2 * 1024 * 1024);
  await A.page.getByTestId("upload-files").setInputFiles(files["big-pause.bin"].path);
  const big = A.page.locator("li.upload", { hasText: "big-pause.bin" });
  await until("some of big-pause.bin sent", async () => Number(await big.locator("progress").getAttribute("value")) >= 10);
  await big.getByRole("button", { name: /^Pause/ }).click();
  await big.and(A.page.locator('[data-state="paused"]')).waitFor();
  await shot(A.page, "upload-paused");
  const pausedAt = Number(await big.locator("progress").getAttribute("value"));
  await new Promise((r) => setTimeout(r, 1500));
  check(Number(await big.locator("progress").getAttribute("value")) === pausedAt, "a paused upload kept going");
  const resumedFrom = firstPatchOffset(A.page);
  await big.getByRole("button", { name: /^Resume/ }).click();
  check((await resumedFrom) > 0, "the resumed upload started again from 0");
  await throttle(A.page, 0);
  await uploaded(A.page, "big-pause.bin");
  const token = await tokenOf(A.page);
  const pausedFile = await until("big-pause.bin available", () => fileNamed(token, "big-pause.bin"));
  check(pausedFile.sha256 === files["big-pause.bin"].sha256, "big-pause.bin arrived with other bytes");
  void throttled;

  step("a 20 MiB upload resumed after a reload");
  await throttle(A.page, 2 * 1024 * 1024);
  await A.page.getByTestId("upload-files").setInputFiles(files["big-reload.bin"].path);
  const second = A.page.locator("li.upload", { hasText: "big-reload.bin" });
  await until("some of big-reload.bin sent", async () => Number(await second.locator("progress").getAttribute("value")) >= 15);
  await A.page.reload();
  await throttle(A.page, 0);
  const unfinished = A.page.locator("li.upload.unfinished", { hasText: "big-reload.bin" });
  await unfinished.waitFor();
  const offset = firstPatchOffset(A.page);
  await unfinished.getByTestId("resume-file").setInputFiles(files["big-reload.bin"].path);
  check((await offset) > 0, "after the reload the upload started again from 0");
  await uploaded(A.page, "big-reload.bin");
  const reloaded = await until("big-reload.bin available", () => fileNamed(token, "big-reload.bin"));
  check(reloaded.sha256 === files["big-reload.bin"].sha256, "big-reload.bin arrived with other bytes");

  step("a name clash: a new revision, then the old one restored");
  await A.page.getByLabel("If a name is taken").selectOption("revision");
  await A.page.getByTestId("upload-files").setInputFiles(files["report-v2/report.txt"].path);
  await until("report.txt at revision 2", async () => (await fileNamed(await tokenOf(A.page), "report.txt"))?.revision === 2);
  await A.page.reload();
  await select(A.page, "report.txt");
  const revisions = A.page.getByRole("complementary").locator("ol.revisions li");
  await until("two revisions listed", async () => (await revisions.count()) === 2);
  const revision = A.page.waitForEvent("download");
  await A.page.getByRole("button", { name: "Download revision 1" }).click();
  check((await (await revision).path()) !== null, "revision 1 did not download");
  await A.page.getByRole("button", { name: "Restore revision 1" }).click();
  await until("report.txt at revision 3", async () => (await fileNamed(await tokenOf(A.page), "report.txt"))?.revision === 3);

  step("a name clash: stop, or keep both");
  await A.page.getByLabel("If a name is taken").selectOption("fail");
  await A.page.getByTestId("upload-files").setInputFiles(files["report.txt"].path);
  await A.page
    .locator("li.upload", { hasText: "report.txt" })
    .and(A.page.locator('[data-state="failed"]'))
    .waitFor();
  await A.page.getByLabel("If a name is taken").selectOption("rename");
  // Chosen again: sent again, with the new choice.
  await A.page.getByTestId("upload-files").setInputFiles(files["report.txt"].path);
  await until("a second report, renamed", async () => {
    const page = await apiGet(await tokenOf(A.page), "/api/v1/files?q=report&limit=50");
    return page.items.some((i) => i.name !== "report.txt" && i.name.startsWith("report") && i.name.endsWith(".txt"));
  });

  step("share with Bob; Bob sees it, previews it, and keeps a shortcut");
  await select(A.page, "report.txt");
  await A.page.getByLabel("Share with (email)").fill(bob.email);
  await A.page.getByRole("complementary").getByRole("button", { name: "Share", exact: true }).click();
  await A.page.getByRole("complementary").getByText(`${bob.email} · viewer`).waitFor();
  await B.page.getByRole("link", { name: "Shared with me" }).click();
  await select(B.page, "report.txt");
  await B.page.getByRole("button", { name: "Add shortcut" }).click();
  await B.page.getByRole("link", { name: "Shortcuts" }).click();
  await B.page.locator("table.items", { hasText: "report.txt" }).waitFor();
  await accessible(B.page, "shortcuts");
  await B.page.getByRole("link", { name: "Shared with me" }).click();
  await B.page.locator("table.items", { hasText: "report.txt" }).waitFor();
  await shot(B.page, "shared-with-me");
  await accessible(B.page, "shared with me");

  step("an editor uploads into a folder shared with them; it is the owner's");
  await A.page.getByRole("navigation", { name: "Folder path" }).getByRole("link", { name: "My files" }).click();
  await select(A.page, "Reports", { folder: true });
  await A.page.getByLabel("Share with (email)").fill(bob.email);
  await A.page.getByRole("complementary").getByLabel("Role").selectOption("editor");
  await A.page.getByRole("complementary").getByRole("button", { name: "Share", exact: true }).click();
  await A.page.getByRole("complementary").getByText(`${bob.email} · editor`).waitFor();
  await B.page.getByRole("link", { name: "Shared with me" }).click();
  await B.page.getByRole("link", { name: /Reports/ }).click();
  await B.page.getByRole("heading", { name: "Reports", level: 1 }).waitFor();
  await B.page.getByTestId("upload-files").setInputFiles(files["from-bob.txt"].path);
  await uploaded(B.page, "from-bob.txt");
  const bobs = await until("from-bob.txt in Ada's files", () => fileNamed(token, "from-bob.txt"));
  check(bobs.owner_id === reloaded.owner_id, "an editor's upload did not become the folder owner's");
  await A.page.getByRole("link", { name: /Reports/ }).click();

  step("keyset paging: 230 items load page by page as the list scrolls");
  {
    const token = await tokenOf(B.page);
    const post = (body) =>
      fetch(`${BASE}/api/v1/folders`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.json());
    const many = await post({ name: "Many" });
    for (let i = 0; i < 230; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) => post({ name: `item ${String(i + j).padStart(3, "0")}`, parent_id: many.id })),
      );
    }
    await B.page.goto(`${BASE}/folders/${many.id}`);
    const rows = B.page.locator("table.items tbody tr");
    await until("the first page", async () => (await rows.count()) === 100);
    for (let pages = 0; pages < 10 && (await rows.count()) < 230; pages++) {
      await B.page.locator(".more").scrollIntoViewIfNeeded();
      await new Promise((r) => setTimeout(r, 300));
    }
    check((await rows.count()) === 230, `scrolling showed ${await rows.count()} of 230 items`);
    check((await rows.last().innerText()).includes("item 229"), "the last page is not the last items");
  }

  step("public toggle: the public URL works for anyone");
  await select(A.page, "report.txt");
  await A.page.getByLabel("Anyone with the link can download").check();
  const publicUrl = await A.page.getByLabel("Public link address").inputValue();
  const pub = await fetch(publicUrl, { redirect: "follow" });
  check(pub.ok, `the public link answered ${pub.status}`);

  step("a link good for one download, opened logged out twice");
  await A.page.getByLabel("Download limit (optional)").fill("1");
  await A.page.getByRole("complementary").getByRole("button", { name: "Create link" }).click();
  const onceUrl = await A.page.getByRole("complementary").getByLabel("Link (view)").inputValue();
  const once = nobody.page.waitForEvent("download");
  await nobody.page.goto(onceUrl).catch(() => {}); // a download, not a page
  check((await (await once).path()) !== null, "the one-download link did not download");
  await nobody.page.goto(onceUrl);
  await nobody.page.getByText("used as many times as it allows").waitFor();

  step("a password link to the folder, opened logged out");
  await A.page.getByRole("navigation", { name: "Folder path" }).getByRole("link", { name: "My files" }).click();
  await select(A.page, "Reports", { folder: true });
  await A.page.getByLabel("Password (optional)").fill("open sesame");
  await A.page.getByLabel("Expires (optional)").fill("2099-01-01T10:00");
  await A.page.getByRole("complementary").getByRole("button", { name: "Create link" }).click();
  await A.page.getByRole("complementary").getByText(/password · until/).waitFor();
  const linkUrl = await A.page.getByRole("complementary").getByLabel("Link (view)").inputValue();
  await nobody.page.goto(linkUrl);
  await nobody.page.getByLabel("Password").fill("wrong one");
  await nobody.page.getByRole("button", { name: "Open" }).click();
  await nobody.page.getByText("not this link's password").waitFor();
  await nobody.page.getByLabel("Password").fill("open sesame");
  await nobody.page.getByRole("button", { name: "Open" }).click();
  await nobody.page.getByRole("link", { name: /report\.txt/ }).waitFor();
  await accessible(nobody.page, "link page");
  await shot(nobody.page, "link");
  const download = nobody.page.waitForEvent("download");
  await nobody.page.getByRole("link", { name: /report\.txt/ }).click();
  check((await (await download).path()) !== null, "the link's file did not download");

  step("a drop folder: a logged-out upload lands in Ada's folder");
  await A.page.getByRole("button", { name: "New folder" }).click();
  await A.page.getByRole("dialog").getByLabel("Folder name").fill("Inbox");
  await A.page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
  await select(A.page, "Inbox", { folder: true });
  await A.page.getByLabel("Kind").selectOption("upload");
  await A.page.getByRole("complementary").getByRole("button", { name: "Create link" }).click();
  const dropUrl = await A.page.getByRole("complementary").getByLabel("Link (upload)").inputValue();
  await nobody.page.goto(dropUrl);
  await nobody.page.getByTestId("drop-files").setInputFiles(files["dropped.txt"].path);
  await nobody.page.locator('.drop-list [data-state="done"]').waitFor({ timeout: 60_000 });
  await accessible(nobody.page, "drop folder");
  await A.page.getByRole("link", { name: /Inbox/ }).click();
  await until("dropped.txt in Inbox", async () => {
    await A.page.reload();
    return (await A.page.locator("table.items", { hasText: "dropped.txt" }).count()) > 0;
  });

  step("search, delete to the trash, restore");
  await A.page.getByLabel("Search your files by name").fill("holi");
  await A.page.getByRole("button", { name: "Search" }).click();
  await A.page.locator("table.items", { hasText: "holiday.png" }).waitFor();
  await select(A.page, "holiday.png");
  await A.page.getByRole("button", { name: "Delete" }).click();
  await A.page.getByRole("link", { name: "Trash" }).click();
  await A.page.locator("table.items", { hasText: "holiday.png" }).waitFor();
  await accessible(A.page, "trash");
  await shot(A.page, "trash");
  await select(A.page, "holiday.png");
  await A.page.getByRole("button", { name: "Restore" }).click();
  await until("the trash to empty", async () => (await A.page.locator("table.items", { hasText: "holiday.png" }).count()) === 0);
  // Deleted again, and the trash emptied: gone for good.
  await A.page.getByRole("link", { name: "My files" }).click();
  await A.page.getByRole("button", { name: "New folder" }).click();
  await A.page.getByRole("dialog").getByLabel("Folder name").fill("Scratch");
  await A.page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
  await select(A.page, "Scratch", { folder: true });
  await A.page.getByRole("button", { name: "Delete" }).click();
  await A.page.getByRole("link", { name: "Trash" }).click();
  await A.page.locator("table.items", { hasText: "Scratch" }).waitFor();
  await A.page.getByRole("button", { name: "Empty trash" }).click();
  await A.page.getByRole("dialog").getByRole("button", { name: "Empty trash" }).click();
  await A.page.getByText("The trash is empty.").waitFor();

  step("usage is shown; a phone-sized screen");
  await A.page.getByText(/used$/).first().waitFor();
  const phone = await person(browser, { width: 390, height: 844 });
  await phone.page.goto(`${BASE}/login`);
  await phone.page.getByLabel("Email").fill(ada.email);
  await phone.page.getByLabel("Password").fill(ada.password);
  await phone.page.getByRole("button", { name: "Log in" }).click();
  await phone.page.getByRole("heading", { name: "My files" }).waitFor();
  await accessible(phone.page, "phone drive");
  await shot(phone.page, "phone");

  step("an expiring session refreshes itself (the pair rotates) and goes on");
  {
    const before = await A.page.evaluate(() => JSON.parse(localStorage.getItem("stowage.session")));
    await A.page.evaluate(() => {
      const s = JSON.parse(localStorage.getItem("stowage.session"));
      s.expiresAt = Date.now() + 10_000; // within the minute before expiry
      localStorage.setItem("stowage.session", JSON.stringify(s));
    });
    await A.page.reload();
    await A.page.getByRole("heading", { level: 1 }).waitFor();
    const after = await until("the pair to rotate", async () => {
      const s = await A.page.evaluate(() => JSON.parse(localStorage.getItem("stowage.session")));
      return s.refresh !== before.refresh && s;
    });
    check(after.expiresAt > Date.now() + 60_000, "the new access token is not fresh");
  }

  step("a reused refresh token ends the login: the app goes back to the login page");
  const stored = await A.page.evaluate(() => JSON.parse(localStorage.getItem("stowage.session")));
  const refresh = (t) =>
    fetch(`${BASE}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: t }),
    });
  check((await refresh(stored.refresh)).ok, "the first refresh failed");
  await new Promise((r) => setTimeout(r, 5500)); // past the two-tab grace
  check((await refresh(stored.refresh)).status === 401, "reusing a refresh token was accepted");
  await A.page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("stowage.session"));
    s.expiresAt = 0;
    localStorage.setItem("stowage.session", JSON.stringify(s));
  });
  await A.page.reload();
  await A.page.waitForURL(/\/login\?/);
  await A.page.getByText("Your session ended").waitFor();

  for (const [who, p] of [["Ada", A], ["Bob", B], ["logged out", nobody], ["phone", phone]]) {
    if (p.errors.length) failures.push(`${who}: ${p.errors.join("\n")}`);
  }
} catch (e) {
  failures.push(e.stack ?? String(e));
  // What each page showed when it failed.
  for (const [who, p] of Object.entries(people)) {
    await shot(p.page, `failure-${who}`).catch(() => {});
    const text = await p.page.locator("body").innerText().catch(() => "");
    failures.push(`${who} at ${p.page.url()}:\n${text.slice(0, 1500)}\n${p.errors.join("\n")}`);
  }
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`e2e failed:\n${failures.join("\n\n")}`);
  process.exit(1);
}
console.log("e2e: every step passed");

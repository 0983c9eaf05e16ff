// Choosing files or a whole folder to upload into the folder on screen, and
// what happens when a name is taken.

import { useEffect, useRef, useState } from "preact/hooks";
import { describe } from "../api/client";
import { useApp } from "../state";
import { placeInFolders } from "../upload/folders";
import type { OnConflict } from "../upload/uploader";
import { useNotify } from "./notices";

export function UploadButtons(props: { folderId: string | null }) {
  const { uploader } = useApp();
  const { fail } = useNotify();
  const files = useRef<HTMLInputElement>(null);
  const folder = useRef<HTMLInputElement>(null);
  const [onConflict, setOnConflict] = useState<OnConflict>(uploader.onConflict);
  // Choosing a directory is not in the typed DOM: set it on the element.
  useEffect(() => {
    folder.current?.setAttribute("webkitdirectory", "");
  }, []);

  async function chosen(input: HTMLInputElement, asFolder: boolean) {
    const list = Array.from(input.files ?? []);
    input.value = "";
    if (list.length === 0) return;
    try {
      if (asFolder) {
        const placed = await placeInFolders(
          list.map((file) => ({ file, relativePath: file.webkitRelativePath || file.name })),
          props.folderId,
        );
        uploader.add(placed);
      } else {
        uploader.add(list.map((file) => ({ file, parentId: props.folderId })));
      }
    } catch (e) {
      fail(`The folder could not be uploaded: ${describe(e)}`);
    }
  }

  return (
    <>
      <input
        ref={files}
        type="file"
        multiple
        hidden
        aria-hidden="true"
        tabIndex={-1}
        data-testid="upload-files"
        onChange={(e) => chosen(e.currentTarget, false)}
      />
      <input
        ref={folder}
        type="file"
        multiple
        hidden
        aria-hidden="true"
        tabIndex={-1}
        data-testid="upload-folder"
        onChange={(e) => chosen(e.currentTarget, true)}
      />
      <button type="button" class="primary" onClick={() => files.current?.click()}>
        Upload files
      </button>
      <button type="button" onClick={() => folder.current?.click()}>
        Upload a folder
      </button>
      <label class="conflict">
        If a name is taken{" "}
        <select
          value={onConflict}
          onChange={(e) => {
            const v = e.currentTarget.value as OnConflict;
            uploader.onConflict = v;
            setOnConflict(v);
          }}
        >
          <option value="rename">keep both (rename)</option>
          <option value="revision">add a new revision</option>
          <option value="fail">do not upload</option>
        </select>
      </label>
    </>
  );
}

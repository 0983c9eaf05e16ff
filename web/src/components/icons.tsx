// Small inline icons (no icon font, no emoji font needed), hidden from
// screen readers: the name next to them says what the item is.

export function FolderIcon() {
  return (
    <svg class="icon" viewBox="0 0 20 20" width="18" height="18" aria-hidden="true" focusable="false">
      <path d="M2 5.5A1.5 1.5 0 0 1 3.5 4h4l2 2h7A1.5 1.5 0 0 1 18 7.5v7a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 2 14.5z" fill="currentColor" opacity="0.75" />
    </svg>
  );
}

export function FileIcon() {
  return (
    <svg class="icon" viewBox="0 0 20 20" width="18" height="18" aria-hidden="true" focusable="false">
      <path d="M5 2h6l4 4v11.5a.5.5 0 0 1-.5.5h-9a.5.5 0 0 1-.5-.5v-15A.5.5 0 0 1 5 2z" fill="none" stroke="currentColor" stroke-width="1.5" />
      <path d="M11 2v4h4" fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

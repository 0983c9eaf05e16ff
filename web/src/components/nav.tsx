// The views, as a navigation list.

import { useLocation } from "preact-iso";
import { useApp } from "../state";

const VIEWS = [
  { href: "/files", label: "My files", match: (p: string) => p === "/" || p === "/files" || p.startsWith("/folders/") },
  { href: "/shared", label: "Shared with me", match: (p: string) => p === "/shared" },
  { href: "/shortcuts", label: "Shortcuts", match: (p: string) => p === "/shortcuts" },
  { href: "/trash", label: "Trash", match: (p: string) => p === "/trash" },
];

export function Nav() {
  const { path } = useLocation();
  const { bump } = useApp();
  return (
    <nav class="views" aria-label="Views">
      <ul>
        {VIEWS.map((v) => (
          <li key={v.href}>
            <a
              href={v.href}
              aria-current={v.match(path) ? "page" : undefined}
              // The view on screen, chosen again: load it again.
              onClick={() => v.match(path) && bump()}
            >
              {v.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}
